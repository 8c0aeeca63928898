package dev.flora.engine;

import dev.flora.Fixtures;
import dev.flora.adapter.AdapterLoader;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.backend.Backend;
import dev.flora.backend.StepRecorder;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.cpu.CpuBackend;
import dev.flora.model.CausalLM;
import dev.flora.model.ModelDirectory;
import dev.flora.model.Models;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The engine's side of CUDA graphs, on the CPU: a backend whose recorder "replays" a step by running
 * the recorded work again on the new (padded) step data, as a graph does. Decode steps padded to the
 * recorded sizes give bit for bit what steps run as they come give (the CPU is batch-invariant, and
 * padding writes no cache slot), and adapted steps only through the recorder's replayAdapted.
 */
class DecodeGraphsTest {

    /** Records the sizes asked for and counts replays; a replay runs the work on the replayed step's data. */
    static final class RerunningRecorder implements StepRecorder {
        final TreeSet<Integer> recordedSizes = new TreeSet<>();
        int replays;

        @Override
        public Recording record(TokenBatch batch, int maxBlocks, java.util.function.Function<TokenBatch, Tensor> work) {
            assertThat(recordedSizes.add(batch.numTokens())).as("size " + batch.numTokens() + " recorded once").isTrue();
            return replayed -> {
                assertThat(replayed.numTokens()).isEqualTo(batch.numTokens());
                for (int[] table : replayed.blockTables()) {
                    assertThat(table.length).isLessThanOrEqualTo(maxBlocks);
                }
                replays++;
                return work.apply(replayed);
            };
        }
    }

