package dev.flora.demo;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.backend.DType;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * The demo's embedded default: a Llama-shaped model of about 100M parameters in bfloat16 with
 * seeded random weights, and a tokenizer trained on a text that ships in the jar. Made once,
 * deterministically, and cached on disk.
 */
public final class DemoModel {
    /** Bump when the recipe changes, so stale caches are not reused. */
    static final String VERSION = "v2";
    static final int VOCAB = 1024;
    static final long SEED = 20261123L;

    private DemoModel() {
    }

    /** The default cache folder: $FLORA_CACHE, else ~/.cache/flora. */
    public static Path defaultCache() {
        String env = System.getenv("FLORA_CACHE");
        return env != null && !env.isBlank() ? Path.of(env) : Path.of(System.getProperty("user.home"), ".cache", "flora");
    }

    /** The model directory, made under {@code cache} if not there yet. */
    public static Path ensure(Path cache) {
        return ensure(cache, total -> n -> { });
    }

    /** As {@link #ensure(Path)}, reporting progress while the weights are made (see {@link RandomLlama}). */
    public static Path ensure(Path cache, java.util.function.LongFunction<java.util.function.LongConsumer> progress) {
        Path dir = cache.resolve("demo-llama-" + VERSION);
        if (Files.isRegularFile(dir.resolve("model.safetensors"))) {
            try {
                if (!Files.isRegularFile(dir.resolve("tokenizer_config.json"))) {
                    writeTokenizerConfig(dir); // a demo model made before it had a chat template
                }
            } catch (IOException e) {
                throw new FloraException(dir + ": cannot add the chat template (" + e.getMessage() + ")");
            }
            return dir;
        }
        try {
            Files.createDirectories(cache);
            Path tmp = Files.createTempDirectory(cache, "demo-building-");
            write(tmp, LlamaShape.DEMO, progress);
            try {
                Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
            } catch (IOException raced) {
                deleteTree(tmp); // another process made it first
                if (!Files.isRegularFile(dir.resolve("model.safetensors"))) {
                    throw raced;
                }
            }
            return dir;
        } catch (IOException e) {
            throw new FloraException(cache + ": cannot create the demo model (" + e.getMessage() + "); set FLORA_CACHE to a writable folder");
        }
    }

    /**
     * Writes a model directory of this shape: the demo's tokenizer, config.json, bfloat16 random
     * weights (seeded) and generation_config.json.
     */
    public static void write(Path dir, LlamaShape shape, java.util.function.LongFunction<java.util.function.LongConsumer> progress)
            throws IOException {
        Files.createDirectories(dir);
        ObjectMapper json = new ObjectMapper();
        ObjectNode tokenizer = BpeTrainer.train(corpus(), VOCAB);
        json.writeValue(dir.resolve("tokenizer.json").toFile(), tokenizer);
        int vocab = shape.vocab() > 0 ? shape.vocab() : tokenizer.path("model").path("vocab").size();
        ObjectNode config = json.createObjectNode();
        config.putArray("architectures").add("LlamaForCausalLM");
        config.put("model_type", "llama");
        config.put("hidden_size", shape.hidden());
        config.put("intermediate_size", shape.intermediate());
        config.put("num_hidden_layers", shape.layers());
        config.put("num_attention_heads", shape.heads());
        config.put("num_key_value_heads", shape.kvHeads());
        config.put("head_dim", shape.headDim());
        config.put("vocab_size", vocab);
        config.put("max_position_embeddings", shape.maxPositions());
        config.put("rms_norm_eps", 1e-5);
        config.put("hidden_act", "silu");
        config.put("tie_word_embeddings", false);
        config.put("bos_token_id", 1);
        config.put("eos_token_id", 2);
        config.put("dtype", "bfloat16");
        config.putObject("rope_parameters").put("rope_type", "default").put("rope_theta", 10000.0);
        RandomLlama.write(dir, config, SEED, 2.0, DType.BF16, progress);
        ObjectNode generation = json.createObjectNode();
        generation.put("bos_token_id", 1).put("eos_token_id", 2);
        json.writeValue(dir.resolve("generation_config.json").toFile(), generation);
        writeTokenizerConfig(dir);
    }

    /** A plain chat template ("role: content" lines, then "assistant:"), so /v1/chat/completions works on the demo model. */
    static final String CHAT_TEMPLATE = "{{ bos_token }}{% for message in messages %}{{ message.role }}: {{ message.content | trim }}\n"
            + "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

    private static void writeTokenizerConfig(Path dir) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = json.createObjectNode().put("tokenizer_class", "PreTrainedTokenizerFast").put("bos_token", "<s>")
                .put("eos_token", "</s>").put("unk_token", "<unk>").put("chat_template", CHAT_TEMPLATE);
        json.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("tokenizer_config.json").toFile(), config);
    }

    static String corpus() throws IOException {
        try (InputStream in = DemoModel.class.getResourceAsStream("corpus.txt")) {
            if (in == null) {
                throw new IOException("corpus.txt missing from the jar");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
