package dev.flora.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.Fixtures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;

import static org.assertj.core.api.Assertions.assertThat;

/** The commands of DESIGN §4 as a user runs them, and their answers to bad input. */
class CliTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    record Run(int code, String out, String err) {
    }

    static Run flora(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.execute(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString(), err.toString());
    }

    /** A clear one-line error: exit 1, "error: ..." naming what is wrong, no stack trace. */
    static void assertCleanError(Run run, String... mentions) {
        assertThat(run.code()).as("exit code; stderr: %s", run.err()).isEqualTo(1);
        List<String> lines = run.err().lines().toList();
        assertThat(lines).as("stderr").hasSize(1);
        assertThat(lines.getFirst()).startsWith("error: ").doesNotContain("Exception").doesNotContain("\tat ");
        for (String m : mentions) {
            assertThat(lines.getFirst()).contains(m);
        }
    }

    @Test
    void runningOutOfJavaHeapIsOneErrorLine() {
        StringWriter err = new StringWriter();
        int code = Main.outOfMemoryAsError(() -> {
            throw new OutOfMemoryError("Java heap space");
        }, new PrintWriter(err, true));
        assertCleanError(new Run(code, "", err.toString()), "out of Java heap memory", "-Xmx", "--kv-cache-memory");
        assertThat(Main.outOfMemoryAsError(() -> 7, new PrintWriter(new StringWriter(), true))).isEqualTo(7);
    }

    private Path baseRequests() throws IOException {
        Path file = tmp.resolve("requests.jsonl");
        List<String> lines = Files.readAllLines(Fixtures.llamaTiny().resolve("requests.jsonl")).stream()
                .filter(l -> l.contains("\"adapter\": null")).toList();
        assertThat(lines).hasSizeGreaterThanOrEqualTo(4);
        Files.write(file, lines);
        return file;
    }

    private Path model() throws IOException {
        Path dir = tmp.resolve("model");
        if (!Files.exists(dir)) {
            Fixtures.copyTree(Fixtures.llamaTinyModel(), dir);
        }
        return dir;
    }

    @Test
    void scoreWritesTheContractFormatAndMatchesTransformers() throws IOException {
        Path out = tmp.resolve("out.jsonl");
        Run run = flora("score", "--model", Fixtures.llamaTinyModel().toString(), "--requests", baseRequests().toString(), "--out", out.toString());
        assertThat(run.code()).as(run.err()).isZero();
        Map<String, Fixtures.Expected> expected = Fixtures.llamaTinyExpected().stream().collect(Collectors.toMap(Fixtures.Expected::id, Function.identity()));
        List<JsonNode> lines = Fixtures.jsonLines(out);
        assertThat(lines).hasSize(4);
        for (JsonNode line : lines) {
            assertThat(line.fieldNames()).toIterable().containsExactly("id", "tokens", "logprobs", "greedy");
            Fixtures.Expected e = expected.get(line.get("id").asText());
            assertThat(Fixtures.ints(line.get("tokens"))).containsExactly(e.tokens());
            assertThat(line.get("logprobs").get(0).isNull()).isTrue();
            for (int i = 1; i < e.logprobs().length; i++) {
                assertThat(Math.abs(line.get("logprobs").get(i).asDouble() - e.logprobs()[i])).isLessThanOrEqualTo(1e-4);
            }
            assertThat(line.get("greedy")).hasSize(8);
        }
    }

    @Test
    void scoreIgnoresUnknownFieldsAndAcceptsBaseRanges() throws IOException {
        Path in = tmp.resolve("in.jsonl");
        Files.writeString(in, """
                {"id": 7, "prompt": "Hello", "adapter": null, "extra": [1, 2]}

                {"id": "b", "prompt": "Hello", "adapters": [{"from": 0, "name": null}]}
                """);
        Path out = tmp.resolve("out.jsonl");
        Run run = flora("score", "--model", Fixtures.llamaTinyModel().toString(), "--requests", in.toString(), "--out", out.toString(), "--greedy-tokens", "3");
        assertThat(run.code()).as(run.err()).isZero();
        List<JsonNode> lines = Fixtures.jsonLines(out);
        assertThat(lines.get(0).get("id").asInt()).isEqualTo(7);
        assertThat(lines.get(0).get("greedy")).hasSize(3);
        assertThat(lines.get(0).get("logprobs")).isEqualTo(lines.get(1).get("logprobs"));
    }

    @Test
    void scoreAllFixtureRequestsWithSevenAdaptersInOneRun() throws IOException {
        List<String> args = new java.util.ArrayList<>(List.of("score", "--model", Fixtures.llamaTinyModel().toString(),
                "--requests", Fixtures.llamaTiny().resolve("requests.jsonl").toString(), "--out", tmp.resolve("all.jsonl").toString()));
        try (var dirs = Files.list(Fixtures.llamaTiny().resolve("adapters"))) {
            for (Path d : dirs.sorted().toList()) {
                args.add("--adapter");
                args.add(d.getFileName() + "=" + d);
            }
        }
        Run run = flora(args.toArray(String[]::new));
        assertThat(run.code()).as(run.err()).isZero();
        Map<String, Fixtures.Expected> expected = Fixtures.llamaTinyExpected().stream().collect(Collectors.toMap(Fixtures.Expected::id, Function.identity()));
        List<JsonNode> lines = Fixtures.jsonLines(tmp.resolve("all.jsonl"));
        assertThat(lines).hasSize(36);
        for (JsonNode line : lines) {
            Fixtures.Expected e = expected.get(line.get("id").asText());
            for (int i = 1; i < e.logprobs().length; i++) {
                assertThat(Math.abs(line.get("logprobs").get(i).asDouble() - e.logprobs()[i])).as("%s %d", e.id(), i).isLessThanOrEqualTo(1e-4);
            }
        }
    }

    @Test
    void scoreRefusesUnknownAdaptersAndBadRanges() throws IOException {
        String model = Fixtures.llamaTinyModel().toString();
        String lora = "lora=" + Fixtures.llamaTiny().resolve("adapters/lora-qv-r4");
        Path in = tmp.resolve("r.jsonl");
        Files.writeString(in, "{\"id\": \"a\", \"prompt\": \"hello world\", \"adapters\": [{\"from\": 0, \"name\": \"lora\"}, {\"from\": 2, \"name\": \"other\"}]}\n");
        assertCleanError(flora("score", "--model", model, "--adapter", lora, "--requests", in.toString(), "--out", tmp.resolve("o").toString()),
                "line 1", "unknown adapter 'other'", "--adapter other=DIR");
        Files.writeString(in, "{\"id\": \"a\", \"prompt\": \"hello world\", \"adapters\": [{\"from\": 0, \"name\": \"lora\"}, {\"from\": 99, \"name\": null}]}\n");
        assertCleanError(flora("score", "--model", model, "--adapter", lora, "--requests", in.toString(), "--out", tmp.resolve("o").toString()),
                "line 1", "past the prompt");
        Path bad = tmp.resolve("bad-adapter");
        Fixtures.copyTree(Fixtures.llamaTiny().resolve("adapters/lora-qv-r4"), bad);
        Files.writeString(bad.resolve("adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": 4, \"use_dora\": true}");
        assertCleanError(flora("score", "--model", model, "--adapter", "x=" + bad, "--requests", in.toString(), "--out", tmp.resolve("o").toString()),
                "DoRA");
    }

    /** Random adapters written to disk, scored with one adapter in host memory: the same lines as with all of them there. */
    @Test
    void randomAdaptersScoredWithTheHostTierCapped() throws IOException {
        String model = Fixtures.llamaTinyModel().toString();
        Run written = flora("adapters", "random", "--model", model, "--out", tmp.resolve("random").toString(), "--count", "3",
                "--kind", "flora", "--rank", "2", "--targets", "q_proj,down_proj", "--dtype", "f32");
        assertThat(written.code()).as(written.err()).isZero();
        assertThat(written.out()).contains("wrote 3 FLORA adapters");
        List<String> names = List.of("flora-r2-0000", "flora-r2-0001", "flora-r2-0002");
        Run inspect = flora("adapters", "inspect", tmp.resolve("random").resolve(names.getFirst()).toString());
        assertThat(inspect.out()).contains("FLORA").contains("down_proj, q_proj").contains("[2]");
        Path in = tmp.resolve("r.jsonl");
        StringBuilder lines = new StringBuilder();
        for (int i = 0; i < 9; i++) {
            lines.append("{\"id\": ").append(i).append(", \"prompt\": \"tier ").append(i).append(" of memory\", \"adapter\": \"")
                    .append(names.get(i % 3)).append("\"}\n");
        }
        Files.writeString(in, lines);
        List<String> args = new java.util.ArrayList<>(List.of("score", "--model", model, "--requests", in.toString(), "--greedy-tokens", "3"));
        for (String n : names) {
            args.add("--adapter");
            args.add(n + "=" + tmp.resolve("random").resolve(n));
        }
        List<String> all = new java.util.ArrayList<>(args);
        all.addAll(List.of("--out", tmp.resolve("all.jsonl").toString()));
        List<String> capped = new java.util.ArrayList<>(args);
        capped.addAll(List.of("--out", tmp.resolve("capped.jsonl").toString(), "--max-cpu-adapters", "1"));
        assertThat(flora(all.toArray(String[]::new)).code()).isZero();
        Run run = flora(capped.toArray(String[]::new));
        assertThat(run.code()).as(run.err()).isZero();
        assertThat(Files.readAllLines(tmp.resolve("capped.jsonl"))).hasSize(9).isEqualTo(Files.readAllLines(tmp.resolve("all.jsonl")));
        capped.addAll(List.of("--max-adapters", "2"));
        assertCleanError(flora(capped.toArray(String[]::new)), "--max-cpu-adapters (1) must be at least --max-adapters (2)");
    }

    @Test
    void adaptersInspectDescribesEachKind() {
        Run lora = flora("adapters", "inspect", Fixtures.llamaTiny().resolve("adapters/lora-rslora-patterns").toString());
        assertThat(lora.code()).as(lora.err()).isZero();
        assertThat(lora.out()).contains("LORA").contains("down_proj, q_proj, v_proj").contains("[2, 4, 6]").contains("rsLoRA").contains("parameters");
        Run flora = flora("adapters", "inspect", Fixtures.llamaTiny().resolve("adapters/flora-all-r4").toString());
        assertThat(flora.out()).contains("FLORA").contains("[4]").contains("W0");
        Run ia3 = flora("adapters", "inspect", Fixtures.llamaTiny().resolve("adapters/ia3-kvd").toString());
        assertThat(ia3.out()).contains("IA3").contains("down_proj, k_proj, v_proj");
        assertCleanError(flora("adapters", "inspect", tmp.resolve("none").toString()), "adapter_config.json");
    }

    @Test
    void tokenizeMatchesTheTokenizersLibrary() throws IOException {
        JsonNode expected = JSON.readTree(Fixtures.llamaTiny().resolve("tokenizer_expected.json").toFile());
        Path in = tmp.resolve("texts.jsonl");
        StringBuilder lines = new StringBuilder();
        for (JsonNode e : expected) {
            lines.append(JSON.writeValueAsString(JSON.createObjectNode().put("text", e.get("text").asText()))).append('\n');
        }
        Files.writeString(in, lines);
        Path out = tmp.resolve("ids.jsonl");
        Run run = flora("tokenize", "--tokenizer", Fixtures.llamaTinyModel().resolve("tokenizer.json").toString(), "--input", in.toString(), "--output", out.toString());
        assertThat(run.code()).as(run.err()).isZero();
        List<JsonNode> got = Fixtures.jsonLines(out);
        assertThat(got).hasSize(expected.size());
        for (int i = 0; i < got.size(); i++) {
            assertThat(got.get(i).get("ids")).isEqualTo(expected.get(i).get("ids"));
            assertThat(got.get(i).get("ids_no_special")).isEqualTo(expected.get(i).get("ids_no_special"));
            assertThat(got.get(i).get("decoded")).isEqualTo(expected.get(i).get("decoded"));
        }
    }

    @Test
    void generateStreamsTheGreedyContinuation() {
        Run run = flora("generate", "--model", Fixtures.llamaTinyModel().toString(), "--prompt", "def fibonacci(n):", "--max-tokens", "8",
                "--temperature", "0", "--ignore-eos");
        assertThat(run.code()).as(run.err()).isZero();
        assertThat(run.err()).contains("8 generated");
        assertThat(run.out().strip()).isNotEmpty();
        Run again = flora("generate", "--model", Fixtures.llamaTinyModel().toString(), "--prompt", "def fibonacci(n):", "--max-tokens", "8",
                "--temperature", "0", "--ignore-eos");
        assertThat(again.out()).isEqualTo(run.out());
    }

    @Test
    void generateWithAnAdapterFollowsItsGreedyTokens() {
        Fixtures.Expected e = Fixtures.llamaTinyExpected().stream().filter(x -> x.id().equals("r13")).findFirst().orElseThrow();
        assertThat(e.adapter()).isEqualTo("lora-all-r8");
        Run run = flora("generate", "--model", Fixtures.llamaTinyModel().toString(), "--prompt", e.prompt(), "--max-tokens", "3",
                "--temperature", "0", "--ignore-eos", "--adapter", Fixtures.llamaTiny().resolve("adapters/lora-all-r8").toString());
        assertThat(run.code()).as(run.err()).isZero();
        try (var tok = dev.flora.tokenizer.Tokenizer.load(Fixtures.llamaTinyModel().resolve("tokenizer.json"))) {
            int[] all = java.util.stream.IntStream.concat(java.util.Arrays.stream(e.tokens()), java.util.Arrays.stream(e.greedy()).limit(3)).toArray();
            String expected = tok.decode(all, true).substring(tok.decode(e.tokens(), true).length());
            assertThat(run.out()).isEqualTo(expected + System.lineSeparator());
        }
        Run base = flora("generate", "--model", Fixtures.llamaTinyModel().toString(), "--prompt", e.prompt(), "--max-tokens", "3",
                "--temperature", "0", "--ignore-eos");
        assertThat(run.out()).isNotEqualTo(base.out());
    }

    @Test
    void seededSamplingIsReproducibleAndSeedsDiffer() {
        String model = Fixtures.llamaTinyModel().toString();
        Run a = flora("generate", "--model", model, "--prompt", "Hello", "--max-tokens", "12", "--temperature", "1.0", "--top-k", "50", "--top-p", "0.95", "--seed", "3", "--ignore-eos");
        Run b = flora("generate", "--model", model, "--prompt", "Hello", "--max-tokens", "12", "--temperature", "1.0", "--top-k", "50", "--top-p", "0.95", "--seed", "3", "--ignore-eos");
        Run c = flora("generate", "--model", model, "--prompt", "Hello", "--max-tokens", "12", "--temperature", "1.0", "--top-k", "50", "--top-p", "0.95", "--seed", "4", "--ignore-eos");
        assertThat(a.code()).isZero();
        assertThat(a.out()).isEqualTo(b.out()).isNotEqualTo(c.out());
    }

    @Test
    void everyCommandHasHelp() {
        for (String command : List.of("demo", "score", "generate", "tokenize", "adapters", "bench")) {
            Run run = flora(command, "--help");
            assertThat(run.code()).isZero();
            assertThat(run.out()).contains("Usage: flora " + command);
        }
        assertThat(flora("--help").out()).contains("score", "generate", "tokenize", "demo");
    }

    @Test
    void usageErrorsExitTwoWithAHint() {
        Run run = flora("score", "--model");
        assertThat(run.code()).isEqualTo(2);
        assertThat(run.err()).contains("error: ").contains("--help");
        assertThat(flora("frobnicate").code()).isEqualTo(2);
    }

    @Test
    void missingModelDirectory() throws IOException {
        assertCleanError(flora("score", "--model", tmp.resolve("nope").toString(), "--requests", baseRequests().toString(), "--out", tmp.resolve("o").toString()),
                "nope", "not a model directory");
    }

    @Test
    void truncatedSafetensors() throws IOException {
        Path dir = model();
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("model.safetensors").toFile(), "rw")) {
            f.setLength(f.length() - 1000);
        }
        assertCleanError(flora("generate", "--model", dir.toString(), "--prompt", "hi"), "model.safetensors", "truncated");
    }

    @Test
    void corruptSafetensorsHeader() throws IOException {
        Path dir = model();
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("model.safetensors").toFile(), "rw")) {
            f.seek(8);
            f.write("{not json".getBytes());
        }
        assertCleanError(flora("generate", "--model", dir.toString(), "--prompt", "hi"), "model.safetensors", "not valid JSON");
    }

    @Test
    void safetensorsOffsetsOutOfRange() throws IOException {
        Path dir = model();
        Path file = dir.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(file);
        String header = new String(bytes, 8, (int) java.nio.ByteBuffer.wrap(bytes, 0, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong());
        // Move the first tensor's end far past the file, keeping the header's length.
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"data_offsets\":\\[(\\d+),(\\d+)]").matcher(header);
        assertThat(m.find()).isTrue();
        String replaced = "\"data_offsets\":[" + m.group(1) + "," + "9".repeat(m.group(2).length() + 1) + "]";
        String patched = header.substring(0, m.start()) + replaced + header.substring(m.end());
        patched = patched.substring(0, header.length() - 1).stripTrailing();
        patched = patched + " ".repeat(header.length() - patched.length());
        assertThat(patched).hasSameSizeAs(header);
        System.arraycopy(patched.getBytes(), 0, bytes, 8, header.length());
        Files.write(file, bytes);
        Run run = flora("generate", "--model", dir.toString(), "--prompt", "hi");
        assertThat(run.code()).isEqualTo(1);
        assertThat(run.err().lines().toList()).hasSize(1);
        assertThat(run.err()).contains("model.safetensors").doesNotContain("Exception");
    }

    @Test
    void missingTensor() throws IOException {
        Path dir = model();
        editConfig(dir, c -> c.put("num_hidden_layers", 4));
        assertCleanError(flora("generate", "--model", dir.toString(), "--prompt", "hi"), "missing tensor", "model.layers.3.");
    }

    @Test
    void configMissingAKey() throws IOException {
        Path dir = model();
        editConfig(dir, c -> c.remove("hidden_size"));
        assertCleanError(flora("generate", "--model", dir.toString(), "--prompt", "hi"), "config.json", "hidden_size");
    }

    @Test
    void configNamingAnUnknownArchitecture() throws IOException {
        Path dir = model();
        editConfig(dir, c -> c.putArray("architectures").add("GPTNeoXForCausalLM"));
        assertCleanError(flora("generate", "--model", dir.toString(), "--prompt", "hi"), "GPTNeoXForCausalLM", "LlamaForCausalLM");
    }

    @Test
    void configNamingAnUnknownOption() throws IOException {
        Path dir = model();
        editConfig(dir, c -> ((ObjectNode) c.get("rope_parameters")).put("rope_type", "yarn").put("factor", 2.0));
        assertCleanError(flora("generate", "--model", dir.toString(), "--prompt", "hi"), "yarn", "llama3");
    }

    @Test
    void configThatIsNotJson() throws IOException {
        Path dir = model();
        Files.writeString(dir.resolve("config.json"), "{\"hidden_size\": 64,");
        assertCleanError(flora("generate", "--model", dir.toString(), "--prompt", "hi"), "config.json", "not valid JSON");
    }

    @Test
    void tokenizerThatDoesNotParse() throws IOException {
        Path dir = model();
        Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": [");
        assertCleanError(flora("generate", "--model", dir.toString(), "--prompt", "hi"), "tokenizer.json");
        Path in = tmp.resolve("t.jsonl");
        Files.writeString(in, "{\"text\": \"a\"}\n");
        assertCleanError(flora("tokenize", "--tokenizer", dir.resolve("tokenizer.json").toString(), "--input", in.toString()), "tokenizer.json");
    }

    @Test
    void promptLongerThanTheContext() throws IOException {
        String longPrompt = "word ".repeat(600);
        assertCleanError(flora("generate", "--model", Fixtures.llamaTinyModel().toString(), "--prompt", longPrompt), "context of 512");
        Path in = tmp.resolve("long.jsonl");
        Files.writeString(in, JSON.writeValueAsString(JSON.createObjectNode().put("id", "x").put("prompt", longPrompt)) + "\n");
        assertCleanError(flora("score", "--model", Fixtures.llamaTinyModel().toString(), "--requests", in.toString(), "--out", tmp.resolve("o.jsonl").toString()),
                "line 1", "context of 512");
        assertThat(tmp.resolve("o.jsonl")).doesNotExist();
    }

    @Test
    void requestLineThatIsNotJson() throws IOException {
        Path in = tmp.resolve("bad.jsonl");
        Files.writeString(in, "{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"b\", \"prompt\": \n");
        assertCleanError(flora("score", "--model", Fixtures.llamaTinyModel().toString(), "--requests", in.toString(), "--out", tmp.resolve("o.jsonl").toString()),
                "bad.jsonl line 2", "not valid JSON");
    }

    @Test
    void requestsWithBadFields() throws IOException {
        Path in = tmp.resolve("bad.jsonl");
        Files.writeString(in, "{\"id\": \"a\", \"prompt\": 5}\n");
        String model = Fixtures.llamaTinyModel().toString();
        String out = tmp.resolve("o.jsonl").toString();
        assertCleanError(flora("score", "--model", model, "--requests", in.toString(), "--out", out), "line 1", "\"prompt\" must be a string");
        Files.writeString(in, "[1, 2]\n");
        assertCleanError(flora("score", "--model", model, "--requests", in.toString(), "--out", out), "line 1", "JSON object");
        Files.writeString(in, "{\"id\": \"a\", \"prompt\": \"x\", \"adapter\": \"lora-qv-r4\"}\n");
        assertCleanError(flora("score", "--model", model, "--requests", in.toString(), "--out", out), "line 1", "lora-qv-r4");
        assertCleanError(flora("score", "--model", model, "--requests", tmp.resolve("none.jsonl").toString(), "--out", out), "none.jsonl", "no such file");
    }

    @Test
    void badOptionValues() throws IOException {
        String model = Fixtures.llamaTinyModel().toString();
        assertCleanError(flora("score", "--model", model, "--requests", baseRequests().toString(), "--out", tmp.resolve("o").toString(), "--greedy-tokens", "-1"),
                "--greedy-tokens");
        assertCleanError(flora("generate", "--model", model, "--prompt", "hi", "--device", "cuda"), "cuda");
        assertCleanError(flora("generate", "--model", model, "--prompt", "hi", "--temperature", "-1"), "temperature");
        assertCleanError(flora("generate", "--model", model, "--prompt", "hi", "--top-p", "0"), "top-p");
        assertCleanError(flora("score", "--model", model, "--requests", baseRequests().toString(), "--out", tmp.resolve("o").toString(), "--strategy", "fastest"),
                "fastest", "gathered");
    }

    @Test
    void demoServesThirtyTwoAdaptersUnderLoad() {
        Path cache = tmp.resolve("cache");
        Run run = flora("demo", "--cache", cache.toString(), "--requests", "12", "--rate", "50");
        assertThat(run.code()).as(run.err()).isZero();
        assertThat(run.out()).contains("32 adapters").contains("Load 1").contains("Load 2").contains("(0 failed)")
                .contains("output tokens/s is").contains("(round 2 of 2)");
        // Adapters, base, base, adapters: four tables, and each round's ratio beside the whole one.
        assertThat(run.out().lines().filter(l -> l.startsWith("requests "))).hasSize(4);
        assertThat(run.out().lines().filter(l -> l.startsWith("Load ")).map(l -> l.substring(0, 6)).toList())
                .containsExactly("Load 1", "Load 2", "Load 2", "Load 1");
        assertThat(run.out()).containsPattern("is [0-9.]+x the base model's under the same load \\(rounds: [0-9.]+x, [0-9.]+x\\)\\.");

        Run bad = flora("demo", "--cache", cache.toString(), "--rounds", "0");
        assertThat(bad.code()).isNotZero();
        assertThat(bad.err()).contains("--rounds").doesNotContain("Exception");
    }

    private static String stripTimes(String s) {
        return s.replaceAll("in [0-9.]+ s over .*", "");
    }

    private static void editConfig(Path dir, java.util.function.Consumer<ObjectNode> edit) throws IOException {
        Path file = dir.resolve("config.json");
        ObjectNode config = (ObjectNode) JSON.readTree(file.toFile());
        edit.accept(config);
        JSON.writeValue(file.toFile(), config);
    }
}
