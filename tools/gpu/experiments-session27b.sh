#!/usr/bin/env bash
# On the GPU machine (at most DEADLINE, default 450 s; written in session 27):
# 1. the tuned prompt products (-Dflora.cuda.tunedProducts=1024: products of 1,024 rows or more by the fastest of
#    cuBLASLt's candidates, timed once a shape against cublasGemmEx; the default since session 27's call of this
#    script on an H100) on the GPU: their test alone (OUT/tests-*.txt), then the choices made at the PEFT workload's
#    shapes (-Dflora.cuda.profile=true prints them; OUT/profile-tuned.txt);
# 2. two rounds, 64 x (256 + 64) on Llama-2-7B's shape: the PEFT workload (OUT/ab/peft/; on an H200 the defaults' end
#    to end is the PEFT ratio), then without adapters (OUT/ab/), the defaults against the tuned products off
#    (-Dflora.cuda.tunedProducts=0; in session 27 the arm was tunedProducts=1024 against GemmEx's default);
# 3. every GPU test with the tuned products on from 256 rows (JDK_JAVA_OPTIONS; at most 150 s; OUT/tests.txt);
# 4. on an H200 only: figure 2's Llama-2-7B points, gathered and auto at ranks 8 and 64, RUNS=3 (OUT/7b/), in the time left.
#   runtime/experiments-session27b.sh OUT        (from the repository root or runtime/)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
experiment_start "$1" 450
gpu_tests_each "$out" tunedProductsMatchFloat64
model="$(shape_model llama2-7b)"
JAVA_OPTS="-Dflora.cuda.profile=true -Dflora.cuda.tunedProducts=1024" timeout "$(cap 50)" bash -c "source '$here/runtime.sh'; flora bench decode \
  --model '$model' --random-weights --device cuda --batch 64 --prompt-tokens 256 --tokens 4 $PEFT_WORKLOAD" > "$out/profile-tuned.txt" 2>&1
grep -E "tunedProducts|cublas BF16 rows|prefill" "$out/profile-tuned.txt" | head -20
echo "tests and profile: ${SECONDS} s"
RUNS=2 EXTRA="$PEFT_WORKLOAD" timeout "$(cap 100)" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 "" "-Dflora.cuda.tunedProducts=0"
RUNS=2 timeout "$(cap 90)" bash "$here/variants.sh" "$out/ab" llama2-7b 64 256 64 "" "-Dflora.cuda.tunedProducts=0"
echo "ab: ${SECONDS} s"
JDK_JAVA_OPTIONS="-Dflora.cuda.tunedProducts=256" timeout "$(cap 150)" bash "$here/test.sh" > "$out/tests.txt" 2>&1
grep -E "✘|tests (successful|failed)" "$out/tests.txt" | head -40
echo "tests: ${SECONDS} s"
figure_7b_points "$out" "$deadline"
echo "done: ${SECONDS} s"
