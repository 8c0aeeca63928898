#!/usr/bin/env bash
# On the GPU machine (at most DEADLINE, default 540 s; ran on an H100 in session 25, to run on an H200 next):
# 1. the defaults against session 25's three new flags off (mlpHalf, loraOverlap, overlapSmall), against float32
#    LoRA factors read 4 bytes a lane (LORA_WIDE_LOADS=0, the default until session 25), and with LoRA's shrink
#    before the q/k/v products (-Dflora.cuda.loraFirst=true, lost on the H100), two rounds, 64 x (256 + 64)
#    without adapters and on the PEFT workload (OUT/ab/; the PEFT workload's end to end on an H200 is the PEFT ratio);
#    then loraFirst's GPU test;
# 2. on an H200 only: figure 2's Llama-2-7B points, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/);
# 3. where a PEFT-workload decode step goes, kernel by kernel (Nsight Compute; OUT/ncu-decode-peft.txt), in the
#    time left (at most 200 s).
#   runtime/experiments-session25b.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; deadline="${DEADLINE:-540}"
mkdir -p "$out"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"; echo "$gpu"
ab_rounds "$out" "$deadline" "" "-Dflora.cuda.mlpHalf=false -Dflora.cuda.loraOverlap=false -Dflora.cuda.overlapSmall=false" \
  "-Dflora.cuda.defines=LORA_WIDE_LOADS=0" "-Dflora.cuda.loraFirst=true"
JDK_JAVA_OPTIONS="-Dflora.cuda.loraFirst=true" gpu_tests_each "$out" loraShrinkBeforeTheProductsGivesTheSameBits
echo "ab: ${SECONDS} s"
figure_7b_points "$out" "$deadline"
echo "7b: ${SECONDS} s"
NCU_TIMEOUT="$(( $(seconds_left "$deadline") < 200 ? $(seconds_left "$deadline") : 200 ))" bash "$here/ncu-decode.sh" "$out" peft $PEFT_WORKLOAD
echo "done: ${SECONDS} s"
