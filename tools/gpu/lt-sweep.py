#!/usr/bin/env python3
"""On the GPU machine: how fast cuBLASLt's candidate algorithms run a decode step's products, against
the one cublasGemmEx takes (what Flora calls now). Flora's product: out[t, n] (float32) = x[t, k] (bf16)
. W[n, k]^T (bf16), float32 accumulation. Each shape is timed with CUDA events over REPS calls, the
weights rotating over enough copies (> 4 x L2) that every call reads its weight from DRAM; GB/s counts
the weight, input and output bytes. Prints, for each shape, GemmEx's time and every Lt algorithm's
(tile, split-K, stages), best first.
    python3 tools/gpu/lt-sweep.py [TOKENS...]          (default 64)
"""
import ctypes, sys
import torch



def library(name):
    """The CUDA 13 library: the loader's, else the one torch's wheels bring."""
    import glob, os
    candidates = [f"{name}.so.13", f"{name}.so"]
    for root in sys.path:
        candidates += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib", f"{name}.so*")))
    for c in candidates:
        try:
            return ctypes.CDLL(c)
        except OSError:
            pass
    raise OSError(f"no {name}")


lt, cb = library("libcublasLt"), library("libcublas")
c_void_p, c_int, c_size_t = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t

R_16BF, R_32F, COMPUTE_32F = 14, 0, 68
OP_N, OP_T = 0, 1
DESC_TRANSA, DESC_TRANSB = 3, 4
PREF_MAX_WORKSPACE = 1
CFG_ID, CFG_TILE_ID, CFG_SPLITK_NUM, CFG_REDUCTION, CFG_SWIZZLE, CFG_CUSTOM, CFG_STAGES_ID = 0, 1, 2, 3, 4, 5, 6
WORKSPACE = 32 << 20


class Heuristic(ctypes.Structure):
    _fields_ = [("algo", ctypes.c_uint64 * 8), ("workspace", c_size_t), ("state", c_int), ("waves", ctypes.c_float),
                ("reserved", c_int * 4)]


def check(status, what):
    if status != 0:
        raise RuntimeError(f"{what}: status {status}")


def layout(dtype, rows, cols, ld):
    h = c_void_p()
    check(lt.cublasLtMatrixLayoutCreate(ctypes.byref(h), dtype, ctypes.c_uint64(rows), ctypes.c_uint64(cols), ctypes.c_int64(ld)),
          "layout")
    return h


def algo_config(algo, attr):
    v = ctypes.c_uint32(0)
    written = c_size_t(0)
    lt.cublasLtMatmulAlgoConfigGetAttribute(ctypes.byref(algo), attr, ctypes.byref(v), c_size_t(4), ctypes.byref(written))
    return v.value


def timed(fn, reps):
    fn(0)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(reps):
        fn(i)
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / reps  # microseconds


