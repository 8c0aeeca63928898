#!/usr/bin/env bash
# Builds CUDA on the CPU (cuda_on_cpu.cpp): one shared library standing in for libcuda, NVRTC, cuBLAS
# and cuBLASLt, with kernels.cu's kernels compiled in for the CPU. Run the GPU tests against it with
# -Dflora.cuda.library=OUT/libflora-cuda-on-cpu.so (the Maven build does: pom.xml, execution
# cuda-on-cpu). Needs g++ 12 or newer (C++20). Prints the library's path.
#   tools/emulator/build-cuda-on-cpu.sh OUT_DIR
#   DEFINES="ATTN_LANE_SUMS=32" tools/emulator/build-cuda-on-cpu.sh OUT_DIR   (tunables, as -Dflora.cuda.defines
#                                                    then must name them, in that order)
#   SANITIZE=address tools/emulator/build-cuda-on-cpu.sh OUT_DIR   (the JVM then needs LD_PRELOAD of libasan)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ $# -eq 1 ] || { echo "usage: tools/emulator/build-cuda-on-cpu.sh OUT_DIR" >&2; exit 2; }
command -v g++ > /dev/null || { echo "build-cuda-on-cpu: g++ (12 or newer, for C++20) is not on PATH; on Debian or Ubuntu: apt-get install g++" >&2; exit 2; }
out="$1"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp src/main/resources/dev/flora/cuda/kernels.cu "$work/kernels.cu"
defines=()
for d in ${DEFINES:-}; do defines+=("-D$d"); done
# The kernels' names: every __global__ function of the preprocessed source (macros expanded).
printf '#include "cuda_host.h"\n#include "kernels.cu"\n' > "$work/list.cpp"
g++ -std=c++20 -E -P -DFLORA_KERNEL_LIST "${defines[@]}" -I tools/emulator -I "$work" "$work/list.cpp" | tr '\n' ' ' \
  | grep -o 'FLORA_KERNEL_MARK *void *[A-Za-z_0-9]* *(' | sed 's/FLORA_KERNEL_MARK *void *//; s/ *($//' | sort -u \
  | sed 's/.*/FLORA_KERNEL(&)/' > "$work/kernel_names.inc"
[ -s "$work/kernel_names.inc" ] || { echo "build-cuda-on-cpu: no kernels found in kernels.cu" >&2; exit 1; }
flags=(-DEMU_FIBERS -std=c++20 -O2 -g -fPIC -shared -pthread -ffp-contract=off -Wno-unknown-pragmas)
[ -n "${SANITIZE:-}" ] && flags+=(-fsanitize="$SANITIZE")
# The library's own record of its defines, for NVRTC's stand-in to compare with what the backend asks.
g++ "${defines[@]}" -DEMU_DEFINES="\"${DEFINES:-}\"" "${flags[@]}" -I tools/emulator -I "$work" tools/emulator/cuda_on_cpu.cpp \
  -o "$work/libflora-cuda-on-cpu.so"
mv "$work/libflora-cuda-on-cpu.so" "$out/libflora-cuda-on-cpu.so"
echo "$out/libflora-cuda-on-cpu.so"
