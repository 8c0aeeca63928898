#!/usr/bin/env bash
# On the GPU machine, in one call (about 450 s): the decode attention forms built in session 11, A/B on
# one machine with bench decode (runtime/variants.sh: FLAGS<TAB>JSON lines in OUT/variants-SHAPE-BATCH.jsonl,
# two rounds interleaved):
# 1. llama2-7b shape (one key/value head a query head), 64 x (256 + 64) and batch 1: the second form
#    (default) against the third (-Dflora.cuda.attention=v3, keys and values staged in shared memory);
# 2. starcoder-15b shape (48 query heads on one key/value head), 64 x (1024 + 32): one query head a
#    block (default) against 2 and 4 (-Dflora.cuda.attentionHeads) and the third form.
# Run runtime/test.sh (or experiments.sh) first: the forms' GPU tests check their bits.
#   runtime/experiments-attention.sh OUT
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
mkdir -p "$out"
RUNS=2 bash "$here/variants.sh" "$out" llama2-7b 64 256 64 '' '-Dflora.cuda.attention=v3'
RUNS=2 bash "$here/variants.sh" "$out" llama2-7b 1 256 64 '' '-Dflora.cuda.attention=v3'
RUNS=2 bash "$here/variants.sh" "$out" starcoder-15b 64 1024 32 '' '-Dflora.cuda.attentionHeads=2' '-Dflora.cuda.attentionHeads=4' \
  '-Dflora.cuda.attention=v3'
