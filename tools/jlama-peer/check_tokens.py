#!/usr/bin/env python3
"""Sanity check of Jlama's tokens (numpy only): runs the model directory's Llama in float32 with
Hugging Face semantics (RMSNorm, rotate-half RoPE, GQA, SiLU MLP), teacher-forced on the ids that
JlamaPeer printed, and reports at each step the reference's top token and how far (in logits)
Jlama's choice is below it. Near-ties (deficit well under the logit spread) are expected where
Jlama rounds activations to bfloat16 before its BF16 matrix products.

  python3 check_tokens.py MODEL_DIR '[prompt ids]' '[generated ids]'
  (both lists as JlamaPeer prints them on stderr: "prompt ids [...]", "generated ids [...]")
"""
import json
import struct
import sys

import numpy as np


def main():
    d, prompt, forced = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3].replace(',...', ''))
    cfg = json.load(open(d + '/config.json'))
    with open(d + '/model.safetensors', 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
    base = 8 + n
    mm = np.memmap(d + '/model.safetensors', dtype=np.uint8, mode='r')

    def weight(name):
        t = header[name]
        s, e = t['data_offsets']
        if t['dtype'] == 'BF16':
            u = np.frombuffer(mm[base + s:base + e], dtype=np.uint16)
            return (u.astype(np.uint32) << 16).view(np.float32).reshape(t['shape'])
        return np.frombuffer(mm[base + s:base + e], dtype={'F32': np.float32, 'F16': np.float16}[t['dtype']]) \
            .astype(np.float32).reshape(t['shape'])

    hidden, layers_n = cfg['hidden_size'], cfg['num_hidden_layers']
    nh, nkv = cfg['num_attention_heads'], cfg.get('num_key_value_heads', cfg['num_attention_heads'])
    hd = cfg.get('head_dim', hidden // nh)
    eps = cfg['rms_norm_eps']
    theta = cfg.get('rope_theta', cfg.get('rope_parameters', {}).get('rope_theta', 10000.0))
    inv = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
    names = ['input_layernorm', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
             'post_attention_layernorm', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']
    layers = [{k: weight(f'model.layers.{i}.{k}.weight') for k in names} for i in range(layers_n)]
    emb = weight('model.embed_tokens.weight')
    norm = weight('model.norm.weight')
    head = weight('lm_head.weight') if 'lm_head.weight' in header else emb

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(x, pos):
        a = pos * inv
        c, s = np.concatenate([np.cos(a)] * 2), np.concatenate([np.sin(a)] * 2)
        return x * c + np.concatenate([-x[:, hd // 2:], x[:, :hd // 2]], -1) * s

    keys = [[] for _ in range(layers_n)]
    vals = [[] for _ in range(layers_n)]

    def step(tok, pos):
        x = emb[tok].copy()
        for i, l in enumerate(layers):
            y = rms(x, l['input_layernorm'])
            q = rope((l['self_attn.q_proj'] @ y).reshape(nh, hd), pos)
            keys[i].append(rope((l['self_attn.k_proj'] @ y).reshape(nkv, hd), pos))
            vals[i].append((l['self_attn.v_proj'] @ y).reshape(nkv, hd))
            ks, vs = np.stack(keys[i]), np.stack(vals[i])
            o = np.zeros((nh, hd), np.float32)
            for h in range(nh):
                g = h // (nh // nkv)
                sc = ks[:, g] @ q[h] / np.sqrt(hd)
                p = np.exp(sc - sc.max())
                o[h] = (p / p.sum()) @ vs[:, g]
            x = x + l['self_attn.o_proj'] @ o.reshape(-1)
            y = rms(x, l['post_attention_layernorm'])
            g = l['mlp.gate_proj'] @ y
            x = x + l['mlp.down_proj'] @ (g / (1 + np.exp(-g)) * (l['mlp.up_proj'] @ y))
        return head @ rms(x, norm)

    for p, t in enumerate(prompt):
        logits = step(t, p)
    same = 0
    for s, tok in enumerate(forced):
        top = int(np.argmax(logits))
        same += top == tok
        print(f'step {s}: reference top {top}, jlama {tok}, deficit {logits[top] - logits[tok]:.3f} '
              f'(logit std {logits.std():.2f})')
        logits = step(tok, len(prompt) + s)
    print(f'{same}/{len(forced)} of Jlama\'s greedy tokens are the float32 reference\'s top token')


if __name__ == '__main__':
    main()
