package dev.flora.bench;

import dev.flora.adapter.AdaptedLinear;
import dev.flora.adapter.Adapter;
import dev.flora.adapter.AdapterKind;
import dev.flora.adapter.AdapterModule;
import dev.flora.adapter.AdapterSlots;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.adapter.CostModel;
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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.LongConsumer;

/**
 * One adapted layer's time per strategy (the shape of the fLoRA paper's figure 2, on this
 * machine): a bf16 layer W [out, in], T tokens spread over S sequences that each bring their own
 * adapter of rank r, against the base layer alone. fLoRA adapters for the fLoRA strategies, LoRA
 * adapters for the LoRA ones, and beside them the automatic choice for each kind. All cases of a
 * point are timed interleaved ({@link Interleaved}), median of the rounds. On a GPU a timed call is
 * GPU_CALLS layer calls in one step timed on the GPU, divided by GPU_CALLS.
 */
public final class AdapterBench {
    /**
     * One measured point: microseconds per call of the layer.
     *
     * @param picked for the automatic cases, the strategy AUTO chose (else null)
     */
    public record Point(int in, int out, int tokens, int rank, String strategy, double micros, String picked) {
    }

    public static final List<String> FLORA = List.of("flora", "exact-flora");
    public static final List<String> LORA = List.of("gathered", "bmm", "exact-lora");
    public static final String AUTO_FLORA = "auto-flora";
    public static final String AUTO_LORA = "auto-lora";

    /**
     * @param sequences  adapters per step (fewer when a token count is smaller: one token each at least)
     * @param auto       also time AUTO for each kind, choosing by {@code costs} (null: its defaults)
     * @param strategies the pinned strategies to time (names of {@link #FLORA} and {@link #LORA}); the base
     *                   layer is always timed
     */
    public record Setup(int in, int out, int sequences, int[] tokens, int[] ranks, int rounds, boolean auto, CostModel costs,
                        java.util.Set<String> strategies, boolean issueBound) {
        /** Every pinned strategy, timed on the GPU alone. */
        public Setup(int in, int out, int sequences, int[] tokens, int[] ranks, int rounds, boolean auto, CostModel costs) {
            this(in, out, sequences, tokens, ranks, rounds, auto, costs, java.util.Set.copyOf(ALL_PINNED), false);
        }
    }

    /** The pinned strategies' names, fLoRA's then LoRA's. */
    public static final List<String> ALL_PINNED = java.util.stream.Stream.concat(FLORA.stream(), LORA.stream()).toList();

    private static final int GPU_CALLS = 20;

    private AdapterBench() {
    }

    /** Strategy names of a run's points, in table order. */
    public static List<String> columns(boolean auto) {
        List<String> c = new ArrayList<>(List.of("base"));
        c.addAll(FLORA);
        if (auto) {
            c.add(AUTO_FLORA);
        }
        c.addAll(LORA);
        if (auto) {
            c.add(AUTO_LORA);
        }
        return c;
    }

    public static List<Point> run(Backend backend, Setup setup, LongConsumer progress) {
        SplittableRandom random = new SplittableRandom(5);
        int in = setup.in();
        int outs = setup.out();
        Linear layer = new Linear("bench.layer", backend.weight(randomBf16(outs, in, 0.02, random), outs, in), null);
        List<Point> points = new ArrayList<>();
        boolean warm = false;
        boolean firstPoint = true;
        for (int tokens : setup.tokens()) {
            int sequences = Math.min(setup.sequences(), tokens);
            float[] input = new float[tokens * in];
            for (int i = 0; i < input.length; i++) {
                input[i] = (float) random.nextDouble(-1, 1);
            }
            Tensor x = backend.fromHost(input, tokens, in);
            // Long-lived, as x: allocate() after a prepare() is step memory on the GPU, reused by the next
            // timing's prepare() for its layouts (the demodulation then wrote over its own adapter pointers).
            Tensor out = backend.fromHost(new float[tokens * outs], tokens, outs);
            int[] slots = new int[tokens];
            int[] seqs = new int[tokens];
            for (int t = 0; t < tokens; t++) {
                seqs[t] = (int) ((long) t * sequences / tokens);
                slots[t] = seqs[t];
            }
            TokenBatch batch = new TokenBatch(new int[tokens], new int[tokens], seqs, slots, new int[tokens], new int[0][], new int[0], 16, new int[0]);
            if (!warm) {
                warmUp(backend, in, outs, sequences, batch, layer, x, out, random);
                warm = true;
            }
            for (int rank : setup.ranks()) {
                Slots lora = new Slots(backend, in, outs, rank, sequences, false, random, setup.costs());
                Slots flora = new Slots(backend, in, outs, rank, sequences, true, random, setup.costs());
                Map<String, Double> micros = measure(backend, setup, lora, flora, batch, layer, x, out, firstPoint);
                firstPoint = false;
                for (var m : micros.entrySet()) {
                    String picked = switch (m.getKey()) {
                        case AUTO_FLORA -> picked(setup.costs(), AdapterKind.FLORA, in, outs, tokens, rank);
                        case AUTO_LORA -> picked(setup.costs(), AdapterKind.LORA, in, outs, tokens, rank);
                        default -> null;
                    };
                    points.add(new Point(in, outs, tokens, rank, m.getKey(), m.getValue(), picked));
                }
                progress.accept(1);
            }
        }
        return points;
    }

