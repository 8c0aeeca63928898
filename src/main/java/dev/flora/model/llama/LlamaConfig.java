package dev.flora.model.llama;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.FloraException;
import dev.flora.backend.Activation;
import dev.flora.model.ConfigReader;
import dev.flora.model.RopeConfig;

import java.util.List;

/**
 * The Llama family's config.json ({@code LlamaForCausalLM}, {@code MistralForCausalLM},
 * {@code Qwen2ForCausalLM}), with transformers' defaults for absent keys.
 *
 * @param qkvBias       q, k and v projections have a bias (Llama's attention_bias; always in Qwen2)
 * @param outputBias    the o projection has a bias (Llama's attention_bias only)
 * @param slidingWindow per layer: how many positions a query sees (0: all)
 */
public record LlamaConfig(
        String architecture,
        int hiddenSize,
        int intermediateSize,
        int layers,
        int heads,
        int kvHeads,
        int headDim,
        int vocabSize,
        int maxPositions,
        float rmsNormEps,
        Activation activation,
        boolean qkvBias,
        boolean outputBias,
        boolean mlpBias,
        boolean tieEmbeddings,
        RopeConfig rope,
        int[] slidingWindow) {

    public static final List<String> ARCHITECTURES = List.of("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM");

    public static LlamaConfig read(ConfigReader c, String architecture) {
        int hidden = c.requireInt("hidden_size");
        int heads = c.requireInt("num_attention_heads");
        int kvHeads = c.intOr("num_key_value_heads", heads);
        int layers = c.requireInt("num_hidden_layers");
        if (heads % kvHeads != 0) {
            throw c.error("num_attention_heads (" + heads + ") must be a multiple of num_key_value_heads (" + kvHeads + ")");
        }
        int headDim = c.intOr("head_dim", hidden / heads);
        if (!c.has("head_dim") && hidden % heads != 0) {
            throw c.error("hidden_size (" + hidden + ") is not a multiple of num_attention_heads (" + heads + ") and no head_dim is given");
        }
        if (headDim % 2 != 0) {
            throw c.error("head_dim must be even for rotary embeddings, got " + headDim);
        }
        if (c.has("quantization_config")) {
            throw c.error("quantized checkpoints (quantization_config) are not supported; use float32, float16 or bfloat16 weights");
        }
        boolean qwen2 = architecture.equals("Qwen2ForCausalLM");
        boolean llama = architecture.equals("LlamaForCausalLM");
        boolean attentionBias = llama && c.boolOr("attention_bias", false);
        double defaultTheta = 10000.0;
        RopeConfig rope = RopeConfig.read(c, defaultTheta);
        return new LlamaConfig(
                architecture,
                hidden,
                c.requireInt("intermediate_size"),
                layers,
                heads,
                kvHeads,
                headDim,
                c.requireInt("vocab_size"),
                c.intOr("max_position_embeddings", 2048),
                (float) c.doubleOr("rms_norm_eps", 1e-6),
                c.activationOr("hidden_act", "silu"),
                qwen2 || attentionBias,
                attentionBias,
                llama && c.boolOr("mlp_bias", false),
                c.boolOr("tie_word_embeddings", false),
                rope,
                slidingWindows(c, architecture, layers));
    }

    private static int[] slidingWindows(ConfigReader c, String architecture, int layers) {
        boolean qwen2 = architecture.equals("Qwen2ForCausalLM");
        // transformers reads layer_types for Qwen2 only; check it whenever it is there.
        boolean[] sliding = qwen2 ? layerTypes(c, layers) : null;
        int window = switch (architecture) {
            case "MistralForCausalLM" -> c.intOr("sliding_window", 0);
            case "Qwen2ForCausalLM" -> c.boolOr("use_sliding_window", false) ? c.intOr("sliding_window", 0) : 0;
            default -> 0;
        };
        int[] windows = new int[layers];
        for (int i = 0; i < layers && window > 0; i++) {
            boolean slides = !qwen2 || (sliding != null ? sliding[i] : i >= c.intOr("max_window_layers", 28));
            windows[i] = slides ? window : 0;
        }
        return windows;
    }

    /** Which layers config.json's "layer_types" marks as sliding, or null if it has none. */
    private static boolean[] layerTypes(ConfigReader c, int layers) {
        JsonNode types = c.node("layer_types");
        if (types == null || types.isNull()) {
            return null;
        }
        if (!types.isArray() || types.size() != layers) {
            throw c.error("\"layer_types\" must list one type per layer (" + layers + ")");
        }
        boolean[] sliding = new boolean[layers];
        for (int i = 0; i < layers; i++) {
            String t = types.get(i).asText();
            sliding[i] = switch (t) {
                case "sliding_attention" -> true;
                case "full_attention" -> false;
                default -> throw c.error("layer type '" + t + "' is not supported (supported: full_attention, sliding_attention)");
            };
        }
        return sliding;
    }

    public int qWidth() {
        return heads * headDim;
    }

    public int kvWidth() {
        return kvHeads * headDim;
    }
}
