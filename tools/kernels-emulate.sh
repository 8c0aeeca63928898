#!/usr/bin/env bash
# Runs Flora's newer CUDA kernels on the CPU (tools/emulator: every CUDA thread a host thread; no GPU,
# no CUDA toolkit, only g++ 12 or newer) against float64 and against the forms the H200 has checked,
# built with AddressSanitizer and UndefinedBehaviorSanitizer so that a read or write out of bounds
# stops the run. For a kernel's logic where no GPU is lent; it measures no speed and does not replace
# the GPU tests (CudaKernelsTest), which run the kernels as NVRTC compiles them.
#   tools/kernels-emulate.sh [attention|tiles|lora|flora|stack|step|gemv|skinny]     (all by default; about a minute;
#                                                    several joined by commas: attention,lora)
#   SANITIZE=thread tools/kernels-emulate.sh ...                (ThreadSanitizer instead: data races)
#   KERNELS=other.cu tools/kernels-emulate.sh ...              (another copy of kernels.cu, e.g. a mutant)
#   DEFINES="ATTN_V4_LOADS=1 COMBINE_BATCH=3" tools/kernels-emulate.sh ...   (tunables, as -Dflora.cuda.defines sets them)
#   EMU_CP_ASYNC=eager tools/kernels-emulate.sh ...            (cp.async copies land at issue, not at their wait:
#                                                               a copy into a buffer still being read; with SANITIZE=thread)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v g++ > /dev/null || { echo "kernels-emulate: g++ (12 or newer, for C++20) is not on PATH; on Debian or Ubuntu: apt-get install g++" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "${KERNELS:-src/main/resources/dev/flora/cuda/kernels.cu}" "$work/kernels.cu" # kernels_test.cpp includes it
sanitize="${SANITIZE:-address,undefined}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" # leaks are not the question (LeakSanitizer needs ptrace, not everywhere allowed)
# Some kernels' address-space layouts keep a sanitizer's runtime from starting (its shadow memory
# collides with the randomised mappings): then the run goes without address randomisation, and
# where even that fails, without the sanitizer, saying so.
run=()
echo 'int main() { return 0; }' > "$work/probe.cpp"
g++ -fsanitize="$sanitize" "$work/probe.cpp" -o "$work/probe"
if ! bash -c "\"\$1\"; exit \$?" _ "$work/probe" > /dev/null 2>&1; then # (an inner shell: its abort notice stays quiet)
  if bash -c "setarch \"\$(uname -m)\" -R \"\$1\"; exit \$?" _ "$work/probe" > /dev/null 2>&1; then
    run=(setarch "$(uname -m)" -R)
  else
    echo "kernels-emulate: the $sanitize sanitizer's runtime does not start on this machine; running without it" >&2
    sanitize=""
  fi
fi
defines=()
for d in ${DEFINES:-}; do defines+=("-D$d"); done
flags=(-std=c++20 -O1 -g -pthread -ffp-contract=off -Wno-unknown-pragmas)
[ -n "$sanitize" ] && flags+=(-fsanitize="$sanitize" -fno-sanitize-recover=undefined)
g++ "${defines[@]}" "${flags[@]}" -I tools/emulator -I "$work" tools/emulator/kernels_test.cpp -o "$work/kernels_test"
"${run[@]}" "$work/kernels_test" "$@"
