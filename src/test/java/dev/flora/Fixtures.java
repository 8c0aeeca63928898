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
}
