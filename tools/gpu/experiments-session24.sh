#!/usr/bin/env bash
# On the GPU machine (session 24, at most DEADLINE, default 570 s): the third decode attention form at
# chunks of 64 positions and launch bounds for 8 blocks a multiprocessor (it beat the default in both
# rounds on the H100 in session 24's first call), before it becomes the default:
# 1. A/B against the default, 64 x (256 + 64) without adapters and on the PEFT workload, two rounds (OUT/ab/);
# 2. cuBLASLt's candidate algorithms against cublasGemmEx at a decode step's shapes (OUT/lt.txt);
# 3. the GPU tests with those defines (OUT/tests.txt);
# 4. on an H200 only: figure 2's Llama-2-7B points with them, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/).
#   runtime/experiments-session24.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; deadline="${DEADLINE:-570}"
mkdir -p "$out/ab"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"; echo "$gpu"
eight="-Dflora.cuda.defines=ATTN_CHUNK=64,ATTN_MIN_BLOCKS=8"
RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab" llama2-7b 64 256 64 "" "$eight"
RUNS=2 EXTRA="$PEFT_WORKLOAD" timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 "" "$eight"
echo "ab: ${SECONDS} s"
timeout 60 python3 "$here/lt-sweep.py" 64 > "$out/lt.txt" 2>&1; echo "lt: ${SECONDS} s"
JDK_JAVA_OPTIONS="$eight" gpu_tests "$out"; echo "tests: ${SECONDS} s"
case "$gpu" in *H200*)
  JAVA_OPTS="$eight" SERIES=lora-gathered,lora-auto RANKS=8,64 RUNS=3 \
    CALIBRATION_FILE="$here/../bench/results/cuda/calibration-cuda-h200-d4096-session15.json" \
    timeout "$(seconds_left "$deadline")" bash "$here/bench-figures.sh" "$out/7b" llama2-7b ;;
esac
echo "done: ${SECONDS} s"
