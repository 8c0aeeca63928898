package dev.flora.cuda;

import dev.flora.Fixtures;
import dev.flora.adapter.AdapterLoader;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.backend.Backend;
import dev.flora.bench.DecodeBench;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.model.CausalLM;
import dev.flora.model.ModelDirectory;
import dev.flora.model.Models;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * On the GPU: every float32 fixture, adapters included, on the CUDA backend equals the CPU
 * backend within 1e-4 logprob and transformers' own outputs within 1e-4, under every adapter
 * strategy (and with the flagged LoRA runs and fLoRA vectors); greedy tokens match up to the first
 * near-tie.
 */
@Tag("gpu")
class CudaFixturesTest {
    static final double NEAR_TIE = 2e-4;
    private static CudaBackend cuda;

    @BeforeAll
    static void open() {
        cuda = CudaBackend.open(0);
    }

    @AfterAll
    static void close() {
        cuda.close();
    }

    @ParameterizedTest
    @Tag("gpu-only") // eight fixtures under eight strategies: about five minutes on CUDA emulated on the CPU
    @ValueSource(strings = {"llama-tiny", "llama-rope-linear", "llama-rope-llama3-legacy", "mistral-sliding", "qwen2", "qwen2-sliding",
            "gpt-bigcode-mqa", "gpt-bigcode-mha"})
    void float32MatchesCpuAndTransformers(String name) throws IOException {
        Path dir = Fixtures.llamaTiny().resolveSibling(name);
        List<Fixtures.Expected> expected = Fixtures.expected(dir);
        List<String> failures = new ArrayList<>();
        // The default paths (LoRA's cuBLAS runs by rank: none in these short prompts; the four-column fLoRA
        // kernels), then AUTO (fLoRA fused, LoRA gathered: no calibration here) twice more in the engine's
        // real steps: with cuBLAS runs from one row (every stretch of a prompt, and each decoding token
        // outside the graphs, through CudaLoraRuns.apply), the same runs in batched chunks of two rows (a run's odd
        // last row to the kernels, -Dflora.cuda.loraRunChunk), those with the shrink in 4 slices of the width
        // (-Dflora.cuda.loraChunkSplit; a width not in slices of whole 8 columns stays whole), the runs stacked (-Dflora.cuda.loraStack: here
        // only its fallback, the fixtures' float32 factors on a run's own products; CudaKernelsTest stacks 16-bit ones), and with neither (-Dflora.cuda.loraRuns=false
        // -Dflora.cuda.floraVectors=false: the kernels a column a thread).
        record Case(String label, AdapterStrategy strategy, int loraRunMin, int loraRunChunk, int loraChunkSplit, int loraStack, boolean floraVectors) {
        }
        for (Case variant : List.of(new Case("EXACT", AdapterStrategy.EXACT, 0, 0, 1, 0, true), new Case("AUTO", AdapterStrategy.AUTO, 0, 0, 1, 0, true),
                new Case("MERGED", AdapterStrategy.MERGED, 0, 0, 1, 0, true),
                new Case("AUTO with LoRA runs from one row", AdapterStrategy.AUTO, 1, 0, 1, 0, true),
                new Case("AUTO with LoRA runs from one row in batched chunks of 2", AdapterStrategy.AUTO, 1, 2, 1, 0, true),
                new Case("AUTO with LoRA runs from one row in batched chunks of 2, the shrink in 4 slices", AdapterStrategy.AUTO, 1, 2, 4, 0, true),
                new Case("AUTO with LoRA runs from one row stacked", AdapterStrategy.AUTO, 1, 0, 1, 4096, true),
                new Case("AUTO without LoRA runs or fLoRA vectors", AdapterStrategy.AUTO, -1, 0, 1, 0, false))) {
            AdapterStrategy strategy = variant.strategy();
            String label = variant.label();
            List<Result> onCpu = run(dir, expected, new CpuBackend(), strategy);
            List<Result> onGpu;
            try {
                cuda.loraRuns().use(variant.loraRunMin() >= 0, Math.max(0, variant.loraRunMin()));
                cuda.useFloraVectors(variant.floraVectors());
                cuda.loraRuns().useChunks(variant.loraRunChunk());
                cuda.loraRuns().useSplit(variant.loraChunkSplit());
                if (variant.loraStack() > 0) {
                    cuda.loraRuns().useStack(variant.loraStack());
                }
                onGpu = run(dir, expected, cuda, strategy);
            } finally {
                cuda.loraRuns().useDefaults();
                cuda.useFloraVectors(true);
            }
            double vsReference = 0;
            double vsCpu = 0;
            double cpuVsReference = 0;
            String worst = "";
            for (int i = 0; i < expected.size(); i++) {
                Fixtures.Expected e = expected.get(i);
                Result g = onGpu.get(i);
                Result c = onCpu.get(i);
                for (int t = 1; t < e.logprobs().length; t++) {
                    double d = Math.abs(g.promptLogprobs()[t] - e.logprobs()[t]);
                    if (d > vsReference) {
                        vsReference = d;
                        worst = e.id() + " token " + t;
                    }
                    vsCpu = Math.max(vsCpu, Math.abs(g.promptLogprobs()[t] - c.promptLogprobs()[t]));
                    cpuVsReference = Math.max(cpuVsReference, Math.abs(c.promptLogprobs()[t] - e.logprobs()[t]));
                }
                for (int s = 0; s < e.greedy().length && s < g.generated().length; s++) {
                    assertThat(g.generated()[s]).as("%s %s %s greedy step %d", name, label, e.id(), s).isEqualTo(e.greedy()[s]);
                    if (e.greedyMargins()[s] < NEAR_TIE) {
                        break;
                    }
                }
            }
            System.out.printf("%s %s: max |cuda - transformers| %.2e (%s), max |cuda - cpu| %.2e, max |cpu - transformers| %.2e%n",
                    name, label, vsReference, worst, vsCpu, cpuVsReference);
            // float32 paths that sum in different orders drift apart by about what the CPU's own distance
            // from transformers shows; 1e-4, or twice that distance where a fixture's log-probs are larger.
            double tolerance = Math.max(1e-4, 2 * cpuVsReference);
            if (vsReference > tolerance || vsCpu > tolerance) {
                failures.add(String.format("%s %s: max |cuda - transformers| %.2e at %s, max |cuda - cpu| %.2e", name, label,
                        vsReference, worst, vsCpu));
            }
        }
        assertThat(failures).as("float32 tolerance max(1e-4, 2 × |cpu - transformers|)").isEmpty();
    }

