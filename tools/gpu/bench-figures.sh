#!/usr/bin/env bash
# On the GPU machine: the fLoRA paper's figures on a random-weight shape, as JSON lines under OUT
# (plots are drawn where fonts exist: flora bench throughput/latency print the lines first).
#   runtime/bench-figures.sh OUT [SHAPE] [throughput|latency ...]      (SHAPE default starcoder-15b)
# Environment: SERIES (default none,flora,lora-bmm,lora-gathered,lora-auto), RANKS, REQUESTS (200), RUNS (1; 3 for medians),
# KV (KV-cache bytes, default 12 GB: each point's engine makes its own; StarCoder-15B's 200 requests need under 9 GB), RATE (latency, default 8),
# TARGETS (default: c_attn / q,k,v,o), CALIBRATE=D (first measure the GPU's adapter costs on a D x D
# layer for the auto series: flora calibrate --device cuda without the exact strategies, about 90 s; its
# calibration-cuda.json is copied to OUT), CALIBRATION_FILE=F (install an earlier call's calibration-cuda.json instead).
# GPUS=N (default: every GPU nvidia-smi lists) runs the ranks spread over N GPUs at once, one process a
# GPU (CUDA_VISIBLE_DEVICES), each comparing every series at its ranks on its own GPU, each appending to
# OUT/FIGURE-SHAPE.gpuI.jsonl, joined into OUT/FIGURE-SHAPE.jsonl at the end.
# JSON lines are appended point by point; draw them where fonts exist with
#   flora bench throughput --from OUT/throughput-SHAPE.jsonl --plot PNG   (latency likewise)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/runtime.sh"
out="$1"; shape="${2:-starcoder-15b}"; shift 2 || shift $#
figures=("${@:-throughput}")
mkdir -p "$out"
model="$(shape_model "$shape")"
cache="${FLORA_CACHE:-$HOME/.cache/flora}"
if [ -n "${CALIBRATION_FILE:-}" ]; then # an earlier call's calibration-cuda.json: no need to measure it again
  mkdir -p "$cache" && cp "$CALIBRATION_FILE" "$cache/calibration-cuda.json"
fi
if [ -n "${CALIBRATE:-}" ]; then
  flora calibrate --device cuda --dim "$CALIBRATE" --tokens 16,64,512,2048,8192 --ranks 1,2,4,8,16,32,64 --rounds 1 \
    --strategies flora,gathered,bmm | tee "$out/calibration.txt"
  cp "$cache/calibration-cuda.json" "$out/" # for CALIBRATION_FILE in the next call
fi
common=(--model "$model" --random-weights --device cuda --series "${SERIES:-none,flora,lora-bmm,lora-gathered,lora-auto}"
        --requests "${REQUESTS:-200}" --kv-cache-memory "${KV:-12000000000}" --runs "${RUNS:-1}" --json)
[ -n "${TARGETS:-}" ] && common+=(--targets "$TARGETS")
gpus="${GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}"
[ "$gpus" -ge 1 ] 2>/dev/null || gpus=1
# figure FIGURE RANKS FILE: one process, the given ranks, every series.
figure() {
  case "$1" in
    throughput) flora bench throughput "${common[@]}" --ranks "$2" --plot "${3%.jsonl}.png" | tee -a "$3" ;;
    latency) flora bench latency "${common[@]}" --ranks "$2" --rate "${RATE:-8}" --plot "${3%.jsonl}.png" | tee -a "$3" ;;
    *) echo "bench-figures: '$1' is not a figure (throughput or latency)" >&2; exit 2 ;;
  esac
}
for f in "${figures[@]}"; do
  case "$f" in throughput) ranks="${RANKS:-1,2,4,8,16,32,64}" ;; latency) ranks="${RANKS:-1,2,4,8}" ;; *) ranks="" ;; esac
  if [ "$gpus" -le 1 ]; then
    figure "$f" "$ranks" "$out/$f-$shape.jsonl"
    continue
  fi
  IFS=, read -ra all <<< "$ranks"
  pids=()
  for ((g = 0; g < gpus && g < ${#all[@]}; g++)); do
    mine=()
    for ((i = g; i < ${#all[@]}; i += gpus)); do mine+=("${all[$i]}"); done
    (export CUDA_VISIBLE_DEVICES=$g; figure "$f" "$(IFS=,; echo "${mine[*]}")" "$out/$f-$shape.gpu$g.jsonl" > "$out/$f-$shape.gpu$g.log" 2>&1) &
    pids+=($!)
  done
  status=0
  for p in "${pids[@]}"; do wait "$p" || status=$?; done
  cat "$out/$f-$shape".gpu*.jsonl >> "$out/$f-$shape.jsonl"
  [ "$status" = 0 ] || { echo "bench-figures: a GPU's run failed ($out/$f-$shape.gpu*.log)" >&2; exit "$status"; }
done
