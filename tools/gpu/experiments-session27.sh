#!/usr/bin/env bash
# On the GPU machine (at most DEADLINE, default 570 s; written in session 27):
# 1. lora_shrink_chunks (the prompt chunks' float32 LoRA shrink by a kernel, q/k/v joined: -Dflora.cuda.loraChunkKernel=true)
#    on the GPU: its test alone (OUT/tests-*.txt), then where the PEFT workload's prefill goes with it and without
#    (-Dflora.cuda.profile=true, every operation waited for; OUT/profile-peft-kernel-*.txt);
# 2. the PEFT ratio: two rounds, 64 x (256 + 64) on the PEFT workload (OUT/ab/peft/; on an H200 its end to end is
#    the ratio), the defaults against the chunk kernel and against lora_expand at 512 columns a block (session 25's
#    untimed tunable: twice the blocks of a decode step's expand);
# 3. every GPU test with the defaults (at most 200 s; OUT/tests.txt; RMS_PREFETCH=1 has not run them on a GPU);
# 4. the float32 shrink as cuBLAS batches it, q/k/v apart against joined (shrink-sweep.py, at most 40 s);
# 5. cuBLASLt's candidates for the prompt step's products at 16,384 rows against cublasGemmEx's (lt-sweep.py, at most 60 s);
# 6. on an H200 only: figure 2's Llama-2-7B points, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/), in the time left.
#   runtime/experiments-session27.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
experiment_start "$1" 570
gpu_tests_each "$out" chunkShrinkKernelJoinsQkvOfFloat32Factors
model="$(shape_model llama2-7b)"
for kernel in false true; do
  JAVA_OPTS="-Dflora.cuda.profile=true -Dflora.cuda.loraChunkKernel=$kernel" timeout "$(cap 50)" bash -c "source '$here/runtime.sh'; flora bench decode \
    --model '$model' --random-weights --device cuda --batch 64 --prompt-tokens 256 --tokens 4 $PEFT_WORKLOAD" > "$out/profile-peft-kernel-$kernel.txt" 2>&1
  grep -A40 "flora.cuda.profile" "$out/profile-peft-kernel-$kernel.txt" | grep -E "profile|16384|prefill|lora" | head -20
done
echo "tests and profile: ${SECONDS} s"
RUNS=2 EXTRA="$PEFT_WORKLOAD" timeout "$(cap 140)" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 \
  "" "-Dflora.cuda.loraChunkKernel=true" "-Dflora.cuda.loraExpandColumns=512"
echo "ab: ${SECONDS} s"
timeout "$(cap 200)" bash "$here/test.sh" > "$out/tests.txt" 2>&1
grep -E "✘|tests (successful|failed)" "$out/tests.txt" | head -40
echo "tests: ${SECONDS} s"
timeout "$(cap 40)" python3 "$here/shrink-sweep.py" > "$out/shrink-sweep.txt" 2>&1; cat "$out/shrink-sweep.txt"
# The prompt step's products (16,384 rows): cuBLASLt's candidates against cublasGemmEx's choice (at most 60 s)
timeout "$(cap 60)" python3 "$here/lt-sweep.py" 16384 > "$out/lt-sweep-16384.txt" 2>&1; grep -E "x .*candidates|cublasGemmEx|^ +[0-9.]+ us" "$out/lt-sweep-16384.txt" | head -40
figure_7b_points "$out" "$deadline"
echo "done: ${SECONDS} s"
