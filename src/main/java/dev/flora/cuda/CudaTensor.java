package dev.flora.cuda;

import dev.flora.backend.DType;
import dev.flora.backend.Tensor;

/**
 * A tensor in device memory: a pointer, its element type and shape. Views share their parent's
 * memory and keep it alive through {@code owner}.
 */
final class CudaTensor implements Tensor {
    final long pointer;
    private final DType dtype;
    private final int rows;
    private final int cols;
    @SuppressWarnings("unused") // keeps the memory of a view's parent reachable
    private final Object owner;

    CudaTensor(long pointer, DType dtype, int rows, int cols, Object owner) {
        this.pointer = pointer;
        this.dtype = dtype;
        this.rows = rows;
        this.cols = cols;
        this.owner = owner;
    }

    static CudaTensor of(Tensor t) {
        if (t instanceof CudaTensor c) {
            return c;
        }
        throw new IllegalArgumentException("a " + t.getClass().getSimpleName() + " given to the CUDA backend");
    }

    /** The kernels' code for this element type: 0 float32, 1 bfloat16, 2 float16. */
    int typeCode() {
        return typeCode(dtype);
    }

    static int typeCode(DType type) {
        return switch (type) {
            case F32 -> 0;
            case BF16 -> 1;
            case F16 -> 2;
            default -> throw new IllegalStateException("no kernels read " + type);
        };
    }

    long bytes() {
        return numel() * dtype.bytes();
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

    @Override
    public String toString() {
        return "cuda " + dtype + " [" + rows + ", " + cols + "]";
    }
}
