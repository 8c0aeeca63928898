#!/usr/bin/env bash
# On the GPU machine, in one call (about 400 s), first of session 15's two scripts:
# 0. the GPU tests (OUT/tests.txt; new: the chunked runs, CudaKernelsTest.loraRunsMatchFloat64 with
#    chunks of 50 and CudaFixturesTest's chunks of 2);
# LoRA's cuBLAS runs whole (a run's two products each: -Dflora.cuda.loraRunChunk=0) against runs cut into
# chunks of 128 rows and batched (two cublasGemmBatchedEx for all the chunks of a class; the default
# since session 15, where a call has 8 runs or more). Session 15's results: NOTES.md.
# 1. the layer: flora calibrate at 4096, gathered only, 2,048 and 8,192 tokens over 16 adapters (runs of
#    128 and 512 rows), ranks 8 and 64 (runs by rank: 256 rows at 8, 128 at 64), whole then chunked
#    (OUT/calibrate-{whole,chunked}.txt). Session 14, whole: 371 / 892 µs at rank 8, 429 / 960 at 64;
# 2. the PEFT workload (llama2-7b, 64 x (256 + 64), LoRA r8 on q,k,v,o, gathered: 32 runs of 256 rows a
#    prefill step), whole and chunked, two rounds interleaved (OUT/variants-llama2-7b-64.jsonl). Session 14:
#    prefill 0.560 s, 3,315 output tok/s.
#   runtime/experiments-chunks.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
out="$1"
mkdir -p "$out"
gpu_tests "$out"
for which in whole chunked; do
  flags="-Dflora.cuda.loraRunChunk=0 -Dflora.cuda.loraChunkRuns=1"; [ "$which" = chunked ] && flags="-Dflora.cuda.loraRunChunk=128 -Dflora.cuda.loraChunkRuns=1"
  JAVA_OPTS="$flags" flora calibrate --device cuda --dim 4096 --tokens 2048,8192 --ranks 8,64 --rounds 3 --strategies gathered \
    --decode-sequences 0 --no-single-prompts --out "$out/calibration-$which.json" > "$out/calibrate-$which.txt" 2>&1
  grep -E "^ +[0-9]+ +[0-9]+ " "$out/calibrate-$which.txt" | head -4 | sed "s/^/$which /"
done
RUNS=2 EXTRA="$PEFT_WORKLOAD" \
  timeout 200 bash "$here/variants.sh" "$out" llama2-7b 64 256 64 "-Dflora.cuda.loraRunChunk=0" ""
