package dev.flora.bench;

import dev.flora.adapter.Adapter;
import dev.flora.adapter.AdapterKind;
import dev.flora.adapter.AdapterModule;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.adapter.CostModel;
import dev.flora.adapter.RandomAdapters;
import dev.flora.backend.Tensor;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.SamplingParams;
import dev.flora.model.CausalLM;
import dev.flora.model.ModelSpec;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;

/**
 * Decode speed: B sequences with short random prompts are prefilled, then decoded together for N
 * steps; only the decode steps are timed. Reported against what the machine allows: a decode step
 * must read every weight once (and each sequence's KV cache), so tokens/s cannot beat
 * B × bandwidth / bytes read; nor can it beat the FMA peak over 2 × weights × B flops.
 */
public final class DecodeBench {
    public static final int PROMPT_TOKENS = 16;

    /**
     * @param tokensPerSecond generated tokens per second over the timed decode steps
     * @param rooflineTokensPerSecond the memory-bandwidth bound for this batch
     * @param memoryFraction   tokensPerSecond / rooflineTokensPerSecond
     * @param flopFraction     achieved matrix-product flops / measured FMA peak
     */
    public record Result(String model, String kernels, int batch, int steps, double seconds, double tokensPerSecond,
                         double rooflineTokensPerSecond, double memoryFraction, double flopFraction, long weightBytes,
                         MachineLimits limits, String adapters, int promptTokens, double endToEndOutputTokensPerSecond,
                         double prefillSeconds, double prefillFlopFraction) {
    }

    /**
     * Each sequence's own adapter: kind, rank, target modules and the strategy pinned.
     */
    public record AdapterSetup(AdapterKind kind, int rank, Set<String> targets, AdapterStrategy strategy) {
        public String describe() {
            return kind.name().toLowerCase(Locale.ROOT) + " r=" + rank + " on " + String.join(",", new TreeSet<>(targets))
                    + ", one per sequence, strategy " + strategy.cliName();
        }
    }

    /**
     * One configuration of a comparison: decode tokens/s of each round, their median, and the
     * median over the rounds of its ratio to the first configuration (the model without adapters)
     * in the same round.
     *
     * @param adapterBytes the bytes of every sequence's adapter weights, all read by a decode step
     * @param bytesBound   what the bytes allow against no adapters: model matrix bytes / (those + adapterBytes)
     * @param ofBytesBound ratio / bytesBound: 1 when the adapters cost exactly the bytes they add
     */
    public record Comparison(String model, String adapters, int batch, int steps, List<Double> tokensPerSecond, double median, double ratio,
                             long adapterBytes, double bytesBound, double ofBytesBound) {
    }

    private DecodeBench() {
    }

    public static Result run(CausalLM model, String name, String kernels, int batch, int steps, MachineLimits limits) {
        return run(model, name, kernels, batch, steps, limits, null);
    }

    public static Result run(CausalLM model, String name, String kernels, int batch, int steps, MachineLimits limits, AdapterSetup adapters) {
        return run(model, name, kernels, batch, steps, PROMPT_TOKENS, limits, adapters);
    }

    /**
     * Prefill of {@code promptTokens} per sequence, then {@code steps} decode steps timed. Also
     * reports output tokens/s over the whole run (prefill included, as transformers' generate is
     * timed: batch × (steps + 1) tokens).
     */
    public static Result run(CausalLM model, String name, String kernels, int batch, int steps, int promptTokens, MachineLimits limits,
                             AdapterSetup adapters) {
        ModelSpec spec = model.spec();
        AdapterRegistry registry = registry(model, adapters, randomAdapters(model, adapters, batch));
        // One engine throughout, as a server has: what it sets up once (CUDA graphs of its decode
        // steps, say) is set up while warming up, not in the timed run.
        Engine engine = engine(model, batch, steps, promptTokens, registry);
        long warmEnd = System.nanoTime() + 2_000_000_000L;
        for (int round = 0; round < 2 || System.nanoTime() < warmEnd; round++) {
            decodeSteps(prefilled(engine, batch, steps, promptTokens, registry, adapters != null), steps); // the JIT warms on the same code paths
        }
        settleHeap();
        long prefillStart = System.nanoTime();
        prefilled(engine, batch, steps, promptTokens, registry, adapters != null);
        long prefillNanos = System.nanoTime() - prefillStart;
        settleHeap();
        long decodeNanos = decodeSteps(engine, steps);
        double seconds = decodeNanos / 1e9;
        double tokensPerSecond = (double) batch * steps / seconds;
        // Average KV bytes read per sequence and step: contexts grow from PROMPT_TOKENS to PROMPT_TOKENS + steps.
        int kvValueBytes = model.backend().kvCacheType(spec.weightType()).bytes();
        double kvBytes = (double) batch * spec.layers() * 2L * spec.kvWidth() * kvValueBytes * (promptTokens + steps / 2.0);
        double bytesPerStep = spec.matmulBytes() + kvBytes;
        double roofline = batch * limits.bytesPerSecond() / bytesPerStep;
        double flops = 2.0 * spec.matmulWeights() * batch * steps / seconds;
        // The prefill step's matrix products: every prompt token through every layer, lm_head for the last token of each.
        long lmHead = (long) spec.vocabSize() * spec.hiddenSize();
        double prefillFlops = 2.0 * ((spec.matmulWeights() - lmHead) * (double) batch * promptTokens + lmHead * (double) batch);
        double prefillSeconds = prefillNanos / 1e9;
        return new Result(name, kernels, batch, steps, seconds, tokensPerSecond, roofline, tokensPerSecond / roofline,
                flops / limits.flopsPerSecond(), spec.matmulBytes(), limits, adapters == null ? "none" : adapters.describe(), promptTokens,
                (double) batch * (steps + 1) / ((decodeNanos + prefillNanos) / 1e9), prefillSeconds,
                prefillFlops / prefillSeconds / limits.flopsPerSecond());
    }

