package dev.flora.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

import static dev.flora.cuda.Native.INT;
import static dev.flora.cuda.Native.PTR;

/**
 * cuBLAS through FFM: one handle on the backend's stream and GemmEx, the only product Flora needs.
 * Float32 products use the pedantic float32 compute type, so TF32 never enters.
 */
final class Cublas {
    static final int R_32F = 0;
    static final int R_16F = 2;
    static final int R_16BF = 14;
    static final int COMPUTE_32F = 68;
    static final int COMPUTE_32F_PEDANTIC = 69;
    static final int OP_N = 0;
    static final int OP_T = 1;

    private final MethodHandle create, setStream, setWorkspace, gemmEx, gemmBatchedEx, statusString, getVersion;
    private final MemorySegment handle;
    private final Arena scalars = Arena.ofAuto();
    private final MemorySegment one;
    private final MemorySegment zero;

    /** Bytes of the workspace given to cuBLAS: its own would be allocated inside graph captures. */
    static final long WORKSPACE_BYTES = 32L << 20;

    Cublas(MemorySegment stream, long workspace) {
        Native n = new Native(CudaLibraries.cublas(), "libcublas");
        create = n.status("cublasCreate_v2", PTR);
        setStream = n.status("cublasSetStream_v2", PTR, PTR);
        setWorkspace = n.status("cublasSetWorkspace_v2", PTR, PTR, Native.LONG);
        getVersion = n.status("cublasGetVersion_v2", PTR, PTR);
        gemmEx = n.status("cublasGemmEx", PTR, INT, INT, INT, INT, INT, PTR, PTR, INT, INT, PTR, INT, INT, PTR, PTR, INT, INT, INT, INT);
        gemmBatchedEx = n.status("cublasGemmBatchedEx", PTR, INT, INT, INT, INT, INT, PTR, PTR, INT, INT, PTR, INT, INT, PTR, PTR, INT, INT,
                INT, INT, INT);
        statusString = n.function("cublasGetStatusString", java.lang.foreign.FunctionDescriptor.of(PTR, INT));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment h = arena.allocate(PTR);
            check("cublasCreate", Native.call(create, h));
            handle = h.get(PTR, 0);
        }
        check("cublasSetStream", Native.call(setStream, handle, stream));
        check("cublasSetWorkspace", Native.call(setWorkspace, handle, MemorySegment.ofAddress(workspace), WORKSPACE_BYTES));
        one = scalars.allocateFrom(Native.FLOAT, 1f);
        zero = scalars.allocateFrom(Native.FLOAT, 0f);
    }

    int version() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(INT);
            check("cublasGetVersion", Native.call(getVersion, handle, v));
            return v.get(INT, 0);
        }
    }

    /**
     * Row-major out[T, O] = x[T, I] · W[O, I]^T, with x and W of {@code inputType} and out float32.
     * In cuBLAS's column-major terms: out^T (O×T) = W (I×O)^T · x^T (I×T).
     */
    void linear(long x, long w, long out, int tokens, int in, int outs, int inputType) {
        linear(x, w, out, tokens, in, outs, inputType, false);
    }

    /** {@link #linear}, or with {@code accumulate} out += x · W^T (cuBLAS's beta = 1: the sum is the epilogue's, no pass of its own). */
    void linear(long x, long w, long out, int tokens, int in, int outs, int inputType, boolean accumulate) {
        linearStrided(x, in, w, out, outs, tokens, in, outs, inputType, 1f, accumulate);
    }

    /**
     * Row-major out[T, O] (+)= alpha · x[T, I] · W[O, I]^T with x and W of {@code inputType} and out
     * float32, x and out with row strides of their own ({@code ldx}, {@code ldo}: a run of rows inside
     * larger matrices), W contiguous; compute as {@link #linear}'s.
     */
    void linearStrided(long x, int ldx, long w, long out, int ldo, int tokens, int in, int outs, int inputType, float alpha, boolean accumulate) {
        int compute = inputType == R_32F ? COMPUTE_32F_PEDANTIC : COMPUTE_32F;
        try (Arena arena = alpha == 1f ? null : Arena.ofConfined()) {
            MemorySegment a = scalar(alpha, arena);
            check("cublasGemmEx", Native.call(gemmEx, handle, OP_T, OP_N, outs, tokens, in, a, MemorySegment.ofAddress(w), inputType, in,
                    MemorySegment.ofAddress(x), inputType, ldx, accumulate ? one : zero, MemorySegment.ofAddress(out), R_32F, ldo, compute, -1));
        }
    }

    /**
     * {@link #linear} for {@code count} groups at once (cublasGemmBatchedEx): group g's out rows from
     * its x rows and W; xs, ws and outs are device arrays of the groups' device pointers.
     */
    void batchedLinear(long xs, long ws, long outs, int count, int tokens, int in, int outFeatures, int inputType) {
        batchedLinearStrided(xs, in, ws, in, outs, outFeatures, count, tokens, in, outFeatures, inputType, 1f, false);
    }

    /**
     * {@link #batchedLinear} with x, W and out rows of strides of their own ({@code ldx}, {@code ldw},
     * {@code ldo}: runs of rows inside larger matrices, or a slice of {@code in} columns of wider x and W
     * for split-K), out (+)= alpha · x · W^T in each group.
     */
    void batchedLinearStrided(long xs, int ldx, long ws, int ldw, long outs, int ldo, int count, int tokens, int in, int outFeatures,
                              int inputType, float alpha, boolean accumulate) {
        int compute = inputType == R_32F ? COMPUTE_32F_PEDANTIC : COMPUTE_32F;
        try (Arena arena = alpha == 1f ? null : Arena.ofConfined()) {
            MemorySegment a = scalar(alpha, arena);
            check("cublasGemmBatchedEx", Native.call(gemmBatchedEx, handle, OP_T, OP_N, outFeatures, tokens, in, a, MemorySegment.ofAddress(ws),
                    inputType, ldw, MemorySegment.ofAddress(xs), inputType, ldx, accumulate ? one : zero, MemorySegment.ofAddress(outs), R_32F, ldo,
                    count, compute, -1));
        }
    }

    /**
     * out[n] = sum over p of parts[p, n], all float32, in pedantic float32: {@code count} partial sums of
     * {@code n} values each, contiguous, added as one product, parts (n × count, column-major) · ones
     * ({@code ones}: count float32 1s on the device).
     */
    void sumParts(long parts, int count, int n, long ones, long out) {
        check("cublasGemmEx", Native.call(gemmEx, handle, OP_N, OP_N, n, 1, count, one, MemorySegment.ofAddress(parts), R_32F, n,
                MemorySegment.ofAddress(ones), R_32F, count, zero, MemorySegment.ofAddress(out), R_32F, n, COMPUTE_32F_PEDANTIC, -1));
    }

    /** alpha as cuBLAS reads it: the shared 1, or a scalar in {@code arena} (null exactly when alpha is 1). */
    private MemorySegment scalar(float alpha, Arena arena) {
        return arena == null ? one : arena.allocateFrom(Native.FLOAT, alpha);
    }

    private void check(String what, Object status) {
        int code = (Integer) status;
        if (code != 0) {
            MemorySegment s = (MemorySegment) Native.call(statusString, code);
            throw new CudaException(what + " failed: " + s.reinterpret(256).getString(0) + " (" + code + ")");
        }
    }

}
