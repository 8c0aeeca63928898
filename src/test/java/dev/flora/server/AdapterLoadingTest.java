package dev.flora.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.Fixtures;
import dev.flora.adapter.AdapterLoader;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.EngineLoop;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/** POST /v1/load_lora_adapter and /v1/unload_lora_adapter: from under --adapter-root only, versions kept apart. */
class AdapterLoadingTest {
    static final ObjectMapper JSON = new ObjectMapper();
    @TempDir
    static Path root;
    @TempDir
    static Path outside;
    static PretrainedModel model;
    static AdapterRegistry registry;
    static EngineLoop loop;
    static OpenAiServer server;
    static HttpClient http = HttpClient.newHttpClient();

    @BeforeAll
    static void start() throws Exception {
        for (String a : List.of("lora-qv-r4", "ia3-kvd", "flora-all-r4")) {
            Fixtures.copyTree(Fixtures.llamaTiny().resolve("adapters").resolve(a), root.resolve(a));
        }
        Fixtures.copyTree(Fixtures.llamaTiny().resolve("adapters/lora-all-r8"), outside.resolve("secret"));
        Files.createSymbolicLink(root.resolve("escape"), outside.resolve("secret"));
        model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend());
        registry = new AdapterRegistry(4);
        registry.pin(AdapterStrategy.EXACT);
        loop = new EngineLoop(new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry), 16);
        server = new OpenAiServer(model, loop, registry, "llama-tiny", null, "127.0.0.1", 0);
        server.allowAdapterLoading(root);
        server.start();
    }

    @AfterAll
    static void stop() {
        server.close();
        loop.close();
        model.close();
    }

    static HttpResponse<String> post(String path, String body) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + path)).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static List<String> models() throws Exception {
        JsonNode m = JSON.readTree(http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/v1/models")).build(),
                HttpResponse.BodyHandlers.ofString()).body());
        List<String> ids = new ArrayList<>();
        m.get("data").forEach(d -> ids.add(d.get("id").asText()));
        return ids;
    }

    static String load(String name, String path, boolean inplace) {
        return JSON.createObjectNode().put("lora_name", name).put("lora_path", path).put("load_inplace", inplace).toString();
    }

    @Test
    void loadUseReplaceAndUnload() throws Exception {
        assertThat(post("/v1/load_lora_adapter", load("mine", "lora-qv-r4", false)).statusCode()).isEqualTo(200);
        assertThat(models()).contains("mine");
        Fixtures.Expected e = Fixtures.llamaTinyExpected().stream().filter(x -> "lora-qv-r4".equals(x.adapter())).findFirst().orElseThrow();
        String body = JSON.createObjectNode().put("model", "mine").put("prompt", e.prompt()).put("max_tokens", 1).put("echo", true)
                .put("logprobs", 0).put("temperature", 0).toString();
        JsonNode lp = JSON.readTree(post("/v1/completions", body).body()).get("choices").get(0).get("logprobs").get("token_logprobs");
        assertThat(Math.abs(lp.get(5).asDouble() - e.logprobs()[5])).isLessThan(1e-4);
        assertThat(post("/v1/load_lora_adapter", load("mine", "ia3-kvd", false)).statusCode()).isEqualTo(400);
        assertThat(post("/v1/load_lora_adapter", load("mine", root.resolve("ia3-kvd").toString(), true)).statusCode()).isEqualTo(200);
        JsonNode lp2 = JSON.readTree(post("/v1/completions", body).body()).get("choices").get(0).get("logprobs").get("token_logprobs");
        assertThat(lp2.get(5).asDouble()).isNotEqualTo(lp.get(5).asDouble());
        assertThat(post("/v1/unload_lora_adapter", "{\"lora_name\": \"mine\"}").statusCode()).isEqualTo(200);
        assertThat(models()).doesNotContain("mine");
        assertThat(post("/v1/completions", body).statusCode()).isEqualTo(404);
        assertThat(post("/v1/unload_lora_adapter", "{\"lora_name\": \"mine\"}").statusCode()).isEqualTo(404);
    }

    @Test
    void traversalAndSymlinkEscapesAreRefused() throws Exception {
        assertThat(post("/v1/load_lora_adapter", load("t1", "../" + outside.getFileName() + "/secret", false)).statusCode()).isIn(403, 404);
        assertThat(post("/v1/load_lora_adapter", load("t2", outside.resolve("secret").toString(), false)).statusCode()).isEqualTo(403);
        HttpResponse<String> symlink = post("/v1/load_lora_adapter", load("t3", "escape", false));
        assertThat(symlink.statusCode()).isEqualTo(403);
        assertThat(symlink.body()).contains("outside --adapter-root");
        assertThat(post("/v1/load_lora_adapter", load("llama-tiny", "lora-qv-r4", false)).statusCode()).isEqualTo(400);
        assertThat(post("/v1/load_lora_adapter", "{\"lora_name\": \"x\"}").statusCode()).isEqualTo(400);
        assertThat(models()).doesNotContain("t1", "t2", "t3");
    }

    /** Replacing or unloading an adapter while a request runs on it: that request finishes on the version it started with. */
    @Test
    void inFlightRequestsFinishOnTheirVersion() throws Exception {
        registry.register(AdapterLoader.load("live", root.resolve("flora-all-r4"), model.model().linears(), model.model().backend()));
        int[] prompt = Fixtures.llamaTinyExpected().getFirst().tokens();
        Request request = Request.withAdapter("flight", prompt, SamplingParams.greedy(120, true), true, "live");
        Result alone = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry)
                .run(List.of(Request.withAdapter("alone", prompt, SamplingParams.greedy(120, true), true, "live")), new Engine.Listener() { })
                .getFirst();
        CountDownLatch started = new CountDownLatch(1);
        CompletableFuture<Result> done = new CompletableFuture<>();
        loop.submit(request, new Engine.Listener() {
            @Override
            public void onToken(String requestId, int token, double logprob) {
                started.countDown();
            }

            @Override
            public void onFinish(Result result) {
                done.complete(result);
            }
        });
        assertThat(started.await(30, TimeUnit.SECONDS)).isTrue();
        assertThat(post("/v1/load_lora_adapter", load("live", "lora-qv-r4", true)).statusCode()).isEqualTo(200);
        assertThat(post("/v1/unload_lora_adapter", "{\"lora_name\": \"live\"}").statusCode()).isEqualTo(200);
        Result result = done.get(60, TimeUnit.SECONDS);
        assertThat(result.generated()).containsExactly(alone.generated());
        assertThat(result.promptLogprobs()).containsExactly(alone.promptLogprobs());
        assertThat(registry.referencesHeld()).isZero();
    }
}
