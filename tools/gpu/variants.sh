#!/usr/bin/env bash
# On the GPU machine: Flora's decode benchmark under several JVM flag sets, one JSON line each, to
# compare kernel choices in one run (A/B on the same GPU, interleaved).
#   runtime/variants.sh OUT SHAPE BATCH PROMPT TOKENS 'FLAGS A' 'FLAGS B' ...
# RUNS=N repeats the whole sequence N times (default 1). EXTRA='...' adds bench decode options to every run
# (adapters: EXTRA='--adapter-kind flora --rank 1 --targets q_proj,k_proj'). Each line goes to
# OUT/variants-SHAPE-BATCH.jsonl with the flags in front: FLAGS<TAB>JSON.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/runtime.sh"
out="$1"; shape="$2"; batch="$3"; prompt="$4"; tokens="$5"; shift 5
mkdir -p "$out"
model="$(shape_model "$shape" "$out")"
for r in $(seq "${RUNS:-1}"); do
  for flags in "$@"; do
    line="$(JAVA_OPTS="$flags" flora bench decode --model "$model" --random-weights --device cuda --batch "$batch" \
      --prompt-tokens "$prompt" --tokens "$tokens" ${EXTRA:-} --json | tail -1)" || true
    if [[ "$line" != "{"* ]]; then echo "variants: '${flags:-(default)}' gave no result line" >&2; continue; fi
    printf '%s\t%s\n' "$flags" "$line" | tee -a "$out/variants-$shape-$batch.jsonl" \
      | python3 "$here/variant-line.py" >&2
  done
done
