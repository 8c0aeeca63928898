#!/usr/bin/env bash
# On the GPU machine (session 20, about 450 s): whether batched decode products and the pipelined tiles
# (v2) should be the defaults. Session 20's first call found v2's bits equal to v1's on the H200 (session
# 19's "differ" was AssertJ's quadratic diff timing out on equal arrays) and batched products +6.4%
# decode at 64 x (256 + 64). Two rounds interleaved each, every part under the DEADLINE (default 570 s):
# 1. the PEFT workload (Llama-2-7B, 64 x (256 + 64), LoRA r8 on q, k, v, o, gathered): default, batched
#    products, both flags (OUT/peft/);
# 2. batched products at 1, 8, 32 and 128 sequences of 256 + 64, no adapters (OUT/batches/);
# 3. tiles v2 in prefill: 8 x 512, 1 x 2,048 and 16 x 1,024 prompts (OUT/tiles/);
# 4. Llama-2-13B 64 x (256 + 64): default against both flags (OUT/13b/).
#   runtime/experiments-defaults.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"; deadline="${DEADLINE:-570}"
mkdir -p "$out/peft" "$out/batches" "$out/tiles" "$out/13b"
bp="-Dflora.cuda.batchedProducts=true"; v2="-Dflora.cuda.attentionTiles=v2"
peft="$PEFT_WORKLOAD"
RUNS=2 EXTRA="$peft" timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/peft" llama2-7b 64 256 64 "" "$bp" "$bp $v2"
echo "peft: ${SECONDS} s"
for batch in 1 8 32 128; do
  RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/batches" llama2-7b "$batch" 256 64 "" "$bp"
done
echo "batches: ${SECONDS} s"
for shape in "8 512" "1 2048" "16 1024"; do
  set -- $shape
  RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/tiles" llama2-7b "$1" "$2" 8 "" "$v2"
done
echo "tiles: ${SECONDS} s"
RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/13b" llama2-13b 64 256 64 "" "$bp $v2"
echo "done: ${SECONDS} s"
