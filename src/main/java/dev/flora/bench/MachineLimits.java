package dev.flora.bench;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.stream.IntStream;

/**
 * What this machine can do at best, measured in the same run as a benchmark so that fractions
 * of it mean something: memory read bandwidth (all cores streaming a buffer far larger than the
 * caches) and float32 FMA throughput (all cores, independent chains in registers).
 *
 * @param bytesPerSecond memory read bandwidth, best of several passes
 * @param flopsPerSecond float32 multiply-add throughput (2 flops per lane per FMA), best of several runs
 */
public record MachineLimits(double bytesPerSecond, double flopsPerSecond, int threads, int vectorBits) {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    public static MachineLimits measure() {
        int threads = Runtime.getRuntime().availableProcessors();
        return new MachineLimits(bandwidth(threads), fmaPeak(threads), threads, F.vectorBitSize());
    }

    /** Streams 1 GiB (read only, as a decode step reads weights) split across all cores, through the worker threads. */
    static double bandwidth(int threads) {
        long bytes = 1L << 30;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment buffer = arena.allocate(bytes, 64);
            buffer.fill((byte) 1);
            long perThread = bytes / threads / 64 * 64;
            double best = 0;
            for (int pass = 0; pass < 6; pass++) {
                long start = System.nanoTime();
                double sink = IntStream.range(0, threads).parallel()
                        .mapToDouble(t -> sum(buffer, t * perThread, perThread)).sum();
                long elapsed = System.nanoTime() - start;
                if (sink == -1) {
                    throw new AssertionError();
                }
                best = Math.max(best, perThread * threads / (elapsed / 1e9));
            }
            return best;
        }
    }

    /** Eight independent streams of loads per thread, so the measure is not bound by load latency. */
    private static double sum(MemorySegment s, long from, long length) {
        FloatVector a = FloatVector.zero(F);
        FloatVector b = a;
        FloatVector c = a;
        FloatVector d = a;
        FloatVector e = a;
        FloatVector f = a;
        FloatVector g = a;
        FloatVector h = a;
        long step = F.vectorByteSize();
        long end = from + length - 8 * step;
        for (long o = from; o <= end; o += 8 * step) {
            a = a.add(FloatVector.fromMemorySegment(F, s, o, ByteOrder.LITTLE_ENDIAN));
            b = b.add(FloatVector.fromMemorySegment(F, s, o + step, ByteOrder.LITTLE_ENDIAN));
            c = c.add(FloatVector.fromMemorySegment(F, s, o + 2 * step, ByteOrder.LITTLE_ENDIAN));
            d = d.add(FloatVector.fromMemorySegment(F, s, o + 3 * step, ByteOrder.LITTLE_ENDIAN));
            e = e.add(FloatVector.fromMemorySegment(F, s, o + 4 * step, ByteOrder.LITTLE_ENDIAN));
            f = f.add(FloatVector.fromMemorySegment(F, s, o + 5 * step, ByteOrder.LITTLE_ENDIAN));
            g = g.add(FloatVector.fromMemorySegment(F, s, o + 6 * step, ByteOrder.LITTLE_ENDIAN));
            h = h.add(FloatVector.fromMemorySegment(F, s, o + 7 * step, ByteOrder.LITTLE_ENDIAN));
        }
        return a.add(b).add(c).add(d).add(e).add(f).add(g).add(h).reduceLanes(VectorOperators.ADD);
    }

    /** Eight independent FMA chains per core: enough to cover the FMA latency on current cores. */
    static double fmaPeak(int threads) {
        long iterations = 20_000_000L;
        double best = 0;
        for (int run = 0; run < 4; run++) {
            long start = System.nanoTime();
            double sink = IntStream.range(0, threads).parallel().mapToDouble(t -> fmaChains(iterations)).sum();
            long elapsed = System.nanoTime() - start;
            if (sink == -1) {
                throw new AssertionError();
            }
            best = Math.max(best, 2.0 * F.length() * 8 * iterations * threads / (elapsed / 1e9));
        }
        return best;
    }

    private static double fmaChains(long iterations) {
        FloatVector m = FloatVector.broadcast(F, 0.999999f);
        FloatVector c = FloatVector.broadcast(F, 1e-7f);
        FloatVector a0 = FloatVector.broadcast(F, 1f);
        FloatVector a1 = a0.add(1f);
        FloatVector a2 = a0.add(2f);
        FloatVector a3 = a0.add(3f);
        FloatVector a4 = a0.add(4f);
        FloatVector a5 = a0.add(5f);
        FloatVector a6 = a0.add(6f);
        FloatVector a7 = a0.add(7f);
        for (long i = 0; i < iterations; i++) {
            a0 = a0.fma(m, c);
            a1 = a1.fma(m, c);
            a2 = a2.fma(m, c);
            a3 = a3.fma(m, c);
            a4 = a4.fma(m, c);
            a5 = a5.fma(m, c);
            a6 = a6.fma(m, c);
            a7 = a7.fma(m, c);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).reduceLanes(VectorOperators.ADD);
    }
}
