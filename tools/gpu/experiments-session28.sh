#!/usr/bin/env bash
# On the GPU machine (at most DEADLINE, default 570 s; written in session 27 for the next call, an H200's if one comes):
# 1. the chunks' kernels on the GPU: lora_shrink_chunks (-Dflora.cuda.loraChunkKernel) and lora_expand_chunks
#    (-Dflora.cuda.loraChunkExpand, never run on a GPU), their test alone (OUT/tests-*.txt), then where the PEFT
#    workload's prompt step goes with both (-Dflora.cuda.profile=true; OUT/profile-chunk-kernels.txt): in session 27
#    the shrink kernel took 376 µs a call against cuBLAS's 935, but cuBLAS's expand after it 1,154 against 508;
# 2. the PEFT workload, 64 x (256 + 64), two rounds (OUT/ab/peft/; on an H200 the defaults' end to end is the PEFT
#    ratio): the defaults against the expand kernel alone and against both kernels;
# 3. every GPU test with the defaults (at most 200 s; OUT/tests.txt);
# 4. on an H200 only: figure 2's Llama-2-7B points, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/), in the time left.
#   runtime/experiments-session28.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
experiment_start "$1" 570
gpu_tests_each "$out" chunkShrinkKernelJoinsQkvOfFloat32Factors
model="$(shape_model llama2-7b)"
JAVA_OPTS="-Dflora.cuda.profile=true -Dflora.cuda.loraChunkKernel=true -Dflora.cuda.loraChunkExpand=true" timeout "$(cap 50)" bash -c \
  "source '$here/runtime.sh'; flora bench decode --model '$model' --random-weights --device cuda --batch 64 --prompt-tokens 256 --tokens 4 \
  $PEFT_WORKLOAD" > "$out/profile-chunk-kernels.txt" 2>&1
grep -E "lora|prefill" "$out/profile-chunk-kernels.txt" | head -20
echo "tests and profile: ${SECONDS} s"
RUNS=2 EXTRA="$PEFT_WORKLOAD" timeout "$(cap 140)" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 \
  "" "-Dflora.cuda.loraChunkExpand=true" "-Dflora.cuda.loraChunkKernel=true -Dflora.cuda.loraChunkExpand=true"
echo "ab: ${SECONDS} s"
timeout "$(cap 200)" bash "$here/test.sh" > "$out/tests.txt" 2>&1
grep -E "✘|tests (successful|failed)" "$out/tests.txt" | head -40
echo "tests: ${SECONDS} s"
figure_7b_points "$out" "$deadline"
echo "done: ${SECONDS} s"
