#!/usr/bin/env bash
# On the GPU machine (session 24's second build, at most DEADLINE, default 570 s):
# 1. the gated MLP's activation written in 16 bits for the down product (-Dflora.cuda.mlpHalf=true) against float32 then
#    to_half (the default), 64 x (256 + 64) without adapters and on the PEFT workload, two rounds (OUT/ab/);
# 2. the GPU tests with it on (OUT/tests.txt);
# 3. small batches (1 and 8 sequences, where auto takes the second decode attention form) at chunks of 64
#    positions (the default since session 24, timed only at 64 sequences) against 128, two rounds (OUT/small/);
# 4. on an H200 only: figure 2's Llama-2-7B points, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/).
#   runtime/experiments-session24b.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; deadline="${DEADLINE:-570}"
mkdir -p "$out"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"; echo "$gpu"
after="-Dflora.cuda.mlpHalf=true"
ab_rounds "$out" "$deadline" "" "$after"
echo "ab: ${SECONDS} s"
JDK_JAVA_OPTIONS="$after" gpu_tests "$out"; echo "tests: ${SECONDS} s"
for batch in 1 8; do
  RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/small" llama2-7b "$batch" 256 64 "" \
    "-Dflora.cuda.defines=ATTN_CHUNK=128"
done
echo "small: ${SECONDS} s"
figure_7b_points "$out" "$deadline"
echo "done: ${SECONDS} s"
