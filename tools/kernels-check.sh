#!/usr/bin/env bash
# On a machine with nvcc (no GPU needed; the development VM has CUDA 13's): compiles Flora's kernels for
# the H200 (sm_90) as NVRTC does on the GPU machine, and prints each kernel's registers, shared memory
# and spills (ptxas -v). With a git revision, also says which kernels' PTX is instruction for
# instruction that revision's (registers and labels renumbered), which changed, and which are new or
# gone: a kernel meant to be untouched by a change should be "same".
#   tools/kernels-check.sh [REVISION]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v nvcc > /dev/null || { echo "kernels-check: nvcc is not on PATH (CUDA toolkit needed)" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
source=src/main/resources/dev/flora/cuda/kernels.cu
ptx() { # FILE.cu OUT_PREFIX: OUT_PREFIX.cu and its PTX
  (echo '#include <cuda_runtime.h>'; cat "$1") > "$2.cu"
  nvcc -arch=sm_90 -std=c++17 -ptx "$2.cu" -o "$2.ptx"
}
ptx "$source" "$work/now"
nvcc -arch=sm_90 -std=c++17 -cubin -Xptxas -v "$work/now.cu" -o "$work/now.cubin" 2> "$work/now.ptxas" # the report: only for now
if [ $# -ge 1 ]; then
  git show "$1:$source" > "$work/base.in"
  ptx "$work/base.in" "$work/base"
fi
python3 - "$work" "$#" <<'PY'
import re, sys
work, compare = sys.argv[1], sys.argv[2] != "0"
def report(prefix):
    rows, name = {}, None
    for line in open(f"{work}/{prefix}.ptxas"):
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            name = m.group(1); rows[name] = {"spill": "", "regs": "", "smem": ""}
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and name:
            rows[name]["spill"] = f"{m.group(1)}/{m.group(2)}"
        m = re.search(r"Used (\d+) registers", line)
        if m and name:
            rows[name]["regs"] = m.group(1)
            smem = re.search(r"(\d+) bytes smem", line)
            rows[name]["smem"] = smem.group(1) if smem else "0"
    return rows
def entries(prefix):
    parts = re.split(r"(?=\.visible \.entry )", open(f"{work}/{prefix}.ptx").read())[1:]
    out = {}
    for p in parts:
        name = re.match(r"\.visible \.entry (\w+)", p).group(1)
        body = re.sub(r"%(r|rd|f|fd|p|rs|h|hh|b)\d+", r"%\1N", p)
        body = re.sub(r"\$L__\w+", "L", body)
        body = re.sub(r"_Z\w+", "SYM", body)  # template instances' mangled names (shared arrays)
        body = re.sub(r"^\s*// \.globl.*$", "", body, flags=re.M)  # the next entry's name
        out[name] = body
    return out
now = report("now")
status = {}
if compare:
    a, b = entries("base"), entries("now")
    for k in b:
        status[k] = "new" if k not in a else ("same" if a[k] == b[k] else "changed")
    gone = sorted(k for k in a if k not in b)
print(f"{'kernel':44s} {'regs':>5s} {'smem':>7s} {'spills':>8s}" + ("  PTX" if compare else ""))
for k in sorted(now):
    r = now[k]
    print(f"{k:44s} {r['regs']:>5s} {r['smem']:>7s} {r['spill'] or '0/0':>8s}" + (f"  {status.get(k, '')}" if compare else ""))
if compare:
    counts = {s: sum(1 for v in status.values() if v == s) for s in ("same", "changed", "new")}
    print(f"\n{counts['same']} same, {counts['changed']} changed, {counts['new']} new, {len(gone)} gone" + (": " + ", ".join(gone) if gone else ""))
spilling = [k for k, r in now.items() if r["spill"] not in ("", "0/0")]
if spilling:
    print("spills: " + ", ".join(sorted(spilling)))
PY
