#!/usr/bin/env python3
"""The peer on the same GPU: Hugging Face transformers generation on a random-weight model of
the same shape and workload as `flora bench decode --random-weights` (CUDA II's comparison).

  python3 tools/peer/transformers_bench.py --config DIR/config.json --batch 1 --prompt-tokens 16 --new-tokens 64
  python3 tools/peer/transformers_bench.py --config DIR/config.json --batch 64 --prompt-tokens 256 --new-tokens 64

Prints one JSON line: output tokens/s over the whole generate call (prefill included: batch x new
tokens / wall time, median of --repeats after one warm-up), greedy, no EOS stop, bf16, sdpa attention.
"""
import argparse
import json
import statistics
import time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    config = AutoConfig.from_pretrained(args.config)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    gen = torch.Generator(device="cuda").manual_seed(11)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.prompt_tokens), device="cuda", generator=gen)
    mask = torch.ones_like(ids)
    kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                  pad_token_id=0, eos_token_id=None)
    times = []
    with torch.inference_mode():
        model.generate(ids, attention_mask=mask, **kwargs)  # warm-up
        for _ in range(args.repeats):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model.generate(ids, attention_mask=mask, **kwargs)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    assert out.shape[1] == args.prompt_tokens + args.new_tokens, out.shape
    t = statistics.median(times)
    print(json.dumps({"peer": f"transformers {transformers.__version__} torch {torch.__version__}",
                      "gpu": torch.cuda.get_device_name(), "config": args.config, "batch": args.batch,
                      "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "seconds": t,
                      "output_tokens_per_s": args.batch * args.new_tokens / t, "runs": times}))


if __name__ == "__main__":
    main()
