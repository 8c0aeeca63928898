#!/usr/bin/env bash
# On the GPU machine (session 25, at most DEADLINE, default 570 s):
# 1. five arms, two rounds, 64 x (256 + 64) without adapters and on the PEFT workload (OUT/ab/): the default;
#    the gated MLP's activation written in 16 bits (-Dflora.cuda.mlpHalf=true, session 24); the decode LoRA
#    kernels launched overlapped, their factors prefetched into L2 before they wait (-Dflora.cuda.loraOverlap=true);
#    the small kernels between products launched overlapped (-Dflora.cuda.overlapSmall=true); all three;
# 2. the GPU tests with all three on (OUT/tests.txt);
# 3. on an H200 only: figure 2's Llama-2-7B points, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/);
# 4. small batches (1 and 8 sequences, the second decode attention form) at chunks of 64 positions (the
#    default) against 128, two rounds (OUT/small/).
#   runtime/experiments-session25.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
experiment_start "$1" 570
half="-Dflora.cuda.mlpHalf=true"; lora="-Dflora.cuda.loraOverlap=true"; small="-Dflora.cuda.overlapSmall=true"
ab_rounds "$out" "$deadline" "" "$half" "$lora" "$small" "$half $lora $small"
echo "ab: ${SECONDS} s"
JDK_JAVA_OPTIONS="$half $lora $small" gpu_tests "$out"; echo "tests: ${SECONDS} s"
figure_7b_points "$out" "$deadline"
echo "7b: ${SECONDS} s"
for batch in 1 8; do
  RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/small" llama2-7b "$batch" 256 64 "" \
    "-Dflora.cuda.defines=ATTN_CHUNK=128"
done
echo "small: ${SECONDS} s"
