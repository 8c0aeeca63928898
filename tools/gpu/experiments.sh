#!/usr/bin/env bash
# On the GPU machine, in one call (about 500 s; the GPU tests are runtime/experiments-chunks.sh's):
# session 14's calibration with its one-prompt grid, measured end to end where auto fell short (rank 64)
# and where it beat gathered by taking bmm for prompts (rank 16: 1.079, session 12).
# flora calibrate on Llama-2-7B's width (4096), with the one-prompt grid (gathered-single, bmm-single:
#    new in session 14) and without it (the same file, those entries left out: the rule before), and
#    figure 2 on Llama-2-7B at ranks 16 and 64: lora-gathered and lora-auto with the grid, 3 runs each,
#    interleaved, then lora-auto without it, 3 runs (OUT/figure-{single,without}/throughput-llama2-7b.jsonl). Session 14 without the grid: auto 7,789
#    against gathered 8,049 (0.968, medians of 5), auto giving bmm 46% of its prompt tokens (the table's
#    last line says the share now).
#   runtime/experiments.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
out="$1"
mkdir -p "$out"
# the calibration (with the one-prompt grid), then gathered and auto by it, 3 runs each, interleaved
CALIBRATE=4096 SERIES=lora-gathered,lora-auto RANKS=16,64 RUNS=3 bash "$here/bench-figures.sh" "$out/figure-single" llama2-7b > "$out/figure-single.txt" 2>&1
grep -A40 "steps of one prompt" "$out/figure-single/calibration.txt" | grep -E "^ +[0-9]+ +(1|8|64) " | head -15
python3 - "$out/figure-single/calibration-cuda.json" "$out/calibration-without-single.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["measurements"] = [m for m in c["measurements"] if not m["strategy"].endswith("-single")]
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
# auto by the same calibration without the one-prompt grid (the rule before), 3 runs
CALIBRATION_FILE="$out/calibration-without-single.json" SERIES=lora-auto RANKS=16,64 RUNS=3 \
  bash "$here/bench-figures.sh" "$out/figure-without" llama2-7b > "$out/figure-without.txt" 2>&1
python3 - "$out" <<'PY'
import json, sys, statistics
for which in ("single", "without"):
    by = {}
    for line in open(f"{sys.argv[1]}/figure-{which}/throughput-llama2-7b.jsonl"):
        j = json.loads(line)
        by.setdefault((j["series"], j["rank"]), []).append((j["tokensPerSecond"], j.get("bmmPromptShare", 0), j.get("bmmDecodeShare", 0)))
    for s, v in by.items():
        print(which, s, "median", round(statistics.median(x[0] for x in v)), "runs", [round(x[0]) for x in v],
              "bmm share prompt/decode", [f"{x[1]:.2f}/{x[2]:.2f}" for x in v])
PY
