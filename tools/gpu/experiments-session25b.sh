#!/usr/bin/env bash
# On the GPU machine (at most DEADLINE, default 560 s; session 25 ran its first form on an H100):
# 1. on an H200 only, first: figure 2's Llama-2-7B points, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/),
#    in at most 300 s;
# 2. two rounds, 64 x (256 + 64) without adapters and on the PEFT workload (OUT/ab/; on an H200 the PEFT
#    workload's end to end is the PEFT ratio): the defaults; session 25's three new defaults off (mlpHalf,
#    loraOverlap, overlapSmall); float32 LoRA factors read 4 bytes a lane (LORA_WIDE_LOADS=0); LoRA's shrink
#    before the q/k/v products (-Dflora.cuda.loraFirst=true, lost on the H100); lora_expand by blocks of 512
#    and of 256 output columns (-Dflora.cuda.loraExpandColumns, 1024 by default); rms_norm's weight asked of
#    L2 before it waits (RMS_PREFETCH=1); then loraFirst's GPU test;
# 3. where a PEFT-workload decode step goes, kernel by kernel (Nsight Compute; OUT/ncu-decode-peft.txt), in the
#    time left (at most 200 s).
#   runtime/experiments-session25b.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
experiment_start "$1" 560
figure_7b_points "$out" "$(( deadline < 300 ? deadline : 300 ))"
echo "7b: ${SECONDS} s"
ab_rounds "$out" "$deadline" "" "-Dflora.cuda.mlpHalf=false -Dflora.cuda.loraOverlap=false -Dflora.cuda.overlapSmall=false" \
  "-Dflora.cuda.defines=LORA_WIDE_LOADS=0" "-Dflora.cuda.loraFirst=true" "-Dflora.cuda.loraExpandColumns=512" \
  "-Dflora.cuda.loraExpandColumns=256" "-Dflora.cuda.defines=RMS_PREFETCH=1"
JDK_JAVA_OPTIONS="-Dflora.cuda.loraFirst=true" gpu_tests_each "$out" loraShrinkBeforeTheProductsGivesTheSameBits
echo "ab: ${SECONDS} s"
NCU_TIMEOUT="$(( $(seconds_left "$deadline") < 200 ? $(seconds_left "$deadline") : 200 ))" bash "$here/ncu-decode.sh" "$out" peft $PEFT_WORKLOAD
echo "done: ${SECONDS} s"
