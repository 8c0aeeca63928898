package dev.flora.model;

import dev.flora.Fixtures;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/** Every base-model request of the llama-tiny fixture against transformers' float32 outputs. */
class LlamaTinyFixtureTest {
    /** A greedy step whose top-2 margin is below this may legitimately pick the other token. */
    static final double NEAR_TIE = 2e-4;
    static PretrainedModel model;

    @BeforeAll
    static void load() {
        model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @Test
    void baseRequestsMatchTransformersInOneBatch() {
        List<Fixtures.Expected> expected = Fixtures.llamaTinyExpected().stream().filter(e -> e.adapter() == null).toList();
        assertThat(expected).hasSizeGreaterThanOrEqualTo(4);
        List<Request> requests = new ArrayList<>();
        for (Fixtures.Expected e : expected) {
            int[] tokens = model.tokenizer().encode(e.prompt(), true);
            assertThat(tokens).as("tokens of %s", e.id()).containsExactly(e.tokens());
            requests.add(new Request(e.id(), tokens, SamplingParams.greedy(8, true), true));
        }
        Engine engine = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds());
        List<Result> results = engine.run(requests, new Engine.Listener() { });
        double worst = 0;
        for (int i = 0; i < expected.size(); i++) {
            Fixtures.Expected e = expected.get(i);
            Result r = results.get(i);
            assertThat(r.promptLogprobs()[0]).isNaN();
            for (int t = 1; t < e.logprobs().length; t++) {
                double diff = Math.abs(r.promptLogprobs()[t] - e.logprobs()[t]);
                worst = Math.max(worst, diff);
                assertThat(diff).as("%s token %d", e.id(), t).isLessThanOrEqualTo(1e-4);
            }
            assertThat(r.generated()).hasSize(8);
            for (int g = 0; g < 8; g++) {
                assertThat(r.generated()[g]).as("%s greedy step %d", e.id(), g).isEqualTo(e.greedy()[g]);
                if (e.greedyMargins()[g] < NEAR_TIE) {
                    break; // past a near-tie, a different continuation is not an error
                }
            }
        }
        assertThat(worst).isLessThan(1e-4);
    }

    @Test
    void tiedEmbeddingsAndContextAreReadFromConfig() {
        ModelSpec spec = model.model().spec();
        assertThat(spec.vocabSize()).isEqualTo(700);
        assertThat(spec.maxContext()).isEqualTo(512);
        assertThat(spec.kvWidth()).isEqualTo(2 * 16);
        assertThat(model.eosTokenIds()).containsExactly(2);
    }
}
