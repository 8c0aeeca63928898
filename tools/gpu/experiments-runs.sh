#!/usr/bin/env bash
# On the GPU machine, in one call (about 450 s): where cuBLAS runs beat the kernels, now that chunks
# batch them (session 15: chunks of 128 took Llama-2-7B's PEFT prefill from 0.555 to 0.446 s, but one
# prompt of 512 tokens at rank 8 from ~66 to 180 µs: a batched product of few chunks leaves the GPU idle).
# 1. flora calibrate at 4096, gathered, one-prompt grid and 16 adapters, ranks 1,4,8,16,64, tokens
#    512,2048,8192, three ways: kernels only (loraRuns=false), chunks of 128 from 128 rows at every rank
#    and from one run a call, and the defaults (as they ran: chunks of 128, loraRunMin(rank), from 16 chunks a call; now whole runs below 8 runs)
#    (OUT/sweep-*.txt).
# 2. Llama-2-13B rank 8 (0.942 in session 13, one run, old paths): calibrate 5120, then gathered and
#    auto, 3 runs (OUT/figure-13b).
#   runtime/experiments-runs.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
out="$1"
mkdir -p "$out"
for which in kernels chunks-all default; do
  case "$which" in
    kernels) flags="-Dflora.cuda.loraRuns=false" ;;
    chunks-all) flags="-Dflora.cuda.loraRunMin=128 -Dflora.cuda.loraChunkRuns=1" ;;
    default) flags="" ;;
  esac
  JAVA_OPTS="$flags" flora calibrate --device cuda --dim 4096 --tokens 512,2048,8192 --ranks 1,4,8,16,64 --rounds 3 \
    --strategies gathered --decode-sequences 0 --out "$out/sweep-$which.json" > "$out/sweep-$which.txt" 2>&1
  grep -E "^ +[0-9]+ +[0-9]+ " "$out/sweep-$which.txt" | sed "s/^/$which /"
done
CALIBRATE=5120 SERIES=lora-gathered,lora-auto RANKS=8 RUNS=3 \
  bash "$here/bench-figures.sh" "$out/figure-13b" llama2-13b > "$out/figure-13b.txt" 2>&1
grep '^{' "$out/figure-13b/throughput-llama2-13b.jsonl" | python3 -c '
import json, sys
for l in sys.stdin:
    j = json.loads(l); print(j["series"], j["rank"], round(j["tokensPerSecond"]), j.get("bmmPromptShare"), j.get("bmmDecodeShare"))'
