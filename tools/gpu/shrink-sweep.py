#!/usr/bin/env python3
"""On the GPU machine: how long the prompt runs' LoRA shrink takes in the shapes Flora could give cuBLAS, float32
without TF32 (pedantic, as Flora's cuBLAS runs of float32 factors are), so the next change to
CudaLoraRuns.byChunk is chosen by a minute's measurement (NOTES.md, session 26):
  q/k/v apart  [3 * CHUNKS, 128, WIDTH] x [3 * CHUNKS, WIDTH, RANK]   (what byChunk batches now: x read three times)
  q/k/v joined [CHUNKS, 128, WIDTH] x [CHUNKS, WIDTH, 3 * RANK]         (A_q, A_k, A_v stacked: x read once)
  o alone      [CHUNKS, 128, WIDTH] x [CHUNKS, WIDTH, RANK]
each by torch.bmm (cuBLAS's strided batched product), timed with CUDA events, median of ROUNDS, and the bytes
each reads at least (x and A once, v written) against the copy rate measured here.
    python3 tools/gpu/shrink-sweep.py [CHUNKS] [WIDTH] [RANK...]     (default 128 4096 8 16)
"""
import sys
import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
chunks = int(sys.argv[1]) if len(sys.argv) > 1 else 128
width = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
ranks = [int(r) for r in sys.argv[3:]] or [8, 16]
ROWS, ROUNDS, REPS = 128, 5, 20


def timed(fn):
    """Median over ROUNDS of the mean of REPS calls, in µs."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(ROUNDS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(REPS):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / REPS)
    return sorted(times)[len(times) // 2]


big = torch.empty(1 << 28, device="cuda")  # 1 GiB: the copy rate, DRAM to DRAM
copy_us = timed(lambda: big.clone())
rate = 2 * big.numel() * 4 / (copy_us * 1e-6)
print(f"{torch.cuda.get_device_name()}: copy rate {rate / 1e12:.2f} TB/s; {chunks} chunks of {ROWS} rows, width {width}")
print(f"{'shape':<44} {'µs':>9} {'GFLOP/s':>9} {'of copy rate':>13}")
x = torch.randn(chunks, ROWS, width, device="cuda")
for rank in ranks:
    a3 = torch.randn(3 * chunks, width, rank, device="cuda")
    a_joined = torch.randn(chunks, width, 3 * rank, device="cuda")
    a1 = torch.randn(chunks, width, rank, device="cuda")
    x3 = x.repeat(3, 1, 1)  # the same rows, three entries each (bmm wants one tensor; the bytes are what byChunk reads)
    cases = [
        (f"q/k/v apart, rank {rank}", lambda: torch.bmm(x3, a3), 3 * chunks, rank),
        (f"q/k/v joined, rank {rank} x 3", lambda: torch.bmm(x, a_joined), chunks, 3 * rank),
        (f"o alone, rank {rank}", lambda: torch.bmm(x, a1), chunks, rank),
    ]
    for name, fn, entries, n in cases:
        us = timed(fn)
        flops = 2.0 * entries * ROWS * width * n
        least = (entries * ROWS * width + entries * width * n + entries * ROWS * n) * 4
        print(f"{name:<44} {us:9.1f} {flops / us / 1e3:9.1f} {least / (us * 1e-6) / rate:12.1%}")