    /**
     * Several configurations (null: no adapters) decoded in turn, STEP BY STEP: each round prefills
     * one engine per configuration, then runs their decode steps alternately (in an order that
     * changes every step, {@link Turns}), so that the load of other processes on a shared machine falls on all of them
     * alike. Tokens/s per round, median over the rounds, and the median of the rounds' ratios to
     * the first configuration.
     */
    public static List<Comparison> compare(CausalLM model, String name, int batch, int steps, int rounds, List<AdapterSetup> setups) {
        return compare(model, name, batch, steps, PROMPT_TOKENS, rounds, setups);
    }

    /** As {@link #compare(CausalLM, String, int, int, int, List)}, with prompts of {@code promptTokens}. */
    public static List<Comparison> compare(CausalLM model, String name, int batch, int steps, int promptTokens, int rounds,
                                           List<AdapterSetup> setups) {
        int n = setups.size();
        List<AdapterRegistry> registries = new ArrayList<>();
        long[] adapterBytes = new long[n];
        for (int c = 0; c < n; c++) {
            List<Adapter> adapters = randomAdapters(model, setups.get(c), batch);
            registries.add(registry(model, setups.get(c), adapters));
            adapterBytes[c] = adapters.stream().mapToLong(DecodeBench::bytesOf).sum();
        }
        Engine[] engines = new Engine[n];
        for (int c = 0; c < n; c++) {
            engines[c] = engine(model, batch, steps, promptTokens, registries.get(c));
            long warmEnd = System.nanoTime() + 2_000_000_000L;
            for (int round = 0; round < 2 || System.nanoTime() < warmEnd; round++) {
                decodeSteps(prefilled(engines[c], batch, steps, promptTokens, registries.get(c), setups.get(c) != null), steps);
            }
        }
        List<List<Double>> perRound = new ArrayList<>();
        for (int c = 0; c < n; c++) {
            perRound.add(new ArrayList<>());
        }
        // Round -1 is untimed: the JIT sees the interleaving, and the heap grows to its working size
        // (a young collection's first touch of new pages is slow) before anything is timed.
        for (int round = -1; round < rounds; round++) {
            for (int c = 0; c < n; c++) {
                prefilled(engines[c], batch, steps, promptTokens, registries.get(c), setups.get(c) != null);
            }
            settleHeap();
            long[] nanos = new long[n];
            Engine.Listener quiet = new Engine.Listener() { };
            for (int step = 0; step < steps; step++) {
                for (int k = 0; k < n; k++) {
                    int c = Turns.of(n, step, k);
                    long start = System.nanoTime();
                    engines[c].step(quiet);
                    nanos[c] += System.nanoTime() - start;
                }
            }
            for (int c = 0; c < n; c++) {
                if (engines[c].hasWork()) {
                    throw new IllegalStateException("expected " + steps + " decode steps");
                }
                if (round >= 0) {
                    perRound.get(c).add((double) batch * steps / (nanos[c] / 1e9));
                }
            }
        }
        List<Comparison> out = new ArrayList<>();
        for (int c = 0; c < n; c++) {
            // The ratio of each round (its configurations ran side by side), then their median.
            List<Double> ratios = new ArrayList<>();
            for (int round = 0; round < rounds; round++) {
                ratios.add(perRound.get(c).get(round) / perRound.getFirst().get(round));
            }
            long base = model.spec().matmulBytes();
            double bound = (double) base / (base + adapterBytes[c]);
            double ratio = Interleaved.median(ratios);
            out.add(new Comparison(name, setups.get(c) == null ? "none" : setups.get(c).describe(), batch, steps,
                    List.copyOf(perRound.get(c)), Interleaved.median(perRound.get(c)), ratio, adapterBytes[c], bound, ratio / bound));
        }
        return out;
    }

