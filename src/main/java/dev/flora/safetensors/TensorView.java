package dev.flora.safetensors;

import dev.flora.backend.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * One tensor of a checkpoint: its bytes stay in the memory-mapped file (no heap copy).
 *
 * @param data little-endian, exactly {@code numel * dtype.bytes()} bytes
 */
public record TensorView(String name, DType dtype, long[] shape, MemorySegment data, Path file) {

    public static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * A tensor of seeded pseudo-random values with no data behind it, made by the backend where it
     * is used (as vLLM's dummy load format): benchmarks of large shapes need no checkpoint.
     */
    public static TensorView random(String name, DType dtype, long... shape) {
        return new TensorView(name, dtype, shape, MemorySegment.NULL, null);
    }

    public boolean isRandom() {
        return file == null && data.byteSize() == 0 && numel() > 0;
    }

    /** The seed of a random tensor: from its name, so every backend makes the same values. */
    public long seed() {
        return name.hashCode() * 0x9E3779B97F4A7C15L;
    }

    /**
     * Element i of a random tensor: uniform in ±0.02 for matrices, 1 ± 0.02 for vectors (norm
     * weights stay near one). The same splitmix64 hash as the CUDA kernel fill_random.
     */
    public static float randomValue(long seed, long i, boolean vector) {
        long z = seed + (i + 1) * 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z = z ^ (z >>> 31);
        float u = (z >>> 40) * 0x1.0p-24f;
        float v = (u - 0.5f) * 0.04f;
        return vector ? 1f + v : v;
    }

    public long numel() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    public int rank() {
        return shape.length;
    }

    public String shapeString() {
        return Arrays.toString(shape);
    }

    /** Element i widened to float (floating types only). */
    public float getFloat(long i) {
        return switch (dtype) {
            case F32 -> data.getAtIndex(F32, i);
            case F64 -> (float) data.getAtIndex(F64, i);
            case BF16 -> Float.intBitsToFloat((data.getAtIndex(I16, i) & 0xffff) << 16);
            case F16 -> Float.float16ToFloat(data.getAtIndex(I16, i));
            default -> throw new IllegalStateException(name + " is " + dtype + ", not a floating type");
        };
    }

    /** All elements widened to float. */
    public float[] toFloatArray() {
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException(name + " has too many elements for a Java array");
        }
        float[] out = new float[(int) n];
        if (dtype == DType.F32) {
            MemorySegment.copy(data, F32, 0, out, 0, out.length);
        } else {
            for (int i = 0; i < out.length; i++) {
                out[i] = getFloat(i);
            }
        }
        return out;
    }

    @Override
    public String toString() {
        return name + " " + dtype + shapeString() + " in " + file.getFileName();
    }
}
