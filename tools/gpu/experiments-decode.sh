#!/usr/bin/env bash
# On the GPU machine, the first call of a GPU session after sessions 16-18 (which had none): in about
# DEADLINE seconds (default 570),
# 1. the GPU tests never run on a GPU, each in a JVM of its own (OUT/tests-NAME.txt);
# 2. the decode attention's fourth form (-Dflora.cuda.attention=v4, rounds of 2 positions and of 1)
#    against auto, Llama-2-7B 64 x (256 + 64), no adapters, two rounds interleaved
#    (OUT/variants-llama2-7b-64.jsonl);
# 3. every other GPU test in the time left (OUT/tests.txt).
# Then runtime/experiments-winners.sh OUT2 OUT (the fused decode LoRA kernel, the decode products, the winners).
#   runtime/experiments-decode.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"
deadline="${DEADLINE:-570}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
gpu_tests_each "$out" "${NEW_TESTS[@]}"
echo "tests each: ${SECONDS} s"
PARTS=decode64 bash "$here/experiments-attention.sh" "$out"
echo "decode64: ${SECONDS} s"
gpu_tests_rest "$out" "$(seconds_left "$deadline")" "${NEW_TESTS[@]}"
echo "done: ${SECONDS} s"
