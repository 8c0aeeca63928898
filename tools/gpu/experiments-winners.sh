#!/usr/bin/env bash
# On the GPU machine, after runtime/experiments-decode.sh EARLIER (about 560 s):
# 1. the fused decode LoRA kernel (-Dflora.cuda.loraFused=1 and =4) on the PEFT workload (Llama-2-7B,
#    64 x (256 + 64), LoRA r8 on q, k, v, o, gathered) against the default, two rounds interleaved
#    (OUT/variants-llama2-7b-64.jsonl);
# 2. the decode products batched (-Dflora.cuda.batchedProducts=true) and skinny
#    (-Dflora.cuda.skinnyProducts=true) against cuBLAS a product each, no adapters (OUT/products/);
# 3. the winners by winners.py's rule (EARLIER's and this call's variants and tests), all on together,
#    against the default on the PEFT workload, two rounds interleaved (OUT/combined/).
#   runtime/experiments-winners.sh OUT EARLIER        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; earlier="${2:-$1}"
mkdir -p "$out/products" "$out/combined"
peft="$PEFT_WORKLOAD"
PARTS=lorafused bash "$here/experiments-attention.sh" "$out"
echo "lorafused: ${SECONDS} s"
RUNS=2 timeout 200 bash "$here/variants.sh" "$out/products" llama2-7b 64 256 64 "" "-Dflora.cuda.batchedProducts=true" \
  "-Dflora.cuda.skinnyProducts=true"
echo "products: ${SECONDS} s"
flags="$(python3 "$here/winners.py" "$earlier,$out" "$earlier/variants-llama2-7b-64.jsonl" "$out/variants-llama2-7b-64.jsonl" \
  "$out/products/variants-llama2-7b-64.jsonl")"
echo "winners: '${flags}'"
if [ -n "$flags" ]; then
  RUNS=2 EXTRA="$peft" timeout "$(seconds_left "${DEADLINE:-575}")" bash "$here/variants.sh" "$out/combined" llama2-7b 64 256 64 "" "$flags"
fi
echo "done: ${SECONDS} s"
