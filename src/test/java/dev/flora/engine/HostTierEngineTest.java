package dev.flora.engine;

import dev.flora.Fixtures;
import dev.flora.adapter.Adapter;
import dev.flora.adapter.AdapterLoader;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.cpu.CpuBackend;
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The engine over a capped host tier: requests for adapters dropped from host memory wait while a
 * background thread reads them, the running batch goes on, and results are bit for bit those of a
 * run with every adapter in memory.
 */
class HostTierEngineTest {
    static final List<String> ADAPTERS = List.of("flora-all-r4", "flora-qk-r1", "ia3-kvd", "lora-all-r8", "lora-qv-r4",
            "lora-regex-bias", "lora-rslora-patterns");
    static PretrainedModel model;
    final List<String> readerThreads = Collections.synchronizedList(new ArrayList<>());
    /** Reads of these names wait until their latch opens. */
    final Map<String, CountDownLatch> gates = new ConcurrentHashMap<>();
    final CountDownLatch gatedReadStarted = new CountDownLatch(1);

    @BeforeAll
    static void load() {
        model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    Adapter read(String name, Path dir) {
        readerThreads.add(Thread.currentThread().getName());
        CountDownLatch gate = gates.get(name);
        if (gate != null) {
            gatedReadStarted.countDown();
            try {
                gate.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        return AdapterLoader.load(name, dir, model.model().linears(), model.model().backend());
    }

    /** A registry with every fixture adapter: all in memory, or at most {@code inHost} of them there. */
    AdapterRegistry registry(int resident, Integer inHost) {
        AdapterRegistry registry = inHost == null ? new AdapterRegistry(resident) : new AdapterRegistry(resident, inHost, this::read);
        registry.pin(AdapterStrategy.EXACT);
        for (String name : ADAPTERS) {
            registry.register(AdapterLoader.load(name, Fixtures.llamaTiny().resolve("adapters").resolve(name), model.model().linears(),
                    model.model().backend()));
        }
        return registry;
    }

    static List<Request> fixtureRequests(int greedy) {
        List<Request> requests = new ArrayList<>();
        for (Fixtures.Expected e : Fixtures.llamaTinyExpected()) {
            requests.add(Request.withAdapter(e.id(), e.tokens(), SamplingParams.greedy(greedy, true), true, e.adapter()));
        }
        return requests;
    }

    static void assertSame(Result got, Result expected) {
        assertThat(got.generated()).as(expected.id()).containsExactly(expected.generated());
        assertThat(got.generatedLogprobs()).as(expected.id()).containsExactly(expected.generatedLogprobs());
        assertThat(got.promptLogprobs()).as(expected.id()).containsExactly(expected.promptLogprobs());
    }

    /** Every fixture request (seven adapters and the base) with two adapters in host memory: the same bits as with all seven. */
    @Test
    void droppedAdaptersReadAgainGiveTheSameResultsBitForBit() {
        List<Request> requests = fixtureRequests(8);
        // Seeded shuffle: adapters are needed again after they were dropped.
        Collections.shuffle(requests, new java.util.Random(7));
        List<Result> allInMemory = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry(7, null))
                .run(requests, new Engine.Listener() { });
        AdapterRegistry tiered = registry(2, 2);
        Engine engine = new Engine(model.model(), EngineConfig.DEFAULT.withMaxBatchedTokens(96), model.eosTokenIds(), tiered);
        List<Result> results = engine.run(requests, new Engine.Listener() { });
        for (int i = 0; i < requests.size(); i++) {
            assertSame(results.get(i), allInMemory.get(i));
        }
        AdapterRegistry.HostStats stats = tiered.hostStats();
        assertThat(stats.loads()).as("adapters were read from disk again").isPositive();
        assertThat(stats.evictions()).isPositive();
        assertThat(stats.inHost()).isLessThanOrEqualTo(2);
        assertThat(stats.failures()).isZero();
        assertThat(readerThreads).isNotEmpty().allMatch("flora-adapter-loader"::equals);
        assertThat(tiered.referencesHeld()).isZero();
        assertThat(engine.freeBlocks()).isEqualTo(engine.totalBlocks());
    }

    /** While an adapter is read from disk (held back here), other requests are admitted and step to the end. */
    @Test
    void theBatchGoesOnWhileAnAdapterIsRead() throws Exception {
        AdapterRegistry tiered = registry(2, 2); // holds the last two registered: lora-regex-bias, lora-rslora-patterns
        CountDownLatch gate = new CountDownLatch(1);
        gates.put("lora-all-r8", gate);
        int[] prompt = Fixtures.llamaTinyExpected().getFirst().tokens();
        Request slow = Request.withAdapter("slow", prompt, SamplingParams.greedy(6, true), true, "lora-all-r8");
        Request base = new Request("base", prompt, SamplingParams.greedy(40, true), true);
        Request other = Request.withAdapter("other", prompt, SamplingParams.greedy(40, true), true, "lora-regex-bias");
        Engine engine = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), tiered);
        try (EngineLoop loop = new EngineLoop(engine, 16)) {
            CompletableFuture<Result> slowDone = EngineLoopTest.submit(loop, slow); // first in the queue
            CompletableFuture<Result> baseDone = EngineLoopTest.submit(loop, base);
            CompletableFuture<Result> otherDone = EngineLoopTest.submit(loop, other);
            // If the engine's thread did the read, it would wait on the gate and these would never finish.
            Result baseResult = baseDone.get(120, TimeUnit.SECONDS);
            Result otherResult = otherDone.get(120, TimeUnit.SECONDS);
            assertThat(gatedReadStarted.await(120, TimeUnit.SECONDS)).isTrue();
            assertThat(slowDone).isNotDone();
            assertThat(engine.steps()).isGreaterThanOrEqualTo(40);
            gate.countDown();
            Result slowResult = slowDone.get(120, TimeUnit.SECONDS);

            Engine reference = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry(7, null));
            List<Result> alone = reference.run(List.of(slow, base, other), new Engine.Listener() { });
            assertSame(slowResult, alone.get(0));
            assertSame(baseResult, alone.get(1));
            assertSame(otherResult, alone.get(2));
        }
        assertThat(readerThreads).containsExactly("flora-adapter-loader");
        assertThat(tiered.referencesHeld()).isZero();
        assertThat(engine.freeBlocks()).isEqualTo(engine.totalBlocks());
    }

    /** With a small KV cache, sequences are preempted and re-admitted with their adapter versions: still the same bits. */
    @Test
    void preemptionWithATightHostTierKeepsResults() {
        List<Request> requests = new ArrayList<>();
        java.util.SplittableRandom random = new java.util.SplittableRandom(11);
        for (int i = 0; i < 12; i++) {
            int[] prompt = random.ints(20 + random.nextInt(20), 3, 700).toArray();
            String adapter = i % 2 == 0 ? null : ADAPTERS.get(random.nextInt(ADAPTERS.size()));
            requests.add(Request.withAdapter("p" + i, prompt, SamplingParams.greedy(30, true), true, adapter));
        }
        List<Result> allInMemory = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry(7, null))
                .run(requests, new Engine.Listener() { });
        long perBlock = 2L * 3 * 16 * 32 * Float.BYTES;
        AdapterRegistry tiered = registry(2, 2);
        Engine engine = new Engine(model.model(), EngineConfig.DEFAULT.withKvCacheBytes(perBlock * 10), model.eosTokenIds(), tiered);
        List<Result> results = engine.run(requests, new Engine.Listener() { });
        for (int i = 0; i < requests.size(); i++) {
            assertSame(results.get(i), allInMemory.get(i));
        }
        assertThat(engine.preemptions()).as("the cache was too small: sequences were preempted").isPositive();
        assertThat(tiered.hostStats().loads()).isPositive();
        assertThat(tiered.referencesHeld()).isZero();
        assertThat(engine.freeBlocks()).isEqualTo(engine.totalBlocks());
    }
}
