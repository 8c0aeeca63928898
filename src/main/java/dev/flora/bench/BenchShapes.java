package dev.flora.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The public shapes of the fLoRA paper's models, as config.json alone: with {@code --random-weights}
 * the weights are made where they are used, so a 15B shape needs no checkpoint on disk.
 */
public final class BenchShapes {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Map<String, ObjectNode> SHAPES = new LinkedHashMap<>();

    static {
        SHAPES.put("llama2-7b", llama(4096, 11008, 32, 32));
        SHAPES.put("llama2-13b", llama(5120, 13824, 40, 40));
        SHAPES.put("starcoder-1b", starcoder(2048, 24, 16));
        SHAPES.put("starcoder-3b", starcoder(2816, 36, 22));
        SHAPES.put("starcoder-15b", starcoder(6144, 40, 48));
    }

    private BenchShapes() {
    }

    public static java.util.Set<String> names() {
        return SHAPES.keySet();
    }

    /**
     * Writes DIR/config.json of the named shape (bfloat16) and a placeholder tokenizer.json of its
     * vocabulary ({@link #writePlaceholderTokenizer}), so that the directory serves as it is.
     */
    public static void writeConfig(String name, Path dir) throws IOException {
        ObjectNode config = SHAPES.get(name);
        if (config == null) {
            throw new FloraException("unknown shape '" + name + "' for a config-only model (known: " + String.join(", ", names()) + ")");
        }
        Files.createDirectories(dir);
        JSON.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("config.json").toFile(), config);
        writePlaceholderTokenizer(dir.resolve("tokenizer.json"), config.get("vocab_size").asInt(), config.get("bos_token_id").asInt(),
                config.get("eos_token_id").asInt());
    }

    /**
     * A word-level tokenizer.json of {@code vocab} tokens for random-weight models, which have no
     * real one: token i is the word "w{i}" (whitespace splits the words; decoding joins them with
     * spaces), the BOS and EOS ids are "&lt;s&gt;" and "&lt;/s&gt;" (one "&lt;|endoftext|&gt;" when they are the
     * same id), unknown words id 0. Enough to serve and load-test the model
     * through the text and token-id APIs alike; its text means nothing.
     */
    public static void writePlaceholderTokenizer(Path file, int vocab, int bos, int eos) throws IOException {
        ObjectNode t = JSON.createObjectNode();
        t.put("version", "1.0");
        t.putNull("truncation");
        t.putNull("padding");
        var added = t.putArray("added_tokens");
        ObjectNode words = JSON.createObjectNode();
        String unk = bos == 0 || eos == 0 ? (bos == 0 ? special(bos, eos, true) : special(bos, eos, false)) : "<unk>";
        for (int i = 0; i < vocab; i++) {
            String word = i == bos ? special(bos, eos, true) : i == eos ? special(bos, eos, false) : i == 0 ? "<unk>" : "w" + i;
            words.put(word, i);
            if (i == bos || i == eos || word.equals("<unk>")) {
                added.addObject().put("id", i).put("content", word).put("single_word", false).put("lstrip", false).put("rstrip", false)
                        .put("normalized", false).put("special", true);
            }
        }
        t.putNull("normalizer");
        t.putObject("pre_tokenizer").put("type", "WhitespaceSplit");
        t.putNull("post_processor");
        t.putNull("decoder");
        t.putObject("model").put("type", "WordLevel").put("unk_token", unk).set("vocab", words);
        JSON.writeValue(file.toFile(), t);
    }

    private static String special(int bos, int eos, boolean isBos) {
        return bos == eos ? "<|endoftext|>" : isBos ? "<s>" : "</s>";
    }

    private static ObjectNode llama(int hidden, int intermediate, int layers, int heads) {
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add("LlamaForCausalLM");
        c.put("model_type", "llama").put("hidden_size", hidden).put("intermediate_size", intermediate)
                .put("num_hidden_layers", layers).put("num_attention_heads", heads).put("num_key_value_heads", heads)
                .put("vocab_size", 32000).put("max_position_embeddings", 4096).put("rms_norm_eps", 1e-5).put("hidden_act", "silu")
                .put("tie_word_embeddings", false).put("bos_token_id", 1).put("eos_token_id", 2).put("rope_theta", 10000.0)
                .put("torch_dtype", "bfloat16");
        return c;
    }

    private static ObjectNode starcoder(int hidden, int layers, int heads) {
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add("GPTBigCodeForCausalLM");
        c.put("model_type", "gpt_bigcode").put("n_embd", hidden).put("n_inner", 4 * hidden).put("n_layer", layers).put("n_head", heads)
                .put("multi_query", true).put("n_positions", 8192).put("vocab_size", 49152).put("layer_norm_epsilon", 1e-5)
                .put("activation_function", "gelu_pytorch_tanh").put("scale_attn_weights", true).put("bos_token_id", 0)
                .put("eos_token_id", 0).put("torch_dtype", "bfloat16");
        return c;
    }
}
