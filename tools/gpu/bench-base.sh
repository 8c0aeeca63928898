#!/usr/bin/env bash
# On the GPU machine: Flora's decode benchmark and the transformers peer on the same random-weight
# shape and workloads (batch 1; 64 prompts of 256 + 64 new). Writes JSON lines under OUT and, from them,
# OUT/report/base-SHAPE.md and .png (flora bench report).
#   runtime/bench-base.sh OUT [SHAPE]      (SHAPE: llama2-7b, starcoder-15b, ...; default llama2-7b)
# RUNS=N runs Flora's benchmark N times per workload (default 1). PEER=0 skips the transformers runs (the report then needs their lines from an earlier run); MODEL_ROOT: where the
# config-only model directory goes (default OUT).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/runtime.sh"
out="$1"; shape="${2:-llama2-7b}"
mkdir -p "$out"
model="$(shape_model "$shape" "$out")"
for run in "1 16 64" "64 256 63"; do
  set -- $run
  for r in $(seq "${RUNS:-1}"); do
    flora bench decode --model "$model" --random-weights --device cuda --batch "$1" --prompt-tokens "$2" --tokens "$3" --json \
      | tee -a "$out/flora-$shape.jsonl"
  done
  [ "${PEER:-1}" = 0 ] || python3 "$here/../tools/peer/transformers_bench.py" --config "$model/config.json" --batch "$1" --prompt-tokens "$2" \
    --new-tokens $(( $3 + 1 )) | tee -a "$out/transformers-$shape.jsonl"
done
if [ -f "$out/transformers-$shape.jsonl" ]; then flora bench report --in "$out/flora-$shape.jsonl" "$out/transformers-$shape.jsonl" --out "$out/report"; fi
