#!/usr/bin/env bash
# On the GPU machine (at most DEADLINE, default 400 s; written in session 28): fLoRA's joint q and k products in one
# batched cuBLAS call (-Dflora.cuda.floraBatchedProducts, the default since this session) against a product a layer:
# 1. floraLinearsEqualsAFloraLinearPerLayer, never run on a GPU with its batched cases (OUT/tests-*.txt);
# 2. issue 13's decode goal for fLoRA on q, k (Llama-2-7B's shape, 64 sequences each with its own adapter, ranks 1
#    and 2, bench decode --compare, 3 rounds against no adapters), the default and the flag off in turn, two rounds
#    (OUT/compare.txt: "of that" is the ratio over what the adapter bytes allow, goal >= 0.95).
#   runtime/experiments-session28c.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
experiment_start "$1" 400
gpu_tests_each "$out" floraLinearsEqualsAFloraLinearPerLayer
model="$(shape_model llama2-7b)"
for round in 1 2; do
  for flags in "" "-Dflora.cuda.floraBatchedProducts=false"; do
    for rank in 1 2; do
      echo "round $round, rank $rank, flags: ${flags:-(default)}" >> "$out/compare.txt"
      JAVA_OPTS="$flags" timeout "$(seconds_left "$deadline")" bash -c "source '$here/runtime.sh'; flora bench decode --model '$model' \
        --random-weights --device cuda --batch 64 --prompt-tokens 256 --tokens 24 --compare --rounds 3 --adapter-kind flora \
        --rank $rank --targets q_proj,k_proj --strategy flora" 2>&1 | grep -E "^(none|flora)" >> "$out/compare.txt"
      tail -1 "$out/compare.txt"
    done
  done
done
echo "done: ${SECONDS} s"
