package dev.flora.bench;

import dev.flora.adapter.Adapter;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.adapter.RandomAdapters;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.SamplingParams;
import dev.flora.model.CausalLM;
import dev.flora.model.ModelSpec;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

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
                         MachineLimits limits, String adapters, int promptTokens, double endToEndOutputTokensPerSecond) {
    }

    /**
     * Each sequence's own adapter: kind, rank, target modules and the strategy pinned.
     */
    public record AdapterSetup(dev.flora.adapter.AdapterKind kind, int rank, java.util.Set<String> targets,
                               dev.flora.adapter.AdapterStrategy strategy) {
        String describe() {
            return kind.name().toLowerCase(java.util.Locale.ROOT) + " r=" + rank + " on " + String.join(",", new java.util.TreeSet<>(targets))
                    + ", one per sequence, strategy " + strategy.cliName();
        }
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
        AdapterRegistry registry = new AdapterRegistry(batch);
        registry.useCosts(dev.flora.adapter.CostModel.loadIfPresent(dev.flora.adapter.CostModel.defaultFile()));
        if (adapters != null) {
            RandomAdapters.create(model, adapters.kind(), adapters.rank(), adapters.targets(), batch, 3).forEach(registry::register);
            registry.pin(adapters.strategy());
        }
        long warmEnd = System.nanoTime() + 2_000_000_000L;
        while (System.nanoTime() < warmEnd) {
            decode(model, batch, Math.min(steps, 8), promptTokens, registry, adapters != null); // warm the JIT up on the same code paths
        }
        long[] timing = decode(model, batch, steps, promptTokens, registry, adapters != null);
        double seconds = timing[0] / 1e9;
        double tokensPerSecond = (double) batch * steps / seconds;
        // Average KV bytes read per sequence and step: contexts grow from PROMPT_TOKENS to PROMPT_TOKENS + steps.
        double kvBytes = (double) batch * spec.layers() * 2L * spec.kvWidth() * Float.BYTES * (promptTokens + steps / 2.0);
        double bytesPerStep = spec.matmulBytes() + kvBytes;
        double roofline = batch * limits.bytesPerSecond() / bytesPerStep;
        double flops = 2.0 * spec.matmulWeights() * batch * steps / seconds;
        return new Result(name, kernels, batch, steps, seconds, tokensPerSecond, roofline, tokensPerSecond / roofline,
                flops / limits.flopsPerSecond(), spec.matmulBytes(), limits, adapters == null ? "none" : adapters.describe(), promptTokens,
                (double) batch * (steps + 1) / ((timing[0] + timing[1]) / 1e9));
    }

    /** Runs prefill plus {@code steps} decode steps; returns the nanoseconds of the decode steps and of the prefill. */
    private static long[] decode(CausalLM model, int batch, int steps, int promptTokens, AdapterRegistry registry, boolean adapted) {
        ModelSpec spec = model.spec();
        int maxSeqs = Math.max(batch, 1);
        Engine engine = new Engine(model, EngineConfig.DEFAULT.withMaxSequences(maxSeqs)
                .withKvCacheBytes(Math.max(64L << 20, kvBytesFor(spec, batch, promptTokens + steps + 16)))
                .withMaxBatchedTokens(Math.max(EngineConfig.DEFAULT.maxBatchedTokens(), batch * promptTokens)), Set.of(), registry);
        List<String> names = registry.adapters().stream().map(dev.flora.adapter.AdapterVersion::name).toList();
        SplittableRandom random = new SplittableRandom(11);
        List<Request> requests = new ArrayList<>();
        for (int b = 0; b < batch; b++) {
            int[] prompt = random.ints(promptTokens, 0, spec.vocabSize()).toArray();
            requests.add(Request.withAdapter("bench-" + b, prompt, SamplingParams.greedy(steps + 1, true), false, adapted ? names.get(b) : null));
        }
        requests.forEach(engine::submit);
        Engine.Listener quiet = new Engine.Listener() { };
        long prefillStart = System.nanoTime();
        engine.step(quiet); // prefill of every prompt, and the first token
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
        return new long[] {elapsed, start - prefillStart};
    }

    private static long kvBytesFor(ModelSpec spec, int batch, int positions) {
        return 2L * spec.layers() * spec.kvWidth() * Float.BYTES * (long) batch * (positions + 32);
    }
}