    /**
     * One point's cases, in two groups timed apart, each interleaved: calls of one group take
     * similar times, so its cases alternate quickly (a LoRA case is never measured seconds away
     * from the base layer because long fLoRA calls came in between).
     */
    private static Map<String, Double> measure(Backend backend, Setup setup, Slots lora, Slots flora, TokenBatch batch, Linear layer,
                                               Tensor x, Tensor out, boolean first) {
        java.util.function.Function<Runnable, Interleaved.Case> timed = call -> timed(backend, setup.issueBound(), batch, call);
        Map<String, Interleaved.Case> loraCases = new LinkedHashMap<>();
        loraCases.put("base", timed.apply(() -> backend.linear(x, layer.weight(), null, out)));
        for (String s : LORA) {
            if (setup.strategies().contains(s)) {
                loraCases.put(s, timed.apply(project(backend, lora, pinned(s), batch, layer, x, out)));
            }
        }
        if (setup.auto()) {
            loraCases.put(AUTO_LORA, timed.apply(project(backend, lora, AdapterStrategy.AUTO, batch, layer, x, out)));
        }
        Map<String, Interleaved.Case> floraCases = new LinkedHashMap<>();
        for (String s : FLORA) {
            if (setup.strategies().contains(s)) {
                floraCases.put(s, timed.apply(project(backend, flora, pinned(s), batch, layer, x, out)));
            }
        }
        if (setup.auto()) {
            floraCases.put(AUTO_FLORA, timed.apply(project(backend, flora, AdapterStrategy.AUTO, batch, layer, x, out)));
        }
        System.gc(); // this point's adapters out of the young generation before timing (its collections would copy them)
        if (first) {
            Interleaved.warmUp(loraCases, 1_000_000_000L);
            if (!floraCases.isEmpty()) {
                Interleaved.warmUp(floraCases, 1_000_000_000L);
            }
        }
        Map<String, Double> micros = new LinkedHashMap<>(Interleaved.medians(loraCases, setup.rounds()));
        if (!floraCases.isEmpty()) {
            micros.putAll(Interleaved.medians(floraCases, setup.rounds()));
        }
        int calls = callsPerTiming(backend);
        micros.replaceAll((name, us) -> us / calls);
        return micros;
    }

    private static int callsPerTiming(Backend backend) {
        return backend.device().equals("cpu") ? 1 : GPU_CALLS;
    }

    /**
     * What one timing runs: on the CPU the call itself; on a GPU, GPU_CALLS calls in a step of their
     * own, timed on the GPU ({@link Backend#deviceMicros}), as torch's per-layer timings are. Issue-bound
     * (calibration): the GPU's time or the host's time to issue the calls, whichever is longer. A
     * strategy of many small operations can keep the GPU waiting for the host in a real step (LoRA-bmm's
     * dozen a layer: on the H200, Llama-2-7B at rank 64 lost 4% end to end to gathered with bmm's
     * decode steps, which the GPU alone timed 15% cheaper; NOTES.md, session 14).
     */
    private static Interleaved.Case timed(Backend backend, boolean issueBound, TokenBatch batch, Runnable call) {
        int calls = callsPerTiming(backend);
        if (calls == 1) {
            return Interleaved.wall(call);
        }
        return () -> {
            backend.prepare(batch); // step memory for the calls' temporaries, reused by the next timing
            long[] issuing = new long[1];
            double gpu = backend.deviceMicros(() -> {
                long start = System.nanoTime();
                for (int i = 0; i < calls; i++) {
                    call.run();
                }
                issuing[0] = System.nanoTime() - start;
            });
            return issueBound ? Math.max(gpu, issuing[0] / 1e3) : gpu;
        };
    }

