#!/usr/bin/env bash
# On the GPU machine (session 21, about 480 s): float32 lane sums in the decode attention's second and
# third forms (-Dflora.cuda.defines=ATTN_LANE_SUMS=32) against the float64 default. Session 21's first
# call: attention_v3 takes 117 µs of a 272 µs decode layer at 64 sequences, 50.7% of DRAM's peak, and a
# position's 16 float64 conversions a lane pair would hold the conversion pipe about 36 µs of it.
# 1. every GPU test with the define (OUT/tests.txt);
# 2. two rounds interleaved, the default against the define: 64 x (256 + 64) without adapters (also with
#    the contexts split for 16 and 48 blocks a multiprocessor, -Dflora.cuda.attentionSplitBlocks), the PEFT
#    workload (LoRA r8 on q, k, v, o, gathered; also with the chunks' shrink split over the width in 4, 8
#    and 16 slices, -Dflora.cuda.loraChunkSplit, and stacked runs, -Dflora.cuda.loraStack, both never
#    timed), 1 sequence, 16 x (2,048 + 64) (OUT/ab/);
# 3. Nsight Compute over steady decode steps of the PEFT workload with the define
#    (OUT/ncu-decode-peft-sums32.txt): attention with float32 sums, and what the LoRA kernels take.
#   runtime/experiments-lanesums.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; deadline="${DEADLINE:-560}"
mkdir -p "$out/ab"
sums="-Dflora.cuda.defines=ATTN_LANE_SUMS=32"
JDK_JAVA_OPTIONS="$sums" gpu_tests_rest "$out" 130 none
echo "tests: ${SECONDS} s"
peft='--adapter-kind lora --rank 8 --targets q_proj,k_proj,v_proj,o_proj --strategy gathered'
RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab" llama2-7b 64 256 64 "" "$sums" \
  "$sums -Dflora.cuda.attentionSplitBlocks=16" "$sums -Dflora.cuda.attentionSplitBlocks=48"
RUNS=2 EXTRA="$peft" timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 "" "$sums" \
  "$sums -Dflora.cuda.loraChunkSplit=4" "$sums -Dflora.cuda.loraChunkSplit=8" "$sums -Dflora.cuda.loraChunkSplit=16" \
  "$sums -Dflora.cuda.loraStack=512" "$sums -Dflora.cuda.loraStack=1536"
echo "64: ${SECONDS} s"
RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab" llama2-7b 1 256 64 "" "$sums"
RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab" llama2-7b 16 2048 64 "" "$sums"
echo "ab: ${SECONDS} s"
JAVA_OPTS="$sums" METRICS=dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active \
  NCU_TIMEOUT="$(seconds_left "$deadline")" bash "$here/ncu-decode.sh" "$out" peft-sums32 $peft
echo "done: ${SECONDS} s"
