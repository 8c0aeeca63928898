package dev.flora.backend;

/**
 * One layer's part of {@link Backend#floraLinears}: its fLoRA groups (token rows, A and Bᵀ per group),
 * its weight and bias, the stacked input and product buffers and the output, as
 * {@link Backend#floraLinear} takes them.
 */
public record FloraProjection(int[][] rows, Tensor[] a, Tensor[] bt, Tensor weight, Tensor bias, Tensor stacked, Tensor products,
                              Tensor out) {
    /** Rows of the stacked input: every group's tokens times its rank. */
    public int stackedRows() {
        int n = 0;
        for (int g = 0; g < rows.length; g++) {
            n += rows[g].length * a[g].rows();
        }
        return n;
    }
}
