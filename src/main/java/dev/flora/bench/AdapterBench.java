package dev.flora.bench;

import dev.flora.adapter.AdaptedLinear;
import dev.flora.adapter.Adapter;
import dev.flora.adapter.AdapterModule;
import dev.flora.adapter.AdapterSlots;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.backend.Backend;
import dev.flora.backend.DType;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.model.Linear;
import dev.flora.safetensors.TensorView;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.LongConsumer;

/**
 * One adapted layer's time per strategy (the shape of the fLoRA paper's figure 2, on this
 * machine): a d × d bf16 layer, T tokens spread over S sequences that each bring their own adapter
 * of rank r, against the base layer alone. fLoRA adapters for the fLoRA strategy, LoRA adapters
 * for the LoRA strategies (gathered, bmm, merged applies to either; here LoRA).
 */
public final class AdapterBench {
    /** One measured point: microseconds per call of the layer. */
    public record Point(int tokens, int rank, String strategy, double micros) {
    }

    /** Merged copies are left out: with a different adapter per sequence they cost a weight copy per adapter. */
    public static final List<String> STRATEGIES = List.of("base", "flora", "exact-flora", "gathered", "bmm", "exact-lora");

    private AdapterBench() {
    }

    public static List<Point> run(Backend backend, int d, int sequences, int[] tokenCounts, int[] ranks, LongConsumer progress) {
        SplittableRandom random = new SplittableRandom(5);
        Linear layer = new Linear("bench.layer", backend.weight(randomBf16(d, d, 0.02, random), d, d), null);
        List<Point> points = new ArrayList<>();
        for (int tokens : tokenCounts) {
            float[] input = new float[tokens * d];
            for (int i = 0; i < input.length; i++) {
                input[i] = (float) random.nextDouble(-1, 1);
            }
            Tensor x = backend.fromHost(input, tokens, d);
            Tensor out = backend.allocate(tokens, d);
            int[] slots = new int[tokens];
            int[] seqs = new int[tokens];
            for (int t = 0; t < tokens; t++) {
                seqs[t] = t * sequences / tokens;
                slots[t] = seqs[t];
            }
            TokenBatch batch = new TokenBatch(new int[tokens], new int[tokens], seqs, slots, new int[tokens], new int[0][], new int[0], 16, new int[0]);
            warmUp(backend, d, sequences, batch, layer, x, out, random);
            double base = time(() -> backend.linear(x, layer.weight(), null, out));
            for (int rank : ranks) {
                Slots lora = new Slots(backend, d, rank, sequences, false, random);
                Slots flora = new Slots(backend, d, rank, sequences, true, random);
                points.add(new Point(tokens, rank, "base", base));
                points.add(new Point(tokens, rank, "flora", timeProject(backend, flora, AdapterStrategy.FLORA, batch, layer, x, out)));
                points.add(new Point(tokens, rank, "exact-flora", timeProject(backend, flora, AdapterStrategy.EXACT, batch, layer, x, out)));
                points.add(new Point(tokens, rank, "gathered", timeProject(backend, lora, AdapterStrategy.GATHERED, batch, layer, x, out)));
                points.add(new Point(tokens, rank, "bmm", timeProject(backend, lora, AdapterStrategy.BMM, batch, layer, x, out)));
                points.add(new Point(tokens, rank, "exact-lora", timeProject(backend, lora, AdapterStrategy.EXACT, batch, layer, x, out)));
                progress.accept(1);
            }
        }
        return points;
    }

    /** Two seconds of every code path first, so that no measurement catches the JIT still compiling. */
    private static void warmUp(Backend backend, int d, int sequences, TokenBatch batch, Linear layer, Tensor x, Tensor out, SplittableRandom random) {
        Slots lora = new Slots(backend, d, 2, sequences, false, random);
        Slots flora = new Slots(backend, d, 2, sequences, true, random);
        long end = System.nanoTime() + 2_000_000_000L;
        while (System.nanoTime() < end) {
            backend.linear(x, layer.weight(), null, out);
            for (AdapterStrategy s : List.of(AdapterStrategy.FLORA, AdapterStrategy.EXACT, AdapterStrategy.GATHERED, AdapterStrategy.BMM)) {
                Slots slots = s == AdapterStrategy.FLORA ? flora : lora;
                slots.strategy = s;
                AdaptedLinear.forStep(backend, slots, batch).project(layer, x, out);
            }
        }
    }

    private static double timeProject(Backend backend, Slots slots, AdapterStrategy strategy, TokenBatch batch, Linear layer, Tensor x, Tensor out) {
        slots.strategy = strategy;
        AdaptedLinear adapted = AdaptedLinear.forStep(backend, slots, batch);
        return time(() -> adapted.project(layer, x, out));
    }

    /** Median of timed calls, in microseconds: warm-up calls for 150 ms (at least 2), then at least 5 calls and 200 ms. */
    static double time(Runnable r) {
        long warmEnd = System.nanoTime() + 150_000_000L;
        for (int i = 0; i < 2 || System.nanoTime() < warmEnd; i++) {
            r.run();
        }
        List<Double> t = new ArrayList<>();
        long end = System.nanoTime() + 200_000_000L;
        while (t.size() < 5 || (System.nanoTime() < end && t.size() < 50)) {
            long start = System.nanoTime();
            r.run();
            t.add((System.nanoTime() - start) / 1e3);
        }
        java.util.Collections.sort(t);
        return t.get(t.size() / 2);
    }

    private static TensorView randomBf16(int rows, int cols, double scale, SplittableRandom random) {
        MemorySegment seg = Arena.ofAuto().allocate((long) rows * cols * 2, 64);
        for (long i = 0; i < (long) rows * cols; i++) {
            float v = (float) (random.nextDouble(-1, 1) * scale);
            seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, (short) (Float.floatToRawIntBits(v) >>> 16));
        }
        return new TensorView("bench", DType.BF16, new long[] {rows, cols}, seg, Path.of("random"));
    }

    /** S adapters of one kind and rank, one per slot, on the bench layer. */
    private static final class Slots implements AdapterSlots {
        final AdapterModule[] modules;
        final Adapter[] adapters;
        AdapterStrategy strategy = AdapterStrategy.EXACT;

        Slots(Backend backend, int d, int rank, int count, boolean flora, SplittableRandom random) {
            modules = new AdapterModule[count];
            adapters = new Adapter[count];
            for (int s = 0; s < count; s++) {
                float[] a = new float[rank * d];
                float[] b = new float[d * rank];
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) (flora ? 1 + 0.1 * random.nextDouble(-1, 1) : 0.01 * random.nextDouble(-1, 1));
                    b[i] = (float) (flora ? 1 + 0.1 * random.nextDouble(-1, 1) : 0.01 * random.nextDouble(-1, 1));
                }
                modules[s] = flora
                        ? new AdapterModule.Flora(backend.fromHost(a, rank, d), backend.fromHost(b, rank, d), rank)
                        : new AdapterModule.Lora(backend.weight(a, rank, d), backend.weight(b, d, rank), null, 2f, rank);
                adapters[s] = new Adapter("bench-" + s, null, null, null, java.util.Map.of("bench.layer", modules[s]));
            }
        }

        @Override
        public AdapterModule module(String module, int slot) {
            return modules[slot];
        }

        @Override
        public AdapterStrategy strategy() {
            return strategy;
        }

        @Override
        public Adapter adapter(int slot) {
            return adapters[slot];
        }
    }
}
