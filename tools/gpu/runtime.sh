# Sourced by the GPU machine's scripts (runtime/*.sh): unpacks the carried Java runtime and jar once,
# and defines java_flora (the JVM with Flora's flags and $JAVA_OPTS; give it -D options, then -jar "$app/flora.jar" ...)
# and flora (the CLI).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -x "$here/jre/bin/java" ] || tar xJf "$here/jre.tar.xz" -C "$here"
[ -d "$here/app" ] || tar xJf "$here/app.tar.xz" -C "$here"
[ -e "$here/app/test-classes/fixtures" ] || ln -s "$here/../src/test/resources/fixtures" "$here/app/test-classes/fixtures"
app="$here/app"
# The PEFT workload's adapters (issue 13's peer: 64 distinct LoRA r8 on q, k, v, o), as bench decode options.
PEFT_WORKLOAD="--adapter-kind lora --rank 8 --targets q_proj,k_proj,v_proj,o_proj --strategy gathered"
java_flora() { "$here/jre/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:+UseParallelGC ${JAVA_OPTS:-} "$@"; }
flora() { java_flora -jar "$app/flora.jar" "$@"; }
# The config-only directory of a random-weight shape (flora bench model --config-only), made once
# under MODEL_ROOT (else under the second argument, else /tmp/flora-models): shape_model SHAPE [ROOT]
shape_model() {
  local dir="${MODEL_ROOT:-${2:-/tmp/flora-models}}/$1"
  [ -d "$dir" ] || flora bench model --shape "$1" --config-only --out "$dir" >&2
  echo "$dir"
}
# The GPU tests into OUT/tests.txt (at most 200 s), their failures and totals printed: gpu_tests OUT
gpu_tests() {
  timeout 200 bash "$here/test.sh" > "$1/tests.txt" 2>&1
  grep -E "✘|tests (successful|failed)" "$1/tests.txt" | head -40
}
# The test methods named (never run on a GPU), each in a JVM of its own (OUT/tests-NAME.txt): a kernel that
# faults leaves the CUDA context unusable for every test after it in the same JVM, which would hide how the
# others fare: gpu_tests_each OUT NAME...
gpu_tests_each() {
  local out="$1"; shift
  for name in "$@"; do
    timeout 90 bash "$here/test.sh" --select-package dev.flora.cuda --include-methodname ".*#$name(\(.*)?" > "$out/tests-$name.txt" 2>&1
    echo "$name: $(grep -E "tests (successful|failed)" "$out/tests-$name.txt" | tr -s ' []' ' ' | tr '\n' ' ')"
    grep -E "✘" "$out/tests-$name.txt" | head -5
  done
}
# Every other GPU test in one JVM (OUT/tests.txt), at most SECONDS (default 200): gpu_tests_rest OUT SECONDS NAME...
gpu_tests_rest() {
  local out="$1" seconds="$2"; shift 2
  local names; names="$(IFS='|'; echo "$*")"
  timeout "$seconds" bash "$here/test.sh" --select-package dev.flora.cuda --exclude-methodname ".*#($names)(\(.*)?" > "$out/tests.txt" 2>&1
  grep -E "✘|tests (successful|failed)" "$out/tests.txt" | head -40
}
# gpu_tests_each, then gpu_tests_rest: gpu_tests_new OUT NAME...
gpu_tests_new() {
  local out="$1"; shift
  gpu_tests_each "$out" "$@"
  gpu_tests_rest "$out" 200 "$@"
}
# The GPU tests never run on a GPU before session 19 (sessions 15-17's code).
NEW_TESTS=(loraRunsMatchFloat64 stackedRunsOfManyAdaptersMatchFloat64 floraRunsInTheEpilogueMatchTheThreeSteps
  jointFloraRunsMatchTheThreeStepsPerLayer batchedProductsMatchAProductEach skinnyProductsMatchFloat64
  streamedDecodeAttentionMatchesFloat64 pipelinedPrefillTilesGiveTheBitsOfTheFirst float32MatchesCpuAndTransformers
  loraShrinkExpandMixedRanks)
# Seconds left until DEADLINE seconds after this shell started (bash's SECONDS), at least 1: seconds_left DEADLINE
# The start of an experiments script: MODEL_ROOT (default /tmp/flora-models), OUT made, out and deadline set
# (DEADLINE, else the default given), the GPU's name printed: experiment_start OUT DEFAULT_DEADLINE
experiment_start() {
  export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
  out="$1"; deadline="${DEADLINE:-$2}"
  mkdir -p "$out"
  nvidia-smi --query-gpu=name --format=csv,noheader | head -1
}
seconds_left() { local left=$(( $1 - SECONDS )); [ "$left" -ge 1 ] && echo "$left" || echo 1; }
# At most N seconds, never past the calling script's deadline (experiment_start sets it): cap N
cap() { local left; left="$(seconds_left "$deadline")"; echo $(( left < $1 ? left : $1 )); }
# An A/B of decode flag sets, two rounds interleaved, 64 x (256 + 64) on Llama-2-7B's shape, without adapters
# (OUT/ab/) and on the PEFT workload (OUT/ab/peft/), until DEADLINE seconds of the calling shell: ab_rounds OUT DEADLINE FLAGS...
ab_rounds() {
  local out="$1" deadline="$2"; shift 2
  RUNS=2 timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab" llama2-7b 64 256 64 "$@"
  RUNS=2 EXTRA="$PEFT_WORKLOAD" timeout "$(seconds_left "$deadline")" bash "$here/variants.sh" "$out/ab/peft" llama2-7b 64 256 64 "$@"
}
# Figure 2's Llama-2-7B points still owed (gathered and auto at ranks 8 and 64, RUNS=3, session 15's 4096
# calibration) into OUT/7b/, on an H200 only (the figure is the H200's), until DEADLINE: figure_7b_points OUT DEADLINE
figure_7b_points() {
  case "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" in *H200*)
    SERIES=lora-gathered,lora-auto RANKS=8,64 RUNS=3 \
      CALIBRATION_FILE="$here/../bench/results/cuda/calibration-cuda-h200-d4096-session15.json" \
      timeout "$(seconds_left "$2")" bash "$here/bench-figures.sh" "$1/7b" llama2-7b ;;
  esac
}
