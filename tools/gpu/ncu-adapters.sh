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
python3 - "$out/ncu-adapters.csv" <<'PY'
import csv, sys, collections
rows = [l for l in open(sys.argv[1]) if l.startswith('"')]
reader = csv.DictReader(rows)
times = collections.defaultdict(list)
scale = 1e-3  # to microseconds, by the unit row
for r in reader:
    unit = r.get("gpu__time_duration.sum", "")
    if unit in ("nsecond", "usecond", "msecond"):
        scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}[unit]
        continue
    try:
        times[r["Kernel Name"][:60]].append(float(r["gpu__time_duration.sum"].replace(",", "")) * scale)
    except (KeyError, ValueError):
        pass
for name, t in sorted(times.items(), key=lambda kv: -sum(kv[1])):
    print(f"{name:60s} {len(t):5d} launches  mean {sum(t)/len(t):8.2f} us  min {min(t):8.2f} us")
PY
