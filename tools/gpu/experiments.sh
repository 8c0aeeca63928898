#!/usr/bin/env bash
# On the GPU machine, in one call: the GPU tests (OUT/tests.txt), the calibration on a 6144 x 6144
# layer (OUT/calibration.txt, OUT/calibration-cuda.json: CALIBRATION_FILE for bench-figures.sh in later
# calls), then figure 2's lora-gathered series at RANKS (default 16,64) with the tiled LoRA kernels on
# and off (OUT/tiled-true/, OUT/tiled-false/ throughput-starcoder-15b.jsonl).
#   runtime/experiments.sh OUT
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
mkdir -p "$out"
timeout 300 bash "$here/test.sh" > "$out/tests.txt" 2>&1
grep -E "✘|tests (successful|failed)" "$out/tests.txt" | head -40
SERIES=none RANKS=1 CALIBRATE=6144 bash "$here/bench-figures.sh" "$out/base" starcoder-15b throughput 2>&1 | grep -E '^ +(16|8192) +(16|64) '
cp "$out/base/calibration-cuda.json" "$out/" 2>/dev/null
for tiled in true false; do
  JAVA_OPTS="-Dflora.cuda.tiledLora=$tiled" SERIES=lora-gathered RANKS="${RANKS:-16,64}" CALIBRATION_FILE="$out/calibration-cuda.json" \
    bash "$here/bench-figures.sh" "$out/tiled-$tiled" starcoder-15b throughput 2>&1 | grep -E '^\{' | cut -c1-200
done
