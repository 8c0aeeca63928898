package dev.flora.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ModelDirectoryTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private ModelDirectory open(ObjectNode config) throws IOException {
        Files.writeString(dir.resolve("config.json"), config.toString());
        return ModelDirectory.open(dir);
    }

    private static ObjectNode llamaConfig() {
        ObjectNode n = JSON.createObjectNode();
        n.put("hidden_size", 64);
        n.put("intermediate_size", 128);
        n.put("num_attention_heads", 4);
        n.put("num_hidden_layers", 2);
        n.put("vocab_size", 100);
        return n;
    }

    @Test
    void fixtureDirectory() throws Exception {
        Path model = Path.of(getClass().getResource("/fixtures/llama-tiny/model/config.json").toURI()).getParent();
        ModelDirectory md = ModelDirectory.open(model);
        assertThat(md.path()).isEqualTo(model);
        assertThat(md.architecture()).isEqualTo("LlamaForCausalLM");
        assertThat(md.tokenizerFile()).isEqualTo(model.resolve("tokenizer.json")).exists();
        assertThat(md.eosTokenIds()).containsExactly(2);
        assertThat(md.generationConfig()).isNotNull();
    }

    @Test
    void architectureFromArchitectures() throws IOException {
        ObjectNode n = llamaConfig();
        n.putArray("architectures").add("Qwen2ForCausalLM");
        n.put("model_type", "llama"); // architectures wins
        assertThat(open(n).architecture()).isEqualTo("Qwen2ForCausalLM");
    }

    @Test
    void architectureFromModelTypeFallback() throws IOException {
        ObjectNode n = llamaConfig();
        n.put("model_type", "llama");
        assertThat(open(n).architecture()).isEqualTo("LlamaForCausalLM");
        n.put("model_type", "mistral");
        assertThat(open(n).architecture()).isEqualTo("MistralForCausalLM");
        n.put("model_type", "qwen2");
        assertThat(open(n).architecture()).isEqualTo("Qwen2ForCausalLM");
        n.putArray("architectures"); // empty list: fall back to model_type
        assertThat(open(n).architecture()).isEqualTo("Qwen2ForCausalLM");
        n.put("model_type", "gpt_neox");
        assertThat(open(n).architecture()).isEqualTo("gpt_neox");
    }

    @Test
    void noArchitectureAtAll() throws IOException {
        ModelDirectory md = open(llamaConfig());
        assertThatThrownBy(md::architecture)
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.resolve("config.json").toString())
                .hasMessageContaining("architectures")
                .hasMessageContaining("model_type");
    }

    @Test
    void unknownArchitectureListsTheSupportedOnes() throws IOException {
        ObjectNode n = llamaConfig();
        n.putArray("architectures").add("GPTNeoXForCausalLM");
        ModelDirectory md = open(n);
        // no weights in the directory: failing on the architecture means weights were never touched
        assertThatThrownBy(() -> Models.load(md, null))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.resolve("config.json").toString())
                .hasMessageContaining("GPTNeoXForCausalLM")
                .hasMessageContaining("LlamaForCausalLM")
                .hasMessageContaining("MistralForCausalLM")
                .hasMessageContaining("Qwen2ForCausalLM")
                .hasMessageContaining("GPTBigCodeForCausalLM");
        assertThat(Models.SUPPORTED).containsExactly("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "GPTBigCodeForCausalLM");
    }

    @Test
    void supportedArchitectureWithABadConfigFailsBeforeWeights() throws IOException {
        ObjectNode n = llamaConfig();
        n.putArray("architectures").add("LlamaForCausalLM");
        n.remove("vocab_size");
        ModelDirectory md = open(n);
        assertThatThrownBy(() -> Models.load(md, null))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("vocab_size");
    }

    @Test
    void supportedArchitectureWithoutWeightsSaysSo() throws IOException {
        ObjectNode n = llamaConfig();
        n.putArray("architectures").add("LlamaForCausalLM");
        ModelDirectory md = open(n);
        assertThatThrownBy(() -> Models.load(md, null))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("model.safetensors");
    }

    @Test
    void eosFromGenerationConfigTakesPrecedence() throws IOException {
        ObjectNode n = llamaConfig();
        n.put("eos_token_id", 2);
        Files.writeString(dir.resolve("generation_config.json"), "{\"eos_token_id\": [128001, 128008, 128009]}");
        assertThat(open(n).eosTokenIds()).containsExactly(128001, 128008, 128009);
        Files.writeString(dir.resolve("generation_config.json"), "{\"eos_token_id\": 7}");
        assertThat(open(n).eosTokenIds()).containsExactly(7);
    }

    @Test
    void eosFromConfigWhenGenerationConfigLacksIt() throws IOException {
        ObjectNode n = llamaConfig();
        n.putArray("eos_token_id").add(5).add(6);
        assertThat(open(n).eosTokenIds()).containsExactly(5, 6);
        Files.writeString(dir.resolve("generation_config.json"), "{\"bos_token_id\": 1}");
        assertThat(open(n).eosTokenIds()).containsExactly(5, 6);
        n.put("eos_token_id", 9);
        assertThat(open(n).eosTokenIds()).containsExactly(9);
        n.remove("eos_token_id");
        assertThat(open(n).eosTokenIds()).isEmpty();
    }

    @Test
    void badDirectories() throws IOException {
        assertThatThrownBy(() -> ModelDirectory.open(dir.resolve("nope")))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.resolve("nope").toString());
        assertThatThrownBy(() -> ModelDirectory.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.resolve("config.json").toString())
                .hasMessageContaining("missing");
        Files.writeString(dir.resolve("config.json"), "{\"hidden_size\": ");
        assertThatThrownBy(() -> ModelDirectory.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.resolve("config.json").toString())
                .hasMessageContaining("not valid JSON");
        Files.writeString(dir.resolve("config.json"), "[1, 2]");
        assertThatThrownBy(() -> ModelDirectory.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("not a JSON object");
        Files.writeString(dir.resolve("config.json"), "{}");
        Files.writeString(dir.resolve("generation_config.json"), "{oops");
        assertThatThrownBy(() -> ModelDirectory.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.resolve("generation_config.json").toString());
    }
}
