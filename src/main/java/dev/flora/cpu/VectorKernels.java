package dev.flora.cpu;

import dev.flora.backend.DType;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * Vector API kernels. Weights stay in their checkpoint type (F32, BF16, F16) and are widened in
 * registers; products accumulate in float32 with fused multiply-adds.
 *
 * <p>Batch invariance: a dot product always runs the same sequence of operations: four vector
 * accumulators over chunks of 4 vectors, then one accumulator over single vectors, then the
 * accumulators combined as (a0 + a1) + (a2 + a3), reduced across lanes, and a scalar FMA tail.
 * The 4-token kernel (which reads each weight chunk once for four tokens) performs exactly that
 * sequence for each of its tokens, so a token's result is the same bits alone or in any batch.
 */
final class VectorKernels implements Kernels {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.length() * Short.SIZE));
    private static final int L = F.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** Output features per parallel task. */
    private static final int BLOCK = 16;

    VectorKernels() {
        if (L < 4) {
            throw new IllegalStateException("the preferred float vector holds " + L + " lanes; too few to pay off");
        }
    }

    static int lanes() {
        return L;
    }

    @Override
    public String name() {
        return "vector (" + L * 32 + "-bit)";
    }

    @Override
    public void linear(CpuTensor x, CpuTensor w, CpuTensor bias, CpuTensor out) {
        int rows = x.rows();
        int in = x.cols();
        int outs = w.rows();
        int blocks = (outs + BLOCK - 1) / BLOCK;
        MemorySegment seg = w.segment;
        DType type = w.dtype();
        float[] xa = x.array;
        float[] oa = out.array;
        RowOps.forEach(blocks, (long) rows * in * BLOCK, b -> {
            float[] r4 = new float[4];
            int o1 = Math.min(outs, b * BLOCK + BLOCK);
            for (int o = b * BLOCK; o < o1; o++) {
                long rowStart = (long) o * in;
                float add = bias == null ? 0f : bias.weightAt(o);
                int t = 0;
                for (; t + 4 <= rows; t += 4) {
                    int xo = x.offset + t * in;
                    dot4(xa, xo, xo + in, xo + 2 * in, xo + 3 * in, seg, type, rowStart, in, r4);
                    for (int k = 0; k < 4; k++) {
                        oa[out.offset + (t + k) * outs + o] = bias == null ? r4[k] : r4[k] + add;
                    }
                }
                for (; t < rows; t++) {
                    float v = dot1(xa, x.offset + t * in, seg, type, rowStart, in);
                    oa[out.offset + t * outs + o] = bias == null ? v : v + add;
                }
            }
        });
    }

    /** Weight elements [index, index + L) widened to float. */
    private static FloatVector load(MemorySegment seg, DType type, long index) {
        return switch (type) {
            case F32 -> FloatVector.fromMemorySegment(F, seg, index * Float.BYTES, LE);
            case BF16 -> bf16(seg, index);
            case F16 -> f16(seg, index);
            default -> throw new IllegalStateException(type.name());
        };
    }

    private static FloatVector bf16(MemorySegment seg, long index) {
        ShortVector s = ShortVector.fromMemorySegment(S, seg, index * Short.BYTES, LE);
        IntVector i = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
        return i.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /** IEEE half to float: normal numbers by re-biasing, with zeros, subnormals, infinities and NaNs blended in. */
    private static FloatVector f16(MemorySegment seg, long index) {
        ShortVector s = ShortVector.fromMemorySegment(S, seg, index * Short.BYTES, LE);
        IntVector h = ((IntVector) s.convertShape(VectorOperators.S2I, I, 0)).and(0xffff);
        IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
        IntVector magnitude = h.and(0x7fff);
        IntVector shifted = magnitude.lanewise(VectorOperators.LSHL, 13);
        IntVector normal = shifted.add(0x38000000);                    // exponent + (127 - 15)
        VectorMask<Integer> special = magnitude.compare(VectorOperators.GE, 0x7c00);
        IntVector bits = normal.blend(shifted.add(0x70000000), special); // infinities and NaNs
        FloatVector value = bits.reinterpretAsFloats();
        VectorMask<Integer> small = magnitude.compare(VectorOperators.LT, 0x0400);
        FloatVector subnormal = ((FloatVector) magnitude.convert(VectorOperators.I2F, 0)).mul(0x1p-24f);
        value = value.blend(subnormal, small.cast(F));
        return value.reinterpretAsInts().or(sign).reinterpretAsFloats();
    }

    private static float dot1(float[] x, int xo, MemorySegment seg, DType type, long w0, int n) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        int i = 0;
        for (; i + 4 * L <= n; i += 4 * L) {
            a0 = FloatVector.fromArray(F, x, xo + i).fma(load(seg, type, w0 + i), a0);
            a1 = FloatVector.fromArray(F, x, xo + i + L).fma(load(seg, type, w0 + i + L), a1);
            a2 = FloatVector.fromArray(F, x, xo + i + 2 * L).fma(load(seg, type, w0 + i + 2 * L), a2);
            a3 = FloatVector.fromArray(F, x, xo + i + 3 * L).fma(load(seg, type, w0 + i + 3 * L), a3);
        }
        for (; i + L <= n; i += L) {
            a0 = FloatVector.fromArray(F, x, xo + i).fma(load(seg, type, w0 + i), a0);
        }
        float s = a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            s = Math.fma(x[xo + i], scalar(seg, type, w0 + i), s);
        }
        return s;
    }

    /** dot1 for four rows of x against one weight row, reading each weight chunk once. */
    private static void dot4(float[] x, int xa, int xb, int xc, int xd, MemorySegment seg, DType type, long w0, int n, float[] out) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        FloatVector b0 = a0;
        FloatVector b1 = a0;
        FloatVector b2 = a0;
        FloatVector b3 = a0;
        FloatVector c0 = a0;
        FloatVector c1 = a0;
        FloatVector c2 = a0;
        FloatVector c3 = a0;
        FloatVector d0 = a0;
        FloatVector d1 = a0;
        FloatVector d2 = a0;
        FloatVector d3 = a0;
        int i = 0;
        for (; i + 4 * L <= n; i += 4 * L) {
            FloatVector w0v = load(seg, type, w0 + i);
            FloatVector w1v = load(seg, type, w0 + i + L);
            FloatVector w2v = load(seg, type, w0 + i + 2 * L);
            FloatVector w3v = load(seg, type, w0 + i + 3 * L);
            a0 = FloatVector.fromArray(F, x, xa + i).fma(w0v, a0);
            a1 = FloatVector.fromArray(F, x, xa + i + L).fma(w1v, a1);
            a2 = FloatVector.fromArray(F, x, xa + i + 2 * L).fma(w2v, a2);
            a3 = FloatVector.fromArray(F, x, xa + i + 3 * L).fma(w3v, a3);
            b0 = FloatVector.fromArray(F, x, xb + i).fma(w0v, b0);
            b1 = FloatVector.fromArray(F, x, xb + i + L).fma(w1v, b1);
            b2 = FloatVector.fromArray(F, x, xb + i + 2 * L).fma(w2v, b2);
            b3 = FloatVector.fromArray(F, x, xb + i + 3 * L).fma(w3v, b3);
            c0 = FloatVector.fromArray(F, x, xc + i).fma(w0v, c0);
            c1 = FloatVector.fromArray(F, x, xc + i + L).fma(w1v, c1);
            c2 = FloatVector.fromArray(F, x, xc + i + 2 * L).fma(w2v, c2);
            c3 = FloatVector.fromArray(F, x, xc + i + 3 * L).fma(w3v, c3);
            d0 = FloatVector.fromArray(F, x, xd + i).fma(w0v, d0);
            d1 = FloatVector.fromArray(F, x, xd + i + L).fma(w1v, d1);
            d2 = FloatVector.fromArray(F, x, xd + i + 2 * L).fma(w2v, d2);
            d3 = FloatVector.fromArray(F, x, xd + i + 3 * L).fma(w3v, d3);
        }
        for (; i + L <= n; i += L) {
            FloatVector wv = load(seg, type, w0 + i);
            a0 = FloatVector.fromArray(F, x, xa + i).fma(wv, a0);
            b0 = FloatVector.fromArray(F, x, xb + i).fma(wv, b0);
            c0 = FloatVector.fromArray(F, x, xc + i).fma(wv, c0);
            d0 = FloatVector.fromArray(F, x, xd + i).fma(wv, d0);
        }
        float sa = a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
        float sb = b0.add(b1).add(b2.add(b3)).reduceLanes(VectorOperators.ADD);
        float sc = c0.add(c1).add(c2.add(c3)).reduceLanes(VectorOperators.ADD);
        float sd = d0.add(d1).add(d2.add(d3)).reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            float wv = scalar(seg, type, w0 + i);
            sa = Math.fma(x[xa + i], wv, sa);
            sb = Math.fma(x[xb + i], wv, sb);
            sc = Math.fma(x[xc + i], wv, sc);
            sd = Math.fma(x[xd + i], wv, sd);
        }
        out[0] = sa;
        out[1] = sb;
        out[2] = sc;
        out[3] = sd;
    }

    private static float scalar(MemorySegment seg, DType type, long index) {
        return switch (type) {
            case F32 -> seg.getAtIndex(RowOps.F32, index);
            case BF16 -> Float.intBitsToFloat((seg.getAtIndex(RowOps.I16, index) & 0xffff) << 16);
            case F16 -> Float.float16ToFloat(seg.getAtIndex(RowOps.I16, index));
            default -> throw new IllegalStateException(type.name());
        };
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (; i + L <= n; i += L) {
            acc = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), acc);
        }
        float s = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            s = Math.fma(a[aOff + i], b[bOff + i], s);
        }
        return s;
    }

    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        FloatVector av = FloatVector.broadcast(F, alpha);
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector.fromArray(F, x, xOff + i).fma(av, FloatVector.fromArray(F, y, yOff + i)).intoArray(y, yOff + i);
        }
        for (; i < n; i++) {
            y[yOff + i] = Math.fma(x[xOff + i], alpha, y[yOff + i]);
        }
    }
}
