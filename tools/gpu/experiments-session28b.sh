#!/usr/bin/env bash
# On the GPU machine (at most DEADLINE, default 570 s; written in session 28): issue 13's PEFT ratio on one card,
# whichever came: Flora's PEFT workload (64 x (256 + 64), 64 distinct LoRA r8 on q, k, v, o, Llama-2-7B's shape,
# the defaults; OUT/flora.jsonl; --tokens 63, since the prompt step's token and 63 decode steps make the peer's 64
# new), then the peer on the same GPU in the same call (transformers + PEFT, one mixed batch through adapter_names;
# OUT/peft.jsonl), then Flora again. Flora's endToEndOutputTokensPerSecond over the peer's output tok/s is the
# ratio (goal 100x).
#   runtime/experiments-session28b.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
experiment_start "$1" 570
model="$(shape_model llama2-7b)"
flora_round() {
  timeout "$(seconds_left "$deadline")" bash -c "source '$here/runtime.sh'; flora bench decode --model '$model' --random-weights \
    --device cuda --batch 64 --prompt-tokens 256 --tokens 63 $PEFT_WORKLOAD --json" | tail -1 | tee -a "$out/flora.jsonl"
}
flora_round
echo "flora: ${SECONDS} s"
timeout "$(seconds_left "$deadline")" python3 "$here/../tools/peer/transformers_bench.py" --config "$model/config.json" \
  --batch 64 --prompt-tokens 256 --new-tokens 64 --lora-adapters 64 --lora-rank 8 --repeats 1 --warmup-new-tokens 2 \
  | tee -a "$out/peft.jsonl"
echo "peft: ${SECONDS} s"
flora_round
echo "done: ${SECONDS} s"
