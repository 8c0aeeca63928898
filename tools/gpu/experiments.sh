#!/usr/bin/env bash
# On the GPU machine, in one call (about 400 s): the GPU tests (OUT/tests.txt; the third decode attention
# form's bits and auto's), then the decode attention forms A/B with bench decode (runtime/variants.sh,
# two rounds interleaved; FLAGS<TAB>JSON lines in OUT/variants-SHAPE-BATCH.jsonl): auto (the default)
# against the second and third forms everywhere, on the llama2-7b shape at 64 x (256 + 64) and at one
# sequence, where session 12 saw the third form +3.5% and -10%. Auto should be the better of the two at both.
#   runtime/experiments.sh OUT
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
mkdir -p "$out"
timeout 300 bash "$here/test.sh" > "$out/tests.txt" 2>&1
grep -E "✘|tests (successful|failed)" "$out/tests.txt" | head -40
for batch in 64 1; do
  RUNS=2 bash "$here/variants.sh" "$out" llama2-7b "$batch" 256 64 '' '-Dflora.cuda.attention=v2' '-Dflora.cuda.attention=v3'
done