    /** A registry of these adapters (one per sequence; none for a null setup), the setup's strategy pinned, the stored calibration for AUTO. */
    private static AdapterRegistry registry(CausalLM model, AdapterSetup setup, List<Adapter> adapters) {
        AdapterRegistry registry = new AdapterRegistry(Math.max(1, adapters.size()));
        registry.useCosts(CostModel.loadIfPresent(CostModel.defaultFile(model.backend())));
        adapters.forEach(registry::register);
        if (setup != null) {
            registry.pin(setup.strategy());
        }
        return registry;
    }

    /** One random adapter per sequence of the setup (none for null). */
    private static List<Adapter> randomAdapters(CausalLM model, AdapterSetup setup, int batch) {
        return setup == null ? List.of() : RandomAdapters.create(model, setup.kind(), setup.rank(), setup.targets(), batch, 3);
    }

    /** The bytes of an adapter's weights as the backend holds them. */
    static long bytesOf(Adapter adapter) {
        long bytes = 0;
        for (AdapterModule m : adapter.modules().values()) {
            List<Tensor> tensors = switch (m) {
                case AdapterModule.Lora l -> java.util.stream.Stream.of(l.a(), l.b(), l.bias()).filter(java.util.Objects::nonNull).toList();
                case AdapterModule.Flora f -> List.of(f.a(), f.bt());
                case AdapterModule.Ia3 i -> List.of(i.scale());
            };
            for (Tensor t : tensors) {
                bytes += t.numel() * t.dtype().bytes();
            }
        }
        return bytes;
    }

    /** An engine for B sequences of {@code promptTokens + steps + 1} tokens, prefilled in one step. */
    private static Engine engine(CausalLM model, int batch, int steps, int promptTokens, AdapterRegistry registry) {
        return new Engine(model, EngineConfig.DEFAULT.withMaxSequences(Math.max(batch, 1))
                .withKvCacheBytes(Math.max(64L << 20, kvBytesFor(model, batch, promptTokens + steps + 16)))
                .withMaxBatchedTokens(Math.max(EngineConfig.DEFAULT.maxBatchedTokens(), batch * promptTokens)), Set.of(), registry);
    }

    /** The engine with B sequences submitted and prefilled (the first step), ready for {@code steps} decode steps. */
    private static Engine prefilled(Engine engine, int batch, int steps, int promptTokens, AdapterRegistry registry, boolean adapted) {
        if (engine.hasWork()) {
            throw new IllegalStateException("the engine still has work");
        }
        ModelSpec spec = engine.spec();
        List<String> names = registry.adapters().stream().map(dev.flora.adapter.AdapterVersion::name).toList();
        SplittableRandom random = new SplittableRandom(11);
        long round = engine.steps();
        for (int b = 0; b < batch; b++) {
            int[] prompt = random.ints(promptTokens, 0, spec.vocabSize()).toArray();
            engine.submit(Request.withAdapter("bench-" + round + "-" + b, prompt, SamplingParams.greedy(steps + 1, true), false,
                    adapted ? names.get(b) : null));
        }
        engine.step(new Engine.Listener() { }); // prefill of every prompt, and the first token
        return engine;
    }

    /**
     * A full collection before timing: the engines just made (their KV caches) move out of the young
     * generation, whose collections would otherwise copy them, hundreds of milliseconds charged to
     * whichever step they interrupt.
     */
    private static void settleHeap() {
        System.gc();
    }

    /** Runs a prefilled engine's {@code steps} decode steps; returns their nanoseconds. */
    private static long decodeSteps(Engine engine, int steps) {
        Engine.Listener quiet = new Engine.Listener() { };
        long start = System.nanoTime();
        int done = 0;
        while (engine.hasWork()) {
            engine.step(quiet);
            done++;
        }
        long elapsed = System.nanoTime() - start;
        if (done != steps) {
            throw new IllegalStateException("expected " + steps + " decode steps, ran " + done);
        }
        return elapsed;
    }

    /**
     * The KV cache bytes of B sequences of {@code positions} (and a block's rounding) in the cache type the
     * backend keeps for the model's weights: sized for float32 whatever the type, a 16-bit cache on the GPU
     * took twice what it needs, and --compare's engines (one each) did not fit an 80 GB card (session 28).
     */
    public static long kvBytesFor(CausalLM model, int batch, int positions) {
        ModelSpec spec = model.spec();
        int bytes = model.backend().kvCacheType(spec.weightType()).bytes();
        return 2L * spec.layers() * spec.kvWidth() * bytes * (long) batch * (positions + 32);
    }
}
