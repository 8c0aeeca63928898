package dev.flora.model.bigcode;

import dev.flora.backend.Activation;
import dev.flora.model.ConfigReader;

/**
 * GPT-BigCode's config.json (StarCoder, StarCoderBase, SantaCoder), with transformers' defaults.
 *
 * @param multiQuery one key/value head shared by all query heads; c_attn rows are [q | k | v]
 *                   (otherwise one [q k v] triple per head)
 * @param scaleAttention divide attention scores by sqrt(head_dim)
 */
public record GptBigCodeConfig(int hiddenSize, int layers, int heads, int innerSize, int maxPositions, int vocabSize,
                               float layerNormEps, Activation activation, boolean multiQuery, boolean scaleAttention,
                               boolean tieEmbeddings) {
    public static final String ARCHITECTURE = "GPTBigCodeForCausalLM";

    public static GptBigCodeConfig read(ConfigReader c) {
        int hidden = c.requireInt("n_embd");
        int heads = c.requireInt("n_head");
        if (hidden % heads != 0) {
            throw c.error("n_embd (" + hidden + ") must be a multiple of n_head (" + heads + ")");
        }
        if (c.boolOr("add_cross_attention", false)) {
            throw c.error("add_cross_attention is not supported (Flora runs decoder-only models)");
        }
        if (c.has("quantization_config")) {
            throw c.error("quantized checkpoints (quantization_config) are not supported; use float32, float16 or bfloat16 weights");
        }
        return new GptBigCodeConfig(
                hidden,
                c.requireInt("n_layer"),
                heads,
                c.intOr("n_inner", 4 * hidden),
                c.intOr("n_positions", 1024),
                c.requireInt("vocab_size"),
                (float) c.doubleOr("layer_norm_epsilon", 1e-5),
                c.activationOr("activation_function", "gelu_pytorch_tanh"),
                c.boolOr("multi_query", true),
                c.boolOr("scale_attn_weights", true),
                c.boolOr("tie_word_embeddings", true));
    }

    public int headDim() {
        return hiddenSize / heads;
    }

    public int kvHeads() {
        return multiQuery ? 1 : heads;
    }

    public int kvWidth() {
        return kvHeads() * headDim();
    }
}
