package dev.flora.model;

import dev.flora.FloraException;
import dev.flora.Fixtures;
import dev.flora.backend.DType;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.safetensors.TensorView;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** --random-weights: a directory with config.json alone gives a working, reproducible model. */
class RandomWeightsTest {
    @Test
    void aConfigAloneMakesAReproducibleModel(@TempDir Path dir) throws IOException {
        Files.copy(Fixtures.llamaTinyModel().resolve("config.json"), dir.resolve("config.json"));
        Result first = run(dir);
        Result second = run(dir);
        assertThat(first.generated()).hasSize(4).containsExactly(second.generated());
        assertThat(first.promptLogprobs()).containsExactly(second.promptLogprobs());
        for (int t = 1; t < first.promptLogprobs().length; t++) {
            assertThat(first.promptLogprobs()[t]).isFinite().isNegative();
        }
    }

    private static Result run(Path dir) {
        CausalLM model = Models.load(ModelDirectory.open(dir), new CpuBackend(), true);
        return new Engine(model, EngineConfig.DEFAULT, java.util.Set.of())
                .run(List.of(new Request("r", new int[] {1, 5, 9, 200, 7}, SamplingParams.greedy(4, true), true)), new Engine.Listener() { })
                .getFirst();
    }

    @Test
    void valuesAreSmallMatricesAndNearOneVectors() {
        long seed = TensorView.random("w", DType.BF16, 3, 3).seed();
        for (long i = 0; i < 10_000; i++) {
            assertThat(Math.abs(TensorView.randomValue(seed, i, false))).isLessThanOrEqualTo(0.02f);
            assertThat(Math.abs(TensorView.randomValue(seed, i, true) - 1f)).isLessThanOrEqualTo(0.02f);
        }
        assertThat(TensorView.randomValue(seed, 0, false)).isNotEqualTo(TensorView.randomValue(seed, 1, false));
    }

    @Test
    void anIntegerDtypeIsRefusedByName(@TempDir Path dir) throws IOException {
        String config = Files.readString(Fixtures.llamaTinyModel().resolve("config.json"));
        Files.writeString(dir.resolve("config.json"), config.replace("\"dtype\": \"float32\"", "\"dtype\": \"int8\""));
        assertThatThrownBy(() -> Models.load(ModelDirectory.open(dir), new CpuBackend(), true))
                .isInstanceOf(FloraException.class).hasMessageContaining("int8");
    }
}
