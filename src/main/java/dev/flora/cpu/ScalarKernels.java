package dev.flora.cpu;

/**
 * Plain Java kernels: the reference the Vector API kernels are checked against, and the fallback
 * where the Vector API is missing or slow. Dot products use four accumulators in a fixed order.
 */
final class ScalarKernels implements Kernels {
    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public void linear(CpuTensor x, CpuTensor w, CpuTensor bias, CpuTensor out) {
        int rows = x.rows();
        int in = x.cols();
        int outs = w.rows();
        final int block = 16;
        int blocks = (outs + block - 1) / block;
        RowOps.forEach(blocks, (long) rows * in * block, b -> {
            float[] wRow = new float[in];
            int o1 = Math.min(outs, b * block + block);
            for (int o = b * block; o < o1; o++) {
                for (int i = 0; i < in; i++) {
                    wRow[i] = w.weightAt((long) o * in + i);
                }
                float add = bias == null ? 0f : bias.weightAt(o);
                for (int t = 0; t < rows; t++) {
                    float v = dot(x.array, x.offset + t * in, wRow, 0, in);
                    out.array[out.offset + t * outs + o] = bias == null ? v : v + add;
                }
            }
        });
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        float s0 = 0;
        float s1 = 0;
        float s2 = 0;
        float s3 = 0;
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            s0 += a[aOff + i] * b[bOff + i];
            s1 += a[aOff + i + 1] * b[bOff + i + 1];
            s2 += a[aOff + i + 2] * b[bOff + i + 2];
            s3 += a[aOff + i + 3] * b[bOff + i + 3];
        }
        for (; i < n; i++) {
            s0 += a[aOff + i] * b[bOff + i];
        }
        return (s0 + s1) + (s2 + s3);
    }

    @Override
    public void siluMul(float[] gate, int gOff, float[] up, int uOff, float[] out, int oOff, int n) {
        for (int i = 0; i < n; i++) {
            out[oOff + i] = RowOps.activate(dev.flora.backend.Activation.SILU, gate[gOff + i]) * up[uOff + i];
        }
    }

    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        for (int i = 0; i < n; i++) {
            y[yOff + i] += alpha * x[xOff + i];
        }
    }

    @Override
    public void mul(float[] x, int xOff, float[] y, int yOff, float[] out, int oOff, int n) {
        for (int i = 0; i < n; i++) {
            out[oOff + i] = x[xOff + i] * y[yOff + i];
        }
    }

    @Override
    public void demodulate(float[] p, int pOff, int pStride, float[] b, int bOff, int bStride, int rank, float scale,
                           float[] bias, float[] out, int oOff, int n) {
        for (int i = 0; i < n; i++) {
            float s = 0f;
            for (int j = 0; j < rank; j++) {
                float product = p[pOff + j * pStride + i] * b[bOff + j * bStride + i];
                s += product;
            }
            float v = scale * s;
            out[oOff + i] = bias == null ? v : v + bias[i];
        }
    }
}
