#!/usr/bin/env bash
# On the GPU machine, in one call (about 550 s), session 13's cuBLAS LoRA runs (-Dflora.cuda.loraRuns,
# off by default until this measures them):
# 1. the GPU tests (OUT/tests.txt; CudaKernelsTest.loraRunsMatchFloat64 is new);
# 2. the layer A/B: flora calibrate on a 4096 x 4096 layer, gathered and bmm at 1024, 2048 and 8192
#    tokens (16 sequences: runs of 64, 128, 512 rows) and ranks 1, 8, 64, runs off then on (OUT/calibrate-runs-{false,true}.txt): the 5120^2
#    calibration charged gathered 895 us at 8192 tokens rank 1 and 1,917 at rank 64 against the base
#    product's 606; runs should bring both near base + 100 us;
# 3. the PEFT workload (llama2-7b, 64 x (256 + 64), LoRA r8 on q,k,v,o, gathered), runs off and on,
#    two rounds interleaved (OUT/variants-llama2-7b-64.jsonl): session 12's prefill 0.553 s, e2e 3,306;
# 4. figure 2's lora-gathered on Llama-2-7B at ranks 1, 8, 64, runs off and on (OUT/figure-runs-{false,true}/):
#    session 13's 11,713, 10,282 and 7,307 tokens/s, no adapter 13,518.
#   runtime/experiments.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
out="$1"
mkdir -p "$out"
timeout 300 bash "$here/test.sh" > "$out/tests.txt" 2>&1
grep -E "✘|tests (successful|failed)" "$out/tests.txt" | head -40
for on in false true; do
  JAVA_OPTS="-Dflora.cuda.loraRuns=$on" timeout 100 flora calibrate --device cuda --dim 4096 --tokens 1024,2048,8192 --ranks 1,8,64 \
    --rounds 3 --strategies gathered,bmm --decode-sequences 16 --out "$out/calibration-runs-$on.json" > "$out/calibrate-runs-$on.txt" 2>&1
  grep -E "^ +[0-9]+ +[0-9]+ " "$out/calibrate-runs-$on.txt" | head -12 | sed "s/^/runs=$on /"
done
RUNS=2 EXTRA='--adapter-kind lora --rank 8 --targets q_proj,k_proj,v_proj,o_proj --strategy gathered' \
  timeout 150 bash "$here/variants.sh" "$out" llama2-7b 64 256 64 '-Dflora.cuda.loraRuns=false' '-Dflora.cuda.loraRuns=true'
for on in false true; do
  JAVA_OPTS="-Dflora.cuda.loraRuns=$on" SERIES=lora-gathered RANKS=1,8,64 timeout 150 \
    bash "$here/bench-figures.sh" "$out/figure-runs-$on" llama2-7b throughput 2>&1 | grep -E '^\{' | cut -c1-200
done
