#!/usr/bin/env bash
# On the GPU machine (session 24's second build, at most DEADLINE, default 570 s):
# 1. the gated MLP's activation written in 16 bits for the down product (default) against float32 then
#    to_half (-Dflora.cuda.mlpHalf=false), 64 x (256 + 64) without adapters and on the PEFT workload, two rounds (OUT/ab/);
# 2. the GPU tests with the packaged defaults (OUT/tests.txt);
# 3. on an H200 only: figure 2's Llama-2-7B points, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/).
#   runtime/experiments-session24b.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; deadline="${DEADLINE:-570}"
mkdir -p "$out/ab"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"; echo "$gpu"
before="-Dflora.cuda.mlpHalf=false"
RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab" llama2-7b 64 256 64 "" "$before"
RUNS=2 EXTRA="$PEFT_WORKLOAD" timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 "" "$before"
echo "ab: ${SECONDS} s"
gpu_tests "$out"; echo "tests: ${SECONDS} s"
case "$gpu" in *H200*)
  SERIES=lora-gathered,lora-auto RANKS=8,64 RUNS=3 \
    CALIBRATION_FILE="$here/../bench/results/cuda/calibration-cuda-h200-d4096-session15.json" \
    timeout "$(seconds_left "$deadline")" bash "$here/bench-figures.sh" "$out/7b" llama2-7b ;;
esac
echo "done: ${SECONDS} s"
