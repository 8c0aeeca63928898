package dev.flora.bench;

import dev.flora.Fixtures;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.backend.Backend;
import dev.flora.backend.LogitSummary;
import dev.flora.backend.StepRecorder;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.SamplingParams;
import dev.flora.model.CausalLM;
import dev.flora.model.ModelDirectory;
import dev.flora.model.Models;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * The engine's own host work per decode step (scheduling, the step's batch, the replay lookup and
 * padding, token bookkeeping) with the GPU's part free: a recorder whose replay hands back the
 * recorded logits at once and a logit summary that answers at once. What is left is what the engine
 * adds to a replayed step besides the backend's uploads, launch and copy back (a batch-1 step of the
 * llama2-7b shape takes 4.58 ms on the H200). Run with tools/jmh.sh EngineStepBenchmark.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class EngineStepBenchmark {
    @Param({"1", "64"})
    public int sequences;

    private Engine engine;
    private int maxTokens;
    private long submitted;
    private final Engine.Listener quiet = new Engine.Listener() { };

    @Setup
    public void setUp() throws IOException {
        CpuBackend cpu = new CpuBackend();
        StepRecorder instant = (batch, maxBlocks, work) -> {
            Tensor logits = work.apply(batch);
            return replayed -> logits;
        };
        Backend backend = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, method, args) -> switch (method.getName()) {
                    case "stepRecorder" -> instant;
                    case "summarizeLogits" -> {
                        int rows = ((Tensor) args[0]).rows();
                        yield new LogitSummary(new int[rows], new float[rows], new double[rows]);
                    }
                    default -> {
                        try {
                            yield method.invoke(cpu, args);
                        } catch (InvocationTargetException e) {
                            throw e.getCause();
                        }
                    }
                });
        ModelDirectory directory = ModelDirectory.open(Fixtures.llamaTinyModel());
        CausalLM model = Models.load(directory, backend);
        engine = new Engine(model, EngineConfig.DEFAULT.withMaxSequences(sequences), Set.of(), new AdapterRegistry(1));
        engine.recordDecodeSteps();
        maxTokens = model.spec().maxContext() - 8;
        refill();
    }

    /** Long requests, greedy, EOS ignored: decode steps of {@code sequences} tokens until they reach the context. */
    private void refill() {
        while (engine.runningCount() + engine.waitingCount() < sequences) {
            engine.submit(Request.withAdapter("r" + submitted++, new int[] {1, 2, 3, 4}, SamplingParams.greedy(maxTokens, true), false, null));
        }
    }

    @Benchmark
    public int decodeStep() {
        if (engine.runningCount() + engine.waitingCount() < sequences) {
            refill();
        }
        engine.step(quiet);
        return engine.lastStepTokens();
    }
}