    /** The CPU backend with a step recorder. */
    static Backend recording(CpuBackend cpu, StepRecorder recorder) {
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, (proxy, method, args) -> {
            if (method.getName().equals("stepRecorder")) {
                return recorder;
            }
            try {
                return method.invoke(cpu, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        });
    }

    private static List<Request> requests(String adapter) {
        List<Request> requests = new ArrayList<>();
        List<Fixtures.Expected> expected = Fixtures.llamaTinyExpected();
        for (int i = 0; i < expected.size(); i++) {
            // different lengths: sequences finish at different steps, so steps of many sizes come by
            requests.add(Request.withAdapter("r" + i, expected.get(i).tokens(), SamplingParams.greedy(2 + 3 * (i % 5), true), false,
                    i % 3 == 0 ? adapter : null));
        }
        return requests;
    }

    private static List<Result> run(Backend backend, boolean graphs, String adapter) throws IOException {
        ModelDirectory directory = ModelDirectory.open(Fixtures.llamaTinyModel());
        CausalLM model = Models.load(directory, backend);
        AdapterRegistry registry = new AdapterRegistry(4);
        if (adapter != null) {
            Path dir = Fixtures.llamaTiny().resolve("adapters").resolve(adapter);
            registry.register(AdapterLoader.load(adapter, dir, model.linears(), backend));
        }
        Engine engine = new Engine(model, EngineConfig.DEFAULT.withStepGraphs(graphs), directory.eosTokenIds(), registry);
        List<Result> results = engine.run(requests(adapter), new Engine.Listener() { });
        if (!graphs || !(backend.stepRecorder() instanceof RerunningRecorder || backend.stepRecorder() instanceof AdaptedRerunningRecorder)) {
            assertThat(engine.replayedSteps()).isZero();
        }
        return results;
    }

    private static void assertSame(List<Result> a, List<Result> b) {
        assertThat(a).hasSameSizeAs(b);
        for (int i = 0; i < a.size(); i++) {
            assertThat(a.get(i).generated()).as("request " + i).containsExactly(b.get(i).generated());
            assertThat(a.get(i).generatedLogprobs()).as("request " + i).containsExactly(b.get(i).generatedLogprobs());
        }
    }

    @Test
    void paddedReplayedDecodeStepsEqualStepsRunAsTheyCome() throws IOException {
        RerunningRecorder recorder = new RerunningRecorder();
        List<Result> replayed = run(recording(new CpuBackend(), recorder), true, null);
        List<Result> direct = run(new CpuBackend(), false, null);
        assertSame(replayed, direct);
        assertThat(recorder.replays).as("decode steps replayed").isGreaterThan(5);
        assertThat(recorder.recordedSizes).as("sizes recorded").hasSizeGreaterThan(2)
                .allMatch(size -> Set.of(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40, 48, 56, 64).contains(size));
    }

    /** Recording every size up front (as vLLM does at start-up) leaves nothing to record during the run, and changes no result. */
    @Test
    void decodeStepsRecordedUpFrontAreReplayedWithTheSameResults() throws IOException {
        RerunningRecorder recorder = new RerunningRecorder();
        Backend backend = recording(new CpuBackend(), recorder);
        ModelDirectory directory = ModelDirectory.open(Fixtures.llamaTinyModel());
        CausalLM model = Models.load(directory, backend);
        EngineConfig config = EngineConfig.DEFAULT.withMaxSequences(10);
        Engine engine = new Engine(model, config, directory.eosTokenIds(), new AdapterRegistry(4));
        assertThat(engine.recordDecodeSteps()).as("sizes up to 12, the one 10 sequences pad to").isEqualTo(7);
        assertThat(recorder.recordedSizes).containsExactly(1, 2, 3, 4, 6, 8, 12);
        assertThat(engine.recordDecodeSteps()).as("recorded once").isZero();
        assertThat(recorder.replays).isZero();
        List<Result> replayed = engine.run(requests(null), new Engine.Listener() { });
        assertThat(recorder.recordedSizes).containsExactly(1, 2, 3, 4, 6, 8, 12);
        assertThat(recorder.replays).isGreaterThan(5);
        assertSame(replayed, run(new CpuBackend(), false, null));
        assertThat(new Engine(model, config.withStepGraphs(false), directory.eosTokenIds(), new AdapterRegistry(4)).recordDecodeSteps()).isZero();
    }

    @Test
    void stepsWithAdaptersGoToReplayAdaptedOnly() throws IOException {
        String adapter = "lora-qv-r4";
        RerunningRecorder recorder = new RerunningRecorder();
        List<Result> replayed = run(recording(new CpuBackend(), recorder), true, adapter);
        List<Result> direct = run(new CpuBackend(), false, adapter);
        assertSame(replayed, direct);
        // A recorder without replayAdapted replays only steps in which no sequence has an adapter (here: after the adapted ones finished).
        assertThat(recorder.replays).isLessThan(direct.stream().mapToInt(r -> r.generated().length).sum());
    }

    /** A recorder that also "replays" adapted steps by running the work on the padded batch, adapter slots and all. */
    static final class AdaptedRerunningRecorder implements StepRecorder {
        final RerunningRecorder plain = new RerunningRecorder();
        int adaptedReplays;
        int paddingWithAdapters;

        @Override
        public Recording record(TokenBatch batch, int maxBlocks, java.util.function.Function<TokenBatch, Tensor> work) {
            return plain.record(batch, maxBlocks, work);
        }

        @Override
        public Tensor replayAdapted(TokenBatch batch, int maxBlocks, Object adapters, java.util.function.Function<TokenBatch, Tensor> work) {
            for (int t = 0; t < batch.numTokens(); t++) {
                paddingWithAdapters += batch.cacheSlots()[t] < 0 && batch.adapterSlots()[t] >= 0 ? 1 : 0;
            }
            adaptedReplays++;
            return work.apply(batch);
        }
    }

    /** Adapted decode steps padded to the recorded sizes keep each real token's adapter: bit for bit the direct steps. */
    @Test
    void adaptedStepsReplayedPaddedEqualDirectSteps() throws IOException {
        String adapter = "lora-qv-r4";
        AdaptedRerunningRecorder recorder = new AdaptedRerunningRecorder();
        List<Result> replayed = run(recording(new CpuBackend(), recorder), true, adapter);
        List<Result> direct = run(new CpuBackend(), false, adapter);
        assertSame(replayed, direct);
        assertThat(recorder.adaptedReplays).as("adapted decode steps").isGreaterThan(3);
        assertThat(recorder.paddingWithAdapters).as("padding tokens given an adapter").isZero();
    }
}
