#!/usr/bin/env bash
# On the GPU machine (at most DEADLINE, default 570 s; written in session 26 for an H200, whose call in that
# session came as an H100):
# 1. the PEFT ratio: two rounds, 64 x (256 + 64) on the PEFT workload (OUT/ab/peft/; on an H200 its end to end is
#    the ratio), then without adapters (OUT/ab/), the defaults against rms_norm without its weight prefetch
#    (RMS_PREFETCH=0; the prefetch became the default in session 26 after an H100 A/B);
# 2. the prompt runs' float32 shrink as cuBLAS batches it, q/k/v apart against joined (shrink-sweep.py, at most
#    60 s; OUT/shrink-sweep.txt), then every GPU test with the defaults (at most 200 s; OUT/tests.txt);
# 3. where a PEFT-workload decode step goes, kernel by kernel, with each kernel's DRAM throughput (Nsight Compute,
#    at most 120 s; OUT/ncu-decode-peft.txt): on the H100 the attention ran at 73.5% of DRAM's peak, the LoRA
#    kernels at 36-42%;
# 4. on an H200 only: figure 2's Llama-2-7B points, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/), in
#    the time left.
#   runtime/experiments-session26b.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
experiment_start "$1" 570
RUNS=2 EXTRA="$PEFT_WORKLOAD" timeout "$(cap 90)" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 "" "-Dflora.cuda.defines=RMS_PREFETCH=0"
RUNS=2 timeout "$(cap 80)" bash "$here/variants.sh" "$out/ab" llama2-7b 64 256 64 "" "-Dflora.cuda.defines=RMS_PREFETCH=0"
echo "ab: ${SECONDS} s"
timeout "$(cap 60)" python3 "$here/shrink-sweep.py" > "$out/shrink-sweep.txt" 2>&1; cat "$out/shrink-sweep.txt"
timeout "$(cap 200)" bash "$here/test.sh" > "$out/tests.txt" 2>&1
grep -E "✘|tests (successful|failed)" "$out/tests.txt" | head -40
echo "tests: ${SECONDS} s"
NCU_TIMEOUT="$(cap 120)" METRICS=dram__throughput.avg.pct_of_peak_sustained_elapsed bash "$here/ncu-decode.sh" "$out" peft $PEFT_WORKLOAD
echo "ncu: ${SECONDS} s"
figure_7b_points "$out" "$deadline"
echo "done: ${SECONDS} s"
