#!/usr/bin/env bash
# On the GPU machine (at most DEADLINE, default 570 s), what an H200 owes first (on an H100 the same, less figure 2):
# 1. the PEFT ratio: two rounds, 64 x (256 + 64) on the PEFT workload (OUT/ab/peft/; on an H200 its end to end is
#    the ratio), then without adapters the default and v5 (OUT/ab/): the defaults against rms_norm's weight asked of L2 before it
#    waits (RMS_PREFETCH=1), the decode attention's fifth form (the third with the next chunk's keys copied during
#    a chunk's values: -Dflora.cuda.attention=v5) and the prompt runs' float32 shrinks by lora_shrink_rows
#    (-Dflora.cuda.loraRowsShrink=true); then the two new kernels' GPU tests;
# 2. where a PEFT-workload decode step goes, kernel by kernel, with each kernel's DRAM throughput (Nsight Compute,
#    at most 120 s; OUT/ncu-decode-peft.txt): is the attention latency bound on the H200's faster memory?
# 3. where the PEFT workload's prefill goes (-Dflora.cuda.profile=true, every operation waited for; at most 60 s
#    each), with the runs' shrinks by cuBLAS (the default) and by lora_shrink_rows;
# 4. on an H200 only: figure 2's Llama-2-7B points, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/), in
#    the time left.
#   runtime/experiments-session26.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
experiment_start "$1" 570
cap() { local left; left="$(seconds_left "$deadline")"; echo $(( left < $1 ? left : $1 )); } # at most N s, never past the deadline
# The PEFT workload first (its end to end is the ratio on an H200), then without adapters the arms that run there.
RUNS=2 EXTRA="$PEFT_WORKLOAD" timeout "$(cap 160)" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 \
  "" "-Dflora.cuda.loraRowsShrink=true" "-Dflora.cuda.attention=v5" "-Dflora.cuda.defines=RMS_PREFETCH=1"
RUNS=2 timeout "$(cap 80)" bash "$here/variants.sh" "$out/ab" llama2-7b 64 256 64 \
  "" "-Dflora.cuda.attention=v5"
echo "ab: ${SECONDS} s"
gpu_tests_each "$out" floatRunsShrunkByTheRowsKernelMatchFloat64 stagedDecodeAttentionGivesTheBitsOfTheSecondForm
NCU_TIMEOUT="$(cap 120)" METRICS=dram__throughput.avg.pct_of_peak_sustained_elapsed bash "$here/ncu-decode.sh" "$out" peft $PEFT_WORKLOAD
echo "ncu: ${SECONDS} s"
model="$(shape_model llama2-7b)"
for rows in false true; do
  JAVA_OPTS="-Dflora.cuda.profile=true -Dflora.cuda.loraRowsShrink=$rows" timeout "$(cap 60)" bash -c "source '$here/runtime.sh'; flora bench decode \
    --model '$model' --random-weights --device cuda --batch 64 --prompt-tokens 256 --tokens 8 $PEFT_WORKLOAD" > "$out/profile-peft-rows-$rows.txt" 2>&1
  grep -A40 "flora.cuda.profile" "$out/profile-peft-rows-$rows.txt" | grep -E "profile|16384|prefill" | head -30
done
echo "profile: ${SECONDS} s"
figure_7b_points "$out" "$deadline"
echo "done: ${SECONDS} s"
