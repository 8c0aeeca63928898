package dev.flora.adapter;

import dev.flora.Fixtures;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.model.PretrainedModel;
import dev.flora.model.ReferenceLlama;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/** Per-request adapters of every kind, mixed in one batch, against transformers + PEFT and a float64 reference. */
class AdaptersTest {
    static final double NEAR_TIE = 2e-4;

    static Map<String, Path> adapterDirs(Path fixture) throws IOException {
        Map<String, Path> dirs = new LinkedHashMap<>();
        try (Stream<Path> list = Files.list(fixture.resolve("adapters"))) {
            list.sorted().forEach(p -> dirs.put(p.getFileName().toString(), p));
        }
        return dirs;
    }

    static AdapterRegistry registry(PretrainedModel model, Map<String, Path> dirs, int resident) {
        AdapterRegistry registry = new AdapterRegistry(resident);
        dirs.forEach((name, dir) -> registry.register(AdapterLoader.load(name, dir, model.model().linears(), model.model().backend())));
        return registry;
    }

    /** Every request of a fixture (base and every adapter) in ONE run, against transformers + PEFT. */
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen2", "gpt-bigcode-mqa"})
    void allRequestsOfAFixtureInOneBatch(String name) throws IOException {
        Path fixture = Fixtures.llamaTiny().resolveSibling(name);
        Map<String, Path> dirs = adapterDirs(fixture);
        assertThat(dirs).hasSizeGreaterThanOrEqualTo(5);
        List<Fixtures.Expected> expected = Fixtures.expected(fixture);
        try (PretrainedModel model = PretrainedModel.load(fixture.resolve("model"), new CpuBackend())) {
            AdapterRegistry registry = registry(model, dirs, dirs.size());
            List<Request> requests = new ArrayList<>();
            for (Fixtures.Expected e : expected) {
                int[] tokens = model.tokenizer().encode(e.prompt(), true);
                assertThat(tokens).containsExactly(e.tokens());
                requests.add(Request.withAdapter(e.id(), tokens, SamplingParams.greedy(8, true), true, e.adapter()));
            }
            Engine engine = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry);
            List<Result> results = engine.run(requests, new Engine.Listener() { });
            assertThat(engine.adapters().referencesHeld()).isZero();
            for (int i = 0; i < expected.size(); i++) {
                Fixtures.Expected e = expected.get(i);
                Result r = results.get(i);
                for (int t = 1; t < e.logprobs().length; t++) {
                    assertThat(Math.abs(r.promptLogprobs()[t] - e.logprobs()[t])).as("%s %s token %d", name, e.id(), t).isLessThanOrEqualTo(1e-4);
                }
                for (int g = 0; g < 8; g++) {
                    assertThat(r.generated()[g]).as("%s %s greedy %d", name, e.id(), g).isEqualTo(e.greedy()[g]);
                    if (e.greedyMargins()[g] < NEAR_TIE) {
                        break;
                    }
                }
            }
        }
    }

    /** Several adapters in one sequence, against one causal float64 forward choosing each token's adapter. */
    @Test
    void rangesMatchThePerTokenReference() throws IOException {
        Path fixture = Fixtures.llamaTiny();
        Map<String, Path> dirs = adapterDirs(fixture);
        dirs.keySet().removeIf(n -> n.contains("rslora") || n.contains("regex")); // the reference reads plain configs only
        int[] prompt = Fixtures.llamaTinyExpected().getFirst().tokens(); // 46 tokens
        List<AdapterRange> ranges = List.of(new AdapterRange(0, "lora-qv-r4"), new AdapterRange(9, "flora-all-r4"),
                new AdapterRange(20, null), new AdapterRange(27, "ia3-kvd"), new AdapterRange(35, "lora-all-r8"));
        ReferenceLlama.Output reference = ReferenceLlama.load(fixture.resolve("model"))
                .forward(prompt, new ReferenceAdapters(dirs, ranges));
        try (PretrainedModel model = PretrainedModel.load(fixture.resolve("model"), new CpuBackend())) {
            AdapterRegistry registry = registry(model, dirs, 5);
            Engine engine = new Engine(model.model(), EngineConfig.DEFAULT.withMaxBatchedTokens(13), model.eosTokenIds(), registry);
            Result r = engine.run(List.of(new Request("ranges", prompt, SamplingParams.greedy(1, true), true, ranges)),
                    new Engine.Listener() { }).getFirst();
            double worst = 0;
            for (int t = 1; t < prompt.length; t++) {
                worst = Math.max(worst, Math.abs(r.promptLogprobs()[t] - reference.logprobs()[t]));
            }
            assertThat(worst).isLessThanOrEqualTo(1e-4);
            // And it is not the single-adapter result: the ranges really switched adapters.
            Result single = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry)
                    .run(List.of(Request.withAdapter("single", prompt, SamplingParams.greedy(1, true), true, "lora-qv-r4")), new Engine.Listener() { })
                    .getFirst();
            assertThat(Math.abs(single.promptLogprobs()[40] - r.promptLogprobs()[40])).isGreaterThan(1e-3);
            // Before the first switch, both are the same computation, bit for bit.
            for (int t = 1; t <= 9; t++) {
                assertThat(r.promptLogprobs()[t]).as("position %d", t).isEqualTo(single.promptLogprobs()[t]);
            }
        }
    }

    /** Seeded random batches of mixed kinds, ranks and the base, in random orders: batched = alone, bit for bit. */
    @Test
    void randomMixedBatchesEqualEachRequestAlone() throws IOException {
        Path fixture = Fixtures.llamaTiny();
        Map<String, Path> dirs = adapterDirs(fixture);
        List<String> names = new ArrayList<>(dirs.keySet());
        names.add(null);
        try (PretrainedModel model = PretrainedModel.load(fixture.resolve("model"), new CpuBackend())) {
            AdapterRegistry all = registry(model, dirs, dirs.size());
            SplittableRandom random = new SplittableRandom(2026);
            for (int round = 0; round < 3; round++) {
                List<Request> requests = new ArrayList<>();
                for (int i = 0; i < 10; i++) {
                    int[] prompt = random.ints(1 + random.nextInt(40), 3, 700).toArray();
                    List<AdapterRange> ranges = new ArrayList<>();
                    ranges.add(new AdapterRange(0, names.get(random.nextInt(names.size()))));
                    if (prompt.length > 10 && random.nextBoolean()) {
                        ranges.add(new AdapterRange(5 + random.nextInt(prompt.length - 5), names.get(random.nextInt(names.size()))));
                    }
                    requests.add(new Request("r" + round + "-" + i, prompt, SamplingParams.greedy(4, true), random.nextBoolean(), ranges));
                }
                Collections.shuffle(requests, new java.util.Random(round));
                List<Result> batched = new Engine(model.model(), EngineConfig.DEFAULT.withMaxBatchedTokens(64), model.eosTokenIds(), all)
                        .run(requests, new Engine.Listener() { });
                // Two resident slots only: requests wait for slots, results must not change.
                AdapterRegistry two = registry(model, dirs, 2);
                List<Result> squeezed = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), two).run(requests, new Engine.Listener() { });
                assertThat(two.referencesHeld()).isZero();
                for (int i = 0; i < requests.size(); i++) {
                    Result alone = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), all)
                            .run(List.of(requests.get(i)), new Engine.Listener() { }).getFirst();
                    for (Result other : List.of(batched.get(i), squeezed.get(i))) {
                        assertThat(other.generated()).as(requests.get(i).toString()).containsExactly(alone.generated());
                        assertThat(other.generatedLogprobs()).containsExactly(alone.generatedLogprobs());
                        if (alone.promptLogprobs() != null) {
                            assertThat(other.promptLogprobs()).containsExactly(alone.promptLogprobs());
                        }
                    }
                }
            }
        }
    }
}
