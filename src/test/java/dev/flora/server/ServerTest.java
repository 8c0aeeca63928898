package dev.flora.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.Fixtures;
import dev.flora.adapter.AdapterLoader;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.EngineLoop;
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Function;
import java.util.stream.Collectors;

import static org.assertj.core.api.Assertions.assertThat;

/** The OpenAI-compatible server over real HTTP, on loopback. */
class ServerTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static PretrainedModel model;
    static EngineLoop loop;
    static OpenAiServer server;
    static HttpClient http;
    static String base;

    @BeforeAll
    static void start() {
        model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend());
        AdapterRegistry registry = new AdapterRegistry(7);
        registry.pin(AdapterStrategy.EXACT);
        for (String name : List.of("lora-qv-r4", "lora-all-r8", "ia3-kvd", "flora-qk-r1", "flora-all-r4", "lora-rslora-patterns", "lora-regex-bias")) {
            registry.register(AdapterLoader.load(name, Fixtures.llamaTiny().resolve("adapters").resolve(name), model.model().linears(), model.model().backend()));
        }
        loop = new EngineLoop(new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry), 64);
        server = new OpenAiServer(model, loop, registry, "llama-tiny", null, "127.0.0.1", 0);
        server.start();
        http = HttpClient.newHttpClient();
        base = "http://127.0.0.1:" + server.port();
    }

    @AfterAll
    static void stop() {
        server.close();
        loop.close();
        model.close();
    }

    static HttpResponse<String> post(String path, String body) throws IOException, InterruptedException {
        return http.send(HttpRequest.newBuilder(URI.create(base + path)).POST(HttpRequest.BodyPublishers.ofString(body))
                .header("Content-Type", "application/json").build(), HttpResponse.BodyHandlers.ofString());
    }

    static HttpResponse<String> get(String path) throws IOException, InterruptedException {
        return http.send(HttpRequest.newBuilder(URI.create(base + path)).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    static ObjectNode completion(String model, String prompt) {
        return JSON.createObjectNode().put("model", model).put("prompt", prompt).put("max_tokens", 6).put("temperature", 0);
    }

    @Test
    void healthAndModels() throws Exception {
        assertThat(get("/health").statusCode()).isEqualTo(200);
        JsonNode models = JSON.readTree(get("/v1/models").body());
        List<String> ids = new ArrayList<>();
        models.get("data").forEach(m -> ids.add(m.get("id").asText()));
        assertThat(ids).contains("llama-tiny", "lora-qv-r4", "flora-all-r4", "ia3-kvd").hasSize(8);
        assertThat(models.get("data").get(1).get("parent").asText()).isEqualTo("llama-tiny");
    }

    /** echo + logprobs return the prompt's log-probabilities: transformers + PEFT's, for the base and every adapter. */
    @Test
    void echoLogprobsEqualTheReference() throws Exception {
        Map<String, Fixtures.Expected> byId = Fixtures.llamaTinyExpected().stream().collect(Collectors.toMap(Fixtures.Expected::id, Function.identity()));
        for (String id : List.of("r0", "r1", "r3", "r5", "r6", "r7")) {
            Fixtures.Expected e = byId.get(id);
            ObjectNode body = completion(e.adapter() == null ? "llama-tiny" : e.adapter(), e.prompt()).put("echo", true).put("logprobs", 1).put("max_tokens", 2);
            JsonNode r = JSON.readTree(post("/v1/completions", body.toString()).body());
            JsonNode lp = r.get("choices").get(0).get("logprobs").get("token_logprobs");
            assertThat(lp.get(0).isNull()).isTrue();
            for (int t = 1; t < e.logprobs().length; t++) {
                assertThat(Math.abs(lp.get(t).asDouble() - e.logprobs()[t])).as("%s %d", id, t).isLessThanOrEqualTo(1e-4);
            }
            assertThat(r.get("choices").get(0).get("text").asText()).startsWith(e.prompt());
            assertThat(r.get("usage").get("prompt_tokens").asInt()).isEqualTo(e.tokens().length);
            assertThat(r.get("usage").get("completion_tokens").asInt()).isEqualTo(2);
        }
    }

    @Test
    void tokenIdPromptsAndTokenIdOutput() throws Exception {
        Fixtures.Expected e = Fixtures.llamaTinyExpected().getFirst();
        ObjectNode body = JSON.createObjectNode().put("model", "llama-tiny").put("max_tokens", 3).put("temperature", 0).put("logprobs", 0)
                .put("return_tokens_as_token_ids", true);
        var prompt = body.putArray("prompt");
        for (int t : e.tokens()) {
            prompt.add(t);
        }
        JsonNode r = JSON.readTree(post("/v1/completions", body.toString()).body());
        JsonNode tokens = r.get("choices").get(0).get("logprobs").get("tokens");
        for (int i = 0; i < 3; i++) {
            assertThat(tokens.get(i).asText()).isEqualTo("token_id:" + e.greedy()[i]);
        }
    }

    @Test
    void streamingEqualsNonStreaming() throws Exception {
        for (String m : List.of("llama-tiny", "lora-all-r8", "flora-all-r4")) {
            ObjectNode body = completion(m, "Grüße aus Köln 🙂🚀 東京").put("max_tokens", 12).put("ignore_eos", true);
            String text = JSON.readTree(post("/v1/completions", body.toString()).body()).get("choices").get(0).get("text").asText();
            body.put("stream", true);
            body.putObject("stream_options").put("include_usage", true);
            HttpResponse<String> streamed = post("/v1/completions", body.toString());
            assertThat(streamed.headers().firstValue("content-type").orElse("")).startsWith("text/event-stream");
            StringBuilder joined = new StringBuilder();
            String finish = null;
            JsonNode usage = null;
            List<String> events = streamed.body().lines().filter(l -> l.startsWith("data: ")).map(l -> l.substring(6)).toList();
            assertThat(events.getLast()).isEqualTo("[DONE]");
            for (String event : events.subList(0, events.size() - 1)) {
                JsonNode chunk = JSON.readTree(event);
                if (chunk.has("usage") && chunk.get("choices").isEmpty()) {
                    usage = chunk.get("usage");
                    continue;
                }
                joined.append(chunk.get("choices").get(0).get("text").asText());
                if (!chunk.get("choices").get(0).get("finish_reason").isNull()) {
                    finish = chunk.get("choices").get(0).get("finish_reason").asText();
                }
            }
            assertThat(joined.toString()).as(m).isEqualTo(text);
            assertThat(finish).isEqualTo("length");
            assertThat(usage.get("completion_tokens").asInt()).isEqualTo(12);
        }
    }

    /** A stop string that spans a token boundary ends the text before it, streamed or not, with finish_reason stop. */
    @Test
    void stopStringsSplitAcrossTokens() throws Exception {
        ObjectNode body = completion("lora-all-r8", "def fibonacci(n):").put("max_tokens", 16).put("ignore_eos", true).put("logprobs", 0)
                .put("return_tokens_as_token_ids", false);
        JsonNode full = JSON.readTree(post("/v1/completions", body.toString()).body()).get("choices").get(0);
        String text = full.get("text").asText();
        JsonNode tokens = full.get("logprobs").get("tokens");
        // A stop string made of the end of one token's text and the start of a later one's.
        int at = 0;
        int k = 0;
        while (k < tokens.size() - 2 && (tokens.get(k).asText().length() < 1 || tokens.get(k + 1).asText().isEmpty())) {
            at += tokens.get(k).asText().length();
            k++;
        }
        at += tokens.get(k).asText().length();
        int cut = text.indexOf(tokens.get(k + 1).asText(), at - 1);
        assertThat(cut).isGreaterThan(0);
        String stop = text.substring(cut - 1, cut + 1);
        int first = text.indexOf(stop);
        ObjectNode stopped = body.deepCopy().put("stop", stop);
        stopped.remove("logprobs");
        JsonNode choice = JSON.readTree(post("/v1/completions", stopped.toString()).body()).get("choices").get(0);
        assertThat(choice.get("text").asText()).isEqualTo(text.substring(0, first));
        assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");
        assertThat(choice.get("stop_reason").asText()).isEqualTo(stop);
        stopped.put("include_stop_str_in_output", true);
        assertThat(JSON.readTree(post("/v1/completions", stopped.toString()).body()).get("choices").get(0).get("text").asText())
                .isEqualTo(text.substring(0, first + stop.length()));
        stopped.put("include_stop_str_in_output", false).put("stream", true);
        StringBuilder streamed = new StringBuilder();
        for (String line : post("/v1/completions", stopped.toString()).body().lines().filter(l -> l.startsWith("data: {")).toList()) {
            streamed.append(JSON.readTree(line.substring(6)).get("choices").get(0).get("text").asText());
        }
        assertThat(streamed.toString()).isEqualTo(text.substring(0, first));
    }

    /** Many heterogeneous requests at once return exactly what each returns alone (pinned strategy). */
    @Test
    void concurrentHeterogeneousRequestsEqualEachAlone() throws Exception {
        List<ObjectNode> bodies = new ArrayList<>();
        String[] models = {"llama-tiny", "lora-qv-r4", "lora-all-r8", "ia3-kvd", "flora-qk-r1", "flora-all-r4", "lora-rslora-patterns", "lora-regex-bias"};
        for (int i = 0; i < 24; i++) {
            bodies.add(completion(models[i % models.length], "request number " + i + " says hello").put("max_tokens", 8).put("ignore_eos", true)
                    .put("logprobs", 1));
        }
        List<String> alone = new ArrayList<>();
        for (ObjectNode b : bodies) {
            alone.add(JSON.readTree(post("/v1/completions", b.toString()).body()).get("choices").get(0).toString());
        }
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<String>> futures = new ArrayList<>();
            for (ObjectNode b : bodies) {
                futures.add(pool.submit(() -> JSON.readTree(post("/v1/completions", b.toString()).body()).get("choices").get(0).toString()));
            }
            for (int i = 0; i < bodies.size(); i++) {
                assertThat(futures.get(i).get()).as("request %d", i).isEqualTo(alone.get(i));
            }
        }
    }

    @Test
    void errorsAreOpenAiErrorBodies() throws Exception {
        assertError(post("/v1/completions", "{\"model\": "), 400, "not valid JSON");
        assertError(post("/v1/completions", "[1, 2]"), 400, "JSON object");
        assertError(post("/v1/completions", completion("nope", "x").toString()), 404, "does not exist");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("temperature", -1).toString()), 400, "temperature");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("n", 0).toString()), 400, "n must be");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("n", 3).put("best_of", 2).toString()), 400, "best_of");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("best_of", 2).put("stream", true).toString()), 400, "best_of");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("stop", 5).toString()), 400, "stop");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("presence_penalty", 2.5).toString()), 400, "presence_penalty");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("repetition_penalty", 0).toString()), 400, "repetition_penalty");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("min_p", 0.1).toString()), 400, "min_p");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("use_beam_search", true).toString()), 400, "use_beam_search");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("skip_special_tokens", false).toString()), 400, "skip_special_tokens");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("suffix", "!").toString()), 400, "suffix");
        ObjectNode bias = completion("llama-tiny", "x");
        bias.putObject("logit_bias").put("5", 10);
        assertError(post("/v1/completions", bias.toString()), 400, "logit_bias");
        assertError(post("/v1/completions", completion("llama-tiny", "word ".repeat(600)).toString()), 400, "maximum context length");
        assertError(post("/v1/completions", completion("llama-tiny", "x").put("max_tokens", "many").toString()), 400, "max_tokens");
        assertError(post("/v1/completions", JSON.createObjectNode().put("model", "llama-tiny").toString()), 400, "prompt");
        ObjectNode ids = JSON.createObjectNode().put("model", "llama-tiny");
        ids.putArray("prompt").add(1).add(99999);
        assertError(post("/v1/completions", ids.toString()), 400, "outside the vocabulary");
        assertError(get("/v1/nothing"), 404, "no route");
        assertError(get("/v1/completions"), 405, "not allowed");
        // Expect: 100-continue, as curl sends for large bodies: the server refuses before the body is sent
        // (without it, the client may still be writing when the server answers and closes: a broken pipe).
        String oversized = "{\"model\": \"llama-tiny\", \"prompt\": \"" + "a".repeat(17 << 20) + "\"}";
        assertError(http.send(HttpRequest.newBuilder(URI.create(base + "/v1/completions")).expectContinue(true)
                .POST(HttpRequest.BodyPublishers.ofString(oversized)).header("Content-Type", "application/json").build(),
                HttpResponse.BodyHandlers.ofString()), 413, "larger than");
        // Still serving after all of that.
        assertThat(post("/v1/completions", completion("llama-tiny", "still here").toString()).statusCode()).isEqualTo(200);
    }

    static void assertError(HttpResponse<String> r, int status, String message) throws IOException {
        assertThat(r.statusCode()).as(r.body()).isEqualTo(status);
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertThat(e.get("message").asText()).contains(message);
        assertThat(e.has("type")).isTrue();
    }

    static double metric(String text, String nameAndLabels) {
        return text.lines().filter(l -> l.startsWith(nameAndLabels + " ")).mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1)))
                .findFirst().orElse(0);
    }

    @Test
    void metricsParseAndMoveAsRequestsRun() throws Exception {
        HttpResponse<String> before = get("/metrics");
        assertThat(before.statusCode()).isEqualTo(200);
        assertThat(before.headers().firstValue("content-type").orElse("")).startsWith("text/plain");
        for (String name : List.of("vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc", "vllm:lora_requests_info",
                "vllm:time_to_first_token_seconds", "vllm:time_per_output_token_seconds", "vllm:e2e_request_latency_seconds", "flora_step_tokens")) {
            assertThat(before.body()).contains("# TYPE " + name);
        }
        double generated = metric(before.body(), "vllm:generation_tokens_total{model_name=\"llama-tiny\"}");
        double ok = metric(before.body(), "flora_requests_total{model=\"flora-qk-r1\",status=\"200\"}");
        double e2e = metric(before.body(), "vllm:e2e_request_latency_seconds_count{model_name=\"llama-tiny\"}");
        post("/v1/completions", completion("flora-qk-r1", "metrics please").put("max_tokens", 7).put("ignore_eos", true).toString());
        post("/v1/completions", completion("nope", "x").toString());
        String after = get("/metrics").body();
        assertThat(metric(after, "vllm:generation_tokens_total{model_name=\"llama-tiny\"}")).isEqualTo(generated + 7);
        assertThat(metric(after, "flora_requests_total{model=\"flora-qk-r1\",status=\"200\"}")).isEqualTo(ok + 1);
        assertThat(metric(after, "flora_requests_total{model=\"-\",status=\"404\"}")).isGreaterThanOrEqualTo(1);
        assertThat(metric(after, "vllm:e2e_request_latency_seconds_count{model_name=\"llama-tiny\"}")).isEqualTo(e2e + 1);
        assertThat(after).contains("max_lora=\"7\"");
    }

    @Test
    void apiKeyIsRequiredWhenSet() throws Exception {
        AdapterRegistry none = new AdapterRegistry(1);
        try (EngineLoop l = new EngineLoop(new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), none), 4);
             OpenAiServer s = new OpenAiServer(model, l, none, "llama-tiny", "sesame", "127.0.0.1", 0)) {
            s.start();
            String url = "http://127.0.0.1:" + s.port() + "/v1/models";
            assertThat(http.send(HttpRequest.newBuilder(URI.create(url)).GET().build(), HttpResponse.BodyHandlers.ofString()).statusCode()).isEqualTo(401);
            assertThat(http.send(HttpRequest.newBuilder(URI.create(url)).header("Authorization", "Bearer sesame").GET().build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode()).isEqualTo(200);
            assertThat(http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + "/health")).GET().build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode()).isEqualTo(200);
        }
    }

}
