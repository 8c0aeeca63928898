#!/usr/bin/env bash
# On the GPU machine, in one call (about 560 s with the default parts), after runtime/experiments-split.sh
# (whose GPU tests include CudaKernelsTest.streamedDecodeAttentionMatchesFloat64,
# pipelinedPrefillTilesGiveTheBitsOfTheFirst and loraShrinkExpandMixedRanks): the three kernels built in
# session 17 without a GPU, each against the default, two rounds interleaved (`flora bench decode`,
# random weights):
#   decode64   the fourth decode attention form (-Dflora.cuda.attention=v4: each lane group streams its own
#              positions with its own softmax, no barrier until the end) against auto (v3 here), Llama-2-7B,
#              64 x (256 + 64) (session 13: decode 6,582-6,646 tok/s by auto), and with rounds of 1 position
#              rather than 2 (91 registers rather than 106: 5 blocks an SM rather than 4);
#   decode1    the same at 1 x (256 + 64) (auto takes v2 there; session 13: 248.6-249.0 tok/s); not by default;
#   tiles      the pipelined prefill tile kernel (v2, the default since session 20: the same bits) against the
#              first (-Dflora.cuda.attentionTiles=v1), prefill time of 4 prompts of 2,048 tokens (one 8,192-token step, where attention weighs most);
#   lorafused  the PEFT workload (64 x (256 + 64), LoRA r8 on q, k, v, o, gathered) with -Dflora.cuda.loraFused=1
#              and =4 (a decode step's LoRA as one launch a call, lora_fused, 1 or 4 blocks a token, rather
#              than lora_shrink and lora_expand)
#              against the default (session 15: decode 5,872-5,921 tok/s, 3,633-3,659 output tok/s end to end);
#   starcoder  v4 against auto on StarCoder-15B's multi-query shape, 64 x (1024 + 32) (session 12: 1,913-1,926
#              by v2/v3); not by default (about 200 s more).
#   PARTS='decode64 lorafused tiles' runtime/experiments-attention.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
out="$1"
mkdir -p "$out"
for part in ${PARTS:-decode64 lorafused tiles}; do
  case "$part" in
    decode64) RUNS=2 timeout 250 bash "$here/variants.sh" "$out" llama2-7b 64 256 64 "" "-Dflora.cuda.attention=v4" \
      "-Dflora.cuda.attention=v4 -Dflora.cuda.defines=ATTN_V4_LOADS=1" ;;
    decode1) RUNS=2 timeout 130 bash "$here/variants.sh" "$out" llama2-7b 1 256 64 "" "-Dflora.cuda.attention=v4" ;;
    tiles) RUNS=2 timeout 120 bash "$here/variants.sh" "$out" llama2-7b 4 2048 8 "" "-Dflora.cuda.attentionTiles=v1" ;;
    lorafused) RUNS=2 EXTRA="$PEFT_WORKLOAD" \
      timeout 200 bash "$here/variants.sh" "$out" llama2-7b 64 256 64 "" "-Dflora.cuda.loraFused=1" "-Dflora.cuda.loraFused=4" ;;
    starcoder) RUNS=2 timeout 240 bash "$here/variants.sh" "$out" starcoder-15b 64 1024 32 "" "-Dflora.cuda.attention=v4" ;;
    *) echo "experiments-attention: '$part' is not a part (decode64, decode1, tiles, lorafused, starcoder)" >&2; exit 2 ;;
  esac
done
