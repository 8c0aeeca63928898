#!/usr/bin/env bash
# On the GPU machine, first in the session after 19 (about 300 s): session 19's fixes, never run on a GPU.
# 1. CudaKernelsTest.pipelinedPrefillTilesGiveTheBitsOfTheFirst (tiles v2 against v1; its bits differed on
#    the H200 in session 19, and SameBits now says by how much) and CudaFixturesTest.replayedDecodeStepsEqualDirectOnes
#    (its case with batched products in recorded decode steps), each in a JVM of its own (OUT/tests-NAME.txt);
# 2. the tiles test again under compute-sanitizer's racecheck (OUT/racecheck.txt; at most 100 s);
# 3. batched products (-Dflora.cuda.batchedProducts=true) against the default, Llama-2-7B 64 x (256 + 64),
#    no adapters, two rounds interleaved (OUT/variants-llama2-7b-64.jsonl).
#   runtime/experiments-fixes.sh OUT        (run from the repository root)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/runtime.sh"
export MODEL_ROOT="${MODEL_ROOT:-/tmp/flora-models}"
out="$1"
mkdir -p "$out"
gpu_tests_each "$out" pipelinedPrefillTilesGiveTheBitsOfTheFirst replayedDecodeStepsEqualDirectOnes
grep -hE "differ in their bits|\) element [0-9]+" "$out"/tests-pipelined*.txt | head -8
echo "tests: ${SECONDS} s"
sanitizer="$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)"
if [ -n "$sanitizer" ]; then
  JUNIT_RUNNER="$sanitizer --tool racecheck --racecheck-report hazard --print-limit 10" timeout 100 bash "$here/test.sh" \
    --select-class dev.flora.cuda.CudaKernelsTest --include-methodname '.*#pipelinedPrefillTilesGiveTheBitsOfTheFirst(\(.*)?' \
    > "$out/racecheck.txt" 2>&1
  echo "racecheck: exit $? at ${SECONDS} s"; grep -E "RACECHECK SUMMARY|hazard" "$out/racecheck.txt" | head -10
else
  echo "experiments-fixes: no compute-sanitizer here" >&2
fi
RUNS=2 timeout 200 bash "$here/variants.sh" "$out" llama2-7b 64 256 64 "" "-Dflora.cuda.batchedProducts=true"
echo "done: ${SECONDS} s"
