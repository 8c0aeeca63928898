package dev.flora.backend;

/**
 * A 2-D row-major tensor owned by a backend (host memory for the CPU, device memory for CUDA).
 * Model code only passes tensors between backend operations; reading values back is explicit
 * ({@link Backend#toHost}). Vectors are tensors of one row.
 */
public interface Tensor {
    DType dtype();

    int rows();

    int cols();

    default long numel() {
        return (long) rows() * cols();
    }
}
