#!/usr/bin/env bash
# On the GPU machine (session 23, at most DEADLINE, default 540 s): float32 lane sums, now the default,
# on the H200 (session 23 timed them on an H100 only), then a figure 2 point not yet run.
# 1. The PEFT workload (Llama-2-7B, 64 x (256 + 64), 64 distinct LoRA r8 on q, k, v, o, gathered) and the
#    same without adapters, the default against the float64 lane sums of before (ATTN_LANE_SUMS=64), two
#    rounds interleaved (OUT/ab/);
# 2. Llama-2-13B at rank 64 with 120 requests, not 200 (200 float32 rank-64 adapters do not fit beside
#    the weights and the KV cache), none, gathered and auto, RUNS=3, with session 15's 4096 calibration (OUT/13b/).
#   runtime/experiments-session23.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; deadline="${DEADLINE:-540}"
mkdir -p "$out/ab"
before="-Dflora.cuda.defines=ATTN_LANE_SUMS=64"
peft="$PEFT_WORKLOAD"
RUNS=2 EXTRA="$peft" timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 "" "$before"
RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab" llama2-7b 64 256 64 "" "$before"
echo "ab: ${SECONDS} s"
REQUESTS=120 SERIES=none,lora-gathered,lora-auto RANKS=64 RUNS=3 \
  CALIBRATION_FILE="${CALIBRATION_FILE:-$here/../bench/results/cuda/calibration-cuda-h200-d4096-session15.json}" \
  timeout "$(seconds_left "$deadline")" bash "$here/bench-figures.sh" "$out/13b" llama2-13b
echo "done: ${SECONDS} s"
