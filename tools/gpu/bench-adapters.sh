#!/usr/bin/env bash
# On the GPU machine: issue 13's decode goals with 64 sequences, each with its own adapter, on a
# random-weight shape, compared step by step with no adapters (flora bench decode --compare), and the
# per-layer costs at d = 6144 (flora bench adapters); then, with PEER=1, PEFT's mixed-adapter batch.
#   runtime/bench-adapters.sh OUT [SHAPE]          (SHAPE default llama2-7b)
# Each line of OUT/compare-SHAPE.txt gives tokens/s, the ratio to no adapters and that ratio over what
# the adapter bytes allow (goal >= 0.95). Draw the per-layer plot elsewhere with
#   flora bench adapters --from OUT/adapters-d6144.jsonl --plot PNG
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/runtime.sh"
out="$1"; shape="${2:-llama2-7b}"
mkdir -p "$out"
model="$(shape_model "$shape")"
compare() {
  flora bench decode --model "$model" --random-weights --device cuda --batch 64 --prompt-tokens 256 --tokens 24 --compare --rounds 3 "$@" \
    | tee -a "$out/compare-$shape.txt"
}
parts=" ${ONLY:-lora8 lora16 flora1 flora2 layers e2e} "
[[ "$parts" == *" lora8 "* ]] && compare --adapter-kind lora --rank 8 --targets q_proj,k_proj,v_proj,o_proj --strategy gathered,bmm,auto
[[ "$parts" == *" lora16 "* ]] && compare --adapter-kind lora --rank 16 --targets q_proj,k_proj,v_proj,o_proj --strategy gathered,auto
[[ "$parts" == *" flora1 "* ]] && compare --adapter-kind flora --rank 1 --targets q_proj,k_proj --strategy flora,auto
[[ "$parts" == *" flora2 "* ]] && compare --adapter-kind flora --rank 2 --targets q_proj,k_proj --strategy flora,auto
[[ "$parts" == *" layers "* ]] && for st in "64 64" "8 4096"; do
  set -- $st
  flora bench adapters --device cuda --dim 6144 --sequences "$1" --tokens "$2" --ranks "${RANKS:-1,2,4,8}" --json --plot /dev/null \
    | tee -a "$out/adapters-d6144.jsonl"
done
# The PEFT peer's workload (64 prompts of 256 + 64 new, 64 distinct rank-8 LoRAs on q,k,v,o), end to end:
# endToEndOutputTokensPerSecond over the peer's output tokens/s is the issue's 100x ratio.
[[ "$parts" == *" e2e "* ]] && flora bench decode --model "$model" --random-weights --device cuda --batch 64 --prompt-tokens 256 --tokens 64 \
  --adapter-kind lora --rank 8 --targets q_proj,k_proj,v_proj,o_proj --strategy auto --json | tee -a "$out/e2e-$shape.jsonl"
if [ "${PEER:-0}" = 1 ]; then
  python3 "$here/../tools/peer/transformers_bench.py" --config "$model/config.json" --batch 64 --prompt-tokens 256 --new-tokens 64 \
    --lora-adapters 64 --lora-rank 8 --repeats 1 --warmup-new-tokens 2 | tee -a "$out/peft-$shape.jsonl"
fi
