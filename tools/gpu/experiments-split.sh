#!/usr/bin/env bash
# On the GPU machine, in one call (about 500 s; every part writes its files as it goes), first in the next GPU session: the chunks' shrink split
# over the width (-Dflora.cuda.loraChunkSplit=S, built after session 15's GPU calls) and whole runs
# stacked into two dense products (-Dflora.cuda.loraStack=N, built in session 16), both off by default,
# against chunks, and whole runs below 8 runs a call (the default since session 15, not yet run end to end).
# 0. the GPU tests, those never run on a GPU each in a JVM of its own first (OUT/tests-NAME.txt, then
#    OUT/tests.txt; new: CudaKernelsTest.loraRunsMatchFloat64 with slices of 4, 3 and none and stacked,
#    stackedRunsOfManyAdaptersMatchFloat64, CudaFixturesTest's chunks of 2 with 4 slices and its stacked
#    variant, and sessions 16-17's fLoRA runs, batched and skinny products, two attention kernels and
#    the fused decode LoRA kernel);
# 1. the layer at 4096, gathered, steps of one prompt and of 16 adapters, ranks 1, 8, 16, 64, tokens
#    512, 2048, 8192 (OUT/layer-*.txt): chunks from every run (from 128 rows) with the shrink whole and
#    in 4 slices, and whole runs from 128 rows stacked
#    (passes up to 4096 ranks: 16 adapters of rank 64 are 1024). Session 15: chunks of 4 cost 178 µs
#    at one prompt of 512 (rank 8; kernels 87), 16 adapters of 512 rows at rank 8 658 µs (kernels 1,054);
# 2. the PEFT workload (llama2-7b, 64 x (256 + 64), LoRA r8 on q, k, v, o, gathered), the default against
#    slices of 4 and stacked runs, two rounds interleaved (OUT/variants-llama2-7b-64.jsonl; session 15:
#    3,633 and 3,659 output tok/s with chunks).
# Then runtime/experiments-profile.sh: fLoRA's runs in cuBLASLt's epilogue and two profiles.
#   runtime/experiments-split.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
out="$1"
mkdir -p "$out"
# Never run on a GPU (sessions 15-17), each in a JVM of its own first.
gpu_tests_new "$out" "${NEW_TESTS[@]}"
every="-Dflora.cuda.loraRunMin=128 -Dflora.cuda.loraChunkRuns=1"
for which in chunks split4 stack; do # the kernels and whole runs: session 15 (layer-4096-sweep-*-session15.txt)
  case "$which" in
    chunks) flags="$every" ;;
    split4) flags="$every -Dflora.cuda.loraChunkSplit=4" ;;
    stack) flags="$every -Dflora.cuda.loraStack=4096" ;;
  esac
  JAVA_OPTS="$flags" flora calibrate --device cuda --dim 4096 --tokens 512,2048,8192 --ranks 1,8,16,64 --rounds 3 \
    --strategies gathered --decode-sequences 0 --out "$out/layer-$which.json" > "$out/layer-$which.txt" 2>&1
  grep -E "^ +[0-9]+ +[0-9]+ " "$out/layer-$which.txt" | sed "s/^/$which /"
done
RUNS=2 EXTRA="$PEFT_WORKLOAD" \
  timeout 200 bash "$here/variants.sh" "$out" llama2-7b 64 256 64 "" "-Dflora.cuda.loraChunkSplit=4" "-Dflora.cuda.loraStack=4096"
