#!/usr/bin/env bash
# On the GPU machine, in one call (about 350 s), after runtime/experiments-split.sh (whose GPU tests
# include fLoRA's runs: CudaKernelsTest.floraRunsInTheEpilogueMatchTheThreeSteps, which prints whether
# cuBLASLt took a per-output alpha):
# 1. fLoRA's runs with the demodulation in cuBLASLt's epilogue at the layer against the three steps;
# 2. where fLoRA's three steps go at 8,192 tokens, rank 1 (-Dflora.cuda.profile=true: every GPU
#    operation waited for, times added up by name);
# 3. where the PEFT workload's prefill and 7 decode steps go, with LoRA r8 gathered and without (for 100x PEFT);
# 4. batched and skinny products at decode against cuBLAS a product each.
#   runtime/experiments-profile.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
out="$1"
mkdir -p "$out"
# 1. fLoRA's runs with the demodulation in cuBLASLt's epilogue (-Dflora.cuda.floraRuns=128, built in
#    session 16, off by default) at the layer against the three steps, ranks 1, 2, 4 (session 14: 640 µs
#    at 8,192 tokens and rank 1 against the base product's 400; the aim is within 5%), and where the
#    three steps' time goes (-Dflora.cuda.profile=true, one round).
for which in steps runs; do
  flags=""; [ "$which" = runs ] && flags="-Dflora.cuda.floraRuns=128"
  JAVA_OPTS="$flags" flora calibrate --device cuda --dim 4096 --tokens 2048,8192 --ranks 1,2,4 --rounds 3 \
    --strategies flora --decode-sequences 0 --out "$out/layer-flora-$which.json" > "$out/layer-flora-$which.txt" 2>&1
  grep -E "^ +[0-9]+ +[0-9]+ |UNSUPPORTED|note:" "$out/layer-flora-$which.txt" | sed "s/^/flora-$which /"
done
# 2. fLoRA's three steps, profiled.
JAVA_OPTS="-Dflora.cuda.profile=true" flora calibrate --device cuda --dim 4096 --tokens 8192 --ranks 1 --rounds 1 --strategies flora \
  --decode-sequences 0 --out "$out/layer-flora-profile.json" > "$out/layer-flora-profile.txt" 2>&1
grep -A25 "flora.cuda.profile" "$out/layer-flora-profile.txt" | head -30
# 3. Where the PEFT workload's prefill goes (for 100x PEFT): every GPU operation waited for and its time
#    added up by name (-Dflora.cuda.profile=true, printed at close), with LoRA r8 gathered and without.
model="$(shape_model llama2-7b "$out")"
for kind in lora none; do
  extra=""; [ "$kind" = lora ] && extra="$PEFT_WORKLOAD"
  JAVA_OPTS="-Dflora.cuda.profile=true" timeout 90 bash -c "source '$here/runtime.sh'; flora bench decode --model '$model' --random-weights \
    --device cuda --batch 64 --prompt-tokens 256 --tokens 8 $extra" > "$out/profile-prefill-$kind.txt" 2>&1
  grep -A40 "flora.cuda.profile" "$out/profile-prefill-$kind.txt" | head -45
done
# 4. Decode products: batched (the default since session 20: q, k, v in one batched cuBLAS call, gate
#    and up in another, at up to 256 rows), cuBLAS a product each (-Dflora.cuda.batchedProducts=false)
#    and Flora's skinny tensor-core kernel (-Dflora.cuda.skinnyProducts=true: every product of up to 64
#    rows; off, 62% slower in session 19): 64 x (256 + 64), no adapters, two rounds interleaved
#    (OUT/variants-llama2-7b-64.jsonl; session 7: decode 5,978-6,075 tok/s).
RUNS=2 timeout 240 bash "$here/variants.sh" "$out" llama2-7b 64 256 64 "" "-Dflora.cuda.batchedProducts=false" \
  "-Dflora.cuda.skinnyProducts=true"
