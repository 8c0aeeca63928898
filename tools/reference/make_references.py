#!/usr/bin/env python3
"""Reference outputs for Flora's tests, made with Hugging Face transformers + PEFT.

Writes, for each tiny random model, the layout of Flora's test fixtures:
  <name>/model/       config.json, generation_config.json, model.safetensors, tokenizer.json
  <name>/adapters/    PEFT LoRA / IA3 adapters saved by PEFT, fLoRA adapters (DESIGN.md §1)
  <name>/requests.jsonl, <name>/expected.jsonl
Expected values: float32 forward passes, per prompt token log p(token | tokens before) (null
first), exactly N greedy tokens with EOS ignored, the top-2 log-prob margin of each greedy step.
Every expected line is computed from the files as saved (models and adapters reloaded).

Run where torch, transformers 5.17, peft 0.21 and tokenizers 0.23 exist (the GPU machine):
  python3 tools/reference/make_references.py --out OUT --llama-tokenizer src/test/resources/fixtures/llama-tiny/model/tokenizer.json
"""
import argparse
import copy
import json
import math
import os
import shutil

import torch
from safetensors.torch import save_file

import transformers
import peft
import tokenizers
from transformers import (GPTBigCodeConfig, GPTBigCodeForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)
from peft import IA3Config, LoraConfig, PeftModel, get_peft_model

GREEDY = 8
PROMPTS = [
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n",
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "import torch\nx = torch.randn(3, 4)\nprint(x.sum())",
    "a",
    "Once upon a time, in a small town by the sea, there lived a baker who made the best bread in the land. "
    "Every morning the people of the town would line up in front of the bakery.",
]


