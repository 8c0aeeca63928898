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
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A bounded soak on loopback: a thousand requests over HTTP with random adapters, some streamed
 * and dropped half-way by their client, while adapters are loaded and unloaded. Nothing is lost,
 * nothing is wrong, and every KV block and adapter reference is returned at the end.
 */
class SoakTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path root;

    /**
     * @param hostCapped at most three adapters in host memory (of four registered and up to three
     *                   loaded meanwhile): the others are read from disk again as requests need them
     */
    @ParameterizedTest(name = "host memory capped: {0}")
    @ValueSource(booleans = {false, true})
    void aThousandRequestsWithCancellationsLoadsAndUnloads(boolean hostCapped) throws Exception {
        for (String a : List.of("lora-qv-r4", "ia3-kvd", "flora-qk-r1")) {
            Fixtures.copyTree(Fixtures.llamaTiny().resolve("adapters").resolve(a), root.resolve(a));
        }
        List<String> stable = List.of("lora-all-r8", "flora-all-r4", "lora-rslora-patterns", "lora-regex-bias");
        try (PretrainedModel model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend())) {
            AdapterRegistry registry = hostCapped
                    ? new AdapterRegistry(3, 3, (name, dir) -> AdapterLoader.load(name, dir, model.model().linears(), model.model().backend()))
                    : new AdapterRegistry(3);
            registry.pin(AdapterStrategy.EXACT);
            for (String name : stable) {
                registry.register(AdapterLoader.load(name, Fixtures.llamaTiny().resolve("adapters").resolve(name), model.model().linears(), model.model().backend()));
            }
            long perBlock = 2L * 3 * 16 * 32 * Float.BYTES;
            Engine engine = new Engine(model.model(), EngineConfig.DEFAULT.withKvCacheBytes(perBlock * 40), model.eosTokenIds(), registry);
            try (EngineLoop loop = new EngineLoop(engine, 4096);
                 OpenAiServer server = new OpenAiServer(model, loop, registry, "llama-tiny", null, "127.0.0.1", 0)) {
                server.allowAdapterLoading(root);
                server.start();
                URI url = URI.create("http://127.0.0.1:" + server.port());
                HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
                List<String> models = new ArrayList<>(stable);
                models.add("llama-tiny");
                // The expected answer of every (prompt, model) pair, each computed alone.
                List<String> prompts = List.of("soak one", "a second soak prompt", "def f(x): return x", "über 東京 🙂");
                Map<String, String> expected = new HashMap<>();
                for (String m : models) {
                    for (String p : prompts) {
                        expected.put(m + "|" + p, text(http, url, body(m, p, false)));
                    }
                }
                AtomicBoolean running = new AtomicBoolean(true);
                AtomicInteger loads = new AtomicInteger();
                Thread churn = Thread.ofVirtual().start(() -> {
                    SplittableRandom r = new SplittableRandom(9);
                    List<String> spare = List.of("lora-qv-r4", "ia3-kvd", "flora-qk-r1");
                    while (running.get()) {
                        String dir = spare.get(r.nextInt(spare.size()));
                        String name = "spare-" + r.nextInt(3);
                        // Its own client: admin calls do not share pooled connections with the load.
                        HttpClient admin = HttpClient.newHttpClient();
                        try {
                            post(admin, url, "/v1/load_lora_adapter", JSON.createObjectNode().put("lora_name", name).put("lora_path", dir)
                                    .put("load_inplace", true).toString());
                            loads.incrementAndGet();
                            post(HttpClient.newHttpClient(), url, "/v1/unload_lora_adapter", JSON.createObjectNode().put("lora_name", name).toString());
                        } catch (Exception e) {
                            throw new IllegalStateException("churn after " + loads.get() + " loads", e);
                        }
                    }
                });
                int total = 1000;
                AtomicInteger correct = new AtomicInteger();
                AtomicInteger cancelled = new AtomicInteger();
                AtomicInteger spareAnswers = new AtomicInteger();
                List<String> wrong = java.util.Collections.synchronizedList(new ArrayList<>());
                try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
                    List<Future<?>> futures = new ArrayList<>();
                    SplittableRandom r = new SplittableRandom(10);
                    for (int i = 0; i < total; i++) {
                        String m = r.nextInt(10) == 0 ? "spare-" + r.nextInt(3) : models.get(r.nextInt(models.size()));
                        String p = prompts.get(r.nextInt(prompts.size()));
                        boolean dropHalfWay = r.nextInt(8) == 0;
                        futures.add(pool.submit(() -> {
                            if (dropHalfWay) {
                                // A streaming client that reads one event and goes away (on its own connection).
                                HttpResponse<InputStream> s = HttpClient.newHttpClient().send(request(url, "/v1/completions", body(m, p, true).put("max_tokens", 200).toString()),
                                        HttpResponse.BodyHandlers.ofInputStream());
                                try (InputStream in = s.body()) {
                                    in.read(new byte[64]);
                                }
                                cancelled.incrementAndGet();
                                return null;
                            }
                            HttpResponse<String> resp = http.send(request(url, "/v1/completions", body(m, p, false).toString()), HttpResponse.BodyHandlers.ofString());
                            if (m.startsWith("spare-")) {
                                // Loaded or not when it arrived (404), or unloaded while it waited (400): each answer is right.
                                assertThat(resp.statusCode()).isIn(200, 400, 404);
                                spareAnswers.incrementAndGet();
                            } else if (resp.statusCode() == 200
                                    && JSON.readTree(resp.body()).get("choices").get(0).get("text").asText().equals(expected.get(m + "|" + p))) {
                                correct.incrementAndGet();
                            } else {
                                wrong.add(m + "|" + p + " -> " + resp.statusCode() + " " + resp.body());
                            }
                            return null;
                        }));
                    }
                    for (Future<?> f : futures) {
                        f.get();
                    }
                }
                running.set(false);
                churn.join();
                assertThat(wrong).isEmpty();
                assertThat(correct.get() + cancelled.get() + spareAnswers.get()).isEqualTo(total);
                assertThat(loads.get()).isPositive();
                // Cancelled streams are freed too: wait for the loop to go idle, then everything is back.
                long deadline = System.nanoTime() + 30_000_000_000L;
                while ((loop.snapshot().running() > 0 || loop.waiting() > 0) && System.nanoTime() < deadline) {
                    Thread.onSpinWait();
                }
                assertThat(loop.snapshot().running()).isZero();
                assertThat(loop.snapshot().kvCacheUsage()).isZero();
                assertThat(registry.referencesHeld()).isZero();
                if (hostCapped) {
                    assertThat(registry.hostStats().loads()).as("adapters were read from disk again").isPositive();
                    assertThat(registry.hostStats().inHost()).isLessThanOrEqualTo(3);
                }
            }
        }
    }

    static ObjectNode body(String model, String prompt, boolean stream) {
        return JSON.createObjectNode().put("model", model).put("prompt", prompt).put("max_tokens", 6).put("temperature", 0)
                .put("ignore_eos", true).put("stream", stream);
    }

    static HttpRequest request(URI url, String path, String body) {
        return HttpRequest.newBuilder(url.resolve(path)).timeout(Duration.ofMinutes(2)).POST(HttpRequest.BodyPublishers.ofString(body)).build();
    }

    static String post(HttpClient http, URI url, String path, String body) throws Exception {
        return http.send(request(url, path, body), HttpResponse.BodyHandlers.ofString()).body();
    }

    static String text(HttpClient http, URI url, ObjectNode body) throws Exception {
        JsonNode r = JSON.readTree(post(http, url, "/v1/completions", body.toString()));
        return r.get("choices").get(0).get("text").asText();
    }
}
