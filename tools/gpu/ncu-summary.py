"""Mean duration of each kernel over its launches, from an Nsight Compute raw CSV (gpu__time_duration.sum)."""
import collections
import csv
import sys

rows = [line for line in open(sys.argv[1]) if line.startswith('"')]
times = collections.defaultdict(list)
scale = 1e-3  # to microseconds, by the unit row
for r in csv.DictReader(rows):
    unit = r.get("gpu__time_duration.sum", "")
    if unit in ("nsecond", "usecond", "msecond"):
        scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}[unit]
        continue
    try:
        value = float(r["gpu__time_duration.sum"].replace(",", "")) * scale
    except (KeyError, ValueError):
        continue
    times[r["Kernel Name"][:60]].append(value)
total = sum(sum(t) for t in times.values())
print(f"{'kernel':60s} {'launches':>8s} {'mean us':>9s} {'min us':>9s} {'share':>6s}")
for name, t in sorted(times.items(), key=lambda kv: -sum(kv[1])):
    print(f"{name:60s} {len(t):8d} {sum(t)/len(t):9.2f} {min(t):9.2f} {sum(t)/total:6.1%}")
print(f"{'all':60s} {sum(len(t) for t in times.values()):8d} total {total:9.1f} us")
