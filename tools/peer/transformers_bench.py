#!/usr/bin/env python3
"""The peer on the same GPU: Hugging Face transformers generation on a random-weight model of
the same shape and workload as `flora bench decode --random-weights` (CUDA II's comparison).

  python3 tools/peer/transformers_bench.py --config DIR/config.json --batch 1 --prompt-tokens 16 --new-tokens 64
  python3 tools/peer/transformers_bench.py --config DIR/config.json --batch 64 --prompt-tokens 256 --new-tokens 64

Prints one JSON line: output tokens/s over the whole generate call (prefill included: batch x new
tokens / wall time, median of --repeats after one warm-up), greedy, no EOS stop, bf16, sdpa attention.

With --lora-adapters N, the model carries N PEFT LoRA adapters (rank --lora-rank on --lora-targets,
random B so that they compute something) and the batch is PEFT's mixed-adapter batch: sequence i
uses adapter i mod N through generate(adapter_names=...) (CUDA III's peer):

  python3 tools/peer/transformers_bench.py --config DIR/config.json --batch 64 --prompt-tokens 256 --new-tokens 64 \
      --lora-adapters 64 --lora-rank 8 --lora-targets q_proj,k_proj,v_proj,o_proj
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
    ap.add_argument("--warmup-new-tokens", type=int, default=None,
                    help="new tokens of the warm-up call (default: --new-tokens); a few suffice for slow mixed-adapter runs")
    ap.add_argument("--lora-adapters", type=int, default=0, help="PEFT LoRA adapters, one per sequence in turn (0: none)")
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--lora-targets", default="q_proj,k_proj,v_proj,o_proj")
    args = ap.parse_args()
    config = AutoConfig.from_pretrained(args.config)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    extra = {}
    adapters = "none"
    if args.lora_adapters > 0:
        from peft import LoraConfig, get_peft_model
        import peft
        targets = args.lora_targets.split(",")
        lora = LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank, target_modules=targets, init_lora_weights=False)
        model = get_peft_model(model, lora, adapter_name="a0")
        for i in range(1, args.lora_adapters):
            model.add_adapter(f"a{i}", lora)
        model.to(torch.bfloat16)
        extra["adapter_names"] = [f"a{i % args.lora_adapters}" for i in range(args.batch)]
        adapters = f"peft {peft.__version__} lora r={args.lora_rank} on {','.join(targets)}, {args.lora_adapters} adapters, mixed batch"
    model.eval()
    gen = torch.Generator(device="cuda").manual_seed(11)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.prompt_tokens), device="cuda", generator=gen)
    mask = torch.ones_like(ids)
    kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                  pad_token_id=0, eos_token_id=None, **extra)
    times = []
    with torch.inference_mode():
        warm = args.new_tokens if args.warmup_new_tokens is None else args.warmup_new_tokens
        model.generate(ids, attention_mask=mask, **{**kwargs, "max_new_tokens": warm, "min_new_tokens": warm})  # warm-up
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
                      "output_tokens_per_s": args.batch * args.new_tokens / t, "runs": times, "adapters": adapters}))


if __name__ == "__main__":
    main()
