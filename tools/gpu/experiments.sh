#!/usr/bin/env bash
# On the GPU machine, in one call: the GPU tests, then A/B runs of the kernel flags against the
# defaults (bench/results/cuda/NOTES.md): batch-1 decode under each flag set, fLoRA r1 at batch 1 with
# and without fuseFlora, and the PEFT workload end to end with and without loraWide. Lines under OUT
# (variants-*.jsonl, flora/, lora-narrow/ and lora-wide/ e2e-*.jsonl).
#   runtime/experiments.sh OUT      (RUNS=N rounds of the batch-1 flag sets, default 2)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
mkdir -p "$out"
timeout 300 bash "$here/test.sh" 2>&1 | grep -E "✘|tests (successful|failed)|expected|Exception" | head -40
RUNS="${RUNS:-2}" bash "$here/variants.sh" "$out" llama2-7b 1 16 64 "" "-Dflora.cuda.fuseRotation=false" \
  "-Dflora.cuda.defines=GEMV_UNROLL=2" 2>&1 | grep -v WARNING
# fLoRA r1 on q,k at batch 1: the one-launch GEMV (off by default until measured) against the three kernels.
EXTRA="--adapter-kind flora --rank 1 --targets q_proj,k_proj" RUNS="${RUNS:-2}" bash "$here/variants.sh" "$out/flora" llama2-7b 1 16 64 \
  "" "-Dflora.cuda.fuseFlora=true" 2>&1 | grep -v WARNING
# The PEFT workload (64 sequences, 64 rank-8 adapters on q,k,v,o) end to end: its prompt step with the
# narrow and the wide gathered-LoRA kernels.
for wide in false true; do
  JAVA_OPTS="-Dflora.cuda.loraWide=$wide" ONLY=e2e bash "$here/bench-adapters.sh" "$out/lora-$([ $wide = true ] && echo wide || echo narrow)" \
    2>&1 | grep -v WARNING | tail -1
done
