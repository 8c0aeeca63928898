#!/usr/bin/env bash
# On the GPU machine, in one call: the GPU tests, then A/B runs of the experiments that are off by
# default (bench/results/cuda/NOTES.md, "Next"): batch-1 decode under each flag set, and the PEFT
# workload end to end with and without tiled LoRA. Lines under OUT (variants-*.jsonl, e2e-*.jsonl).
#   runtime/experiments.sh OUT      (RUNS=N rounds of the batch-1 flag sets, default 2)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
mkdir -p "$out"
timeout 300 bash "$here/test.sh" 2>&1 | grep -E "✘|tests (successful|failed)|expected|Exception" | head -40
RUNS="${RUNS:-2}" bash "$here/variants.sh" "$out" llama2-7b 1 16 64 "" "-Dflora.cuda.prefetch=true" "-Dflora.cuda.fuseRotation=true" \
  "-Dflora.cuda.prefetch=true -Dflora.cuda.fuseRotation=true" "-Dflora.cuda.defines=GEMV_UNROLL=4" "-Dflora.cuda.defines=GEMV_UNROLL=1" \
  2>&1 | grep -v WARNING
for tile in 1 8; do
  JAVA_OPTS="-Dflora.cuda.loraTile=$tile" ONLY=e2e bash "$here/bench-adapters.sh" "$out/tile$tile" 2>&1 | grep -v WARNING | tail -1
done
