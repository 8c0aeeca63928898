#!/usr/bin/env bash
# On the GPU machine, in one call (about 500 s):
# 1. the GPU tests (OUT/tests.txt; among them the third decode attention form's bits and auto's);
# 2. the decode attention forms A/B with bench decode (runtime/variants.sh, two rounds interleaved;
#    FLAGS<TAB>JSON lines in OUT/variants-SHAPE-BATCH.jsonl): auto (the default) against the second and
#    third forms everywhere, on the llama2-7b shape at 64 x (256 + 64) and at one sequence, where session 12
#    saw the third form +3.5% and -10%. Auto should be the better of the two at both;
# 3. figure 2's lora-auto at ranks 16, 32, 64 on the StarCoder-3B shape, medians of 3, with session 12's
#    calibration (OUT/auto-split/throughput-starcoder-3b.jsonl): mixed steps now take two LoRA ways;
#    compare with figure2-starcoder-3b-h200-session12.jsonl (bmm 18,737 and auto 18,082 at rank 64).
#   runtime/experiments.sh OUT        (run from the repository root: the calibration is a committed file)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
mkdir -p "$out"
timeout 300 bash "$here/test.sh" > "$out/tests.txt" 2>&1
grep -E "✘|tests (successful|failed)" "$out/tests.txt" | head -40
for batch in 64 1; do
  RUNS=2 bash "$here/variants.sh" "$out" llama2-7b "$batch" 256 64 '' '-Dflora.cuda.attention=v2' '-Dflora.cuda.attention=v3'
done
CALIBRATION_FILE=bench/results/cuda/calibration-cuda-h200-d2816-session12.json SERIES=lora-auto RANKS=16,32,64 RUNS=3 \
  bash "$here/bench-figures.sh" "$out/auto-split" starcoder-3b throughput 2>&1 | grep -E '^\{' | cut -c1-220
