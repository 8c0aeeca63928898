#!/usr/bin/env bash
# On the GPU machine, in one call (about 400 s), after runtime/experiments-split.sh (whose GPU tests
# include CudaKernelsTest.streamedDecodeAttentionMatchesFloat64 and pipelinedPrefillTilesGiveTheBitsOfTheFirst):
# the two attention kernels built in session 17 without a GPU, each against the default, two rounds
# interleaved (`flora bench decode`, random weights, Llama-2-7B shape, no adapters):
# 1. the fourth decode attention form (-Dflora.cuda.attention=v4: each lane group streams its own
#    positions with its own softmax, no barrier until the end) against auto (v3 at 64 sequences, v2 at
#    one): decode tok/s at 64 x (256 + 64) (session 13: 6,582-6,646 by auto) and at 1 x (256 + 64)
#    (248.6-249.0);
# 2. the pipelined prefill tile kernel (-Dflora.cuda.attentionTiles=v2: the same bits) against the
#    first: prefill time of 4 prompts of 2,048 tokens (one 8,192-token step, where attention weighs most).
#   runtime/experiments-attention.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
mkdir -p "$out"
RUNS=2 timeout 170 bash "$here/variants.sh" "$out" llama2-7b 64 256 64 "" "-Dflora.cuda.attention=v4"
RUNS=2 timeout 130 bash "$here/variants.sh" "$out" llama2-7b 1 256 64 "" "-Dflora.cuda.attention=v4"
RUNS=2 timeout 120 bash "$here/variants.sh" "$out" llama2-7b 4 2048 8 "" "-Dflora.cuda.attentionTiles=v2"
