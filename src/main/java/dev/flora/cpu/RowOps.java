package dev.flora.cpu;

import dev.flora.backend.Activation;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.IntConsumer;

/**
 * Row-wise float32 operations that cost little next to the matrix products (norms, RoPE,
 * activations), shared by every kernel set. Every reduction runs in a fixed order per row, so a
 * row's result never depends on how many rows share the call (batch invariance); work is split
 * across cores only over independent outputs.
 */
final class RowOps {
    /** Weights are read in the machine's order, which CpuBackend checks is little-endian. */
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** Below this many multiply-adds a kernel stays on the calling thread. */
    private static final long PARALLEL_WORK = 1L << 17;

    private RowOps() {
    }

    static float w(MemorySegment s, long i) {
        return s.getAtIndex(F32, i);
    }

    /** Runs body(i) for i in [0, n), in parallel when the total work is large enough. */
    static void forEach(int n, long workPerItem, IntConsumer body) {
        if (n > 1 && (long) n * workPerItem >= PARALLEL_WORK) {
            WorkerPool.SHARED.run(n, body);
        } else {
            for (int i = 0; i < n; i++) {
                body.accept(i);
            }
        }
    }

    static void rmsNorm(float[] x, int xOff, MemorySegment weight, float eps, float[] out, int outOff, int rows, int cols) {
        forEach(rows, cols, t -> {
            int xr = xOff + t * cols;
            int or = outOff + t * cols;
            double sum = 0;
            for (int i = 0; i < cols; i++) {
                float v = x[xr + i];
                sum += (double) v * v;
            }
            float variance = (float) (sum / cols);
            float inv = (float) (1.0 / Math.sqrt(variance + eps));
            for (int i = 0; i < cols; i++) {
                out[or + i] = w(weight, i) * (x[xr + i] * inv);
            }
        });
    }

    static void layerNorm(float[] x, int xOff, MemorySegment weight, MemorySegment bias, float eps, float[] out, int outOff, int rows, int cols) {
        forEach(rows, cols, t -> {
            int xr = xOff + t * cols;
            int or = outOff + t * cols;
            double sum = 0;
            for (int i = 0; i < cols; i++) {
                sum += x[xr + i];
            }
            double mean = sum / cols;
            double sq = 0;
            for (int i = 0; i < cols; i++) {
                double d = x[xr + i] - mean;
                sq += d * d;
            }
            double inv = 1.0 / Math.sqrt(sq / cols + eps);
            for (int i = 0; i < cols; i++) {
                float normed = (float) ((x[xr + i] - mean) * inv);
                out[or + i] = normed * w(weight, i) + w(bias, i);
            }
        });
    }

    static float activate(Activation act, float x) {
        return switch (act) {
            case SILU -> (float) (x / (1.0 + Exp.exp(-x)));
            case GELU -> (float) (0.5 * x * (1.0 + Erf.erf(x / Math.sqrt(2.0))));
            case GELU_TANH -> (float) (0.5 * x * (1.0 + StrictMath.tanh(Math.sqrt(2.0 / Math.PI) * (x + 0.044715 * x * x * x))));
            case RELU -> Math.max(0f, x);
        };
    }

    /** Rotate-half RoPE on every head of x [rows, width]; the position of row t is positions[t]. */
    static void rotary(float[] x, int xOff, int rows, int width, int headDim, float[] invFreq, int[] positions) {
        int half = headDim / 2;
        int heads = width / headDim;
        forEach(rows, width, t -> {
            float pos = positions[t];
            float[] cos = new float[half];
            float[] sin = new float[half];
            for (int i = 0; i < half; i++) {
                float angle = pos * invFreq[i]; // float32, as transformers computes it
                cos[i] = (float) StrictMath.cos(angle);
                sin[i] = (float) StrictMath.sin(angle);
            }
            for (int h = 0; h < heads; h++) {
                int base = xOff + t * width + h * headDim;
                for (int i = 0; i < half; i++) {
                    float a = x[base + i];
                    float b = x[base + i + half];
                    x[base + i] = a * cos[i] - b * sin[i];
                    x[base + i + half] = b * cos[i] + a * sin[i];
                }
            }
        });
    }

    /** A random tensor's values (TensorView.randomValue) in its own type, in host memory. */
    static java.lang.foreign.MemorySegment randomValues(dev.flora.safetensors.TensorView source, int rows) {
        long n = source.numel();
        dev.flora.backend.DType type = source.dtype();
        java.lang.foreign.MemorySegment out = java.lang.foreign.Arena.ofAuto().allocate(n * type.bytes(), 64);
        long seed = source.seed();
        for (long i = 0; i < n; i++) {
            float v = dev.flora.safetensors.TensorView.randomValue(seed, i, rows == 1);
            switch (type) {
                case F32 -> out.setAtIndex(F32, i, v);
                case BF16 -> out.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, i, bf16Bits(v));
                case F16 -> out.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, i, Float.floatToFloat16(v));
                default -> throw new IllegalArgumentException("random weights of type " + type);
            }
        }
        return out;
    }

    /** Round to nearest even, as torch does. */
    static short bf16Bits(float f) {
        int b = Float.floatToRawIntBits(f);
        return (short) ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
    }
}
