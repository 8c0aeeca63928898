#!/usr/bin/env python3
"""Reference for bfloat16 weights (DESIGN.md §5's rule): one random Llama saved in bfloat16, with
per-token log-probs from transformers in float32 (the float32 model before rounding) and in
bfloat16 (the bfloat16 model, bfloat16 activations), measured in the same run. Flora runs the
bfloat16 file; the rule is |Flora - HF_f32| <= 1.5 |HF_bf16 - HF_f32| + 1e-3, for the max and the
p99 over all prompt tokens.

  python3 tools/reference/make_bf16_reference.py --out OUT --llama-tokenizer src/test/resources/fixtures/llama-tiny/model/tokenizer.json
"""
import argparse
import json
import os
import shutil

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from make_references import PROMPTS, randomize
import tokenizers


def logprobs(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
        lp = torch.log_softmax(logits, dim=-1)
        return [None] + [float(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--llama-tokenizer", required=True)
    args = ap.parse_args()
    root = os.path.join(args.out, "llama-bf16")
    mdir = os.path.join(root, "model")
    os.makedirs(mdir, exist_ok=True)
    cfg = LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=32, vocab_size=700, bos_token_id=1, eos_token_id=2,
                      max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False)
    f32 = LlamaForCausalLM(cfg).eval()
    randomize(f32, 8)
    bf16 = LlamaForCausalLM(cfg).eval()
    bf16.load_state_dict(f32.state_dict())
    bf16 = bf16.to(torch.bfloat16)
    bf16.save_pretrained(mdir)
    shutil.copy(args.llama_tokenizer, os.path.join(mdir, "tokenizer.json"))
    tok = tokenizers.Tokenizer.from_file(os.path.join(mdir, "tokenizer.json"))
    with open(os.path.join(root, "expected.jsonl"), "w") as f:
        for pi, prompt in enumerate(PROMPTS):
            ids = tok.encode(prompt).ids
            f.write(json.dumps({"id": f"p{pi}", "prompt": prompt, "tokens": ids,
                                "logprobs_f32": logprobs(f32, ids), "logprobs_bf16": logprobs(bf16, ids)}) + "\n")
    print("llama-bf16 written", flush=True)


if __name__ == "__main__":
    main()
