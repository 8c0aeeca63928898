package dev.flora.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

import static dev.flora.cuda.Native.INT;
import static dev.flora.cuda.Native.LONG;
import static dev.flora.cuda.Native.PTR;
import static dev.flora.cuda.Native.SIZE_T;

/**
 * cuBLASLt through FFM: the one product cuBLAS's GemmEx cannot make, a per-output-feature alpha
 * (pointer mode ALPHA_DEVICE_VECTOR_BETA_HOST), which folds fLoRA's demodulation, out ∘ B_j, into the
 * product's epilogue (CudaFloraRuns); and plain products by an algorithm of the caller's choosing among
 * the heuristic's candidates (CudaTunedProducts). On the backend's stream, with cuBLAS's workspace (the
 * two never run at once: one stream).
 */
final class CublasLt {
    // cublasLt.h
    private static final int DESC_POINTER_MODE = 2;
    private static final int DESC_TRANSA = 3;
    private static final int DESC_TRANSB = 4;
    private static final int POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST = 4;
    private static final int PREF_MAX_WORKSPACE_BYTES = 1;
    /** sizeof(cublasLtMatmulHeuristicResult_t): the algorithm (64 bytes), workspace size, state, waves, 4 reserved ints. */
    private static final long HEURISTIC_BYTES = 96;
    /** The state's offset in a heuristic result (after the algorithm's 64 bytes and the workspace size). */
    private static final long HEURISTIC_STATE = 72;

    private final MethodHandle descCreate, descSetAttribute, layoutCreate, heuristic, matmul;
    private final MemorySegment handle;
    private final MemorySegment stream;
    private final long workspace;
    private final Arena arena = Arena.ofAuto();
    private final MemorySegment desc;
    private final MemorySegment preference;
    private final MemorySegment one;
    private final MemorySegment zero;

    CublasLt(MemorySegment stream, long workspace) {
        Native n = new Native(CudaLibraries.cublasLt(), "libcublasLt");
        MethodHandle create = n.status("cublasLtCreate", PTR);
        descCreate = n.status("cublasLtMatmulDescCreate", PTR, INT, INT);
        descSetAttribute = n.status("cublasLtMatmulDescSetAttribute", PTR, INT, PTR, SIZE_T);
        layoutCreate = n.status("cublasLtMatrixLayoutCreate", PTR, INT, LONG, LONG, LONG);
        MethodHandle preferenceCreate = n.status("cublasLtMatmulPreferenceCreate", PTR);
        MethodHandle preferenceSetAttribute = n.status("cublasLtMatmulPreferenceSetAttribute", PTR, INT, PTR, SIZE_T);
        heuristic = n.status("cublasLtMatmulAlgoGetHeuristic", PTR, PTR, PTR, PTR, PTR, PTR, PTR, INT, PTR, PTR);
        matmul = n.status("cublasLtMatmul", PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, SIZE_T, PTR);
        this.stream = stream;
        this.workspace = workspace;
        MemorySegment out = arena.allocate(PTR);
        check("cublasLtCreate", Native.call(create, out));
        handle = out.get(PTR, 0);
        check("cublasLtMatmulDescCreate", Native.call(descCreate, out, Cublas.COMPUTE_32F, Cublas.R_32F));
        desc = out.get(PTR, 0);
        setInt(DESC_TRANSA, Cublas.OP_T);
        setInt(DESC_TRANSB, Cublas.OP_N);
        setInt(DESC_POINTER_MODE, POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST);
        check("cublasLtMatmulPreferenceCreate", Native.call(preferenceCreate, out));
        preference = out.get(PTR, 0);
        MemorySegment bytes = arena.allocateFrom(LONG, Cublas.WORKSPACE_BYTES);
        check("cublasLtMatmulPreferenceSetAttribute", Native.call(preferenceSetAttribute, preference, PREF_MAX_WORKSPACE_BYTES, bytes, 8L));
        one = arena.allocateFrom(Native.FLOAT, 1f);
        zero = arena.allocateFrom(Native.FLOAT, 0f);
    }

    private void setInt(int attribute, int value) {
        check("cublasLtMatmulDescSetAttribute", Native.call(descSetAttribute, desc, attribute, arena.allocateFrom(INT, value), 4L));
    }

    /**
     * Row-major out[T, O] = alpha[o] · (x[T, I] · W[O, I]^T)[t, o] (+ out with {@code accumulate}), x and
     * W of {@code inputType}, out float32, alpha a device vector of O float32 values; x and out with row
     * strides of their own, as {@link Cublas#linearStrided}. False, with nothing done, where cuBLASLt
     * has no algorithm for it on this GPU.
     */
    boolean scaledLinear(long x, int ldx, long w, long out, int ldo, int tokens, int in, int outs, int inputType, long alpha, boolean accumulate) {
        Plan plan = plans.computeIfAbsent(java.util.List.of(tokens, in, outs, ldx, ldo, inputType), k -> plan(tokens, in, outs, ldx, ldo, inputType));
        if (plan.algorithm() == null) {
            return false;
        }
        check("cublasLtMatmul", Native.call(matmul, handle, desc, MemorySegment.ofAddress(alpha), MemorySegment.ofAddress(w), plan.w(),
                MemorySegment.ofAddress(x), plan.x(), accumulate ? one : zero, MemorySegment.ofAddress(out), plan.out(), MemorySegment.ofAddress(out),
                plan.out(), plan.algorithm(), MemorySegment.ofAddress(workspace), Cublas.WORKSPACE_BYTES, stream));
        return true;
    }