def sweep(tokens, n, k, handle, gemm, ws, reps=200, keep=6):
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    copies = max(2, (4 * l2) // (n * k * 2) + 1)
    ws_ = [torch.randn(n, k, device="cuda").to(torch.bfloat16) for _ in range(copies)]
    x = torch.randn(tokens, k, device="cuda").to(torch.bfloat16)
    out = torch.empty(tokens, n, device="cuda", dtype=torch.float32)
    one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
    nbytes = n * k * 2 + tokens * k * 2 + tokens * n * 4

    def gemm_ex(i):
        check(cb.cublasGemmEx(gemm, OP_T, OP_N, n, tokens, k, ctypes.byref(one), c_void_p(ws_[i % copies].data_ptr()), R_16BF, k,
                              c_void_p(x.data_ptr()), R_16BF, k, ctypes.byref(zero), c_void_p(out.data_ptr()), R_32F, n,
                              COMPUTE_32F, -1), "gemmEx")

    reference = None
    gemm_ex(0)
    torch.cuda.synchronize()
    reference = out.clone()
    base = timed(gemm_ex, reps)
    rows = [("cublasGemmEx (Flora now)", base, 0.0)]

    desc = c_void_p()
    check(lt.cublasLtMatmulDescCreate(ctypes.byref(desc), COMPUTE_32F, R_32F), "desc")
    ta, tb = ctypes.c_int32(OP_T), ctypes.c_int32(OP_N)
    lt.cublasLtMatmulDescSetAttribute(desc, DESC_TRANSA, ctypes.byref(ta), c_size_t(4))
    lt.cublasLtMatmulDescSetAttribute(desc, DESC_TRANSB, ctypes.byref(tb), c_size_t(4))
    a, b, c = layout(R_16BF, k, n, k), layout(R_16BF, k, tokens, k), layout(R_32F, n, tokens, n)
    pref = c_void_p()
    check(lt.cublasLtMatmulPreferenceCreate(ctypes.byref(pref)), "pref")
    wsb = ctypes.c_uint64(WORKSPACE)
    lt.cublasLtMatmulPreferenceSetAttribute(pref, PREF_MAX_WORKSPACE, ctypes.byref(wsb), c_size_t(8))
    results = (Heuristic * 32)()
    count = c_int(0)
    check(lt.cublasLtMatmulAlgoGetHeuristic(handle, desc, a, b, c, c, pref, 32, results, ctypes.byref(count)), "heuristic")
    for j in range(count.value):
        h = results[j]
        if h.state != 0:
            continue
        algo = h.algo

        def run(i, algo=algo):
            check(lt.cublasLtMatmul(handle, desc, ctypes.byref(one), c_void_p(ws_[i % copies].data_ptr()), a, c_void_p(x.data_ptr()), b,
                                    ctypes.byref(zero), c_void_p(out.data_ptr()), c, c_void_p(out.data_ptr()), c, ctypes.byref(algo),
                                    c_void_p(ws.data_ptr()), c_size_t(WORKSPACE), c_void_p(0)), "matmul")
        try:
            us = timed(run, reps)
        except RuntimeError as e:
            rows.append((f"lt #{j}: {e}", float("inf"), 0.0))
            continue
        run(0)
        torch.cuda.synchronize()
        err = (out - reference).abs().max().item()
        name = (f"lt #{j} algo {algo_config(algo, CFG_ID)} tile {algo_config(algo, CFG_TILE_ID)} splitK {algo_config(algo, CFG_SPLITK_NUM)}"
                f" reduction {algo_config(algo, CFG_REDUCTION)} stages {algo_config(algo, CFG_STAGES_ID)} waves {h.waves:.2f}")
        rows.append((name, us, err))
    print(f"\n{tokens} x {k} . ({n} x {k})^T, {copies} weight copies, {count.value} Lt candidates")
    for name, us, err in sorted(rows, key=lambda r: r[1])[:keep + 1] + [r for r in rows if r[0].startswith("cublasGemmEx")]:
        print(f"  {us:8.2f} us  {nbytes / us / 1e3:7.0f} GB/s  {base / us:5.3f}x  max|diff| {err:.2e}  {name}")
    del ws_
    torch.cuda.empty_cache()


def main():
    tokens_list = [int(t) for t in sys.argv[1:]] or [64]
    handle, gemm = c_void_p(), c_void_p()
    check(lt.cublasLtCreate(ctypes.byref(handle)), "ltCreate")
    check(cb.cublasCreate_v2(ctypes.byref(gemm)), "create")
    ws = torch.empty(WORKSPACE, dtype=torch.uint8, device="cuda")
    check(cb.cublasSetWorkspace_v2(gemm, c_void_p(ws.data_ptr()), c_size_t(WORKSPACE)), "workspace")
    print(torch.cuda.get_device_name(0))
    # Llama-2-7B's decode products: q/k/v/o, gate and up (each; or fused), down; Llama-2-13B's q and gate.
    shapes = [(4096, 4096), (12288, 4096), (11008, 4096), (22016, 4096), (4096, 11008), (5120, 5120), (13824, 5120)]
    for tokens in tokens_list:
        for n, k in shapes:
            sweep(tokens, n, k, handle, gemm, ws, reps=max(10, 200 * 64 // tokens))  # a prompt step's products take milliseconds


main()
