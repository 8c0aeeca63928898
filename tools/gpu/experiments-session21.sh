#!/usr/bin/env bash
# On the GPU machine (session 21, about 500 s): the packaged defaults of session 20 (batched decode
# products, tiles v2) end to end, and where a 64-sequence decode step goes now (for 100x PEFT):
# 1. every GPU test (OUT/tests.txt);
# 2. the PEFT workload (Llama-2-7B, 64 x (256 + 64), 64 distinct LoRA r8 on q, k, v, o, gathered) and the
#    same without adapters, two rounds interleaved (OUT/peft/);
# 3. Nsight Compute over steady decode steps at 64 sequences without adapters, with DRAM throughput,
#    SM throughput and active warps (OUT/ncu-decode-none64.txt).
#   runtime/experiments-session21.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; deadline="${DEADLINE:-560}"
mkdir -p "$out/peft"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
gpu_tests_rest "$out" 120 none
echo "tests: ${SECONDS} s"
peft="$PEFT_WORKLOAD"
for r in 1 2; do
  RUNS=1 EXTRA="$peft" timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/peft" llama2-7b 64 256 64 ""
  RUNS=1 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/peft" llama2-7b 64 256 64 ""
done
echo "peft: ${SECONDS} s"
METRICS=dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active \
  NCU_TIMEOUT="$(seconds_left "$deadline")" bash "$here/ncu-decode.sh" "$out" none64
echo "done: ${SECONDS} s"