    /**
     * Decode steps replayed from CUDA graphs give the tokens and log-probabilities of steps run one kernel
     * at a time; also with batched products (-Dflora.cuda.batchedProducts), whose pointer arrays a
     * recording may not upload step by step (session 19: every decode graph's recording stopped on them).
     */
    @ParameterizedTest
    @CsvSource({"llama-tiny, llama-tiny, false", "qwen2-sliding, qwen2-sliding, false", "gpt-bigcode-mqa, gpt-bigcode-mqa, false",
        "llama-bf16, llama-tiny, true"}) // batched products take 16-bit weights (llama-tiny's prompts: the same vocabulary)
    void replayedDecodeStepsEqualDirectOnes(String name, String prompts, boolean batchedProducts) throws IOException {
        boolean before = cuda.batchedProducts();
        cuda.useBatchedProducts(batchedProducts);
        try {
            replayedDecodeSteps(name, prompts);
        } finally {
            cuda.useBatchedProducts(before);
        }
    }

    /**
     * Once eager steps have filled the batched products' pointer sets, a decode step recorded later still
     * keeps its own (session 23 on the H200: Llama-2-13B's figure 2, a run without adapters after long
     * adapted ones, stopped with "a step recorded without adapters uploaded data of its own").
     */
    @Test
    void decodeStepsRecordAfterEagerStepsFilledThePointerSets() throws IOException {
        boolean before = cuda.batchedProducts();
        cuda.useBatchedProducts(true);
        int limit = cuda.limitBatchedPointerSets(0);
        try {
            replayedDecodeSteps("llama-bf16", "llama-tiny"); // as replayedDecodeStepsEqualDirectOnes' batched case
        } finally {
            cuda.limitBatchedPointerSets(limit);
            cuda.useBatchedProducts(before);
        }
    }

    /**
     * The benches' KV cache goes by the cache type the backend keeps: a bf16 model's 16-bit cache on the
     * GPU, float32 on the CPU (session 28: sized for float32 on the GPU too, bench decode --compare's
     * engines took twice the cache they need and did not fit an 80 GB card).
     */
    @Test
    void benchKvCacheIsSizedInTheCacheType() throws IOException {
        ModelDirectory directory = ModelDirectory.open(Fixtures.llamaTiny().resolveSibling("llama-bf16").resolve("model"));
        CausalLM onGpu = Models.load(directory, cuda);
        CausalLM onCpu = Models.load(directory, new CpuBackend());
        long positions = 2L * onGpu.spec().layers() * onGpu.spec().kvWidth() * 4 * (100 + 32);
        assertThat(DecodeBench.kvBytesFor(onGpu, 4, 100)).isEqualTo(positions * 2);
        assertThat(DecodeBench.kvBytesFor(onCpu, 4, 100)).isEqualTo(positions * 4);
    }

