#!/usr/bin/env bash
# On the GPU machine, in one call (about 420 s): session 13's two unmeasured changes at the layer,
# old against new:
#   old: -Dflora.cuda.loraRuns=false -Dflora.cuda.floraVectors=false (the defaults: session 13's measured paths)
#   new: -Dflora.cuda.loraRuns=true (gathered LoRA's prompt runs as two cuBLAS products each)
#        -Dflora.cuda.floraVectors=true (flora_modulate / flora_demodulate four columns a thread).
# 1. the GPU tests (OUT/tests.txt; new: CudaKernelsTest.loraRunsMatchFloat64 and the vector cases of
#    floraModulateAndDemodulateAreTheCpusBitForBit);
# 2. flora calibrate on a 4096 x 4096 layer, fLoRA, gathered and bmm at 1024, 2048 and 8192 tokens (16
#    sequences: runs of 64, 128 and 512 rows) and ranks 1, 8, 64, old then new
#    (OUT/calibrate-{old,new}.txt). Session 12's 4096^2 calibration at 8192 tokens: base 400 us,
#    gathered 1,044 (r8) and 1,431 (r64), bmm 950, fLoRA r1 (5120^2: 961 against the base's 606).
# Then runtime/experiments-e2e.sh OUT for the end-to-end figures.
#   runtime/experiments.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
out="$1"
mkdir -p "$out"
timeout 300 bash "$here/test.sh" > "$out/tests.txt" 2>&1
grep -E "✘|tests (successful|failed)" "$out/tests.txt" | head -40
old='-Dflora.cuda.loraRuns=false -Dflora.cuda.floraVectors=false'
new='-Dflora.cuda.loraRuns=true -Dflora.cuda.floraVectors=true'
for which in old new; do
  flags="$old"; [ "$which" = new ] && flags="$new"
  JAVA_OPTS="$flags" flora calibrate --device cuda --dim 4096 --tokens 1024,2048,8192 --ranks 1,8,64 --rounds 3 \
    --strategies flora,gathered,bmm --decode-sequences 16 --out "$out/calibration-$which.json" > "$out/calibrate-$which.txt" 2>&1
  grep -E "^ +[0-9]+ +[0-9]+ " "$out/calibrate-$which.txt" | head -9 | sed "s/^/$which /"
done
# 3. short runs: prompt steps of 256 and 512 tokens over 16 sequences (runs of 16 and 32 rows), the
#    kernels (old) against runs from 16 rows (-Dflora.cuda.loraRunMin=16): where LORA_RUN_MIN (64) should sit.
for which in old short; do
  flags="$old"; [ "$which" = short ] && flags="$new -Dflora.cuda.loraRunMin=16"
  JAVA_OPTS="$flags" flora calibrate --device cuda --dim 4096 --tokens 256,512 --ranks 1,8,64 --rounds 3 \
    --strategies gathered --decode-sequences 16 --out "$out/calibration-$which-256.json" > "$out/calibrate-$which-256.txt" 2>&1
  grep -E "^ +[0-9]+ +[0-9]+ " "$out/calibrate-$which-256.txt" | head -6 | sed "s/^/$which /"
done
