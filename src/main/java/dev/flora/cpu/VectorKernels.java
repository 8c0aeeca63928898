package dev.flora.cpu;

import dev.flora.backend.DType;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Vector API kernels. A weight matrix W [outs, in] is packed once, on first use, into an
 * input-major layout so that a product is a sum of outer products: for each input i,
 * y[t, o..o+L) += x[t, i] * W^T[i, o..o+L). A tile keeps 4 tokens × 4L outputs in 16 vector
 * accumulators, so each weight vector loaded feeds 4 FMAs and each x value is a broadcast.
 *
 * <p>Packed layouts ({@link Packed}): BF16 weights stay 16-bit, two inputs per int lane
 * (W[o, i] in the low half, W[o, i+1] in the high half), so one int load gives two float vectors
 * by a shift and a mask; F32 and F16 weights become float32. Outputs are cut into tiles of 4L
 * (the last padded with zeros) and each tile is stored contiguously, [tile][input row][4L], so a
 * tile's product streams through memory in order (a strided walk defeats the prefetchers).
 *
 * <p>Batch invariance: every output element is one float32 FMA chain over the inputs in order,
 * whatever the tile, the batch or the thread, so a token's result is the same bits alone or in
 * any batch.
 */
final class VectorKernels implements Kernels {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    /** Outputs per tile and per parallel task. */
    private static final int TILE = 4 * L;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED;

    /**
     * A weight rearranged for the outer-product kernels.
     *
     * @param pairs      BF16 packed two inputs per int (true), or float32 (false)
     * @param packedRows input rows per tile: in, or (in + 1) / 2 for pairs
     * @param tiles      output tiles of 4L
     */
    record Packed(MemorySegment data, boolean pairs, int in, int outs, int packedRows, int tiles) {
        long tileBase(int tile) {
            return (long) tile * packedRows * TILE;
        }
    }

    VectorKernels() {
        if (L < 4) {
            throw new IllegalStateException("the preferred float vector holds " + L + " lanes; too few to pay off");
        }
    }

    @Override
    public String name() {
        return "vector (" + L * 32 + "-bit)";
    }

    static Packed pack(CpuTensor w) {
        int outs = w.rows();
        int in = w.cols();
        int tiles = (outs + TILE - 1) / TILE;
        boolean pairs = w.dtype() == DType.BF16;
        int packedRows = pairs ? (in + 1) / 2 : in;
        MemorySegment data = Arena.ofAuto().allocate((long) tiles * packedRows * TILE * Integer.BYTES, 64);
        MemorySegment src = w.segment;
        RowOps.forEach(tiles, (long) packedRows * TILE, tile -> {
            for (int j = 0; j < TILE && tile * TILE + j < outs; j++) {
                int o = tile * TILE + j;
                long row = (long) o * in;
                long dst = (long) tile * packedRows * TILE + j;
                for (int r = 0; r < packedRows; r++, dst += TILE) {
                    if (pairs) {
                        int i = 2 * r;
                        int lo = src.getAtIndex(RowOps.I16, row + i) & 0xffff;
                        int hi = i + 1 < in ? src.getAtIndex(RowOps.I16, row + i + 1) & 0xffff : 0;
                        data.setAtIndex(INT, dst, lo | hi << 16);
                    } else {
                        data.setAtIndex(RowOps.F32, dst, w.weightAt(row + r));
                    }
                }
            }
        });
        return new Packed(data, pairs, in, outs, packedRows, tiles);
    }

    @Override
    public void linear(CpuTensor x, CpuTensor w, CpuTensor bias, CpuTensor out) {
        Packed p = w.packed(Packed.class, VectorKernels::pack);
        int rows = x.rows();
        RowOps.forEach(p.tiles, (long) rows * p.in * TILE, tile -> {
            float[] acc = new float[4 * TILE];
            int o = tile * TILE;
            long w0 = p.tileBase(tile);
            int t = 0;
            for (; t < rows; t += 4) {
                int n = Math.min(4, rows - t);
                int xo = x.offset + t * p.in;
                for (int k = 0; k < n; k++) {
                    if (p.pairs) {
                        if (n == 4) {
                            tile4Bf16(x.array, xo, p.in, p.data, w0, acc);
                            break;
                        }
                        tile1Bf16(x.array, xo + k * p.in, p.in, p.data, w0, acc, k * TILE);
                    } else {
                        if (n == 4) {
                            tile4F32(x.array, xo, p.in, p.data, w0, acc);
                            break;
                        }
                        tile1F32(x.array, xo + k * p.in, p.in, p.data, w0, acc, k * TILE);
                    }
                }
                if (p.pairs && p.in % 2 == 1) {
                    lastOddInput(x, t, n, p, w0, acc);
                }
                int width = Math.min(TILE, p.outs - o);
                for (int k = 0; k < n; k++) {
                    int dst = out.offset + (t + k) * out.cols() + o;
                    for (int j = 0; j < width; j++) {
                        out.array[dst + j] = bias == null ? acc[k * TILE + j] : acc[k * TILE + j] + bias.weightAt(o + j);
                    }
                }
            }
        });
    }

