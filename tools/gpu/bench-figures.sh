#!/usr/bin/env bash
# On the GPU machine: the fLoRA paper's figures on a random-weight shape, as JSON lines under OUT
# (plots are drawn where fonts exist: flora bench throughput/latency print the lines first).
#   runtime/bench-figures.sh OUT [SHAPE] [throughput|latency ...]      (SHAPE default starcoder-15b)
# Environment: SERIES (default none,flora,lora-bmm,lora-gathered,lora-auto), RANKS, REQUESTS (200), RUNS (1; 3 for medians),
# KV (KV-cache bytes, default 12 GB: each point's engine makes its own; StarCoder-15B's 200 requests need under 9 GB), RATE (latency, default 8),
# TARGETS (default: c_attn / q,k,v,o), CALIBRATE=D (first measure the GPU's adapter costs on a D x D
# layer for the auto series: flora calibrate --device cuda without the exact strategies, a few minutes).
# JSON lines are appended point by point; draw them where fonts exist with
#   flora bench throughput --from OUT/throughput-SHAPE.jsonl --plot PNG   (latency likewise)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/runtime.sh"
out="$1"; shape="${2:-starcoder-15b}"; shift 2 || shift $#
figures=("${@:-throughput}")
mkdir -p "$out"
model="$(shape_model "$shape")"
if [ -n "${CALIBRATE:-}" ]; then
  flora calibrate --device cuda --dim "$CALIBRATE" --tokens 64,512,2048,8192 --ranks 1,2,4,8,16,32,64 --rounds 1 \
    --strategies flora,gathered,bmm | tee "$out/calibration.txt"
fi
common=(--model "$model" --random-weights --device cuda --series "${SERIES:-none,flora,lora-bmm,lora-gathered,lora-auto}"
        --requests "${REQUESTS:-200}" --kv-cache-memory "${KV:-12000000000}" --runs "${RUNS:-1}" --json)
[ -n "${TARGETS:-}" ] && common+=(--targets "$TARGETS")
for f in "${figures[@]}"; do
  case "$f" in
    throughput) flora bench throughput "${common[@]}" --ranks "${RANKS:-1,2,4,8,16,32,64}" --plot "$out/throughput-$shape.png" \
                  | tee -a "$out/throughput-$shape.jsonl" ;;
    latency) flora bench latency "${common[@]}" --ranks "${RANKS:-1,2,4,8}" --rate "${RATE:-8}" --plot "$out/latency-$shape.png" \
                  | tee -a "$out/latency-$shape.jsonl" ;;
    *) echo "bench-figures: '$f' is not a figure (throughput or latency)" >&2; exit 2 ;;
  esac
done