    /** A shape's layouts and the heuristic's algorithm (null: none), made once and kept: a prompt step asks for the same shapes layer after layer. */
    private record Plan(MemorySegment w, MemorySegment x, MemorySegment out, MemorySegment algorithm) {
    }

    private final java.util.Map<java.util.List<Integer>, Plan> plans = new java.util.HashMap<>();

    private Plan plan(int tokens, int in, int outs, int ldx, int ldo, int inputType) {
        MemorySegment a = layout(inputType, in, outs, in);      // W stored column-major as in × outs, used transposed
        MemorySegment b = layout(inputType, in, tokens, ldx);   // x^T: in × tokens
        MemorySegment d = layout(Cublas.R_32F, outs, tokens, ldo);
        MemorySegment result = arena.allocate(HEURISTIC_BYTES, 8);
        MemorySegment count = arena.allocate(INT);
        int status = (Integer) Native.call(heuristic, handle, desc, a, b, d, d, preference, 1, result, count);
        return new Plan(a, b, d, status == 0 && count.get(INT, 0) >= 1 ? result : null);
    }

    /** A plain product's shape: its layouts (W, x, out) and cuBLASLt's candidate algorithms for it, best first by the heuristic. */
    record Candidates(MemorySegment w, MemorySegment x, MemorySegment out, java.util.List<MemorySegment> algorithms) {
    }

    /** The plain products' descriptor (host alpha and beta), made at its first use. */
    private MemorySegment plainDesc;

    /**
     * Up to {@code max} of cuBLASLt's algorithms for row-major out[T, O] = x[T, I] · W[O, I]^T (+ out), x and W
     * of {@code inputType}, out float32, rows packed (ld = I and O): the heuristic's candidates, for
     * CudaTunedProducts to time. None where cuBLASLt offers none (CUDA on the CPU).
     */
    Candidates candidates(int tokens, int in, int outs, int inputType, int max) {
        if (plainDesc == null) {
            MemorySegment out = arena.allocate(PTR);
            check("cublasLtMatmulDescCreate", Native.call(descCreate, out, Cublas.COMPUTE_32F, Cublas.R_32F));
            plainDesc = out.get(PTR, 0);
            check("cublasLtMatmulDescSetAttribute", Native.call(descSetAttribute, plainDesc, DESC_TRANSA, arena.allocateFrom(INT, Cublas.OP_T), 4L));
            check("cublasLtMatmulDescSetAttribute", Native.call(descSetAttribute, plainDesc, DESC_TRANSB, arena.allocateFrom(INT, Cublas.OP_N), 4L));
        }
        MemorySegment a = layout(inputType, in, outs, in);
        MemorySegment b = layout(inputType, in, tokens, in);
        MemorySegment d = layout(Cublas.R_32F, outs, tokens, outs);
        MemorySegment results = arena.allocate(HEURISTIC_BYTES * max, 8);
        MemorySegment count = arena.allocate(INT);
        int status = (Integer) Native.call(heuristic, handle, plainDesc, a, b, d, d, preference, max, results, count);
        java.util.List<MemorySegment> algorithms = new java.util.ArrayList<>();
        for (int i = 0; status == 0 && i < count.get(INT, 0); i++) {
            MemorySegment result = results.asSlice(i * HEURISTIC_BYTES, HEURISTIC_BYTES);
            if (result.get(INT, HEURISTIC_STATE) == 0) {
                algorithms.add(result); // the algorithm is the result's first 64 bytes
            }
        }
        return new Candidates(a, b, d, algorithms);
    }

    /** out (+)= x · W^T by one of {@link #candidates}' algorithms; false where cuBLASLt refuses it (nothing done then). */
    boolean linear(Candidates shape, MemorySegment algorithm, long x, long w, long out, boolean accumulate) {
        int status = (Integer) Native.call(matmul, handle, plainDesc, one, MemorySegment.ofAddress(w), shape.w(), MemorySegment.ofAddress(x), shape.x(),
                accumulate ? one : zero, MemorySegment.ofAddress(out), shape.out(), MemorySegment.ofAddress(out), shape.out(), algorithm,
                MemorySegment.ofAddress(workspace), Cublas.WORKSPACE_BYTES, stream);
        return status == 0;
    }

    private MemorySegment layout(int type, long rows, long cols, long ld) {
        MemorySegment out = arena.allocate(PTR);
        check("cublasLtMatrixLayoutCreate", Native.call(layoutCreate, out, type, rows, cols, ld));
        return out.get(PTR, 0);
    }

    private static void check(String what, Object status) {
        int code = (Integer) status;
        if (code != 0) {
            throw new CudaException(what + " failed: cuBLAS status " + code);
        }
    }
}
