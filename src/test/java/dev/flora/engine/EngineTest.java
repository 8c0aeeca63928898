package dev.flora.engine;

import dev.flora.FloraException;
import dev.flora.Fixtures;
import dev.flora.cpu.CpuBackend;
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class EngineTest {
    static PretrainedModel model;

    @BeforeAll
    static void load() {
        model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private Engine engine() {
        return new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds());
    }

    @Test
    void refusesWhatCouldNeverRun() {
        Engine engine = engine();
        assertThatThrownBy(() -> engine.submit(new Request("empty", new int[0], SamplingParams.greedy(1, false), false)))
                .isInstanceOf(FloraException.class).hasMessageContaining("no tokens");
        assertThatThrownBy(() -> engine.submit(new Request("long", new int[513], SamplingParams.greedy(1, false), false)))
                .isInstanceOf(FloraException.class).hasMessageContaining("513 tokens").hasMessageContaining("context of 512");
        assertThatThrownBy(() -> engine.submit(new Request("oov", new int[] {1, 700}, SamplingParams.greedy(1, false), false)))
                .isInstanceOf(FloraException.class).hasMessageContaining("token id 700");
        engine.submit(new Request("same", new int[] {1, 5}, SamplingParams.greedy(1, false), false));
        assertThatThrownBy(() -> engine.submit(new Request("same", new int[] {1, 5}, SamplingParams.greedy(1, false), false)))
                .isInstanceOf(FloraException.class).hasMessageContaining("already in use");
        Engine tiny = new Engine(model.model(), EngineConfig.DEFAULT.withKvCacheBytes(2L * 3 * 16 * 32 * 4), model.eosTokenIds());
        assertThatThrownBy(() -> tiny.submit(new Request("big", new int[40], SamplingParams.greedy(1, false), false)))
                .isInstanceOf(FloraException.class).hasMessageContaining("KV-cache blocks");
    }

    @Test
    void zeroMaxTokensOnlyScores() {
        Result r = engine().run(List.of(new Request("s", new int[] {1, 300, 301, 302}, SamplingParams.greedy(0, true), true)),
                new Engine.Listener() { }).getFirst();
        assertThat(r.generated()).isEmpty();
        assertThat(r.promptLogprobs()).hasSize(4);
        assertThat(r.promptLogprobs()[1]).isNegative();
        assertThat(r.finishReason()).isEqualTo(FinishReason.LENGTH);
    }

    @Test
    void stopsAtEosUnlessIgnored() {
        // Make EOS the model's greedy choice by declaring the first greedy token an end-of-sequence token.
        int[] prompt = {1, 300, 301, 302};
        Result free = engine().run(List.of(new Request("a", prompt, SamplingParams.greedy(5, false), false)), new Engine.Listener() { }).getFirst();
        int first = free.generated()[0];
        Engine stopping = new Engine(model.model(), EngineConfig.DEFAULT, Set.of(first));
        Result stopped = stopping.run(List.of(new Request("b", prompt, SamplingParams.greedy(5, false), false)), new Engine.Listener() { }).getFirst();
        assertThat(stopped.generated()).containsExactly(first);
        assertThat(stopped.finishReason()).isEqualTo(FinishReason.STOP);
        Engine ignoring = new Engine(model.model(), EngineConfig.DEFAULT, Set.of(first));
        Result ignored = ignoring.run(List.of(new Request("c", prompt, SamplingParams.greedy(5, true), false)), new Engine.Listener() { }).getFirst();
        assertThat(ignored.generated()).hasSize(5).containsExactly(free.generated());
        SamplingParams withStop = new SamplingParams(0, 0, 1, null, 5, false, Set.of(free.generated()[1]));
        Result stopToken = engine().run(List.of(new Request("d", prompt, withStop, false)), new Engine.Listener() { }).getFirst();
        assertThat(stopToken.generated()).containsExactly(free.generated()[0], free.generated()[1]);
        assertThat(stopToken.finishReason()).isEqualTo(FinishReason.STOP);
    }

    @Test
    void generationStopsAtTheEndOfTheContext() {
        int[] prompt = new int[510];
        java.util.Arrays.fill(prompt, 300);
        Result r = engine().run(List.of(new Request("edge", prompt, SamplingParams.greedy(10, true), false)), new Engine.Listener() { }).getFirst();
        assertThat(r.generated()).hasSize(2);
        assertThat(r.finishReason()).isEqualTo(FinishReason.LENGTH);
    }

    @Test
    void listenerSeesEveryTokenInOrder() {
        List<Integer> seen = new java.util.ArrayList<>();
        Result r = engine().run(List.of(new Request("l", new int[] {1, 400}, SamplingParams.greedy(4, true), false)), new Engine.Listener() {
            @Override
            public void onToken(String requestId, int token, double logprob) {
                seen.add(token);
            }
        }).getFirst();
        assertThat(seen).containsExactly(java.util.Arrays.stream(r.generated()).boxed().toArray(Integer[]::new));
        for (double lp : r.generatedLogprobs()) {
            assertThat(lp).isNegative();
        }
    }
}
