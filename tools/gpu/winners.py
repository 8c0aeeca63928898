# Applies the rule decided before the numbers (bench/results/cuda/NOTES.md, "Next"): a flag set goes on
# where both of its rounds beat both default rounds and its median gains 2% or more, on decode tok/s,
# and its GPU test passed. Among sets that exclude each other (one JVM property twice) the best median
# wins. Prints one line per set to stderr, and the winners' JVM flags joined on stdout.
#   python3 winners.py TESTS-DIR variants-*.jsonl ...
import json
import re
import statistics
import sys
from pathlib import Path

# The GPU test that must have passed before a flag may go on (runtime/*.sh write OUT/tests-NAME.txt).
GATES = {
    "flora.cuda.attention=v4": "streamedDecodeAttentionMatchesFloat64",
    "flora.cuda.attentionTiles=v2": "pipelinedPrefillTilesGiveTheBitsOfTheFirst",
    "flora.cuda.loraFused": "loraShrinkExpandMixedRanks",
    "flora.cuda.batchedProducts": "batchedProductsMatchAProductEach",
    "flora.cuda.skinnyProducts": "skinnyProductsMatchFloat64",
}


def passed(tests_dirs, flags):
    for key, test in GATES.items():
        if key in flags:
            found = [d / f"tests-{test}.txt" for d in tests_dirs if (d / f"tests-{test}.txt").exists()]
            if not found:
                return False, f"{test} not run"
            text = found[0].read_text(errors="replace")
            failed = re.search(r"(\d+) tests failed", text)
            succeeded = re.search(r"(\d+) tests successful", text)
            if not failed or not succeeded or int(failed.group(1)) or not int(succeeded.group(1)):
                return False, f"{test} did not pass"
    return True, ""


def main():
    if len(sys.argv) < 3:
        print("usage: python3 winners.py TESTS-DIR[,TESTS-DIR...] variants-*.jsonl ...", file=sys.stderr)
        sys.exit(2)
    tests_dirs = [Path(p) for p in sys.argv[1].split(",")]
    chosen = {}  # property name -> (median gain, flags)
    for name in sys.argv[2:]:
        if not Path(name).exists():
            print(f"winners: {name}: not there", file=sys.stderr)
            continue
        rounds = {}
        for number, line in enumerate(open(name), 1):
            try:
                flags, text = line.rstrip("\n").split("\t", 1)
                rounds.setdefault(flags, []).append(json.loads(text)["tokensPerSecond"])
            except (ValueError, KeyError) as e:
                print(f"winners: {name}:{number}: not a FLAGS<TAB>JSON line with tokensPerSecond ({e}); skipped", file=sys.stderr)
        base = rounds.get("", [])
        if len(base) < 2:
            print(f"winners: {name}: fewer than two default rounds", file=sys.stderr)
            continue
        for flags, values in rounds.items():
            if not flags:
                continue
            gain = statistics.median(values) / statistics.median(base) - 1
            ok_test, why = passed(tests_dirs, flags)
            wins = len(values) >= 2 and min(values) > max(base) and gain >= 0.02 and ok_test
            print(f"winners: {Path(name).name}: {flags}: {gain:+.2%} ({', '.join(f'{v:.1f}' for v in values)} against "
                  f"{', '.join(f'{v:.1f}' for v in base)}) {'ON' if wins else 'off'} {why}", file=sys.stderr)
            if wins:
                key = flags.split()[0].split("=")[0]
                if key not in chosen or gain > chosen[key][0]:
                    chosen[key] = (gain, flags)
    print(" ".join(flags for _, flags in chosen.values()))


main()
