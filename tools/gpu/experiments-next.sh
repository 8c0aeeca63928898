#!/usr/bin/env bash
# On the GPU machine (written in session 23 for the next GPU session, at most DEADLINE, default 570 s):
# 1. decode attention variants built in session 23 without a GPU, against the default, 64 x (256 + 64)
#    without adapters and the PEFT workload (Llama-2-7B, LoRA r8 on q, k, v, o, gathered), two rounds
#    interleaved (OUT/ab/); the rule: both rounds beat both default rounds, median +2%:
#    - the fourth form, now with float32 lane sums as the default third form has them
#      (-Dflora.cuda.attention=v4; it lost 3.1% in session 19 when both summed in float64);
#    - the third form with more blocks a multiprocessor: chunks of 96 positions and registers for 6
#      blocks (72 registers, 34.7 KB of shared memory: 6 blocks), or chunks of 64 and registers for 8
#      (64 registers, 26.3 KB: 8 blocks), where the default's 80 registers and 43.2 KB allow 5;
# 2. figure 2 with the packaged defaults: Llama-2-7B gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/),
#    session 15's 4096 calibration, as the other points.
#   runtime/experiments-next.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; deadline="${DEADLINE:-570}"
mkdir -p "$out/ab"
v4="-Dflora.cuda.attention=v4"
six="-Dflora.cuda.defines=ATTN_CHUNK=96,ATTN_MIN_BLOCKS=6"
eight="-Dflora.cuda.defines=ATTN_CHUNK=64,ATTN_MIN_BLOCKS=8"
peft="$PEFT_WORKLOAD"
RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab" llama2-7b 64 256 64 "" "$v4" "$six" "$eight"
RUNS=2 EXTRA="$peft" timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 "" "$v4" "$six" "$eight"
echo "ab: ${SECONDS} s"
SERIES=lora-gathered,lora-auto RANKS=8,64 RUNS=3 \
  CALIBRATION_FILE="${CALIBRATION_FILE:-$here/../bench/results/cuda/calibration-cuda-h200-d4096-session15.json}" \
  timeout "$(seconds_left "$deadline")" bash "$here/bench-figures.sh" "$out/7b" llama2-7b
echo "done: ${SECONDS} s"
