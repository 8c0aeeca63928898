#!/usr/bin/env bash
# On the GPU machine (session 21's plan, about 520 s, parts stopped at DEADLINE, default 570 s): two kernel tunables built without a GPU, against
# the defaults, two rounds interleaved each (the rule: both rounds beat both default rounds, median +2%):
# - float32 lane sums in the decode attention's second and third forms (-Dflora.cuda.defines=ATTN_LANE_SUMS=32).
#   Session 21's first call: attention_v3 takes 117 µs of a 272 µs decode layer at 64 sequences, at
#   50.7% of DRAM's peak, and its float64 conversions (256 a position) hold the conversion pipe about 35 µs;
# - 16-byte loads of float32 LoRA factors in lora_shrink and lora_expand (-Dflora.cuda.defines=LORA_WIDE_LOADS=1):
#   the PEFT workload's adapters are float32, read 4 bytes a lane (A) and rank by rank (B) by default.
# 1. every GPU test with both defines (OUT/tests.txt);
# 2. 64 x (256 + 64) without adapters: default, lane sums, and lane sums with the contexts split for 16
#    and 48 blocks a multiprocessor (-Dflora.cuda.attentionSplitBlocks); the PEFT workload (Llama-2-7B,
#    LoRA r8 on q, k, v, o, gathered): default, lane sums, wide loads, both, and both with the chunks'
#    shrink split in 4, 8 and 16 slices (-Dflora.cuda.loraChunkSplit) or stacked runs at 512 and 1,536
#    ranks (-Dflora.cuda.loraStack), neither ever timed; 1 sequence and 16 x (2,048 + 64): default
#    against lane sums, last, as time allows (OUT/ab/);
# 3. (before those two) Nsight Compute over steady decode steps of the PEFT workload with both defines
#    (OUT/ncu-decode-peft-both.txt): attention with float32 sums, and what the LoRA kernels take.
#   runtime/experiments-lanesums.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; deadline="${DEADLINE:-570}"
mkdir -p "$out/ab"
sums="-Dflora.cuda.defines=ATTN_LANE_SUMS=32"
wide="-Dflora.cuda.defines=LORA_WIDE_LOADS=1"
both="-Dflora.cuda.defines=ATTN_LANE_SUMS=32,LORA_WIDE_LOADS=1"
JDK_JAVA_OPTIONS="$both" gpu_tests_rest "$out" 130 none
echo "tests: ${SECONDS} s"
peft="$PEFT_WORKLOAD"
RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab" llama2-7b 64 256 64 "" "$sums" \
  "$sums -Dflora.cuda.attentionSplitBlocks=16" "$sums -Dflora.cuda.attentionSplitBlocks=48"
RUNS=2 EXTRA="$peft" timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 "" "$sums" "$wide" "$both" \
  "$both -Dflora.cuda.loraChunkSplit=4" "$both -Dflora.cuda.loraChunkSplit=8" "$both -Dflora.cuda.loraChunkSplit=16" \
  "$both -Dflora.cuda.loraStack=512" "$both -Dflora.cuda.loraStack=1536"
echo "64: ${SECONDS} s"
JAVA_OPTS="$both" METRICS=dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active \
  NCU_TIMEOUT="$(seconds_left "$deadline")" bash "$here/ncu-decode.sh" "$out" peft-both $peft
echo "ncu: ${SECONDS} s"
RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab" llama2-7b 1 256 64 "" "$sums"
RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab" llama2-7b 16 2048 64 "" "$sums"
echo "done: ${SECONDS} s"
