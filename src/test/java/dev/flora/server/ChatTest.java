package dev.flora.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
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

import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import static dev.flora.server.ServerTest.JSON;
import static dev.flora.server.ServerTest.assertError;
import static dev.flora.server.ServerTest.metric;
import static org.assertj.core.api.Assertions.assertThat;

/** POST /v1/chat/completions over real HTTP, on the llama-tiny model with a small chat template. */
class ChatTest {
    static PretrainedModel model;
    static EngineLoop loop;
    static OpenAiServer server;
    static HttpClient http;
    static String base;

    @BeforeAll
    static void start() {
        model = PretrainedModel.load(Fixtures.llamaTinyChatModel(), new CpuBackend());
        AdapterRegistry registry = new AdapterRegistry(2);
        registry.pin(AdapterStrategy.EXACT);
        registry.register(AdapterLoader.load("lora-all-r8", Fixtures.llamaTiny().resolve("adapters").resolve("lora-all-r8"), model.model().linears(),
                model.model().backend()));
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

    static HttpResponse<String> post(String path, JsonNode body) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(base + path)).POST(HttpRequest.BodyPublishers.ofString(body.toString()))
                .header("Content-Type", "application/json").build(), HttpResponse.BodyHandlers.ofString());
    }

    static JsonNode ok(String path, JsonNode body) throws Exception {
        HttpResponse<String> r = post(path, body);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return JSON.readTree(r.body());
    }

    /** A greedy chat request of one user message (after a system message when given). */
    static ObjectNode chat(String model, String user) {
        ObjectNode body = JSON.createObjectNode().put("model", model).put("temperature", 0).put("max_tokens", 8).put("ignore_eos", true);
        body.putArray("messages").addObject().put("role", "user").put("content", user);
        return body;
    }

    static List<String> contents(JsonNode response) {
        List<String> out = new ArrayList<>();
        response.get("choices").forEach(c -> out.add(c.get("message").get("content").asText()));
        return out;
    }

    /** A streamed response: every choice's content joined from its deltas, its finish_reason, and the usage chunk. */
    record Streamed(Map<Integer, String> content, Map<Integer, String> finish, Map<Integer, String> firstRole, JsonNode usage) {
    }

    static Streamed stream(ObjectNode body) throws Exception {
        ObjectNode streaming = body.deepCopy().put("stream", true);
        streaming.putObject("stream_options").put("include_usage", true);
        HttpResponse<String> r = post(ChatEndpoint.PATH, streaming);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(r.headers().firstValue("content-type").orElse("")).startsWith("text/event-stream");
        List<String> events = r.body().lines().filter(l -> l.startsWith("data: ")).map(l -> l.substring(6)).toList();
        assertThat(events.getLast()).isEqualTo("[DONE]");
        Map<Integer, StringBuilder> content = new LinkedHashMap<>();
        Map<Integer, String> finish = new LinkedHashMap<>();
        Map<Integer, String> role = new LinkedHashMap<>();
        JsonNode usage = null;
        for (String event : events.subList(0, events.size() - 1)) {
            JsonNode chunk = JSON.readTree(event);
            assertThat(chunk.get("object").asText()).isEqualTo("chat.completion.chunk");
            if (chunk.get("choices").isEmpty()) {
                usage = chunk.get("usage");
                continue;
            }
            JsonNode choice = chunk.get("choices").get(0);
            int index = choice.get("index").asInt();
            JsonNode delta = choice.get("delta");
            if (!content.containsKey(index)) {
                role.put(index, delta.path("role").asText(null));
            }
            content.computeIfAbsent(index, i -> new StringBuilder()).append(delta.path("content").asText(""));
            if (!choice.get("finish_reason").isNull()) {
                finish.put(index, choice.get("finish_reason").asText());
            }
        }
        Map<Integer, String> joined = new LinkedHashMap<>();
        content.forEach((i, s) -> joined.put(i, s.toString()));
        return new Streamed(joined, finish, role, usage);
    }

    @Test
    void chatIsTheCompletionOfTheRenderedPromptWithoutASecondBos() throws Exception {
        JsonNode r = ok(ChatEndpoint.PATH, chat("llama-tiny", "Hello! 👋"));
        assertThat(r.get("object").asText()).isEqualTo("chat.completion");
        assertThat(r.get("id").asText()).startsWith("chatcmpl-");
        JsonNode choice = r.get("choices").get(0);
        assertThat(choice.get("message").get("role").asText()).isEqualTo("assistant");
        assertThat(choice.get("finish_reason").asText()).isEqualTo("length");
        assertThat(choice.get("stop_reason").isNull()).isTrue();
        int[] ids = model.tokenizer().encode("<s>user: Hello! 👋\nassistant:", false);
        assertThat(ids[0]).isEqualTo(1);
        assertThat(ids[1]).isNotEqualTo(1);
        ObjectNode completion = JSON.createObjectNode().put("model", "llama-tiny").put("temperature", 0).put("max_tokens", 8).put("ignore_eos", true);
        ArrayNode prompt = completion.putArray("prompt");
        for (int id : ids) {
            prompt.add(id);
        }
        JsonNode c = ok(CompletionsEndpoint.PATH, completion);
        assertThat(choice.get("message").get("content").asText()).isEqualTo(c.get("choices").get(0).get("text").asText());
        assertThat(r.get("usage").get("prompt_tokens").asInt()).isEqualTo(ids.length);
        assertThat(r.get("usage").get("completion_tokens").asInt()).isEqualTo(8);
    }

    /** Text full of emoji, CJK and byte-fallback tokens streams exactly as it is answered whole, for every choice. */
    @Test
    void streamedEqualsNonStreamedOnEmojiCjkAndByteFallbackText() throws Exception {
        boolean sawByteFallback = false;
        for (String prompt : List.of("👨‍👩‍👧‍👦 🙂🚀 東京 你好，世界 ｆｕｌｌ‐width", "Grüße aus Köln — «quotes» ℌ𝔢𝔩𝔩𝔬 𝄞", "🏳️‍🌈 한국어 مرحبا नमस्ते")) {
            for (long seed : new long[] {3, 4}) {
                ObjectNode body = chat("lora-all-r8", prompt).put("temperature", 1.0).put("seed", seed).put("n", 2).put("max_tokens", 20)
                        .put("logprobs", true);
                JsonNode whole = ok(ChatEndpoint.PATH, body);
                Streamed streamed = stream(body);
                for (int i = 0; i < 2; i++) {
                    JsonNode choice = whole.get("choices").get(i);
                    assertThat(streamed.content().get(i)).as("%s seed %d choice %d", prompt, seed, i)
                            .isEqualTo(choice.get("message").get("content").asText());
                    assertThat(streamed.finish().get(i)).isEqualTo(choice.get("finish_reason").asText());
                    assertThat(streamed.firstRole().get(i)).isEqualTo("assistant");
                    for (JsonNode token : choice.get("logprobs").get("content")) {
                        sawByteFallback |= token.get("bytes").size() == 1 && token.get("bytes").get(0).asInt() >= 0x80;
                    }
                }
                assertThat(streamed.usage().get("completion_tokens").asInt()).isEqualTo(40);
            }
        }
        assertThat(sawByteFallback).as("some generated token is a byte-fallback token").isTrue();
    }

    /** A stop string made of the end of one token and the start of the next ends the text before it, streamed or not. */
    @Test
    void stopStringsSplitAcrossTokens() throws Exception {
        boolean tested = false;
        for (String prompt : List.of("def fibonacci(n):", "Once upon a time", "The quick brown fox")) {
            ObjectNode body = chat("lora-all-r8", prompt).put("max_tokens", 16).put("logprobs", true);
            JsonNode choice = ok(ChatEndpoint.PATH, body).get("choices").get(0);
            String text = choice.get("message").get("content").asText();
            JsonNode tokens = choice.get("logprobs").get("content");
            // The first boundary between two tokens that are plain ASCII text, as are all before them (so bytes count characters).
            int offset = 0;
            int boundary = -1;
            for (int k = 0; k + 1 < tokens.size(); k++) {
                JsonNode here = tokens.get(k).get("bytes");
                JsonNode next = tokens.get(k + 1).get("bytes");
                if (!ascii(here)) {
                    break;
                }
                offset += here.size();
                if (here.size() > 0 && next.size() > 0 && ascii(next)) {
                    boundary = offset;
                    break;
                }
            }
            if (boundary < 1) {
                continue;
            }
            String stop = text.substring(boundary - 1, boundary + 1);
            int first = text.indexOf(stop);
            ObjectNode stopped = body.deepCopy().put("stop", stop);
            stopped.remove("logprobs");
            JsonNode s = ok(ChatEndpoint.PATH, stopped).get("choices").get(0);
            assertThat(s.get("message").get("content").asText()).isEqualTo(text.substring(0, first));
            assertThat(s.get("finish_reason").asText()).isEqualTo("stop");
            assertThat(s.get("stop_reason").asText()).isEqualTo(stop);
            assertThat(stream(stopped).content().get(0)).isEqualTo(text.substring(0, first));
            stopped.put("include_stop_str_in_output", true);
            assertThat(contents(ok(ChatEndpoint.PATH, stopped)).getFirst()).isEqualTo(text.substring(0, first + stop.length()));
            assertThat(stream(stopped).content().get(0)).isEqualTo(text.substring(0, first + stop.length()));
            tested = true;
        }
        assertThat(tested).as("a prompt whose answer starts with two ASCII tokens").isTrue();
    }

    private static boolean ascii(JsonNode bytes) {
        for (JsonNode b : bytes) {
            if (b.asInt() >= 0x80 || b.asInt() < 0x20) {
                return false;
            }
        }
        return true;
    }

    /** logprobs.content: every token with its log-probability, its bytes and the top alternatives, the chosen one among them. */
    @Test
    void logprobsCarryBytesAndTheChosenToken() throws Exception {
        ObjectNode body = chat("llama-tiny", "Count: one two three").put("temperature", 1.0).put("seed", 5).put("max_tokens", 12)
                .put("logprobs", true).put("top_logprobs", 3);
        JsonNode choice = ok(ChatEndpoint.PATH, body).get("choices").get(0);
        JsonNode content = choice.get("logprobs").get("content");
        assertThat(content).hasSize(12);
        ByteArrayOutputStream joined = new ByteArrayOutputStream();
        for (JsonNode t : content) {
            assertThat(t.get("logprob").asDouble()).isLessThanOrEqualTo(0);
            assertThat(t.get("top_logprobs").size()).isBetween(3, 4);
            boolean listed = false;
            for (JsonNode alt : t.get("top_logprobs")) {
                listed |= alt.get("logprob").asDouble() == t.get("logprob").asDouble() && alt.get("bytes").equals(t.get("bytes"));
            }
            assertThat(listed).as("the chosen token is among the top_logprobs").isTrue();
            assertThat(t.get("top_logprobs").get(0).get("logprob").asDouble()).isGreaterThanOrEqualTo(t.get("top_logprobs").get(1).get("logprob").asDouble());
            t.get("bytes").forEach(b -> joined.write(b.asInt()));
        }
        String text = choice.get("message").get("content").asText();
        // The bytes of the tokens are the bytes of the text. Where they are not valid UTF-8 (byte-fallback tokens of a partial
        // character) the tokenizer writes one U+FFFD per byte of the whole run of byte tokens, valid ones included, and Java
        // one per invalid sequence: every valid character of the text is then among the bytes' characters, in order.
        assertThat(text).as("this seed's answer has partial characters").contains("\uFFFD");
        String fromBytes = joined.toString(StandardCharsets.UTF_8).replace("\uFFFD", "");
        String valid = text.replace("\uFFFD", "");
        int at = 0;
        for (char c : valid.toCharArray()) {
            at = fromBytes.indexOf(c, at) + 1;
            assertThat(at).as("'%s' of %s among the bytes' characters %s in order", c, valid, fromBytes).isPositive();
        }
        assertThat(fromBytes.length() - valid.length()).as("bytes' characters the text replaced").isBetween(0, 4);
    }

    /** Logprobs come from the raw distribution: with penalties and a temperature, they are the model's own scores of the tokens. */
    @Test
    void logprobsStayRawUnderPenaltiesAndTemperature() throws Exception {
        ObjectNode sampled = JSON.createObjectNode().put("model", "llama-tiny").put("prompt", "Count: one two three").put("temperature", 0.7)
                .put("seed", 9).put("presence_penalty", 1.0).put("frequency_penalty", 0.5).put("repetition_penalty", 1.3).put("max_tokens", 8)
                .put("ignore_eos", true).put("logprobs", 0).put("return_tokens_as_token_ids", true);
        JsonNode lp = ok(CompletionsEndpoint.PATH, sampled).get("choices").get(0).get("logprobs");
        int[] prompt = model.tokenizer().encode("Count: one two three", true);
        ObjectNode score = JSON.createObjectNode().put("model", "llama-tiny").put("max_tokens", 0).put("echo", true).put("logprobs", 0);
        ArrayNode ids = score.putArray("prompt");
        for (int id : prompt) {
            ids.add(id);
        }
        lp.get("tokens").forEach(t -> ids.add(Integer.parseInt(t.asText().substring("token_id:".length()))));
        JsonNode scored = ok(CompletionsEndpoint.PATH, score).get("choices").get(0).get("logprobs").get("token_logprobs");
        for (int i = 0; i < 8; i++) {
            assertThat(scored.get(prompt.length + i).asDouble()).isCloseTo(lp.get("token_logprobs").get(i).asDouble(), org.assertj.core.data.Offset.offset(1e-6));
        }
    }

    @Test
    void echoAndContinueFinalMessage() throws Exception {
        ObjectNode body = JSON.createObjectNode().put("model", "llama-tiny").put("max_tokens", 4).put("temperature", 0).put("ignore_eos", true)
                .put("add_generation_prompt", false).put("continue_final_message", true).put("echo", true);
        ArrayNode messages = body.putArray("messages");
        messages.addObject().put("role", "user").put("content", "Hi");
        messages.addObject().put("role", "assistant").put("content", "Hello, I am");
        JsonNode r = ok(ChatEndpoint.PATH, body);
        assertThat(r.get("usage").get("prompt_tokens").asInt()).isEqualTo(model.tokenizer().encode("<s>user: Hi\nassistant: Hello, I am", false).length);
        JsonNode message = r.get("choices").get(0).get("message");
        assertThat(message.get("role").asText()).isEqualTo("assistant");
        assertThat(message.get("content").asText()).startsWith("Hello, I am");
        Streamed streamed = stream(body);
        assertThat(streamed.content().get(0)).isEqualTo(message.get("content").asText());
    }

    /** Content given as text parts is joined with newlines, as vLLM does for templates that expect a string. */
    @Test
    void textPartsAreJoined() throws Exception {
        ObjectNode parts = chat("llama-tiny", "x");
        ArrayNode content = ((ObjectNode) parts.get("messages").get(0)).putArray("content");
        content.addObject().put("type", "text").put("text", "first");
        content.addObject().put("type", "text").put("text", "second");
        JsonNode r = ok(ChatEndpoint.PATH, parts);
        assertThat(r.get("usage").get("prompt_tokens").asInt()).isEqualTo(model.tokenizer().encode("<s>user: first\nsecond\nassistant:", false).length);
    }

    @Test
    void seededSamplingIsReproducibleWithPenaltiesAndN() throws Exception {
        ObjectNode body = chat("llama-tiny", "Tell me a story").put("temperature", 0.8).put("top_p", 0.95).put("top_k", 50).put("seed", 42)
                .put("n", 3).put("max_tokens", 16).put("presence_penalty", 0.5).put("frequency_penalty", 0.3).put("repetition_penalty", 1.2);
        List<String> first = contents(ok(ChatEndpoint.PATH, body));
        assertThat(first).hasSize(3);
        assertThat(contents(ok(ChatEndpoint.PATH, body))).isEqualTo(first);
        // Choice i is the request with seed 42 + i alone (vLLM's seeds for n > 1).
        for (int i = 0; i < 3; i++) {
            assertThat(contents(ok(ChatEndpoint.PATH, body.deepCopy().put("n", 1).put("seed", 42 + i))).getFirst()).isEqualTo(first.get(i));
        }
        ObjectNode plain = body.deepCopy();
        plain.remove(List.of("presence_penalty", "frequency_penalty", "repetition_penalty"));
        assertThat(contents(ok(ChatEndpoint.PATH, plain))).isNotEqualTo(first);
    }

    /** best_of generates that many sequences and answers with the n whose cumulative log-probability is highest, best first. */
    @Test
    void bestOfPicksTheHighestCumulativeLogprob() throws Exception {
        ObjectNode all = JSON.createObjectNode().put("model", "llama-tiny").put("prompt", "Once upon a time").put("temperature", 1.0).put("seed", 7)
                .put("n", 5).put("max_tokens", 10).put("logprobs", 0).put("ignore_eos", true);
        record Scored(String text, double sum) {
        }
        List<Scored> five = new ArrayList<>();
        for (JsonNode c : ok(CompletionsEndpoint.PATH, all).get("choices")) {
            double sum = 0;
            for (JsonNode lp : c.get("logprobs").get("token_logprobs")) {
                sum += lp.asDouble();
            }
            five.add(new Scored(c.get("text").asText(), sum));
        }
        five.sort((a, b) -> Double.compare(b.sum(), a.sum()));
        JsonNode best = ok(CompletionsEndpoint.PATH, all.deepCopy().put("n", 2).put("best_of", 5));
        assertThat(best.get("choices")).hasSize(2);
        for (int i = 0; i < 2; i++) {
            assertThat(best.get("choices").get(i).get("text").asText()).isEqualTo(five.get(i).text());
            assertThat(best.get("choices").get(i).get("index").asInt()).isEqualTo(i);
        }
        assertThat(best.get("usage").get("completion_tokens").asInt()).isEqualTo(20);
        // The same through chat.
        ObjectNode chatAll = chat("llama-tiny", "Once upon a time").put("temperature", 1.0).put("seed", 7).put("n", 4).put("max_tokens", 6)
                .put("logprobs", true);
        List<Scored> four = new ArrayList<>();
        for (JsonNode c : ok(ChatEndpoint.PATH, chatAll).get("choices")) {
            double sum = 0;
            for (JsonNode t : c.get("logprobs").get("content")) {
                sum += t.get("logprob").asDouble();
            }
            four.add(new Scored(c.get("message").get("content").asText(), sum));
        }
        four.sort((a, b) -> Double.compare(b.sum(), a.sum()));
        assertThat(contents(ok(ChatEndpoint.PATH, chatAll.deepCopy().put("n", 1).put("best_of", 4)))).containsExactly(four.getFirst().text());
    }

    @Test
    void everyRefusedParameterIsRefusedByName() throws Exception {
        Map<String, Consumer<ObjectNode>> refusals = new LinkedHashMap<>();
        refusals.put("tool_choice", b -> b.putArray("tools").addObject().put("type", "function").putObject("function").put("name", "f"));
        refusals.put("tool_choice ", b -> b.put("tool_choice", "required").putArray("tools").addObject().put("type", "function")
                .putObject("function").put("name", "f"));
        refusals.put("response_format", b -> b.putObject("response_format").put("type", "json_object"));
        refusals.put("functions", b -> b.putArray("functions").addObject().put("name", "f"));
        refusals.put("function_call", b -> b.put("function_call", "auto"));
        refusals.put("chat_template", b -> b.put("chat_template", "{{ messages }}"));
        refusals.put("image_url", b -> ((ObjectNode) b.get("messages").get(0)).putArray("content").addObject().put("type", "image_url")
                .putObject("image_url").put("url", "http://x/y.png"));
        refusals.put("input_audio", b -> ((ObjectNode) b.get("messages").get(0)).putArray("content").addObject().put("type", "input_audio"));
        refusals.put("top_logprobs", b -> b.put("top_logprobs", 2));
        refusals.put("top_logprobs  ", b -> b.put("logprobs", true).put("top_logprobs", 21));
        refusals.put("best_of", b -> b.put("best_of", 2).put("stream", true));
        refusals.put("min_p", b -> b.put("min_p", 0.05));
        refusals.put("logit_bias", b -> b.putObject("logit_bias").put("7", 5));
        refusals.put("use_beam_search", b -> b.put("use_beam_search", true));
        refusals.put("guided_json", b -> b.putObject("guided_json"));
        refusals.put("structured_outputs", b -> b.putObject("structured_outputs").put("regex", "a+"));
        refusals.put("skip_special_tokens", b -> b.put("skip_special_tokens", false));
        refusals.put("continue_final_message", b -> b.put("continue_final_message", true));
        refusals.put("chat_template_kwargs", b -> b.putObject("chat_template_kwargs").putArray("messages"));
        refusals.put("modalities", b -> b.putArray("modalities").add("text").add("audio"));
        refusals.put("audio", b -> b.putObject("audio").put("voice", "alloy"));
        refusals.put("presence_penalty", b -> b.put("presence_penalty", 2.5));
        refusals.put("repetition_penalty", b -> b.put("repetition_penalty", -1));
        refusals.put("n", b -> b.put("n", 0));
        refusals.put("messages", b -> b.putArray("messages"));
        refusals.put("max_completion_tokens", b -> b.put("max_completion_tokens", 100_000));
        refusals.put("prompt_logprobs", b -> b.put("prompt_logprobs", 1));
        refusals.put("stream_options", b -> b.putObject("stream_options").put("continuous_usage_stats", true));
        for (Map.Entry<String, Consumer<ObjectNode>> e : refusals.entrySet()) {
            ObjectNode body = chat("llama-tiny", "hi");
            e.getValue().accept(body);
            String name = e.getKey().strip();
            HttpResponse<String> r = post(ChatEndpoint.PATH, body);
            assertThat(r.statusCode()).as("%s: %s", name, r.body()).isEqualTo(400);
            assertThat(JSON.readTree(r.body()).get("error").get("message").asText()).as(name).contains(name.equals("max_completion_tokens") ? "maximum context length" : name);
        }
        assertThat(post(ChatEndpoint.PATH, chat("llama-tiny", "still serving")).statusCode()).isEqualTo(200);
    }

    @Test
    void templateRefusalsAndMissingTemplatesAreBadRequests() throws Exception {
        ObjectNode robot = chat("llama-tiny", "beep");
        ((ObjectNode) robot.get("messages").get(0)).put("role", "robot");
        assertError(post(ChatEndpoint.PATH, robot), 400, "Unknown role: robot");
        assertError(post(ChatEndpoint.PATH, chat("nope", "x")), 404, "does not exist");
        // The plain llama-tiny directory has no chat template.
        try (PretrainedModel plain = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend());
             EngineLoop l = new EngineLoop(new Engine(plain.model(), EngineConfig.DEFAULT, plain.eosTokenIds(), new AdapterRegistry(1)), 4);
             OpenAiServer s = new OpenAiServer(plain, l, new AdapterRegistry(1), "llama-tiny", null, "127.0.0.1", 0)) {
            s.start();
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + ChatEndpoint.PATH))
                    .POST(HttpRequest.BodyPublishers.ofString(chat("llama-tiny", "x").toString())).build(), HttpResponse.BodyHandlers.ofString());
            assertError(r, 400, "no chat template");
        }
    }

    @Test
    void chatRequestsAreCountedInTheMetrics() throws Exception {
        String before = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).GET().build(), HttpResponse.BodyHandlers.ofString()).body();
        ok(ChatEndpoint.PATH, chat("lora-all-r8", "count me").put("max_tokens", 5));
        post(ChatEndpoint.PATH, chat("lora-all-r8", "x").put("n", 0));
        String after = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).GET().build(), HttpResponse.BodyHandlers.ofString()).body();
        String handler = "{handler=\"/v1/chat/completions\",method=\"POST\",status=";
        assertThat(metric(after, "http_requests_total" + handler + "\"2xx\"}")).isEqualTo(metric(before, "http_requests_total" + handler + "\"2xx\"}") + 1);
        assertThat(metric(after, "http_requests_total" + handler + "\"4xx\"}")).isEqualTo(metric(before, "http_requests_total" + handler + "\"4xx\"}") + 1);
        assertThat(metric(after, "flora_requests_total{model=\"lora-all-r8\",status=\"200\"}"))
                .isEqualTo(metric(before, "flora_requests_total{model=\"lora-all-r8\",status=\"200\"}") + 1);
        assertThat(metric(after, "vllm:generation_tokens_total{model_name=\"llama-tiny\"}"))
                .isEqualTo(metric(before, "vllm:generation_tokens_total{model_name=\"llama-tiny\"}") + 5);
        assertThat(metric(after, "vllm:time_to_first_token_seconds_count{model_name=\"llama-tiny\"}"))
                .isEqualTo(metric(before, "vllm:time_to_first_token_seconds_count{model_name=\"llama-tiny\"}") + 1);
    }
}
