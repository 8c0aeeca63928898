package dev.flora.bench;

import dev.flora.FloraException;
import dev.flora.adapter.Adapter;
import dev.flora.adapter.AdapterKind;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.adapter.CostModel;
import dev.flora.adapter.RandomAdapters;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.loadgen.LoadGenerator;
import dev.flora.model.CausalLM;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.function.LongConsumer;

/**
 * Serving throughput against adapter rank, the fLoRA paper's figure 2 as vLLM's offline throughput
 * benchmark measures it: every request is submitted at once, each with its own adapter, and the
 * engine runs them to the end under a batched-token budget; throughput = (prompt + output tokens) /
 * wall time, and output tokens / wall time beside it (DESIGN §5). Lengths are log-normal between
 * the given bounds (ShareGPT-like, as {@code flora loadgen} draws them), the same for every series
 * and rank under one seed.
 */
public final class ThroughputBench {

    /**
     * One line of the figure: adapters of a kind (none for the base model) computed by a strategy;
     * {@code separateSteps} runs prompts and decodes in separate steps, as vLLM 0.1.3 (the paper's
     * LoRA-bmm baseline) did.
     */
    public record Series(String name, AdapterKind kind, AdapterStrategy strategy, boolean separateSteps) {
        /** The series by the names the command line takes. */
        public static Series parse(String name) {
            return switch (name.toLowerCase(Locale.ROOT)) {
                case "none" -> new Series("none", null, AdapterStrategy.AUTO, false);
                case "flora" -> new Series("flora", AdapterKind.FLORA, AdapterStrategy.FLORA, false);
                case "flora-auto" -> new Series("flora-auto", AdapterKind.FLORA, AdapterStrategy.AUTO, false);
                case "lora-bmm" -> new Series("lora-bmm", AdapterKind.LORA, AdapterStrategy.BMM, true);
                case "lora-gathered" -> new Series("lora-gathered", AdapterKind.LORA, AdapterStrategy.GATHERED, false);
                case "lora-auto" -> new Series("lora-auto", AdapterKind.LORA, AdapterStrategy.AUTO, false);
                case "ia3" -> new Series("ia3", AdapterKind.IA3, AdapterStrategy.EXACT, false);
                default -> throw new FloraException("--series '" + name + "' is not a series (supported: none, flora, flora-auto, lora-bmm, "
                        + "lora-gathered, lora-auto, ia3)");
            };
        }

        boolean adapted() {
            return kind != null;
        }
    }

    /**
     * The workload: {@code requests} prompts of minInput..maxInput tokens generating minOutput..maxOutput
     * tokens each (EOS ignored), at most {@code maxBatchedTokens} a step; {@code calibration} is the
     * automatic choice's, or null for the device's stored one ($FLORA_CACHE).
     */
    public record Workload(int requests, int minInput, int maxInput, int minOutput, int maxOutput, int maxBatchedTokens, int maxSequences,
                           long kvCacheBytes, Set<String> targets, long seed, dev.flora.adapter.Calibration calibration) {
    }

    /** What every point of a series-against-rank figure says of itself (rank 0, no targets: the base model). */
    public interface Labelled {
        String series();

        int rank();

        String targets();
    }

    /**
     * One measured point. {@code forwardShare}: the share of the run's time the host spent in the
     * steps' forward passes (Engine.forwardNanos). On a GPU, where a forward pass only queues work,
     * near 1 means the host set the pace (launches, uploads) and the GPU waited; well below 1, the host
     * waited for the GPU. 0 in files written before session 13. {@code bmmPromptShare} and
     * {@code bmmDecodeShare}: of an automatic LoRA series, the shares of its prompt and decode tokens
     * (layer by layer) the cost model gave LoRA-bmm, the rest gathered (CostModel.LoraTally); 0 for the
     * other series; NaN (not measured) when read from a file written before session 14.
     */
    public record Point(String series, String kind, String strategy, int rank, String targets, int requests, long promptTokens,
                        long outputTokens, double seconds, double tokensPerSecond, double outputTokensPerSecond, long steps,
                        double forwardShare, double bmmPromptShare, double bmmDecodeShare)
            implements Labelled {
    }

