"""Mean duration of each kernel over its launches, from an Nsight Compute raw CSV (gpu__time_duration.sum),
with the means of the metrics named in the second argument (comma-separated), if any.
    python3 ncu-summary.py FILE.csv [METRIC,METRIC...]"""
import collections
import csv
import sys

DURATION = "gpu__time_duration.sum"
rows = [line for line in open(sys.argv[1]) if line.startswith('"')]
reader = csv.DictReader(rows)
wanted = [m for m in (sys.argv[2] if len(sys.argv) > 2 else "").split(",") if m]
extra = [c for c in (reader.fieldnames or []) if c in wanted]
times = collections.defaultdict(list)
others = collections.defaultdict(lambda: collections.defaultdict(list))
scale = 1e-3  # to microseconds, by the unit row
for r in reader:
    unit = r.get(DURATION, "")
    if unit in ("nsecond", "usecond", "msecond"):
        scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}[unit]
        continue
    try:
        value = float(r[DURATION].replace(",", "")) * scale
    except (KeyError, ValueError):
        continue
    name = r["Kernel Name"][:60]
    times[name].append(value)
    for c in extra:
        try:
            others[name][c].append(float(r[c].replace(",", "")))
        except (KeyError, ValueError):
            pass
total = sum(sum(t) for t in times.values())
heads = "".join(f" {c[:28]:>28s}" for c in extra)
print(f"{'kernel':60s} {'launches':>8s} {'mean us':>9s} {'min us':>9s} {'share':>6s}{heads}")
for name, t in sorted(times.items(), key=lambda kv: -sum(kv[1])):
    cells = "".join(f" {sum(v) / len(v) if (v := others[name][c]) else float('nan'):28.2f}" for c in extra)
    print(f"{name:60s} {len(t):8d} {sum(t)/len(t):9.2f} {min(t):9.2f} {sum(t)/total:6.1%}{cells}")
print(f"{'all':60s} {sum(len(t) for t in times.values()):8d} total {total:9.1f} us")
