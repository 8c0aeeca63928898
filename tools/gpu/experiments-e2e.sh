#!/usr/bin/env bash
# On the GPU machine, in one call (about 450 s), after runtime/experiments.sh: the same old and new
# flag sets end to end.
# 1. the PEFT workload (llama2-7b, 64 x (256 + 64), LoRA r8 on q,k,v,o, gathered), old and new, two rounds
#    interleaved (OUT/variants-llama2-7b-64.jsonl): session 12's prefill 0.553 s, e2e 3,306 output tok/s;
# 2. figure 2 on Llama-2-7B, fLoRA, LoRA gathered and LoRA-bmm at ranks 1 and 8, old then new
#    (OUT/figure-{old,new}/throughput-llama2-7b.jsonl; forwardShare in each line says whether the host
#    set the pace): sessions 12-13's 10,388 / 6,771 (fLoRA), 11,713 / 10,282 (gathered), 7,579 / 6,519
#    (bmm), no adapter 13,518.
#   runtime/experiments-e2e.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
mkdir -p "$out"
old='-Dflora.cuda.loraRuns=false -Dflora.cuda.floraVectors=false'
new='-Dflora.cuda.loraRuns=true -Dflora.cuda.floraVectors=true'
RUNS=2 EXTRA='--adapter-kind lora --rank 8 --targets q_proj,k_proj,v_proj,o_proj --strategy gathered' \
  timeout 150 bash "$here/variants.sh" "$out" llama2-7b 64 256 64 "$old" "$new"
for which in old new; do
  flags="$old"; [ "$which" = new ] && flags="$new"
  JAVA_OPTS="$flags" SERIES=flora,lora-gathered,lora-bmm RANKS=1,8 timeout 150 \
    bash "$here/bench-figures.sh" "$out/figure-$which" llama2-7b throughput 2>&1 | grep -E '^\{' | cut -c1-120
  python3 -c "import json,sys; [print('$which', j['series'], j['rank'], round(j['tokensPerSecond']), round(j.get('forwardShare', 0), 3)) for j in map(json.loads, open(sys.argv[1]))]" "$out/figure-$which/throughput-llama2-7b.jsonl" 2>/dev/null
done