    /** The strategy a pinned column's name stands for. */
    static AdapterStrategy pinned(String column) {
        return switch (column) {
            case "flora" -> AdapterStrategy.FLORA;
            case "exact-flora", "exact-lora" -> AdapterStrategy.EXACT;
            case "gathered" -> AdapterStrategy.GATHERED;
            case "bmm" -> AdapterStrategy.BMM;
            default -> throw new IllegalArgumentException(column);
        };
    }

    private static String picked(CostModel costs, AdapterKind kind, int in, int out, int tokens, int rank) {
        return (costs == null ? CostModel.defaultFor(kind) : costs.choose(kind, in, out, tokens, rank)).cliName();
    }

    /** Two seconds of every code path first, so that no measurement catches the JIT still compiling. */
    private static void warmUp(Backend backend, int in, int outs, int sequences, TokenBatch batch, Linear layer, Tensor x, Tensor out, SplittableRandom random) {
        Slots lora = new Slots(backend, in, outs, 2, sequences, false, random, null);
        Slots flora = new Slots(backend, in, outs, 2, sequences, true, random, null);
        long end = System.nanoTime() + 2_000_000_000L;
        while (System.nanoTime() < end) {
            backend.prepare(batch);
            backend.linear(x, layer.weight(), null, out);
            for (AdapterStrategy s : List.of(AdapterStrategy.FLORA, AdapterStrategy.EXACT, AdapterStrategy.GATHERED, AdapterStrategy.BMM, AdapterStrategy.AUTO)) {
                project(backend, flora, s, batch, layer, x, out).run();
                project(backend, lora, s, batch, layer, x, out).run();
            }
            backend.synchronize();
        }
    }

    /** One layer call under a strategy, grouping the tokens by slot each call as a step does. */
    private static Runnable project(Backend backend, Slots slots, AdapterStrategy strategy, TokenBatch batch, Linear layer, Tensor x, Tensor out) {
        AdapterSlots pinned = slots.with(strategy);
        return () -> AdaptedLinear.forStep(backend, pinned, batch).project(layer, x, out);
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
    private static final class Slots {
        final AdapterModule[] modules;
        final Adapter[] adapters;
        final CostModel costs;

        Slots(Backend backend, int in, int outs, int rank, int count, boolean flora, SplittableRandom random, CostModel costs) {
            this.costs = costs;
            modules = new AdapterModule[count];
            adapters = new Adapter[count];
            for (int s = 0; s < count; s++) {
                float[] a = new float[rank * in];
                float[] b = new float[outs * rank];
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) (flora ? 1 + 0.1 * random.nextDouble(-1, 1) : 0.01 * random.nextDouble(-1, 1));
                }
                for (int i = 0; i < b.length; i++) {
                    b[i] = (float) (flora ? 1 + 0.1 * random.nextDouble(-1, 1) : 0.01 * random.nextDouble(-1, 1));
                }
                modules[s] = flora
                        ? new AdapterModule.Flora(backend.fromHost(a, rank, in), backend.fromHost(b, rank, outs), rank)
                        : new AdapterModule.Lora(backend.weight(a, rank, in), backend.weight(b, outs, rank), null, 2f, rank);
                adapters[s] = new Adapter("bench-" + s, flora ? AdapterKind.FLORA : AdapterKind.LORA, null, null, Map.of("bench.layer", modules[s]));
            }
        }

        AdapterSlots with(AdapterStrategy strategy) {
            return new AdapterSlots() {
                @Override
                public AdapterModule module(String module, int slot) {
                    return modules[slot];
                }

                @Override
                public AdapterStrategy strategy() {
                    return strategy;
                }

                @Override
                public CostModel costModel() {
                    return costs;
                }

                @Override
                public Adapter adapter(int slot) {
                    return adapters[slot];
                }
            };
        }
    }
}
