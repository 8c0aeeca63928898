package dev.flora.model;

import dev.flora.Fixtures;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Every architecture against transformers' own float32 outputs (fixtures made by
 * tools/reference/make_references.py): base-model requests in one batch, and each alone.
 */
class ReferenceFixturesTest {
    static final double NEAR_TIE = 2e-4;

    @ParameterizedTest
    @ValueSource(strings = {"llama-rope-linear", "llama-rope-llama3-legacy", "mistral-sliding", "qwen2", "qwen2-sliding",
            "gpt-bigcode-mqa", "gpt-bigcode-mha"})
    void baseRequestsMatchTransformers(String name) {
        java.nio.file.Path dir = Fixtures.llamaTiny().resolveSibling(name);
        List<Fixtures.Expected> expected = Fixtures.expected(dir).stream().filter(e -> e.adapter() == null).toList();
        assertThat(expected).hasSize(5);
        try (PretrainedModel model = PretrainedModel.load(dir.resolve("model"), new CpuBackend())) {
            List<Request> requests = new ArrayList<>();
            for (Fixtures.Expected e : expected) {
                int[] tokens = model.tokenizer().encode(e.prompt(), true);
                assertThat(tokens).as("tokens of %s", e.id()).containsExactly(e.tokens());
                requests.add(new Request(e.id(), tokens, SamplingParams.greedy(8, true), true));
            }
            List<Result> batched = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds()).run(requests, new Engine.Listener() { });
            for (int i = 0; i < expected.size(); i++) {
                Fixtures.Expected e = expected.get(i);
                Result r = batched.get(i);
                for (int t = 1; t < e.logprobs().length; t++) {
                    assertThat(Math.abs(r.promptLogprobs()[t] - e.logprobs()[t])).as("%s %s token %d", name, e.id(), t).isLessThanOrEqualTo(1e-4);
                }
                for (int g = 0; g < 8; g++) {
                    assertThat(r.generated()[g]).as("%s %s greedy step %d", name, e.id(), g).isEqualTo(e.greedy()[g]);
                    if (e.greedyMargins()[g] < NEAR_TIE) {
                        break;
                    }
                }
                Result alone = new Engine(model.model(), EngineConfig.DEFAULT.withMaxBatchedTokens(5), model.eosTokenIds())
                        .run(List.of(requests.get(i)), new Engine.Listener() { }).getFirst();
                assertThat(alone.promptLogprobs()).as("%s alone and chunked = batched", e.id()).containsExactly(r.promptLogprobs());
                assertThat(alone.generated()).containsExactly(r.generated());
            }
        }
    }
}