def randomize(model, seed):
    """Weights with unit-scale activations, so that outputs are far from uniform and mistakes show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(p.shape[1])))
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:  # norm weights
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))


def scores(model, ids):
    """Per-token log-probs of ids (None first), greedy continuation and per-step top-2 margins."""
    with torch.no_grad():
        x = torch.tensor([ids])
        logp = torch.log_softmax(model(x).logits[0].float(), dim=-1)
        lps = [None] + [float(logp[i, ids[i + 1]]) for i in range(len(ids) - 1)]
        greedy, margins = [], []
        seq = list(ids)
        for _ in range(GREEDY):
            last = torch.log_softmax(model(torch.tensor([seq])).logits[0, -1].float(), dim=-1)
            top = torch.topk(last, 2)
            greedy.append(int(top.indices[0]))
            margins.append(float(top.values[0] - top.values[1]))
            seq.append(int(top.indices[0]))
    return lps, greedy, margins


def randomize_adapter(model, seed, kind):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if kind == "lora" and "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.4)
            elif kind == "ia3" and "ia3_l" in name:
                p.copy_(1.0 + 0.4 * torch.randn(p.shape, generator=g))


def save_peft(base, cfg, kind, seed, path):
    m = get_peft_model(copy.deepcopy(base), cfg)
    randomize_adapter(m, seed, kind)
    m.save_pretrained(path)
    if os.path.exists(os.path.join(path, "README.md")):
        os.remove(os.path.join(path, "README.md"))  # PEFT's model-card template: not test data


def save_flora(base, targets, r, seed, path):
    """fLoRA: W = W0 ∘ (B A) / r, A (r x in) and B (out x r) near one; returns the adapted module names."""
    g = torch.Generator().manual_seed(seed)
    tensors, names = {}, []
    for name, module in base.named_modules():
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in targets and name != "lm_head":
            out_f, in_f = module.weight.shape
            tensors[f"base_model.model.{name}.flora_A.weight"] = (1.0 + 0.3 * torch.randn(r, in_f, generator=g)).contiguous()
            tensors[f"base_model.model.{name}.flora_B.weight"] = (1.0 + 0.3 * torch.randn(out_f, r, generator=g)).contiguous()
            names.append(name)
    os.makedirs(path, exist_ok=True)
    save_file(tensors, os.path.join(path, "adapter_model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "FLORA", "r": r, "target_modules": targets, "base_model_name_or_path": "model",
                   "task_type": "CAUSAL_LM"}, f, indent=2)


def flora_model(base, path):
    """The reference computation of a saved fLoRA adapter: a copy of the model with W0 ∘ (B A) / r."""
    from safetensors.torch import load_file
    cfg = json.load(open(os.path.join(path, "adapter_config.json")))
    t = load_file(os.path.join(path, "adapter_model.safetensors"))
    m = copy.deepcopy(base)
    mods = dict(m.named_modules())
    with torch.no_grad():
        for key, a in t.items():
            if key.endswith(".flora_A.weight"):
                name = key[len("base_model.model."):-len(".flora_A.weight")]
                b = t[key.replace("flora_A", "flora_B")]
                w = mods[name].weight
                w.copy_(w * (b @ a) / cfg["r"])
    return m


def legacy_config(path):
    """Rewrite a transformers-5 config.json in the older layout (rope_theta + rope_scaling, torch_dtype)."""
    p = os.path.join(path, "config.json")
    c = json.load(open(p))
    rp = c.pop("rope_parameters")
    c["rope_theta"] = rp.pop("rope_theta")
    if rp.get("rope_type", "default") != "default":
        c["rope_scaling"] = rp
    c["torch_dtype"] = c.pop("dtype", "float32")
    json.dump(c, open(p, "w"), indent=2)


def byte_level_tokenizer(path):
    """A GPT-2-style byte-level BPE trained on the prompts (StarCoder's tokenizer family)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=["<|endoftext|>", "<fim_prefix>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(PROMPTS * 3 + ["for i in range(10):\n    print(i)\n", "SELECT * FROM t;"], trainer)
    tok.save(path)
    return tok.get_vocab_size()


def make(out, name, model, tokenizer_path, adapters, legacy=False):
    root = os.path.join(out, name)
    mdir = os.path.join(root, "model")
    os.makedirs(mdir, exist_ok=True)
    model.save_pretrained(mdir)
    if legacy:
        legacy_config(mdir)
    shutil.copy(tokenizer_path, os.path.join(mdir, "tokenizer.json"))
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast"}, open(os.path.join(mdir, "tokenizer_config.json"), "w"))
    cls = type(model)
    base = cls.from_pretrained(mdir, dtype=torch.float32, attn_implementation="eager").eval()
    tok = tokenizers.Tokenizer.from_file(os.path.join(mdir, "tokenizer.json"))
    runs = {None: base}
    for aname, (kind, cfg, seed) in adapters.items():
        apath = os.path.join(root, "adapters", aname)
        if kind == "flora":
            save_flora(base, cfg["targets"], cfg["r"], seed, apath)
            runs[aname] = flora_model(base, apath).eval()
        else:
            save_peft(base, cfg, kind, seed, apath)
            runs[aname] = PeftModel.from_pretrained(copy.deepcopy(base), apath).eval()
    requests, expected = [], []
    for pi, prompt in enumerate(PROMPTS):
        ids = tok.encode(prompt).ids
        for aname, m in runs.items():
            rid = f"p{pi}-{aname or 'base'}"
            lps, greedy, margins = scores(m, ids)
            requests.append({"id": rid, "prompt": prompt, "adapter": aname})
            expected.append({"id": rid, "prompt": prompt, "adapter": aname, "tokens": ids, "logprobs": lps,
                             "greedy": greedy, "last_top2_margin": margins[0], "greedy_margins": margins})
    with open(os.path.join(root, "requests.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in requests)
    with open(os.path.join(root, "expected.jsonl"), "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in expected)
    print(f"{name}: {len(expected)} requests, {len(adapters)} adapters", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--llama-tokenizer", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    out = args.out
    os.makedirs(out, exist_ok=True)
    llama_tok = args.llama_tokenizer
    common = dict(vocab_size=700, bos_token_id=1, eos_token_id=2, max_position_embeddings=256, rms_norm_eps=1e-5)

    m = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, head_dim=16, attention_bias=True, mlp_bias=True,
                                     rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
                                     tie_word_embeddings=False, **common))
    randomize(m, 1)
    make(out, "llama-rope-linear", m, llama_tok, {})

    m = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=4, head_dim=24,
                                     rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32,
                                                      "rope_theta": 500000.0},
                                     tie_word_embeddings=True, **common))
    randomize(m, 2)
    make(out, "llama-rope-llama3-legacy", m, llama_tok, {}, legacy=True)

    m = MistralForCausalLM(MistralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=1, head_dim=16, sliding_window=12, tie_word_embeddings=False,
                                         **common))
    randomize(m, 3)
    make(out, "mistral-sliding", m, llama_tok, {})

    m = Qwen2ForCausalLM(Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, use_sliding_window=False, sliding_window=4096,
                                     max_window_layers=1, tie_word_embeddings=True, **common))
    randomize(m, 4)
    make(out, "qwen2", m, llama_tok, {
        "lora-qv-r8": ("lora", LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"), 11),
        "lora-rslora-patterns": ("lora", LoraConfig(r=4, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "k_proj", "down_proj"],
                                                    rank_pattern={"k_proj": 2, "model.layers.1.mlp.down_proj": 6},
                                                    alpha_pattern={"down_proj": 3}, layers_to_transform=[1],
                                                    task_type="CAUSAL_LM"), 12),
        "lora-regex-bias-exclude": ("lora", LoraConfig(r=3, lora_alpha=5, target_modules=r".*\.(v_proj|up_proj|o_proj)$",
                                                       exclude_modules=["model.layers.0.self_attn.o_proj"], lora_bias=True,
                                                       task_type="CAUSAL_LM"), 13),
        "ia3-kv-down": ("ia3", IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"],
                                         task_type="CAUSAL_LM"), 14),
        "flora-qk-r1": ("flora", {"targets": ["q_proj", "k_proj"], "r": 1}, 15),
        "flora-all-r2": ("flora", {"targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], "r": 2}, 16),
    })

    m = Qwen2ForCausalLM(Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                                     num_key_value_heads=2, use_sliding_window=True, sliding_window=10,
                                     max_window_layers=1, tie_word_embeddings=False, **common))
    randomize(m, 5)
    make(out, "qwen2-sliding", m, llama_tok, {})

    bpe = os.path.join(out, "byte-level-tokenizer.json")
    vocab = byte_level_tokenizer(bpe)
    big = dict(vocab_size=vocab, n_positions=256, bos_token_id=0, eos_token_id=0)
    m = GPTBigCodeForCausalLM(GPTBigCodeConfig(n_embd=64, n_layer=2, n_head=4, n_inner=None, multi_query=True, **big))
    randomize(m, 6)
    make(out, "gpt-bigcode-mqa", m, bpe, {
        "lora-attn-r4": ("lora", LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], task_type="CAUSAL_LM"), 21),
        "lora-all-patterns-bias": ("lora", LoraConfig(r=4, lora_alpha=6, target_modules=["c_attn", "c_proj", "c_fc"],
                                                      rank_pattern={"c_fc": 2}, alpha_pattern={"transformer.h.1.attn.c_proj": 7},
                                                      lora_bias=True, task_type="CAUSAL_LM"), 22),
        "ia3-attn-proj": ("ia3", IA3Config(target_modules=["c_attn", "c_proj"], feedforward_modules=["c_proj"],
                                           task_type="CAUSAL_LM"), 23),
        "flora-attn-r1": ("flora", {"targets": ["c_attn"], "r": 1}, 24),
        "flora-all-r4": ("flora", {"targets": ["c_attn", "c_proj", "c_fc"], "r": 4}, 25),
    })

    m = GPTBigCodeForCausalLM(GPTBigCodeConfig(n_embd=64, n_layer=2, n_head=4, n_inner=96, multi_query=False,
                                               scale_attn_weights=False, activation_function="gelu", **big))
    randomize(m, 7)
    make(out, "gpt-bigcode-mha", m, bpe, {})
    os.remove(bpe)
    with open(os.path.join(out, "VERSIONS.txt"), "w") as f:
        f.write(f"torch {torch.__version__}\ntransformers {transformers.__version__}\npeft {peft.__version__}\n"
                f"tokenizers {tokenizers.__version__}\n")


if __name__ == "__main__":
    main()
