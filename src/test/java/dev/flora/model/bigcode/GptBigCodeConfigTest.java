package dev.flora.model.bigcode;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.backend.Activation;
import dev.flora.model.ConfigReader;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class GptBigCodeConfigTest {
    static final Path FILE = Path.of("/models/starcoder/config.json");

    static ObjectNode starcoder() {
        ObjectNode n = new ObjectMapper().createObjectNode();
        n.putArray("architectures").add("GPTBigCodeForCausalLM");
        n.put("n_embd", 64).put("n_head", 4).put("n_layer", 2).put("vocab_size", 100).put("n_positions", 128);
        n.putNull("n_inner");
        return n;
    }

    @Test
    void defaultsAreTransformers() {
        GptBigCodeConfig c = GptBigCodeConfig.read(new ConfigReader(starcoder(), FILE));
        assertThat(c.innerSize()).isEqualTo(256);
        assertThat(c.multiQuery()).isTrue();
        assertThat(c.kvHeads()).isEqualTo(1);
        assertThat(c.kvWidth()).isEqualTo(16);
        assertThat(c.scaleAttention()).isTrue();
        assertThat(c.tieEmbeddings()).isTrue();
        assertThat(c.activation()).isEqualTo(Activation.GELU_TANH);
        assertThat(c.layerNormEps()).isEqualTo(1e-5f);
    }

    @Test
    void multiHeadAndOptions() {
        ObjectNode n = starcoder().put("multi_query", false).put("n_inner", 96).put("scale_attn_weights", false)
                .put("activation_function", "gelu");
        GptBigCodeConfig c = GptBigCodeConfig.read(new ConfigReader(n, FILE));
        assertThat(c.kvHeads()).isEqualTo(4);
        assertThat(c.innerSize()).isEqualTo(96);
        assertThat(c.scaleAttention()).isFalse();
        assertThat(c.activation()).isEqualTo(Activation.GELU);
    }

    @Test
    void refusalsNameTheFileAndTheKey() {
        assertThatThrownBy(() -> GptBigCodeConfig.read(new ConfigReader(starcoder().put("add_cross_attention", true), FILE)))
                .isInstanceOf(FloraException.class).hasMessageContaining("config.json").hasMessageContaining("add_cross_attention");
        assertThatThrownBy(() -> GptBigCodeConfig.read(new ConfigReader(starcoder().put("n_head", 5), FILE)))
                .isInstanceOf(FloraException.class).hasMessageContaining("n_head");
        ObjectNode missing = starcoder();
        missing.remove("n_layer");
        assertThatThrownBy(() -> GptBigCodeConfig.read(new ConfigReader(missing, FILE)))
                .isInstanceOf(FloraException.class).hasMessageContaining("n_layer");
        assertThatThrownBy(() -> GptBigCodeConfig.read(new ConfigReader(starcoder().put("activation_function", "swiglu"), FILE)))
                .isInstanceOf(FloraException.class).hasMessageContaining("swiglu");
    }
}