    /** For BF16 weights with an odd input count: the last input, the low half of the last packed pair. */
    private static void lastOddInput(CpuTensor x, int t, int n, Packed p, long w0, float[] acc) {
        int i = p.in - 1;
        long base = w0 + (long) (i >> 1) * TILE;
        for (int k = 0; k < n; k++) {
            float xv = x.array[x.offset + (t + k) * p.in + i];
            for (int j = 0; j < TILE; j++) {
                float wv = Float.intBitsToFloat(p.data.getAtIndex(INT, base + j) << 16);
                acc[k * TILE + j] = Math.fma(wv, xv, acc[k * TILE + j]);
            }
        }
    }

    private static FloatVector lo(IntVector pairs) {
        return pairs.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector hi(IntVector pairs) {
        return pairs.and(0xffff0000).reinterpretAsFloats();
    }

    private static IntVector ints(MemorySegment s, long index) {
        return IntVector.fromMemorySegment(I, s, index * Integer.BYTES, LE);
    }

    private static FloatVector floats(MemorySegment s, long index) {
        return FloatVector.fromMemorySegment(F, s, index * Float.BYTES, LE);
    }

    // The tiles below are kept small enough for C2 to inline every Vector API call (a method too
    // large falls back to boxed vectors and runs ten times slower): full input pairs only, and
    // plain stores of the accumulators into acc; the caller adds the odd tail, bias and bounds.

    /** Four x rows (xo + k * in) against the tile at tileAt: acc[k * 4L + j]. */
    private static void tile4Bf16(float[] x, int xo, int in, MemorySegment w, long tileAt, float[] acc) {
        FloatVector z = FloatVector.zero(F);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
        FloatVector c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
        int xb = xo + in;
        int xc = xb + in;
        int xd = xc + in;
        for (int i = 0; i + 1 < in; i += 2) {
            long base = tileAt + (long) (i >> 1) * TILE;
            IntVector p0 = ints(w, base);
            IntVector p1 = ints(w, base + L);
            IntVector p2 = ints(w, base + 2 * L);
            IntVector p3 = ints(w, base + 3 * L);
            FloatVector w0 = lo(p0), w1 = lo(p1), w2 = lo(p2), w3 = lo(p3);
            FloatVector s = FloatVector.broadcast(F, x[xo + i]);
            a0 = w0.fma(s, a0); a1 = w1.fma(s, a1); a2 = w2.fma(s, a2); a3 = w3.fma(s, a3);
            s = FloatVector.broadcast(F, x[xb + i]);
            b0 = w0.fma(s, b0); b1 = w1.fma(s, b1); b2 = w2.fma(s, b2); b3 = w3.fma(s, b3);
            s = FloatVector.broadcast(F, x[xc + i]);
            c0 = w0.fma(s, c0); c1 = w1.fma(s, c1); c2 = w2.fma(s, c2); c3 = w3.fma(s, c3);
            s = FloatVector.broadcast(F, x[xd + i]);
            d0 = w0.fma(s, d0); d1 = w1.fma(s, d1); d2 = w2.fma(s, d2); d3 = w3.fma(s, d3);
            w0 = hi(p0); w1 = hi(p1); w2 = hi(p2); w3 = hi(p3);
            s = FloatVector.broadcast(F, x[xo + i + 1]);
            a0 = w0.fma(s, a0); a1 = w1.fma(s, a1); a2 = w2.fma(s, a2); a3 = w3.fma(s, a3);
            s = FloatVector.broadcast(F, x[xb + i + 1]);
            b0 = w0.fma(s, b0); b1 = w1.fma(s, b1); b2 = w2.fma(s, b2); b3 = w3.fma(s, b3);
            s = FloatVector.broadcast(F, x[xc + i + 1]);
            c0 = w0.fma(s, c0); c1 = w1.fma(s, c1); c2 = w2.fma(s, c2); c3 = w3.fma(s, c3);
            s = FloatVector.broadcast(F, x[xd + i + 1]);
            d0 = w0.fma(s, d0); d1 = w1.fma(s, d1); d2 = w2.fma(s, d2); d3 = w3.fma(s, d3);
        }
        a0.intoArray(acc, 0); a1.intoArray(acc, L); a2.intoArray(acc, 2 * L); a3.intoArray(acc, 3 * L);
        b0.intoArray(acc, TILE); b1.intoArray(acc, TILE + L); b2.intoArray(acc, TILE + 2 * L); b3.intoArray(acc, TILE + 3 * L);
        c0.intoArray(acc, 2 * TILE); c1.intoArray(acc, 2 * TILE + L); c2.intoArray(acc, 2 * TILE + 2 * L); c3.intoArray(acc, 2 * TILE + 3 * L);
        d0.intoArray(acc, 3 * TILE); d1.intoArray(acc, 3 * TILE + L); d2.intoArray(acc, 3 * TILE + 2 * L); d3.intoArray(acc, 3 * TILE + 3 * L);
    }

    /** One x row against the tile at tileAt: acc[at + j]. */
    private static void tile1Bf16(float[] x, int xo, int in, MemorySegment w, long tileAt, float[] acc, int at) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i + 1 < in; i += 2) {
            long base = tileAt + (long) (i >> 1) * TILE;
            IntVector p0 = ints(w, base);
            IntVector p1 = ints(w, base + L);
            IntVector p2 = ints(w, base + 2 * L);
            IntVector p3 = ints(w, base + 3 * L);
            FloatVector s = FloatVector.broadcast(F, x[xo + i]);
            a0 = lo(p0).fma(s, a0); a1 = lo(p1).fma(s, a1); a2 = lo(p2).fma(s, a2); a3 = lo(p3).fma(s, a3);
            s = FloatVector.broadcast(F, x[xo + i + 1]);
            a0 = hi(p0).fma(s, a0); a1 = hi(p1).fma(s, a1); a2 = hi(p2).fma(s, a2); a3 = hi(p3).fma(s, a3);
        }
        a0.intoArray(acc, at); a1.intoArray(acc, at + L); a2.intoArray(acc, at + 2 * L); a3.intoArray(acc, at + 3 * L);
    }

    /** As tile4Bf16, for float32 packed weights. */
    private static void tile4F32(float[] x, int xo, int in, MemorySegment w, long tileAt, float[] acc) {
        FloatVector z = FloatVector.zero(F);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
        FloatVector c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
        int xb = xo + in;
        int xc = xb + in;
        int xd = xc + in;
        for (int i = 0; i < in; i++) {
            long base = tileAt + (long) i * TILE;
            FloatVector w0 = floats(w, base), w1 = floats(w, base + L), w2 = floats(w, base + 2 * L), w3 = floats(w, base + 3 * L);
            FloatVector s = FloatVector.broadcast(F, x[xo + i]);
            a0 = w0.fma(s, a0); a1 = w1.fma(s, a1); a2 = w2.fma(s, a2); a3 = w3.fma(s, a3);
            s = FloatVector.broadcast(F, x[xb + i]);
            b0 = w0.fma(s, b0); b1 = w1.fma(s, b1); b2 = w2.fma(s, b2); b3 = w3.fma(s, b3);
            s = FloatVector.broadcast(F, x[xc + i]);
            c0 = w0.fma(s, c0); c1 = w1.fma(s, c1); c2 = w2.fma(s, c2); c3 = w3.fma(s, c3);
            s = FloatVector.broadcast(F, x[xd + i]);
            d0 = w0.fma(s, d0); d1 = w1.fma(s, d1); d2 = w2.fma(s, d2); d3 = w3.fma(s, d3);
        }
        a0.intoArray(acc, 0); a1.intoArray(acc, L); a2.intoArray(acc, 2 * L); a3.intoArray(acc, 3 * L);
        b0.intoArray(acc, TILE); b1.intoArray(acc, TILE + L); b2.intoArray(acc, TILE + 2 * L); b3.intoArray(acc, TILE + 3 * L);
        c0.intoArray(acc, 2 * TILE); c1.intoArray(acc, 2 * TILE + L); c2.intoArray(acc, 2 * TILE + 2 * L); c3.intoArray(acc, 2 * TILE + 3 * L);
        d0.intoArray(acc, 3 * TILE); d1.intoArray(acc, 3 * TILE + L); d2.intoArray(acc, 3 * TILE + 2 * L); d3.intoArray(acc, 3 * TILE + 3 * L);
    }

    /** As tile1Bf16, for float32 packed weights. */
    private static void tile1F32(float[] x, int xo, int in, MemorySegment w, long tileAt, float[] acc, int at) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < in; i++) {
            long base = tileAt + (long) i * TILE;
            FloatVector s = FloatVector.broadcast(F, x[xo + i]);
            a0 = floats(w, base).fma(s, a0);
            a1 = floats(w, base + L).fma(s, a1);
            a2 = floats(w, base + 2 * L).fma(s, a2);
            a3 = floats(w, base + 3 * L).fma(s, a3);
        }
        a0.intoArray(acc, at); a1.intoArray(acc, at + L); a2.intoArray(acc, at + 2 * L); a3.intoArray(acc, at + 3 * L);
    }

    /**
     * Shuffles pairing lane i with lane i ^ k, for k = L/2 .. 1: a sum of lanes as a fixed tree of
     * lanewise adds. reduceLanes(ADD) may add in any order, and does so differently once compiled.
     */
    private static final VectorShuffle<Float>[] BUTTERFLY = butterfly();

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] butterfly() {
        int steps = Integer.numberOfTrailingZeros(L);
        VectorShuffle<Float>[] out = new VectorShuffle[steps];
        for (int s = 0; s < steps; s++) {
            int k = L >> (s + 1);
            out[s] = VectorShuffle.fromOp(F, i -> i ^ k);
        }
        return out;
    }

    private static float sumLanes(FloatVector v) {
        for (VectorShuffle<Float> shuffle : BUTTERFLY) {
            v = v.add(v.rearrange(shuffle));
        }
        return v.lane(0);
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (; i + L <= n; i += L) {
            acc = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), acc);
        }
        float s = sumLanes(acc);
        for (; i < n; i++) {
            s = Math.fma(a[aOff + i], b[bOff + i], s);
        }
        return s;
    }

    private static final float LOG2E = 1.44269504f;
    private static final float LN2_HI = 0.693145751953125f;
    private static final float LN2_LO = 1.428606765330187e-6f;

    /**
     * e^x for float lanes: x = k ln2 + r (|r| <= ln2 / 2), e^r by a degree-7 polynomial, 2^k by
     * the exponent bits. Lanewise IEEE operations only, so it rounds the same in every JIT tier.
     * Relative error about 1e-7 for x in [-87, 88] (inputs are clamped there).
     */
    private static FloatVector exp(FloatVector x) {
        x = x.max(-87f).min(88f);
        // Round x log2(e) to the nearest integer by adding and removing 1.5 * 2^23 (exact in float).
        FloatVector k = x.mul(LOG2E).add(12582912f).sub(12582912f);
        FloatVector r = x.sub(k.mul(LN2_HI)).sub(k.mul(LN2_LO));
        FloatVector p = FloatVector.broadcast(F, 1f / 5040);
        p = p.fma(r, FloatVector.broadcast(F, 1f / 720));
        p = p.fma(r, FloatVector.broadcast(F, 1f / 120));
        p = p.fma(r, FloatVector.broadcast(F, 1f / 24));
        p = p.fma(r, FloatVector.broadcast(F, 1f / 6));
        p = p.fma(r, FloatVector.broadcast(F, 0.5f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        IntVector bits = ((IntVector) k.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23);
        return p.mul(bits.reinterpretAsFloats());
    }

    @Override
    public void siluMul(float[] gate, int gOff, float[] up, int uOff, float[] out, int oOff, int n) {
        int i = 0;
        FloatVector one = FloatVector.broadcast(F, 1f);
        for (; i + L <= n; i += L) {
            FloatVector g = FloatVector.fromArray(F, gate, gOff + i);
            FloatVector silu = g.div(one.add(exp(g.neg())));
            silu.mul(FloatVector.fromArray(F, up, uOff + i)).intoArray(out, oOff + i);
        }
        for (; i < n; i++) {
            out[oOff + i] = RowOps.activate(dev.flora.backend.Activation.SILU, gate[gOff + i]) * up[uOff + i];
        }
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

    @Override
    public void mul(float[] x, int xOff, float[] y, int yOff, float[] out, int oOff, int n) {
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector.fromArray(F, x, xOff + i).mul(FloatVector.fromArray(F, y, yOff + i)).intoArray(out, oOff + i);
        }
        for (; i < n; i++) {
            out[oOff + i] = x[xOff + i] * y[yOff + i];
        }
    }

    // Lanewise mul then add (never fma): the same roundings as the scalar kernel and the exact strategy.
    @Override
    public void demodulate(float[] p, int pOff, int pStride, float[] b, int bOff, int bStride, int rank, float scale,
                           float[] bias, float[] out, int oOff, int n) {
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector s = FloatVector.zero(F);
            for (int j = 0; j < rank; j++) {
                s = s.add(FloatVector.fromArray(F, p, pOff + j * pStride + i).mul(FloatVector.fromArray(F, b, bOff + j * bStride + i)));
            }
            FloatVector v = s.mul(scale);
            if (bias != null) {
                v = v.add(FloatVector.fromArray(F, bias, i));
            }
            v.intoArray(out, oOff + i);
        }
        for (; i < n; i++) {
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
