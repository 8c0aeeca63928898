#!/usr/bin/env bash
# One GPU call of a working session: the GPU tests, then the base benchmark on SHAPE (no peer),
# then the same workloads once more with -Dflora.cuda.profile=true (time per operation, no graphs).
# TESTS=0, PROFILE=0 skip those parts; PEER=1 runs the transformers peer too; NCU=1 adds Nsight Compute
# kernel times (NCU_BATCHES, NCU_KERNELS, NCU_SKIP).
#   runtime/session.sh OUT [SHAPE] [TEST-SELECTION...]     logs and JSON lines under OUT
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/runtime.sh"
out="$1"; shape="${2:-llama2-7b}"; shift 2 || shift $#
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
if [ "${TESTS:-1}" = 1 ]; then
  "$here/test.sh" "$@" > "$out/tests.log" 2>&1
  echo "tests: exit $?"; grep -E "tests (successful|failed)|MethodSource|=> " "$out/tests.log" | head -40
fi
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
PEER="${PEER:-0}" "$here/bench-base.sh" "$out" "$shape" > "$out/bench.log" 2>&1; echo "bench: exit $?"
grep -v '^{' "$out/bench.log" | tail -5
python3 - "$out/flora-$shape.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"batch {r['batch']:3d} prompt {r['promptTokens']:4d}: decode {r['tokensPerSecond']:8.1f} tok/s = {100*r['memoryFraction']:5.1f}% of roofline "
          f"{r['rooflineTokensPerSecond']:7.1f}; end-to-end {r['endToEndOutputTokensPerSecond']:8.1f}; prefill {1e3*r.get('prefillSeconds',0):7.1f} ms "
          f"= {100*r.get('prefillFlopFraction',0):5.1f}% of {r['limits']['flopsPerSecond']/1e12:.0f} TFLOP/s; copy {r['limits']['bytesPerSecond']/1e12:.2f} TB/s")
PY
if [ "${PROFILE:-1}" = 1 ]; then
  for run in "1 16 16" "64 256 8"; do
    set -- $run
    java_flora -Dflora.cuda.profile=true -jar "$app/flora.jar" bench decode --model "$MODEL_ROOT/$shape" --random-weights --device cuda \
      --batch "$1" --prompt-tokens "$2" --tokens "$3" > "$out/profile-$1.log" 2>&1
    echo "== profile batch $1 x $2 + $3"; grep -E "tokens/s|reached|prefill  |flora.cuda" "$out/profile-$1.log"
    grep -E " calls " "$out/profile-$1.log" | awk '{ if ($(NF-6)+0 > 20) print }' | head -50
  done
fi
if [ "${NCU:-0}" = 1 ]; then
  # Kernel durations and DRAM throughput of the decode kernels at batch 1 (Nsight Compute, clocks left alone).
  ncu="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
  for b in ${NCU_BATCHES:-1 64}; do
    timeout 240 "$ncu" --clock-control none --kernel-name regex:"${NCU_KERNELS:-gemv|attention|cutlass|gemm|sm90}" --launch-skip "${NCU_SKIP:-400}" --launch-count 14 \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
      java_flora -Dflora.cuda.profile=true -jar "$app/flora.jar" bench decode --model "$MODEL_ROOT/$shape" --random-weights --device cuda \
      --batch $b --prompt-tokens 256 --tokens 8 > "$out/ncu-$b.log" 2>&1
    echo "== ncu batch $b (exit $?)"; grep -E "^  [a-z_0-9]+.*\(|gpu__time|dram__" "$out/ncu-$b.log" | head -60
  done
fi
