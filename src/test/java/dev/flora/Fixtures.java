package dev.flora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The reference fixtures in src/test/resources/fixtures (made by transformers + PEFT; see their README). */
public final class Fixtures {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Fixtures() {
    }

    public static Path llamaTiny() {
        try {
            return Path.of(Fixtures.class.getResource("/fixtures/llama-tiny").toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    public static Path llamaTinyModel() {
        return llamaTiny().resolve("model");
    }

    /** One line of expected.jsonl. */
    public record Expected(String id, String prompt, String adapter, int[] tokens, double[] logprobs, int[] greedy,
                           double[] greedyMargins) {
    }

    public static List<Expected> llamaTinyExpected() {
        return expected(llamaTiny());
    }

    /** expected.jsonl of a fixture folder. */
    public static List<Expected> expected(Path fixture) {
        List<Expected> out = new ArrayList<>();
        for (JsonNode n : jsonLines(fixture.resolve("expected.jsonl"))) {
            double[] logprobs = new double[n.get("logprobs").size()];
            for (int i = 0; i < logprobs.length; i++) {
                JsonNode v = n.get("logprobs").get(i);
                logprobs[i] = v.isNull() ? Double.NaN : v.asDouble();
            }
            double[] margins = new double[n.get("greedy_margins").size()];
            for (int i = 0; i < margins.length; i++) {
                margins[i] = n.get("greedy_margins").get(i).asDouble();
            }
            JsonNode adapter = n.get("adapter");
            out.add(new Expected(n.get("id").asText(), n.get("prompt").asText(), adapter == null || adapter.isNull() ? null : adapter.asText(),
                    ints(n.get("tokens")), logprobs, ints(n.get("greedy")), margins));
        }
        return out;
    }

    public static List<JsonNode> jsonLines(Path file) {
        try {
            List<JsonNode> out = new ArrayList<>();
            for (String line : Files.readAllLines(file)) {
                if (!line.isBlank()) {
                    out.add(JSON.readTree(line));
                }
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    /** Copies a directory tree (fixtures are read-only in some checkouts; the copy is writable). */
    public static void copyTree(Path from, Path to) throws IOException {
        try (var walk = Files.walk(from)) {
            for (Path p : walk.toList()) {
                Path target = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(p, target);
                    target.toFile().setWritable(true);
                }
            }
        }
    }

    /** A small chat template for the llama-tiny fixture: roles and contents on lines, an error for unknown roles. */
    public static final String TINY_CHAT_TEMPLATE = "{{ bos_token }}{% for message in messages %}"
            + "{% if message.role not in ['system', 'user', 'assistant'] %}{{ raise_exception('Unknown role: ' ~ message.role) }}{% endif %}"
            + "{{ message.role }}: {{ message.content | trim }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

    private static Path llamaTinyChat;

    /**
     * The llama-tiny model with a chat template: a copy of its directory (made once per test JVM)
     * whose tokenizer_config.json has {@link #TINY_CHAT_TEMPLATE} and its special tokens.
     */
    public static synchronized Path llamaTinyChatModel() {
        if (llamaTinyChat == null) {
            try {
                Path dir = Files.createTempDirectory("flora-llama-tiny-chat");
                copyTree(llamaTinyModel(), dir);
                var config = JSON.createObjectNode().put("tokenizer_class", "PreTrainedTokenizerFast").put("bos_token", "<s>")
                        .put("eos_token", "</s>").put("unk_token", "<unk>").put("chat_template", TINY_CHAT_TEMPLATE);
                Files.writeString(dir.resolve("tokenizer_config.json"), JSON.writeValueAsString(config));
                Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(dir)));
                llamaTinyChat = dir;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return llamaTinyChat;
    }

    private static void deleteTree(Path dir) {
        try (var walk = Files.walk(dir)) {
            for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            // a temporary directory: the system cleans it eventually
        }
    }
}
