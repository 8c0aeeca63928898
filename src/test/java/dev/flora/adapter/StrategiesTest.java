package dev.flora.adapter;

import dev.flora.Fixtures;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/** Every adapter strategy computes the exact strategy's function; pinned, it is batch-invariant bit for bit. */
class StrategiesTest {
    static PretrainedModel model;
    static Map<String, Path> dirs;
    static List<Request> random;

    @BeforeAll
    static void load() throws IOException {
        model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend());
        dirs = AdaptersTest.adapterDirs(Fixtures.llamaTiny());
        List<String> names = new ArrayList<>(dirs.keySet());
        names.add(null);
        SplittableRandom r = new SplittableRandom(77);
        random = new ArrayList<>();
        for (int i = 0; i < 14; i++) {
            int[] prompt = r.ints(1 + r.nextInt(30), 3, 700).toArray();
            List<AdapterRange> ranges = new ArrayList<>(List.of(new AdapterRange(0, names.get(r.nextInt(names.size())))));
            if (prompt.length > 8 && r.nextBoolean()) {
                ranges.add(new AdapterRange(4 + r.nextInt(prompt.length - 4), names.get(r.nextInt(names.size()))));
            }
            random.add(new Request("q" + i, prompt, SamplingParams.greedy(3, true), true, ranges));
        }
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static List<Result> run(AdapterStrategy strategy, List<Request> requests, int budget) {
        AdapterRegistry registry = AdaptersTest.registry(model, dirs, dirs.size());
        registry.pin(strategy);
        return new Engine(model.model(), EngineConfig.DEFAULT.withMaxBatchedTokens(budget), model.eosTokenIds(), registry)
                .run(requests, new Engine.Listener() { });
    }

    /** The automatic choice driven by measured costs that pick bmm and exact still computes the exact function. */
    @org.junit.jupiter.api.Test
    void autoWithACostModelComputesTheSameFunction() {
        List<Result> exact = run(AdapterStrategy.EXACT, random, 8192);
        AdapterRegistry registry = AdaptersTest.registry(model, dirs, dirs.size());
        registry.useCosts(CostModelTest.model());
        List<Result> auto = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry).run(random, new Engine.Listener() { });
        for (int i = 0; i < random.size(); i++) {
            for (int t = 1; t < exact.get(i).promptLogprobs().length; t++) {
                assertThat(Math.abs(auto.get(i).promptLogprobs()[t] - exact.get(i).promptLogprobs()[t]))
                        .isLessThanOrEqualTo(1e-5 * (1 + Math.abs(exact.get(i).promptLogprobs()[t])));
            }
        }
    }

    /** padForBmm makes every LoRA module's padded copies at its own rank ahead of the first step, and only LoRA's. */
    @org.junit.jupiter.api.Test
    void padForBmmPadsEveryLoraModuleAhead() {
        AdapterRegistry registry = AdaptersTest.registry(model, dirs, dirs.size());
        int loras = 0;
        for (AdapterVersion v : registry.adapters()) {
            for (var e : v.kept().modules().entrySet()) {
                if (e.getValue() instanceof AdapterModule.Lora lora) {
                    assertThat(PaddedLora.isPadded(lora, lora.rank(), model.model().linears().get(e.getKey()).weight().dtype())).isFalse();
                }
            }
        }
        registry.padForBmm(model.model());
        for (AdapterVersion v : registry.adapters()) {
            for (var e : v.kept().modules().entrySet()) {
                if (e.getValue() instanceof AdapterModule.Lora lora) {
                    assertThat(PaddedLora.isPadded(lora, lora.rank(), model.model().linears().get(e.getKey()).weight().dtype()))
                            .as("%s %s", v.name(), e.getKey()).isTrue();
                    loras++;
                }
            }
        }
        assertThat(loras).as("the fixtures hold LoRA adapters").isPositive();
        // the copies made ahead are the ones a step would have made: bmm's results bit for bit
        registry.pin(AdapterStrategy.BMM);
        List<Result> ahead = new Engine(model.model(), EngineConfig.DEFAULT.withMaxBatchedTokens(40), model.eosTokenIds(), registry)
                .run(random, new Engine.Listener() { });
        List<Result> inStep = run(AdapterStrategy.BMM, random, 40);
        for (int i = 0; i < random.size(); i++) {
            assertThat(ahead.get(i).generatedLogprobs()).containsExactly(inStep.get(i).generatedLogprobs());
            if (inStep.get(i).promptLogprobs() != null) {
                assertThat(ahead.get(i).promptLogprobs()).containsExactly(inStep.get(i).promptLogprobs());
            }
        }
    }

    @ParameterizedTest
    @EnumSource(AdapterStrategy.class)
    void fixturesPassUnderEveryStrategy(AdapterStrategy strategy) {
        List<Fixtures.Expected> expected = Fixtures.llamaTinyExpected();
        List<Request> requests = new ArrayList<>();
        for (Fixtures.Expected e : expected) {
            requests.add(Request.withAdapter(e.id(), e.tokens(), SamplingParams.greedy(8, true), true, e.adapter()));
        }
        List<Result> results = run(strategy, requests, 8192);
        for (int i = 0; i < expected.size(); i++) {
            Fixtures.Expected e = expected.get(i);
            for (int t = 1; t < e.logprobs().length; t++) {
                assertThat(Math.abs(results.get(i).promptLogprobs()[t] - e.logprobs()[t])).as("%s %s %d", strategy, e.id(), t).isLessThanOrEqualTo(1e-4);
            }
            for (int g = 0; g < 8; g++) {
                assertThat(results.get(i).generated()[g]).isEqualTo(e.greedy()[g]);
                if (e.greedyMargins()[g] < 2e-4) {
                    break;
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(AdapterStrategy.class)
    void equalsTheExactStrategyAndIsBatchInvariantWhenPinned(AdapterStrategy strategy) {
        List<Result> exact = run(AdapterStrategy.EXACT, random, 8192);
        List<Result> batched = run(strategy, random, 40);
        for (int i = 0; i < random.size(); i++) {
            Result e = exact.get(i);
            Result b = batched.get(i);
            if (e.promptLogprobs() != null) {
                for (int t = 1; t < e.promptLogprobs().length; t++) {
                    assertThat(Math.abs(b.promptLogprobs()[t] - e.promptLogprobs()[t]))
                            .as("%s %s %d", strategy, random.get(i).id(), t).isLessThanOrEqualTo(1e-5 * (1 + Math.abs(e.promptLogprobs()[t])));
                }
            }
            Result alone = run(strategy, List.of(random.get(i)), 8192).getFirst();
            assertThat(b.generated()).containsExactly(alone.generated());
            assertThat(b.generatedLogprobs()).containsExactly(alone.generatedLogprobs());
            if (alone.promptLogprobs() != null) {
                assertThat(b.promptLogprobs()).as("%s %s alone = batched", strategy, random.get(i).id()).containsExactly(alone.promptLogprobs());
            }
        }
    }
}
