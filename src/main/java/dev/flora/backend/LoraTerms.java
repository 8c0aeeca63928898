package dev.flora.backend;

/**
 * Gathered LoRA's terms for one {@link Backend#loraShrinkExpand} call: per group (one adapter on one
 * layer) its rows of the input, A [r, in], B [out, r], an optional bias, its scale and the output it adds to.
 */
public record LoraTerms(int[][] rows, Tensor[] a, Tensor[] b, Tensor[] bias, float[] scale, Tensor[] outs) {
}
