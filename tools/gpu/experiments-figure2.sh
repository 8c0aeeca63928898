#!/usr/bin/env bash
# On the GPU machine (session 21's plan, at most DEADLINE, default 570 s): figure 2 points the defaults of
# session 20 (batched decode products, tiles v2) have not yet run, RUNS=3 each:
# 1. Llama-2-13B at rank 64 with 120 requests, not 200: 200 float32 rank-64 adapters on q, k, v, o need
#    83.9 GB and do not fit beside the weights and the 12 GB KV cache (session 20); 120 need 50.3 GB.
#    The base model too, at 120 requests, for the ratio (OUT/13b/);
# 2. Llama-2-7B gathered and auto at ranks 8 and 64 (OUT/7b/).
# Both with session 15's 4096 calibration, as the other points of these figures.
#   runtime/experiments-figure2.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
out="$1"; deadline="${DEADLINE:-570}"
calibration="${CALIBRATION_FILE:-$here/../bench/results/cuda/calibration-cuda-h200-d4096-session15.json}"
REQUESTS=120 SERIES=none,lora-gathered,lora-auto RANKS=64 RUNS=3 CALIBRATION_FILE="$calibration" \
  timeout "$(seconds_left "$deadline")" bash "$here/bench-figures.sh" "$out/13b" llama2-13b
echo "13b: ${SECONDS} s"
SERIES=lora-gathered,lora-auto RANKS=8,64 RUNS=3 CALIBRATION_FILE="$calibration" \
  timeout "$(seconds_left "$deadline")" bash "$here/bench-figures.sh" "$out/7b" llama2-7b
echo "done: ${SECONDS} s"
