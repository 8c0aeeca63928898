package dev.flora.cpu;

import dev.flora.backend.DType;
import dev.flora.backend.Tensor;

import java.lang.foreign.MemorySegment;

/**
 * A row-major tensor in host memory. Activations are float32 in a Java array (from
 * {@code offset}); weights live off-heap in a memory segment, float32, bfloat16 or float16 (the
 * mapped checkpoint itself, no copy). Keeping each kernel argument to one kind keeps the JIT's
 * call sites monomorphic.
 */
final class CpuTensor implements Tensor {
    final float[] array;
    final int offset;
    final MemorySegment segment;
    private final DType dtype;
    private final int rows;
    private final int cols;
    /** A kernel set's own copy of this weight, rearranged for its products; made on first use. */
    private volatile Object packed;
    /** This weight as float32 on the heap, row-major and transposed ({rows x cols, cols x rows}); made on first use. */
    private volatile float[][] host;

    private CpuTensor(float[] array, int offset, MemorySegment segment, DType dtype, int rows, int cols) {
        this.array = array;
        this.offset = offset;
        this.segment = segment;
        this.dtype = dtype;
        this.rows = rows;
        this.cols = cols;
    }

    static CpuTensor activation(float[] array, int offset, int rows, int cols) {
        if (offset + (long) rows * cols > array.length) {
            throw new IllegalArgumentException("[" + rows + ", " + cols + "] at " + offset + " exceeds " + array.length);
        }
        return new CpuTensor(array, offset, null, DType.F32, rows, cols);
    }

    static CpuTensor weight(MemorySegment segment, DType dtype, int rows, int cols) {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new IllegalArgumentException("CPU weights are F32, BF16 or F16, not " + dtype);
        }
        if (segment.byteSize() != (long) rows * cols * dtype.bytes()) {
            throw new IllegalArgumentException("segment of " + segment.byteSize() + " bytes for " + dtype + " [" + rows + ", " + cols + "]");
        }
        return new CpuTensor(null, 0, segment, dtype, rows, cols);
    }

    /** Weight element i widened to float. */
    float weightAt(long i) {
        return switch (dtype) {
            case F32 -> segment.getAtIndex(RowOps.F32, i);
            case BF16 -> Float.intBitsToFloat((segment.getAtIndex(RowOps.I16, i) & 0xffff) << 16);
            case F16 -> Float.float16ToFloat(segment.getAtIndex(RowOps.I16, i));
            default -> throw new IllegalStateException(dtype.name());
        };
    }

    /** The packed form of this weight for a kernel set, made once (by {@code pack}) and kept. */
    @SuppressWarnings("unchecked")
    <P> P packed(Class<P> type, java.util.function.Function<CpuTensor, P> pack) {
        Object p = packed;
        if (!type.isInstance(p)) {
            synchronized (this) {
                p = packed;
                if (!type.isInstance(p)) {
                    p = pack.apply(this);
                    packed = p;
                }
            }
        }
        return (P) p;
    }

    /** {W, W^T} as float32 arrays, made once (small adapter matrices, read element by element). */
    float[][] hostCopies() {
        float[][] h = host;
        if (h == null) {
            synchronized (this) {
                h = host;
                if (h == null) {
                    float[] w = new float[Math.toIntExact(numel())];
                    float[] t = new float[w.length];
                    for (int r = 0; r < rows; r++) {
                        for (int c = 0; c < cols; c++) {
                            float v = isWeight() ? weightAt((long) r * cols + c) : array[offset + r * cols + c];
                            w[r * cols + c] = v;
                            t[c * rows + r] = v;
                        }
                    }
                    h = new float[][] {w, t};
                    host = h;
                }
            }
        }
        return h;
    }

    boolean isWeight() {
        return segment != null;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    static CpuTensor of(Tensor t) {
        if (t instanceof CpuTensor c) {
            return c;
        }
        throw new IllegalArgumentException("not a CPU tensor: " + t);
    }

    /** The array of an activation tensor. */
    static CpuTensor act(Tensor t) {
        CpuTensor c = of(t);
        if (c.array == null) {
            throw new IllegalArgumentException("expected an activation tensor, got a weight");
        }
        return c;
    }

    /** The segment of a float32 weight tensor (norm weights and biases are widened at load). */
    static MemorySegment w(Tensor t) {
        CpuTensor c = of(t);
        if (c.segment == null || c.dtype != DType.F32) {
            throw new IllegalArgumentException("expected a float32 weight tensor, got " + (c.segment == null ? "an activation" : c.dtype));
        }
        return c.segment;
    }
}
