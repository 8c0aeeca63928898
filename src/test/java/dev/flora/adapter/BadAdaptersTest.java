package dev.flora.adapter;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.Fixtures;
import dev.flora.backend.DType;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.model.PretrainedModel;
import dev.flora.safetensors.SafetensorsWriter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Bad adapters get a clear error and leave the registry and running work untouched. */
class BadAdaptersTest {
    static PretrainedModel model;
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    @BeforeAll
    static void load() {
        model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private Path copy(String adapter) throws IOException {
        Path dir = tmp.resolve(adapter + "-" + System.nanoTime());
        Fixtures.copyTree(Fixtures.llamaTiny().resolve("adapters").resolve(adapter), dir);
        return dir;
    }

    private static void editConfig(Path dir, java.util.function.Consumer<ObjectNode> edit) throws IOException {
        ObjectNode c = (ObjectNode) JSON.readTree(dir.resolve("adapter_config.json").toFile());
        edit.accept(c);
        JSON.writeValue(dir.resolve("adapter_config.json").toFile(), c);
    }

    private static FloraException loadFails(Path dir) {
        try {
            AdapterLoader.load("bad", dir, model.model().linears(), model.model().backend());
        } catch (FloraException e) {
            return e;
        }
        throw new AssertionError("expected " + dir + " to be refused");
    }

    private static void writeLora(Path dir, String module, long[] aShape, long[] bShape) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}");
        new SafetensorsWriter()
                .add("base_model.model." + module + ".lora_A.weight", DType.F32, aShape, new float[(int) (aShape[0] * aShape[1])])
                .add("base_model.model." + module + ".lora_B.weight", DType.F32, bShape, new float[(int) (bShape[0] * bShape[1])])
                .write(dir.resolve("adapter_model.safetensors"));
    }

    /** On the GPU a loaded adapter's factors stay in device memory: a full device says what to hold fewer of. */
    @Test
    void anAdapterThatDoesNotFitOnTheDeviceSaysWhatToLower() throws IOException {
        Path dir = copy("lora-qv-r4");
        java.util.concurrent.atomic.AtomicInteger room = new java.util.concurrent.atomic.AtomicInteger(1); // A of the first module, then full
        dev.flora.backend.Backend filling = FillingBackend.fillingAfter(model.model().backend(), room);
        assertThatThrownBy(() -> AdapterLoader.load("big", dir, model.model().linears(), filling))
                .isInstanceOf(FloraException.class).isNotInstanceOf(dev.flora.backend.DeviceMemoryFull.class)
                .hasMessageStartingWith(dir + ": adapter 'big' (")
                .hasMessageContaining("MB of factors) does not fit in the device's memory")
                .hasMessageContaining("--max-cpu-adapters").hasMessageContaining("--kv-cache-memory")
                .hasMessageContaining("out of GPU memory: 1310720 bytes asked");
        room.set(Integer.MAX_VALUE);
        assertThat(AdapterLoader.load("fits", dir, model.model().linears(), filling).modules()).isNotEmpty();
    }

    @Test
    void wrongShapesNameTheKeyAndBothShapes() throws IOException {
        Path dir = tmp.resolve("shape");
        writeLora(dir, "model.layers.0.self_attn.q_proj", new long[] {4, 63}, new long[] {64, 4});
        assertThat(loadFails(dir).getMessage()).contains("lora_A.weight").contains("[4, 63]").contains("[64, 64]");
        Path b = tmp.resolve("shape-b");
        writeLora(b, "model.layers.0.self_attn.k_proj", new long[] {4, 64}, new long[] {64, 4});
        assertThat(loadFails(b).getMessage()).contains("lora_B.weight").contains("[64, 4]").contains("[32, 64]");
    }

    @Test
    void unknownModules() throws IOException {
        Path dir = tmp.resolve("unknown");
        writeLora(dir, "model.layers.7.self_attn.q_proj", new long[] {4, 64}, new long[] {64, 4});
        assertThat(loadFails(dir).getMessage()).contains("model.layers.7.self_attn.q_proj").contains("does not exist");
        Path embed = tmp.resolve("embed");
        writeLora(embed, "model.embed_tokens", new long[] {4, 700}, new long[] {64, 4});
        assertThat(loadFails(embed).getMessage()).contains("embedding LoRA is not supported");
    }

    @Test
    void unsupportedOptionsAreRefusedByName() throws IOException {
        for (var option : List.of(
                List.of("use_dora", "true", "DoRA"),
                List.of("modules_to_save", "[\"lm_head\"]", "modules_to_save"),
                List.of("target_parameters", "[\"x\"]", "target_parameters"),
                List.of("trainable_token_indices", "[1, 2]", "trainable_token_indices"),
                List.of("layer_replication", "[[0, 2]]", "layer_replication"),
                List.of("alora_invocation_tokens", "[5]", "aLoRA"),
                List.of("bias", "\"all\"", "bias"))) {
            Path dir = copy("lora-qv-r4");
            editConfig(dir, c -> {
                try {
                    c.set(option.get(0), JSON.readTree(option.get(1)));
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            });
            assertThat(loadFails(dir).getMessage()).as(option.get(0)).contains(option.get(2)).contains("adapter_config.json");
        }
        Path type = copy("lora-qv-r4");
        editConfig(type, c -> c.put("peft_type", "PROMPT_TUNING"));
        assertThat(loadFails(type).getMessage()).contains("PROMPT_TUNING").contains("LORA, IA3, FLORA");
    }

    @Test
    void corruptOrMissingFiles() throws IOException {
        Path truncated = copy("lora-all-r8");
        try (RandomAccessFile f = new RandomAccessFile(truncated.resolve("adapter_model.safetensors").toFile(), "rw")) {
            f.setLength(f.length() / 2);
        }
        assertThat(loadFails(truncated).getMessage()).contains("adapter_model.safetensors");
        Path noWeights = copy("lora-qv-r4");
        Files.delete(noWeights.resolve("adapter_model.safetensors"));
        assertThat(loadFails(noWeights).getMessage()).contains("no adapter_model.safetensors");
        Files.writeString(noWeights.resolve("adapter_model.bin"), "pickle");
        assertThat(loadFails(noWeights).getMessage()).contains("adapter_model.bin").contains("safetensors");
        Path badJson = copy("lora-qv-r4");
        Files.writeString(badJson.resolve("adapter_config.json"), "{\"peft_type\": ");
        assertThat(loadFails(badJson).getMessage()).contains("adapter_config.json").contains("not valid JSON");
        assertThat(loadFails(tmp.resolve("nowhere")).getMessage()).contains("nowhere");
        Path rank = copy("lora-qv-r4");
        editConfig(rank, c -> c.put("r", 8));
        assertThat(loadFails(rank).getMessage()).contains("rank 4").contains("rank 8");
    }

    @Test
    void aFailedLoadLeavesTheRegistryAndRunningWorkUntouched() throws IOException {
        AdapterRegistry registry = new AdapterRegistry(2);
        registry.register(AdapterLoader.load("good", Fixtures.llamaTiny().resolve("adapters/lora-qv-r4"), model.model().linears(), model.model().backend()));
        Engine engine = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry);
        int[] prompt = Fixtures.llamaTinyExpected().getFirst().tokens();
        Result before = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry)
                .run(List.of(Request.withAdapter("a", prompt, SamplingParams.greedy(4, true), true, "good")), new Engine.Listener() { }).getFirst();
        engine.submit(Request.withAdapter("b", prompt, SamplingParams.greedy(4, true), true, "good"));
        engine.step(new Engine.Listener() { });
        Path bad = copy("lora-qv-r4");
        editConfig(bad, c -> c.put("use_dora", true));
        assertThatThrownBy(() -> {
            Adapter a = AdapterLoader.load("good2", bad, model.model().linears(), model.model().backend());
            registry.register(a);
        }).isInstanceOf(FloraException.class);
        assertThat(registry.adapters()).hasSize(1);
        assertThatThrownBy(() -> registry.register(AdapterLoader.load("good", Fixtures.llamaTiny().resolve("adapters/ia3-kvd"),
                model.model().linears(), model.model().backend()))).hasMessageContaining("already registered");
        Result after = null;
        while (engine.hasWork()) {
            for (Result r : engine.step(new Engine.Listener() { })) {
                after = r;
            }
        }
        assertThat(after.promptLogprobs()).containsExactly(before.promptLogprobs());
        assertThat(after.generated()).containsExactly(before.generated());
        assertThat(registry.referencesHeld()).isZero();
    }

    @Test
    void requestsNamingUnknownAdaptersOrBadRangesAreRefused() {
        AdapterRegistry registry = new AdapterRegistry(1);
        registry.register(AdapterLoader.load("a", Fixtures.llamaTiny().resolve("adapters/lora-qv-r4"), model.model().linears(), model.model().backend()));
        registry.register(AdapterLoader.load("b", Fixtures.llamaTiny().resolve("adapters/ia3-kvd"), model.model().linears(), model.model().backend()));
        Engine engine = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry);
        int[] prompt = {1, 300, 301, 302, 303, 304};
        SamplingParams p = SamplingParams.greedy(1, true);
        assertThatThrownBy(() -> engine.submit(Request.withAdapter("x", prompt, p, false, "nope"))).hasMessageContaining("unknown adapter 'nope'");
        assertThatThrownBy(() -> engine.submit(new Request("y", prompt, p, false, List.of(new AdapterRange(1, "a")))))
                .hasMessageContaining("start at 0");
        assertThatThrownBy(() -> engine.submit(new Request("z", prompt, p, false, List.of(new AdapterRange(0, "a"), new AdapterRange(0, "b")))))
                .hasMessageContaining("increase");
        assertThatThrownBy(() -> engine.submit(new Request("w", prompt, p, false, List.of(new AdapterRange(0, "a"), new AdapterRange(6, "b")))))
                .hasMessageContaining("past the prompt");
        assertThatThrownBy(() -> engine.submit(new Request("v", prompt, p, false, List.of(new AdapterRange(0, "a"), new AdapterRange(3, "b")))))
                .hasMessageContaining("--max-adapters");
    }
}
