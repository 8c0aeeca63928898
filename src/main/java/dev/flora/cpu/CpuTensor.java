package dev.flora.cpu;

import dev.flora.backend.DType;
import dev.flora.backend.Tensor;

import java.lang.foreign.MemorySegment;

/**
 * A float32 row-major tensor in host memory. Activations live in a Java array (from
 * {@code offset}); weights live off-heap in a memory segment (the mapped checkpoint itself when
 * it is float32). Keeping each kernel argument to one kind keeps the JIT's call sites monomorphic.
 */
final class CpuTensor implements Tensor {
    final float[] array;
    final int offset;
    final MemorySegment segment;
    private final int rows;
    private final int cols;

    private CpuTensor(float[] array, int offset, MemorySegment segment, int rows, int cols) {
        this.array = array;
        this.offset = offset;
        this.segment = segment;
        this.rows = rows;
        this.cols = cols;
    }

    static CpuTensor activation(float[] array, int offset, int rows, int cols) {
        if (offset + (long) rows * cols > array.length) {
            throw new IllegalArgumentException("[" + rows + ", " + cols + "] at " + offset + " exceeds " + array.length);
        }
        return new CpuTensor(array, offset, null, rows, cols);
    }

    static CpuTensor weight(MemorySegment segment, int rows, int cols) {
        if (segment.byteSize() != (long) rows * cols * Float.BYTES) {
            throw new IllegalArgumentException("segment of " + segment.byteSize() + " bytes for [" + rows + ", " + cols + "]");
        }
        return new CpuTensor(null, 0, segment, rows, cols);
    }

    boolean isWeight() {
        return segment != null;
    }

    @Override
    public DType dtype() {
        return DType.F32;
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

    /** The segment of a weight tensor. */
    static MemorySegment w(Tensor t) {
        CpuTensor c = of(t);
        if (c.segment == null) {
            throw new IllegalArgumentException("expected a weight tensor, got an activation");
        }
        return c.segment;
    }
}
