#!/usr/bin/env bash
# On the GPU machine: where the time of one adapted layer goes, kernel by kernel (Nsight Compute,
# clocks left alone): flora bench adapters --device cuda at d = DIM (6144) for TOKENS tokens over as
# many sequences (64), ranks RANKS (1), and the mean duration of each kernel over its launches.
#   runtime/ncu-adapters.sh OUT          (log and CSV under OUT)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/runtime.sh"
out="$1"; mkdir -p "$out"
ncu="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
tokens="${TOKENS:-64}"
timeout "${NCU_TIMEOUT:-200}" "$ncu" --clock-control none --csv --page raw --metrics gpu__time_duration.sum \
  --kernel-name regex:"${NCU_KERNELS:-lora|flora|half|gemm|nvjet|sm90|cutlass|gather|scatter|add}" --launch-count "${NCU_COUNT:-400}" \
  "$here/jre/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -jar "$app/flora.jar" \
  bench adapters --device cuda --dim "${DIM:-6144}" --sequences "$(( tokens < 64 ? tokens : 64 ))" --tokens "$tokens" \
  --ranks "${RANKS:-1}" --rounds 1 --json --plot /dev/null > "$out/ncu-adapters.csv" 2> "$out/ncu-adapters.log"
echo "ncu exit $?"
python3 "$here/ncu-summary.py" "$out/ncu-adapters.csv" | tee "$out/ncu-adapters.txt"
