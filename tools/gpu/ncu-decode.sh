#!/usr/bin/env bash
# On the GPU machine: where a steady decode step's time goes, kernel by kernel (Nsight Compute,
# clocks left alone, each kernel of the step's graph a result): flora bench decode on a random-weight
# SHAPE (llama2-7b) at BATCH (64) sequences, skipping the first SKIP (3000) launches (prefill, the
# first steps) and profiling COUNT (400) after them; the extra arguments go to bench decode, JAVA_OPTS to the JVM.
#   runtime/ncu-decode.sh OUT NAME [bench decode options...]      (OUT/ncu-decode-NAME.{csv,log,txt})
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/runtime.sh"
out="$1"; name="$2"; shift 2
mkdir -p "$out"
model="$(shape_model "${SHAPE:-llama2-7b}")"
ncu="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
timeout "${NCU_TIMEOUT:-240}" "$ncu" --clock-control none --csv --page raw --metrics gpu__time_duration.sum${METRICS:+,$METRICS} \
  --launch-skip "${SKIP:-3000}" --launch-count "${COUNT:-400}" \
  "$here/jre/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED ${JAVA_OPTS:-} -jar "$app/flora.jar" \
  bench decode --model "$model" --random-weights --device cuda --batch "${BATCH:-64}" --prompt-tokens 256 --tokens 24 "$@" \
  > "$out/ncu-decode-$name.csv" 2> "$out/ncu-decode-$name.log"
echo "ncu exit $?"
python3 "$here/ncu-summary.py" "$out/ncu-decode-$name.csv" "${METRICS:-}" | tee "$out/ncu-decode-$name.txt"
