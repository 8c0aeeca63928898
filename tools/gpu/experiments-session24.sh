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
experiment_start "$1" 570
eight="-Dflora.cuda.defines=ATTN_CHUNK=64,ATTN_MIN_BLOCKS=8"
ab_rounds "$out" "$deadline" "" "$eight"
echo "ab: ${SECONDS} s"
timeout 60 python3 "$here/lt-sweep.py" 64 > "$out/lt.txt" 2>&1; echo "lt: ${SECONDS} s"
JDK_JAVA_OPTIONS="$eight" gpu_tests "$out"; echo "tests: ${SECONDS} s"
JAVA_OPTS="$eight" figure_7b_points "$out" "$deadline"
echo "done: ${SECONDS} s"
