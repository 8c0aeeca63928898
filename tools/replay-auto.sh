#!/usr/bin/env bash
# On any machine, CPU only (about 20-40 s a rank): which ways lora-auto would take on a GPU for figure
# 2's workload on SHAPE, from that GPU's calibration file, before GPU time is spent on it. The same 200
# requests run through the engine on a 2-layer, 64-wide model of SHAPE's kind whose KV cache holds as
# many tokens as SHAPE's does on the GPU (KV bytes, 12 GB as tools/gpu/bench-figures.sh gives it), so
# the steps are the GPU's; auto reads the calibration at its nearest measured shape. Prints one JSON
# line a rank with bmmPromptShare and bmmDecodeShare (bmm's shares of prompt and decode tokens).
# Session 15: Llama-2-7B's shares on the replay were within a point of the H200's; session 16 used it
# to trace Llama-2-13B's auto shortfall to a calibration without the one-prompt grid.
#   tools/replay-auto.sh SHAPE CALIBRATION.json [RANKS]      (SHAPE: llama2-7b, llama2-13b, starcoder-15b, ...)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shape="$1"; calibration="$2"; ranks="${3:-1,2,4,8,16,32,64}"
[ -f "$calibration" ] || { echo "replay-auto: no calibration file $calibration" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
./flora bench model --shape "$shape" --config-only --out "$work/full" > /dev/null
kv="$(python3 - "$work/full" "$work/replay" "${KV:-12000000000}" <<'EOF'
import json, os, shutil, sys
full, replay, kv = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = json.load(open(os.path.join(full, "config.json")))
if c["model_type"] == "gpt_bigcode":
    kv_width = (1 if c.get("multi_query", True) else c["n_head"]) * (c["n_embd"] // c["n_head"])
    layers = c["n_layer"]
    r = dict(c, n_embd=64, n_inner=256, n_layer=2, n_head=4)
    replay_width = (1 if c.get("multi_query", True) else 4) * 16
else:
    heads, kv_heads = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    kv_width = kv_heads * (c["hidden_size"] // heads)
    layers = c["num_hidden_layers"]
    replay_kv_heads = 4 if kv_heads == heads else 1
    r = dict(c, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=replay_kv_heads)
    replay_width = replay_kv_heads * 16
gpu_bytes = 2 * layers * kv_width * 2            # keys and values, bf16, every layer
tokens = kv // gpu_bytes
os.makedirs(replay)
json.dump(r, open(os.path.join(replay, "config.json"), "w"), indent=1)
shutil.copy(os.path.join(full, "tokenizer.json"), replay)
print(tokens * 2 * 2 * replay_width * 4)         # the replay's float32 cache: 2 layers
EOF
)"
./flora bench throughput --model "$work/replay" --random-weights --series lora-auto --ranks "$ranks" --kv-cache-memory "$kv" \
  --calibration "$calibration" --json --plot "$work/plot.png" 2> /dev/null | grep '^{'
