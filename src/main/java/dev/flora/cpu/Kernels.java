package dev.flora.cpu;

/**
 * The CPU kernels whose speed matters: matrix products against weights, and the dot products and
 * updates of attention. Two implementations: plain Java ({@link ScalarKernels}, the reference and
 * fallback) and the Vector API ({@link VectorKernels}), chosen at start-up by {@link KernelProvider}.
 *
 * <p>Contract: batch invariance. Every output element is reduced in one fixed order that depends
 * only on the vector length, never on how many rows share the call or which thread runs it.
 */
interface Kernels {
    String name();

    /** out[t, o] = dot(x[t], w[o]) (+ bias[o]): x [T, in] float32, w [outs, in] F32/BF16/F16, bias F32 or null. */
    void linear(CpuTensor x, CpuTensor w, CpuTensor bias, CpuTensor out);

    /** Dot product of a[aOff, aOff + n) and b[bOff, bOff + n). */
    float dot(float[] a, int aOff, float[] b, int bOff, int n);

    /** out[i] = silu(gate[i]) * up[i] for i in [0, n) (arrays from the given offsets). */
    void siluMul(float[] gate, int gOff, float[] up, int uOff, float[] out, int oOff, int n);

    /** y[yOff + i] += alpha * x[xOff + i] for i in [0, n). */
    void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n);

    /** out[oOff + i] = x[xOff + i] * y[yOff + i] for i in [0, n) (fLoRA's modulation of an input row). */
    void mul(float[] x, int xOff, float[] y, int yOff, float[] out, int oOff, int n);

    /**
     * fLoRA's demodulation of one output row: out[oOff + i] = scale * s (+ bias[i]), where s starts at
     * 0 and adds p[pOff + j * pStride + i] * b[bOff + j * bStride + i] for j = 0 .. rank - 1 in order,
     * each product rounded before its addition: the arithmetic of multiplying rows in place, adding
     * them up and scattering them scaled, in one pass. bias may be null.
     */
    void demodulate(float[] p, int pOff, int pStride, float[] b, int bOff, int bStride, int rank, float scale,
                    float[] bias, float[] out, int oOff, int n);
}