    private ThroughputBench() {
    }

    /** The prompt and output lengths of the workload, drawn once for every series and rank. */
    static List<int[]> lengths(Workload w) {
        SplittableRandom random = new SplittableRandom(w.seed());
        List<int[]> out = new ArrayList<>();
        for (int i = 0; i < w.requests(); i++) {
            out.add(new int[] {LoadGenerator.logNormal(random, w.minInput(), w.maxInput()),
                    LoadGenerator.logNormal(random, w.minOutput(), w.maxOutput())});
        }
        return out;
    }

    /**
     * Runs the workload once for this series and rank (after a warm-up of a few of its requests on the
     * same engine, so that one-time set-up stays out of the time) and reports its throughput.
     */
    public static Point run(CausalLM model, Series series, int rank, Workload w, LongConsumer progress) {
        AdapterRegistry registry = registry(model, series, rank, w);
        EngineConfig config = EngineConfig.DEFAULT.withMaxBatchedTokens(w.maxBatchedTokens()).withMaxSequences(w.maxSequences())
                .withKvCacheBytes(w.kvCacheBytes()).withSeparatePrefillDecode(series.separateSteps());
        Engine engine = new Engine(model, config, Set.of(), registry);
        if (!series.adapted()) {
            engine.recordDecodeSteps(); // set-up, as the warm-up below: no recording inside the timed run (adapted steps are recorded there as their compositions repeat, as a server's are)
        }
        List<Request> requests = requests(model, series, w, registry);
        int warm = Math.min(4, requests.size());
        List<Request> warmUp = new ArrayList<>();
        for (int i = 0; i < warm; i++) {
            Request r = requests.get(i);
            warmUp.add(new Request("warm-" + r.id(), r.prompt(), SamplingParams.greedy(Math.min(4, r.sampling().maxTokens()), true), false,
                    r.adapters()));
        }
        engine.run(warmUp, new Engine.Listener() { });
        long stepsBefore = engine.steps();
        Engine.Listener counting = new Engine.Listener() {
            @Override
            public void onToken(String id, int token, double logprob, dev.flora.engine.TopLogprobs top) {
                progress.accept(1);
            }
        };
        CostModel costs = registry.costModel();
        CostModel.LoraTally tallyBefore = costs == null ? null : costs.loraTally();
        long forwardBefore = engine.forwardNanos();
        long start = System.nanoTime();
        List<Result> results = engine.run(requests, counting);
        double seconds = (System.nanoTime() - start) / 1e9;
        double forwardShare = (engine.forwardNanos() - forwardBefore) / 1e9 / seconds;
        boolean autoLora = series.adapted() && series.kind() == AdapterKind.LORA && series.strategy() == AdapterStrategy.AUTO && costs != null;
        CostModel.LoraTally chosen = autoLora ? costs.loraTally().minus(tallyBefore) : null;
        long prompt = 0;
        long output = 0;
        for (Result r : results) {
            prompt += r.prompt().length;
            output += r.generated().length;
        }
        return new Point(series.name(), series.adapted() ? series.kind().name().toLowerCase(Locale.ROOT) : "none", series.strategy().cliName(),
                series.adapted() ? rank : 0, series.adapted() ? String.join(",", new TreeSet<>(w.targets())) : "", w.requests(), prompt, output,
                seconds, (prompt + output) / seconds, output / seconds, engine.steps() - stepsBefore, forwardShare,
                chosen == null ? 0 : chosen.bmmPromptShare(), chosen == null ? 0 : chosen.bmmDecodeShare());
    }

