# Prints FLAGS<TAB>JSON lines (runtime/variants.sh) as one readable line each.
import json
import sys

for line in sys.stdin:
    flags, text = line.rstrip("\n").split("\t", 1)
    d = json.loads(text)
    print(f"{flags or '(default)':60s} decode {d['tokensPerSecond']:9.1f} tok/s  roofline {d['memoryFraction']:.4f}"
          f"  e2e {d.get('endToEndOutputTokensPerSecond', 0):9.1f}  prefill {d.get('prefillSeconds', 0):.4f} s")
