#!/usr/bin/env bash
# On the GPU machine (session 25's second call, at most DEADLINE, default 540 s):
# 1. the session's new defaults (mlpHalf, loraOverlap, overlapSmall) against all three off, and with float32
#    LoRA factors read 16 bytes a load (LORA_WIDE_LOADS=1: tied in session 23, before the overlap), and with
#    LoRA's shrink before the q/k/v products (-Dflora.cuda.loraFirst=true), two rounds, 64 x (256 + 64) without
#    adapters and on the PEFT workload (OUT/ab/);
# 2. where a PEFT-workload decode step goes now, kernel by kernel (Nsight Compute; OUT/ncu-decode-peft.txt);
# 3. on an H200 only: figure 2's Llama-2-7B points, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/).
#   runtime/experiments-session25b.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; deadline="${DEADLINE:-540}"
mkdir -p "$out"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"; echo "$gpu"
ab_rounds "$out" "$deadline" "" "-Dflora.cuda.mlpHalf=false -Dflora.cuda.loraOverlap=false -Dflora.cuda.overlapSmall=false" \
  "-Dflora.cuda.defines=LORA_WIDE_LOADS=1" "-Dflora.cuda.loraFirst=true"
JDK_JAVA_OPTIONS="-Dflora.cuda.loraFirst=true" gpu_tests_each "$out" loraShrinkBeforeTheProductsGivesTheSameBits
echo "ab: ${SECONDS} s"
NCU_TIMEOUT="$(( $(seconds_left "$deadline") < 200 ? $(seconds_left "$deadline") : 200 ))" bash "$here/ncu-decode.sh" "$out" peft $PEFT_WORKLOAD
echo "ncu: ${SECONDS} s"
figure_7b_points "$out" "$deadline"
echo "done: ${SECONDS} s"