    /**
     * A registry holding one random adapter per request (of the series' kind and this rank on the
     * workload's targets), the series' strategy pinned, LoRA-bmm's padded copies made where the
     * strategy may take it; none for the base model.
     */
    static AdapterRegistry registry(CausalLM model, Series series, int rank, Workload w) {
        AdapterRegistry registry = new AdapterRegistry(Math.max(1, series.adapted() ? w.requests() : 1));
        registry.useCosts(w.calibration() != null ? new CostModel(w.calibration()) : CostModel.loadIfPresent(CostModel.defaultFile(model.backend())));
        if (series.adapted()) {
            adapters(model, series.kind(), rank, w).forEach(registry::register);
            registry.pin(series.strategy());
            if (series.kind() == AdapterKind.LORA && (series.strategy() == AdapterStrategy.BMM || series.strategy() == AdapterStrategy.AUTO)) {
                try {
                    registry.padForBmm(model); // set-up, as loading the adapters is: not inside the measured run's first steps
                } catch (dev.flora.backend.DeviceMemoryFull e) {
                    throw new dev.flora.FloraException("the padded copies that " + series.name() + " keeps of the " + w.requests() + " rank-"
                            + rank + " adapters (LoRA-bmm's) do not fit the device beside the adapters themselves: lower --requests or the "
                            + "rank, give the KV cache less (--kv-cache-memory), or leave lora-bmm and lora-auto out of --series ("
                            + e.getMessage() + ")", e);
                }
            }
        }
        return registry;
    }

    /** The last series' random adapters, which the next series of the same kind and rank reuses (same seed, same values). */
    private record Generated(CausalLM model, AdapterKind kind, int rank, Set<String> targets, int count, long seed, List<Adapter> adapters) {
    }

    private static Generated generated;

    /**
     * One random adapter per request of this kind and rank on the workload's targets: the LoRA
     * series of a point (bmm, gathered, auto) share one draw instead of drawing it three times.
     */
    private static synchronized List<Adapter> adapters(CausalLM model, AdapterKind kind, int rank, Workload w) {
        long seed = w.seed() + rank;
        Set<String> targets = Set.copyOf(w.targets());
        Generated g = generated;
        if (g == null || g.model() != model || g.kind() != kind || g.rank() != rank || !g.targets().equals(targets) || g.count() != w.requests()
                || g.seed() != seed) {
            generated = null; // the last draw's memory goes before the next is made
            g = new Generated(model, kind, rank, targets, w.requests(), seed, RandomAdapters.create(model, kind, rank, targets, w.requests(), seed));
            generated = g;
        }
        return g.adapters();
    }

    /** Drops the kept draw (its device memory is freed as the adapters are collected). */
    public static synchronized void forgetAdapters() {
        generated = null;
    }

    /** The workload's requests (greedy, EOS ignored), request i naming adapter i of the registry when the series has adapters. */
    static List<Request> requests(CausalLM model, Series series, Workload w, AdapterRegistry registry) {
        int vocab = model.spec().vocabSize();
        List<int[]> lengths = lengths(w);
        int context = model.spec().maxContext();
        for (int[] l : lengths) {
            if (l[0] + l[1] > context) {
                throw new FloraException("a request of " + l[0] + " + " + l[1] + " tokens does not fit the model's context of " + context
                        + "; lower --input-len or --output-len");
            }
        }
        List<String> names = registry.adapters().stream().map(dev.flora.adapter.AdapterVersion::name).toList();
        SplittableRandom tokens = new SplittableRandom(w.seed() ^ 0x9E3779B97F4A7C15L);
        List<Request> requests = new ArrayList<>();
        for (int i = 0; i < w.requests(); i++) {
            int[] l = lengths.get(i);
            requests.add(Request.withAdapter("r" + i, tokens.ints(l[0], 3, vocab).toArray(), SamplingParams.greedy(l[1], true), false,
                    series.adapted() ? names.get(i) : null));
        }
        return requests;
    }

    /** The total output tokens of the workload (for a progress bar). */
    public static long outputTokens(Workload w) {
        return lengths(w).stream().mapToLong(l -> l[1]).sum();
    }
}
