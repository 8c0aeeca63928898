package dev.flora.bench;

import dev.flora.backend.Backend;
import dev.flora.backend.DType;
import dev.flora.backend.Tensor;
import dev.flora.cpu.CpuBackend;
import dev.flora.safetensors.SafetensorsFile;
import dev.flora.safetensors.SafetensorsWriter;
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
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * The matrix product y = x W^T of one layer (d = 768 → 2048, the demo's MLP shape), per kernel set,
 * weight type and token count. Run with tools/jmh.sh; flops per call = 2 · tokens · 768 · 2048.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class LinearBenchmark {
    @Param({"vector", "scalar"})
    public String kernels;

    @Param({"BF16", "F32"})
    public String dtype;

    @Param({"1", "16", "64"})
    public int tokens;

    static final int IN = 768;
    static final int OUT = 2048;
    Backend backend;
    Tensor x;
    Tensor w;
    Tensor y;

    @Setup
    public void setUp() throws IOException {
        backend = CpuBackend.withKernels(kernels);
        SplittableRandom random = new SplittableRandom(1);
        float[] weights = new float[IN * OUT];
        for (int i = 0; i < weights.length; i++) {
            weights[i] = (float) random.nextDouble(-0.05, 0.05);
        }
        Path file = Files.createTempFile("linear-bench", ".safetensors");
        new SafetensorsWriter().add("w", DType.valueOf(dtype), new long[] {OUT, IN}, weights).write(file);
        w = backend.weight(SafetensorsFile.open(file).get("w"), OUT, IN);
        float[] input = new float[tokens * IN];
        for (int i = 0; i < input.length; i++) {
            input[i] = (float) random.nextDouble(-1, 1);
        }
        x = backend.fromHost(input, tokens, IN);
        y = backend.allocate(tokens, OUT);
        file.toFile().deleteOnExit();
    }

    @Benchmark
    public Tensor linear() {
        backend.linear(x, w, null, y);
        return y;
    }
}
