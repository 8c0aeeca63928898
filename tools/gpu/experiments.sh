#!/usr/bin/env bash
# On the GPU machine, in one call: the GPU tests (OUT/tests.txt), then the per-token LoRA kernels with
# batched loads (-Dflora.cuda.loraBatchedLoads) off and on:
# 1. the PEFT peer's workload (llama2-7b shape, 64 x (256 + 64), LoRA r8 on q,k,v,o, gathered), two
#    rounds interleaved (OUT/variants-llama2-7b-64.jsonl: FLAGS<TAB>JSON, prefill and decode apart);
# 2. the 6144 x 6144 calibration's decode grid with each (OUT/loads-false/, OUT/loads-true/
#    calibration.txt and calibration-cuda.json: CALIBRATION_FILE for bench-figures.sh in later calls),
#    and figure 2's lora-gathered series at RANKS (default 32,64) with each
#    (OUT/loads-*/throughput-starcoder-15b.jsonl).
#   runtime/experiments.sh OUT
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
mkdir -p "$out"
timeout 300 bash "$here/test.sh" > "$out/tests.txt" 2>&1
grep -E "✘|tests (successful|failed)" "$out/tests.txt" | head -40
RUNS=2 EXTRA='--adapter-kind lora --rank 8 --targets q_proj,k_proj,v_proj,o_proj --strategy gathered' \
  bash "$here/variants.sh" "$out" llama2-7b 64 256 64 '' '-Dflora.cuda.loraBatchedLoads=true'
for loads in false true; do
  JAVA_OPTS="-Dflora.cuda.loraBatchedLoads=$loads" SERIES=lora-gathered RANKS="${RANKS:-32,64}" CALIBRATE=6144 \
    bash "$here/bench-figures.sh" "$out/loads-$loads" starcoder-15b throughput 2>&1 | grep -E '^ +(16|64|256) +(8|16|32|64) +[0-9.]+ +[0-9.]+ +[0-9.]+ +[a-z]+$|^\{' | cut -c1-200
done
