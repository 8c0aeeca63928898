#!/usr/bin/env bash
# On the GPU machine, in one call: the GPU tests, then A/B runs of the kernel flags against the
# defaults (bench/results/cuda/NOTES.md): the PEFT workload end to end with and without the tiled
# LoRA kernels (RUNS=N rounds, default 2, interleaved), then, with CALIBRATE=D, flora calibrate on a
# D x D layer. Lines under OUT (lora-tiled-I/ and lora-per-token-I/ e2e-*.jsonl, calibration.txt).
#   runtime/experiments.sh OUT
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
out="$1"
mkdir -p "$out"
timeout 300 bash "$here/test.sh" 2>&1 | grep -E "✘|tests (successful|failed)|expected|Exception" | head -40
for ((i = 1; i <= ${RUNS:-2}; i++)); do
  for tiled in true false; do
    JAVA_OPTS="-Dflora.cuda.tiledLora=$tiled" ONLY=e2e bash "$here/bench-adapters.sh" "$out/lora-$([ $tiled = true ] && echo tiled || echo per-token)-$i" \
      2>&1 | grep -v WARNING | tail -1
  done
done
if [ -n "${CALIBRATE:-}" ]; then
  flora calibrate --device cuda --dim "$CALIBRATE" --tokens 16,64,512,2048,8192 --ranks 1,2,4,8,16,32,64 --rounds 1 \
    --strategies flora,gathered,bmm | tee "$out/calibration.txt"
fi
