package dev.flora.engine;

import dev.flora.Fixtures;
import dev.flora.cpu.CpuBackend;
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A request's results do not depend on what shares its steps: alone, batched with others, with
 * its prompt chunked over several steps, or queued behind a cap on running sequences — bit for bit.
 */
class BatchInvarianceTest {
    static PretrainedModel model;
    static List<Request> requests;

    @BeforeAll
    static void load() {
        model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend());
        requests = new ArrayList<>();
        SplittableRandom random = new SplittableRandom(7);
        int i = 0;
        for (Fixtures.Expected e : Fixtures.llamaTinyExpected()) {
            if (e.adapter() == null) {
                requests.add(new Request("fixture-" + i++, e.tokens(), SamplingParams.greedy(6, true), true));
            }
        }
        for (int r = 0; r < 5; r++) {
            int[] prompt = random.ints(1 + random.nextInt(70), 3, 700).toArray();
            // Some with penalties and a min_tokens ban, which change the logits a sequence samples from.
            SamplingParams sampling = new SamplingParams(0.9, r % 2 == 0 ? 0 : 50, r % 3 == 0 ? 1.0 : 0.9, 100L + r, 5 + r, true, Set.of(),
                    r % 2, 0, r % 2 == 0 ? 0 : 0.7, r % 3 == 0 ? 0 : -0.4, r == 4 ? 1.3 : 1);
            requests.add(new Request("random-" + r, prompt, sampling, r % 2 == 0));
        }
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static List<Result> run(EngineConfig config, List<Request> batch) {
        return new Engine(model.model(), config, model.eosTokenIds()).run(batch, new Engine.Listener() { });
    }

    private static List<Result> alone() {
        List<Result> out = new ArrayList<>();
        for (Request r : requests) {
            out.addAll(run(EngineConfig.DEFAULT, List.of(r)));
        }
        return out;
    }

    private static void assertIdentical(List<Result> actual, List<Result> expected) {
        assertThat(actual).hasSameSizeAs(expected);
        for (int i = 0; i < expected.size(); i++) {
            Result a = actual.get(i);
            Result e = expected.get(i);
            assertThat(a.id()).isEqualTo(e.id());
            assertThat(a.generated()).as("generated tokens of %s", e.id()).containsExactly(e.generated());
            assertThat(bits(a.generatedLogprobs())).as("generated logprobs of %s", e.id()).containsExactly(bits(e.generatedLogprobs()));
            if (e.promptLogprobs() != null) {
                assertThat(bits(a.promptLogprobs())).as("prompt logprobs of %s", e.id()).containsExactly(bits(e.promptLogprobs()));
            } else {
                assertThat(a.promptLogprobs()).isNull();
            }
            assertThat(a.finishReason()).isEqualTo(e.finishReason());
        }
    }

    private static long[] bits(double[] values) {
        long[] out = new long[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = Double.doubleToRawLongBits(values[i]);
        }
        return out;
    }

    @Test
    void batchedEqualsAlone() {
        assertIdentical(run(EngineConfig.DEFAULT, requests), alone());
    }

    @Test
    void chunkedPrefillEqualsWholePrefill() {
        List<Result> reference = alone();
        for (int budget : new int[] {1, 7, 16, 33}) {
            assertIdentical(run(EngineConfig.DEFAULT.withMaxBatchedTokens(budget), requests), reference);
        }
    }

    @Test
    void queueingBehindASequenceCapChangesNothing() {
        assertIdentical(run(EngineConfig.DEFAULT.withMaxSequences(2).withMaxBatchedTokens(20), requests), alone());
    }

    @Test
    void separatePrefillAndDecodeStepsChangeNothing() {
        assertIdentical(run(EngineConfig.DEFAULT.withSeparatePrefillDecode(true).withMaxBatchedTokens(24), requests), alone());
    }

    @Test
    void reversedOrderChangesNothing() {
        List<Request> reversed = new ArrayList<>(requests);
        java.util.Collections.reverse(reversed);
        List<Result> results = new ArrayList<>(run(EngineConfig.DEFAULT, reversed));
        java.util.Collections.reverse(results);
        assertIdentical(results, alone());
    }

    @Test
    void everyBlockIsReturned() {
        Engine engine = new Engine(model.model(), EngineConfig.DEFAULT.withMaxBatchedTokens(13), model.eosTokenIds());
        int total = engine.totalBlocks();
        engine.run(requests, new Engine.Listener() { });
        assertThat(engine.freeBlocks()).isEqualTo(total);
        assertThat(engine.hasWork()).isFalse();
    }

    @Test
    void aSmallCacheRunsRequestsInTurnWithTheSameResults() {
        // Room for about two sequences at a time: the rest wait for blocks instead of failing.
        long perBlock = 2L * 3 * 16 * 32 * Float.BYTES;
        EngineConfig small = EngineConfig.DEFAULT.withKvCacheBytes(perBlock * 12);
        assertIdentical(run(small, requests), alone());
    }
}
