package dev.flora.engine;

import dev.flora.Fixtures;
import dev.flora.cpu.CpuBackend;
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class EngineLoopTest {
    static PretrainedModel model;

    @BeforeAll
    static void load() {
        model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static CompletableFuture<Result> submit(EngineLoop loop, Request r) {
        CompletableFuture<Result> f = new CompletableFuture<>();
        loop.submit(r, new Engine.Listener() {
            @Override
            public void onFinish(Result result) {
                f.complete(result);
            }

            @Override
            public void onError(String requestId, RuntimeException error) {
                f.completeExceptionally(error);
            }
        });
        return f;
    }

    /** A cache too small for the load: sequences are preempted and recomputed, and all complete, each as it would alone. */
    @Test
    void aSmallCacheServesEveryRequestCorrectly() throws Exception {
        long perBlock = 2L * 3 * 16 * 32 * Float.BYTES;
        Engine engine = new Engine(model.model(), EngineConfig.DEFAULT.withKvCacheBytes(perBlock * 10), model.eosTokenIds());
        try (EngineLoop loop = new EngineLoop(engine, 100)) {
            List<Request> requests = new ArrayList<>();
            List<CompletableFuture<Result>> futures = new ArrayList<>();
            for (int i = 0; i < 12; i++) {
                int[] prompt = new java.util.SplittableRandom(i).ints(20 + i, 3, 700).toArray();
                Request r = new Request("s" + i, prompt, SamplingParams.greedy(30, true), true);
                requests.add(r);
                futures.add(submit(loop, r));
            }
            for (int i = 0; i < requests.size(); i++) {
                Result got = futures.get(i).get(60, TimeUnit.SECONDS);
                Result alone = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds()).run(List.of(requests.get(i)), new Engine.Listener() { }).getFirst();
                assertThat(got.generated()).containsExactly(alone.generated());
                assertThat(got.promptLogprobs()).containsExactly(alone.promptLogprobs());
            }
            assertThat(engine.freeBlocks()).isEqualTo(engine.totalBlocks());
            assertThat(engine.preemptions()).as("the cache was too small: some sequences were preempted and recomputed").isPositive();
        }
    }

    @Test
    void cancellationFreesBlocksAtOnce() throws Exception {
        Engine engine = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds());
        try (EngineLoop loop = new EngineLoop(engine, 10)) {
            CountDownLatch started = new CountDownLatch(3);
            CompletableFuture<Result> never = new CompletableFuture<>();
            loop.submit(new Request("long", new int[] {1, 300, 301}, SamplingParams.greedy(480, true), false), new Engine.Listener() {
                @Override
                public void onToken(String requestId, int token, double logprob) {
                    started.countDown();
                }

                @Override
                public void onFinish(Result result) {
                    never.complete(result);
                }
            });
            assertThat(started.await(30, TimeUnit.SECONDS)).isTrue();
            assertThat(engine.freeBlocks()).isLessThan(engine.totalBlocks());
            loop.cancel("long");
            Result after = submit(loop, new Request("after", new int[] {1, 300}, SamplingParams.greedy(2, true), false)).get(30, TimeUnit.SECONDS);
            assertThat(after.generated()).hasSize(2);
            assertThat(engine.freeBlocks()).isEqualTo(engine.totalBlocks());
            assertThat(never).isNotDone();
        }
    }

    @Test
    void aFullQueueIsRefusedAndBadRequestsFailAtOnce() throws Exception {
        Engine engine = new Engine(model.model(), EngineConfig.DEFAULT.withMaxSequences(1), model.eosTokenIds());
        try (EngineLoop loop = new EngineLoop(engine, 2)) {
            List<CompletableFuture<Result>> futures = new ArrayList<>();
            int refused = 0;
            for (int i = 0; i < 8; i++) {
                try {
                    futures.add(submit(loop, new Request("q" + i, new int[] {1, 300 + i}, SamplingParams.greedy(200, true), false)));
                } catch (EngineLoop.Busy e) {
                    refused++;
                    assertThat(e.getMessage()).contains("busy");
                }
            }
            assertThat(refused).isGreaterThan(0);
            for (var f : futures) {
                assertThat(f.get(60, TimeUnit.SECONDS).generated()).hasSize(200);
            }
            assertThatThrownBy(() -> loop.submit(new Request("bad", new int[0], SamplingParams.greedy(1, true), false), new Engine.Listener() { }))
                    .hasMessageContaining("no tokens");
        }
    }
}
