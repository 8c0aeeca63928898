package dev.flora.model.llama;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.backend.Activation;
import dev.flora.model.ConfigReader;
import dev.flora.model.RopeConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class LlamaConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private Path fixtureConfig() throws Exception {
        return Path.of(getClass().getResource("/fixtures/llama-tiny/model/config.json").toURI());
    }

    private ConfigReader reader(ObjectNode node) throws IOException {
        Path file = dir.resolve("config.json");
        Files.writeString(file, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(node));
        return new ConfigReader(JSON.readTree(file.toFile()), file);
    }

    /** The fixture model in transformers' older layout (rope_theta, rope_scaling, torch_dtype). */
    static ObjectNode oldLayout() {
        ObjectNode n = JSON.createObjectNode();
        n.putArray("architectures").add("LlamaForCausalLM");
        n.put("attention_bias", false);
        n.put("attention_dropout", 0.0);
        n.put("bos_token_id", 1);
        n.put("eos_token_id", 2);
        n.put("head_dim", 16);
        n.put("hidden_act", "silu");
        n.put("hidden_size", 64);
        n.put("initializer_range", 0.02);
        n.put("intermediate_size", 160);
        n.put("max_position_embeddings", 512);
        n.put("mlp_bias", false);
        n.put("model_type", "llama");
        n.put("num_attention_heads", 4);
        n.put("num_hidden_layers", 3);
        n.put("num_key_value_heads", 2);
        n.put("pretraining_tp", 1);
        n.put("rms_norm_eps", 1e-05);
        n.putNull("rope_scaling");
        n.put("rope_theta", 10000.0);
        n.put("tie_word_embeddings", false);
        n.put("torch_dtype", "float32");
        n.put("transformers_version", "4.46.0");
        n.put("use_cache", true);
        n.put("vocab_size", 700);
        return n;
    }

    /** A minimal config of the given architecture. */
    static ObjectNode minimal(String arch) {
        ObjectNode n = JSON.createObjectNode();
        n.putArray("architectures").add(arch);
        n.put("hidden_size", 64);
        n.put("intermediate_size", 128);
        n.put("num_attention_heads", 4);
        n.put("num_key_value_heads", 2);
        n.put("num_hidden_layers", 3);
        n.put("vocab_size", 100);
        return n;
    }

    private static void assertSameConfig(LlamaConfig a, LlamaConfig b) {
        assertThat(a.architecture()).isEqualTo(b.architecture());
        assertThat(a.hiddenSize()).isEqualTo(b.hiddenSize());
        assertThat(a.intermediateSize()).isEqualTo(b.intermediateSize());
        assertThat(a.layers()).isEqualTo(b.layers());
        assertThat(a.heads()).isEqualTo(b.heads());
        assertThat(a.kvHeads()).isEqualTo(b.kvHeads());
        assertThat(a.headDim()).isEqualTo(b.headDim());
        assertThat(a.vocabSize()).isEqualTo(b.vocabSize());
        assertThat(a.maxPositions()).isEqualTo(b.maxPositions());
        assertThat(a.rmsNormEps()).isEqualTo(b.rmsNormEps());
        assertThat(a.activation()).isEqualTo(b.activation());
        assertThat(a.qkvBias()).isEqualTo(b.qkvBias());
        assertThat(a.outputBias()).isEqualTo(b.outputBias());
        assertThat(a.mlpBias()).isEqualTo(b.mlpBias());
        assertThat(a.tieEmbeddings()).isEqualTo(b.tieEmbeddings());
        assertThat(a.rope()).isEqualTo(b.rope());
        assertThat(a.slidingWindow()).containsExactly(b.slidingWindow());
        assertThat(java.util.Arrays.equals(a.slidingWindow(), b.slidingWindow())).isTrue();
    }

    // ---------------------------------------------------------------- the fixture

    @Test
    void fixtureConfigParses() throws Exception {
        Path file = fixtureConfig();
        ConfigReader c = new ConfigReader(JSON.readTree(file.toFile()), file);
        LlamaConfig cfg = LlamaConfig.read(c, "LlamaForCausalLM");
        assertThat(cfg.architecture()).isEqualTo("LlamaForCausalLM");
        assertThat(cfg.hiddenSize()).isEqualTo(64);
        assertThat(cfg.intermediateSize()).isEqualTo(160);
        assertThat(cfg.layers()).isEqualTo(3);
        assertThat(cfg.heads()).isEqualTo(4);
        assertThat(cfg.kvHeads()).isEqualTo(2);
        assertThat(cfg.headDim()).isEqualTo(16);
        assertThat(cfg.qWidth()).isEqualTo(64);
        assertThat(cfg.kvWidth()).isEqualTo(32);
        assertThat(cfg.vocabSize()).isEqualTo(700);
        assertThat(cfg.maxPositions()).isEqualTo(512);
        assertThat(cfg.rmsNormEps()).isEqualTo(1e-5f);
        assertThat(cfg.activation()).isEqualTo(Activation.SILU);
        assertThat(cfg.qkvBias()).isFalse();
        assertThat(cfg.outputBias()).isFalse();
        assertThat(cfg.mlpBias()).isFalse();
        assertThat(cfg.tieEmbeddings()).isFalse();
        assertThat(cfg.rope().type()).isEqualTo("default");
        assertThat(cfg.rope().theta()).isEqualTo(10000.0);
        assertThat(cfg.rope().factor()).isEqualTo(1.0);
        assertThat(cfg.slidingWindow()).containsExactly(0, 0, 0);
    }

    @Test
    void oldLayoutGivesTheSameConfig() throws Exception {
        Path file = fixtureConfig();
        LlamaConfig fromNew = LlamaConfig.read(new ConfigReader(JSON.readTree(file.toFile()), file), "LlamaForCausalLM");
        LlamaConfig fromOld = LlamaConfig.read(reader(oldLayout()), "LlamaForCausalLM");
        assertSameConfig(fromOld, fromNew);
    }

    @Test
    void defaultsForAbsentKeys() throws IOException {
        ObjectNode n = JSON.createObjectNode();
        n.put("hidden_size", 96);
        n.put("intermediate_size", 256);
        n.put("num_attention_heads", 6);
        n.put("num_hidden_layers", 2);
        n.put("vocab_size", 50);
        LlamaConfig cfg = LlamaConfig.read(reader(n), "LlamaForCausalLM");
        assertThat(cfg.kvHeads()).isEqualTo(6);
        assertThat(cfg.headDim()).isEqualTo(16);
        assertThat(cfg.maxPositions()).isEqualTo(2048);
        assertThat(cfg.rmsNormEps()).isEqualTo(1e-6f);
        assertThat(cfg.activation()).isEqualTo(Activation.SILU);
        assertThat(cfg.rope().theta()).isEqualTo(10000.0);
        assertThat(cfg.rope().type()).isEqualTo("default");
        assertThat(cfg.tieEmbeddings()).isFalse();
        assertThat(cfg.slidingWindow()).containsExactly(0, 0);
    }

    @Test
    void explicitHeadDimDifferentFromHiddenOverHeads() throws IOException {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.put("head_dim", 32);
        n.put("tie_word_embeddings", true);
        n.put("hidden_act", "gelu_pytorch_tanh");
        LlamaConfig cfg = LlamaConfig.read(reader(n), "LlamaForCausalLM");
        assertThat(cfg.headDim()).isEqualTo(32);
        assertThat(cfg.qWidth()).isEqualTo(128);
        assertThat(cfg.kvWidth()).isEqualTo(64);
        assertThat(cfg.tieEmbeddings()).isTrue();
        assertThat(cfg.activation()).isEqualTo(Activation.GELU_TANH);
    }

    // ---------------------------------------------------------------- biases and windows

    @Test
    void llamaAttentionBiasAndMlpBias() throws IOException {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.put("attention_bias", true);
        n.put("mlp_bias", true);
        LlamaConfig cfg = LlamaConfig.read(reader(n), "LlamaForCausalLM");
        assertThat(cfg.qkvBias()).isTrue();
        assertThat(cfg.outputBias()).isTrue();
        assertThat(cfg.mlpBias()).isTrue();

        n.put("attention_bias", false);
        n.put("mlp_bias", true);
        cfg = LlamaConfig.read(reader(n), "LlamaForCausalLM");
        assertThat(cfg.qkvBias()).isFalse();
        assertThat(cfg.outputBias()).isFalse();
        assertThat(cfg.mlpBias()).isTrue();
    }

    @Test
    void qwen2HasQkvBiasButNoOutputBias() throws IOException {
        ObjectNode n = minimal("Qwen2ForCausalLM");
        n.put("tie_word_embeddings", true);
        LlamaConfig cfg = LlamaConfig.read(reader(n), "Qwen2ForCausalLM");
        assertThat(cfg.qkvBias()).isTrue();
        assertThat(cfg.outputBias()).isFalse();
        assertThat(cfg.mlpBias()).isFalse();
        assertThat(cfg.tieEmbeddings()).isTrue();
    }

    @Test
    void qwen2HubConfigWithSlidingWindowOffHasNoWindow() throws IOException {
        ObjectNode n = minimal("Qwen2ForCausalLM");
        n.put("sliding_window", 32768);
        n.put("use_sliding_window", false);
        n.put("max_window_layers", 21);
        assertThat(LlamaConfig.read(reader(n), "Qwen2ForCausalLM").slidingWindow()).containsExactly(0, 0, 0);
        n.remove("use_sliding_window");
        assertThat(LlamaConfig.read(reader(n), "Qwen2ForCausalLM").slidingWindow()).containsExactly(0, 0, 0);
        // layer_types saying sliding does not matter while use_sliding_window is false
        n.put("use_sliding_window", false);
        n.putArray("layer_types").add("sliding_attention").add("sliding_attention").add("sliding_attention");
        assertThat(LlamaConfig.read(reader(n), "Qwen2ForCausalLM").slidingWindow()).containsExactly(0, 0, 0);
    }

    @Test
    void qwen2SlidingWindowFromMaxWindowLayers() throws IOException {
        ObjectNode n = minimal("Qwen2ForCausalLM");
        n.put("use_sliding_window", true);
        n.put("sliding_window", 4);
        n.put("max_window_layers", 1);
        assertThat(LlamaConfig.read(reader(n), "Qwen2ForCausalLM").slidingWindow()).containsExactly(0, 4, 4);
        n.put("max_window_layers", 0);
        // 0 is not a positive integer; ConfigReader refuses it, naming the key
        assertThatThrownBy(() -> LlamaConfig.read(reader(n), "Qwen2ForCausalLM"))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("max_window_layers");
        n.put("max_window_layers", 3);
        assertThat(LlamaConfig.read(reader(n), "Qwen2ForCausalLM").slidingWindow()).containsExactly(0, 0, 0);
        n.remove("max_window_layers"); // default 28 > 3 layers
        assertThat(LlamaConfig.read(reader(n), "Qwen2ForCausalLM").slidingWindow()).containsExactly(0, 0, 0);
    }

    @Test
    void qwen2ExplicitLayerTypesAreHonoured() throws IOException {
        ObjectNode n = minimal("Qwen2ForCausalLM");
        n.put("use_sliding_window", true);
        n.put("sliding_window", 4);
        n.put("max_window_layers", 1);
        n.putArray("layer_types").add("sliding_attention").add("full_attention").add("sliding_attention");
        assertThat(LlamaConfig.read(reader(n), "Qwen2ForCausalLM").slidingWindow()).containsExactly(4, 0, 4);
    }

    @Test
    void mistralSlidingWindow() throws IOException {
        ObjectNode n = minimal("MistralForCausalLM");
        n.put("sliding_window", 8);
        LlamaConfig cfg = LlamaConfig.read(reader(n), "MistralForCausalLM");
        assertThat(cfg.slidingWindow()).containsExactly(8, 8, 8);
        assertThat(cfg.qkvBias()).isFalse();
        assertThat(cfg.outputBias()).isFalse();
        n.putNull("sliding_window");
        assertThat(LlamaConfig.read(reader(n), "MistralForCausalLM").slidingWindow()).containsExactly(0, 0, 0);
        n.remove("sliding_window");
        assertThat(LlamaConfig.read(reader(n), "MistralForCausalLM").slidingWindow()).containsExactly(0, 0, 0);
        // Mistral does not read Llama's attention_bias
        n.put("attention_bias", true);
        n.put("mlp_bias", true);
        cfg = LlamaConfig.read(reader(n), "MistralForCausalLM");
        assertThat(cfg.qkvBias()).isFalse();
        assertThat(cfg.mlpBias()).isFalse();
    }

    @Test
    void llamaIgnoresSlidingWindowKeys() throws IOException {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.put("sliding_window", 8);
        n.put("use_sliding_window", true);
        assertThat(LlamaConfig.read(reader(n), "LlamaForCausalLM").slidingWindow()).containsExactly(0, 0, 0);
    }

    // ---------------------------------------------------------------- errors

    private void assertConfigError(ObjectNode n, String arch, String... fragments) {
        assertThatThrownBy(() -> LlamaConfig.read(reader(n), arch))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.resolve("config.json").toString())
                .hasMessageContainingAll(fragments);
    }

    @Test
    void missingHiddenSize() {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.remove("hidden_size");
        assertConfigError(n, "LlamaForCausalLM", "hidden_size", "missing");
        ObjectNode m = minimal("LlamaForCausalLM");
        m.putNull("vocab_size");
        assertConfigError(m, "LlamaForCausalLM", "vocab_size", "missing");
    }

    @Test
    void headsNotAMultipleOfKvHeads() {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.put("num_attention_heads", 6);
        n.put("num_key_value_heads", 4);
        n.put("head_dim", 16);
        assertConfigError(n, "LlamaForCausalLM", "num_attention_heads (6)", "num_key_value_heads (4)");
    }

    @Test
    void hiddenNotAMultipleOfHeadsWithoutHeadDim() {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.put("hidden_size", 66);
        assertConfigError(n, "LlamaForCausalLM", "hidden_size (66)", "head_dim");
    }

    @Test
    void oddHeadDim() {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.put("head_dim", 15);
        assertConfigError(n, "LlamaForCausalLM", "head_dim", "15");
    }

    @Test
    void unknownRopeType() {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.putObject("rope_parameters").put("rope_type", "yarn").put("factor", 4.0).put("rope_theta", 10000.0);
        assertConfigError(n, "LlamaForCausalLM", "'yarn'", "default", "linear", "llama3");
        ObjectNode m = minimal("LlamaForCausalLM");
        m.putObject("rope_scaling").put("type", "yarn").put("factor", 4.0);
        assertConfigError(m, "LlamaForCausalLM", "'yarn'", "default, linear, llama3");
    }

    @Test
    void llama3WithoutLowFreqFactor() {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.putObject("rope_parameters").put("rope_type", "llama3").put("rope_theta", 500000.0).put("factor", 8.0)
                .put("high_freq_factor", 4.0).put("original_max_position_embeddings", 8192);
        assertConfigError(n, "LlamaForCausalLM", "llama3", "low_freq_factor");
    }

    @Test
    void unknownHiddenAct() {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.put("hidden_act", "swiglu_magic");
        assertConfigError(n, "LlamaForCausalLM", "hidden_act", "swiglu_magic", "silu");
    }

    @Test
    void quantizationConfigIsRefused() {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.putObject("quantization_config").put("quant_method", "gptq").put("bits", 4);
        assertConfigError(n, "LlamaForCausalLM", "quantization_config");
    }

    @Test
    void hiddenSizeAsAString() {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.put("hidden_size", "64");
        assertConfigError(n, "LlamaForCausalLM", "hidden_size", "\"64\"");
        ObjectNode m = minimal("LlamaForCausalLM");
        m.put("num_hidden_layers", 2.5);
        assertConfigError(m, "LlamaForCausalLM", "num_hidden_layers", "2.5");
        ObjectNode k = minimal("LlamaForCausalLM");
        k.put("num_key_value_heads", -2);
        assertConfigError(k, "LlamaForCausalLM", "num_key_value_heads", "-2");
    }

    @Test
    void nonBooleanAndNonNumberValues() {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.put("tie_word_embeddings", "yes");
        assertConfigError(n, "LlamaForCausalLM", "tie_word_embeddings", "yes");
        ObjectNode m = minimal("LlamaForCausalLM");
        m.put("rms_norm_eps", "1e-5");
        assertConfigError(m, "LlamaForCausalLM", "rms_norm_eps", "1e-5");
    }

    @Test
    void layerTypesOfTheWrongLength() {
        ObjectNode n = minimal("Qwen2ForCausalLM");
        n.put("use_sliding_window", true);
        n.put("sliding_window", 4);
        n.putArray("layer_types").add("sliding_attention").add("full_attention");
        assertConfigError(n, "Qwen2ForCausalLM", "layer_types", "3");
        // Checked whenever present, as transformers does, even with the window off.
        ObjectNode m = minimal("Qwen2ForCausalLM");
        m.putArray("layer_types").add("sliding_attention").add("full_attention").add("full_attention").add("full_attention");
        assertConfigError(m, "Qwen2ForCausalLM", "layer_types", "3");
        ObjectNode k = minimal("Qwen2ForCausalLM");
        k.put("use_sliding_window", true);
        k.put("sliding_window", 4);
        k.put("layer_types", "sliding_attention");
        assertConfigError(k, "Qwen2ForCausalLM", "layer_types");
    }

    @Test
    void unknownLayerType() {
        ObjectNode n = minimal("Qwen2ForCausalLM");
        n.put("use_sliding_window", true);
        n.put("sliding_window", 4);
        n.putArray("layer_types").add("sliding_attention").add("chunked_attention").add("full_attention");
        assertConfigError(n, "Qwen2ForCausalLM", "chunked_attention", "full_attention", "sliding_attention");
    }

    @Test
    void ropeParametersPerLayerTypeAreRefused() {
        ObjectNode n = minimal("LlamaForCausalLM");
        ObjectNode p = n.putObject("rope_parameters");
        p.putObject("full_attention").put("rope_type", "default").put("rope_theta", 1e6);
        p.putObject("sliding_attention").put("rope_type", "default").put("rope_theta", 1e4);
        assertConfigError(n, "LlamaForCausalLM", "rope_parameters", "full_attention");
    }

    @Test
    void ropeReadThroughLlamaConfig() throws IOException {
        ObjectNode n = minimal("LlamaForCausalLM");
        n.putObject("rope_parameters").put("rope_type", "linear").put("factor", 4.0).put("rope_theta", 20000.0);
        RopeConfig rope = LlamaConfig.read(reader(n), "LlamaForCausalLM").rope();
        assertThat(rope.type()).isEqualTo("linear");
        assertThat(rope.factor()).isEqualTo(4.0);
        assertThat(rope.theta()).isEqualTo(20000.0);
    }
}
