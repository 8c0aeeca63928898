#!/usr/bin/env bash
# On the GPU machine: one kernel in depth (Nsight Compute's full set: throughput, memory, occupancy,
# warp stall reasons, source counters), COUNT (2) launches of the kernels whose names match REGEX,
# after SKIP (default 0) of them, in flora bench decode on a random-weight SHAPE (llama2-7b) at BATCH
# (64) sequences of PROMPT (256) tokens; the extra arguments go to bench decode, JAVA_OPTS to the JVM.
# For what a time summary (ncu-decode.sh) cannot say: why a kernel runs at the speed it does (the
# prefill tiles' products at about 39 TFLOP/s, the decode attention at half of DRAM's peak).
#   runtime/ncu-kernel.sh OUT NAME REGEX [bench decode options...]    (OUT/ncu-kernel-NAME.{ncu-rep,txt,csv,log})
#   e.g. runtime/ncu-kernel.sh OUT tiles 'attention_tiles2_bf16_128'
#        SKIP=200 runtime/ncu-kernel.sh OUT attention 'attention_v3_bf16_128'
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/runtime.sh"
out="$1"; name="$2"; regex="$3"; shift 3
mkdir -p "$out"
model="$(shape_model "${SHAPE:-llama2-7b}")"
ncu="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
timeout "${NCU_TIMEOUT:-240}" "$ncu" --clock-control none --set full --import-source no --kernel-name "regex:$regex" \
  --launch-skip "${SKIP:-0}" --launch-count "${COUNT:-2}" -o "$out/ncu-kernel-$name" -f \
  "$here/jre/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED ${JAVA_OPTS:-} -jar "$app/flora.jar" \
  bench decode --model "$model" --random-weights --device cuda --batch "${BATCH:-64}" --prompt-tokens "${PROMPT:-256}" --tokens 8 "$@" \
  > "$out/ncu-kernel-$name.log" 2>&1
echo "ncu exit $?"
# Every section's body too where this ncu can (--print-details), else the headers; and the raw metrics
# (warp stall reasons among them: smsp__average_warp_latency_issue_stalled_*).
"$ncu" --import "$out/ncu-kernel-$name.ncu-rep" --page details --print-details all > "$out/ncu-kernel-$name.txt" 2>&1 \
  || "$ncu" --import "$out/ncu-kernel-$name.ncu-rep" --page details > "$out/ncu-kernel-$name.txt" 2>&1
"$ncu" --import "$out/ncu-kernel-$name.ncu-rep" --page raw --csv > "$out/ncu-kernel-$name.csv" 2>&1
python3 - "$out/ncu-kernel-$name.csv" <<'PY'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if r]
if len(rows) > 2:
    head, units, first = rows[0], rows[1], rows[2]
    stalls = sorted(((float(first[i].replace(",", "")), head[i]) for i in range(len(head))
                     if head[i].startswith("smsp__average_warp_latency_issue_stalled_") and head[i].endswith(".ratio")
                     and first[i].replace(",", "").replace(".", "", 1).isdigit()), reverse=True)
    print("warp stall reasons (cycles per issued instruction), first launch:")
    for value, metric in stalls[:8]:
        print(f"  {metric.removeprefix('smsp__average_warp_latency_issue_stalled_').removesuffix('.ratio'):28s} {value:8.2f}")
PY
grep -E "^  [a-z_0-9]+|Duration|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per Thread|Block Limit|Stall|Issue Slots Busy|Warp Cycles Per Issued|One or More Eligible|L1/TEX Hit|L2 Hit|Executed Ipc" \
  "$out/ncu-kernel-$name.txt" | head -80