    /** The fixture's model, generating after the prompts of the fixture named {@code prompts}. */
    private void replayedDecodeSteps(String name, String prompts) throws IOException {
        Path dir = Fixtures.llamaTiny().resolveSibling(name);
        ModelDirectory directory = ModelDirectory.open(dir.resolve("model"));
        CausalLM model = Models.load(directory, cuda);
        List<Request> requests = new ArrayList<>();
        List<Fixtures.Expected> expected = Fixtures.expected(Fixtures.llamaTiny().resolveSibling(prompts));
        for (int i = 0; i < expected.size(); i++) {
            // different lengths: sequences finish at different steps, so steps of many sizes are recorded
            requests.add(Request.withAdapter("r" + i, expected.get(i).tokens(), SamplingParams.greedy(3 + 2 * (i % 7), true), false, null));
        }
        Engine replaying = new Engine(model, EngineConfig.DEFAULT, directory.eosTokenIds());
        List<Result> replayed = replaying.run(requests, new Engine.Listener() { });
        Engine direct = new Engine(model, EngineConfig.DEFAULT.withStepGraphs(false), directory.eosTokenIds());
        List<Result> directly = direct.run(requests, new Engine.Listener() { });
        assertThat(replaying.replayedSteps()).as("steps replayed").isGreaterThan(5);
        assertThat(direct.replayedSteps()).isZero();
        assertSameGenerations(name, replayed, directly);
    }

    /**
     * Decode steps with adapters (each request its own, of every kind the fixture has) replayed from
     * graphs give what steps run one kernel at a time give: a replay only ever launches a recording of
     * the very same work, on the step's own adapter layouts.
     */
    @ParameterizedTest
    @ValueSource(strings = {"AUTO", "EXACT"})
    void replayedAdaptedDecodeStepsEqualDirectOnes(String strategyName) throws IOException {
        AdapterStrategy strategy = AdapterStrategy.valueOf(strategyName);
        Path dir = Fixtures.llamaTiny();
        ModelDirectory directory = ModelDirectory.open(dir.resolve("model"));
        CausalLM model = Models.load(directory, cuda);
        AdapterRegistry registry = new AdapterRegistry(8);
        registry.pin(strategy);
        List<String> names = new ArrayList<>();
        try (Stream<Path> list = Files.list(dir.resolve("adapters"))) {
            for (Path a : list.sorted().toList()) {
                names.add(a.getFileName().toString());
                registry.register(AdapterLoader.load(a.getFileName().toString(), a, model.linears(), cuda));
            }
        }
        List<Fixtures.Expected> expected = Fixtures.expected(dir);
        List<Request> requests = new ArrayList<>();
        for (int i = 0; i < 2 * expected.size(); i++) {
            // long enough for compositions to repeat (recorded at the second sighting, replayed after), finishing at different steps
            String adapter = i % (names.size() + 1) == names.size() ? null : names.get(i % (names.size() + 1));
            requests.add(Request.withAdapter("r" + i, expected.get(i % expected.size()).tokens(),
                    SamplingParams.greedy(6 + 3 * (i % 4), true), false, adapter));
        }
        Engine replaying = new Engine(model, EngineConfig.DEFAULT, directory.eosTokenIds(), registry);
        List<Result> replayed = replaying.run(requests, new Engine.Listener() { });
        Engine direct = new Engine(model, EngineConfig.DEFAULT.withStepGraphs(false), directory.eosTokenIds(), registry);
        List<Result> directly = direct.run(requests, new Engine.Listener() { });
        assertThat(replaying.replayedSteps()).as("steps replayed").isGreaterThan(5);
        assertSameGenerations(strategy.toString(), replayed, directly);
    }

    /** The same tokens, and log-probabilities within 1e-5 (a replay and a direct step may pick other product kernels). */
    private static void assertSameGenerations(String label, List<Result> replayed, List<Result> directly) {
        for (int i = 0; i < replayed.size(); i++) {
            assertThat(replayed.get(i).generated()).as(label + " request " + i).containsExactly(directly.get(i).generated());
            double[] a = replayed.get(i).generatedLogprobs();
            double[] b = directly.get(i).generatedLogprobs();
            for (int t = 0; t < a.length; t++) {
                assertThat(a[t]).as(label + " request " + i + " token " + t).isCloseTo(b[t], org.assertj.core.data.Offset.offset(1e-5));
            }
        }
    }

    static List<Result> run(Path dir, List<Fixtures.Expected> expected, Backend backend, AdapterStrategy strategy) throws IOException {
        ModelDirectory directory = ModelDirectory.open(dir.resolve("model"));
        CausalLM model = Models.load(directory, backend);
        {
            AdapterRegistry registry = new AdapterRegistry(8);
            registry.pin(strategy);
            Path adapters = dir.resolve("adapters");
            if (Files.isDirectory(adapters)) {
                try (Stream<Path> list = Files.list(adapters)) {
                    for (Path a : list.sorted().toList()) {
                        registry.register(AdapterLoader.load(a.getFileName().toString(), a, model.linears(), backend));
                    }
                }
            }
            List<Request> requests = new ArrayList<>();
            for (Fixtures.Expected e : expected) {
                requests.add(Request.withAdapter(e.id(), e.tokens(), SamplingParams.greedy(e.greedy().length, true), true, e.adapter()));
            }
            return new Engine(model, EngineConfig.DEFAULT, directory.eosTokenIds(), registry).run(requests, new Engine.Listener() { });
        }
    }
}
