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
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/** Over HTTP with one adapter in host memory: dropped adapters come back from disk; one whose files are gone fails alone. */
class HostTierServerTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path root;

    @Test
    void anAdapterWhoseFilesAreGoneFailsOnlyItsRequests() throws Exception {
        List<String> kinds = List.of("lora-qv-r4", "ia3-kvd", "flora-qk-r1");
        List<String> names = List.of("gone", "first", "second");
        try (PretrainedModel model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend())) {
            AdapterRegistry registry = new AdapterRegistry(1, 1, (name, dir) -> AdapterLoader.load(name, dir, model.model().linears(), model.model().backend()));
            registry.pin(AdapterStrategy.EXACT);
            for (int i = 0; i < names.size(); i++) {
                Fixtures.copyTree(Fixtures.llamaTiny().resolve("adapters").resolve(kinds.get(i)), root.resolve(names.get(i)));
                registry.register(AdapterLoader.load(names.get(i), root.resolve(names.get(i)), model.model().linears(), model.model().backend()));
            }
            Engine engine = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry);
            try (EngineLoop loop = new EngineLoop(engine, 64);
                 OpenAiServer server = new OpenAiServer(model, loop, registry, "llama-tiny", null, "127.0.0.1", 0)) {
                server.start();
                URI url = URI.create("http://127.0.0.1:" + server.port());
                HttpClient http = HttpClient.newHttpClient();
                String prompt = "tiers of memory";
                // Each read back from disk in turn (one fits in host memory): answers as usual.
                assertThat(SoakTest.text(http, url, SoakTest.body("gone", prompt, false))).isNotBlank();
                String first = SoakTest.text(http, url, SoakTest.body("first", prompt, false));
                String second = SoakTest.text(http, url, SoakTest.body("second", prompt, false));

                try (Stream<Path> walk = Files.walk(root.resolve("gone"))) {
                    walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
                }
                HttpResponse<String> failed = http.send(SoakTest.request(url, "/v1/completions", SoakTest.body("gone", prompt, false).toString()),
                        HttpResponse.BodyHandlers.ofString());
                assertThat(failed.statusCode()).isEqualTo(400);
                JsonNode error = JSON.readTree(failed.body()).get("error");
                assertThat(error.get("type").asText()).isEqualTo("invalid_request_error");
                assertThat(error.get("message").asText()).contains("adapter 'gone' was dropped from host memory and cannot be read again")
                        .contains(root.resolve("gone").toString()).doesNotContain("\n").doesNotContain("Exception");
                String stream = SoakTest.post(http, url, "/v1/completions", SoakTest.body("gone", prompt, true).toString());
                assertThat(stream).contains("\"error\"").contains("cannot be read again");

                // The others are untouched.
                assertThat(SoakTest.text(http, url, SoakTest.body("first", prompt, false))).isEqualTo(first);
                assertThat(SoakTest.text(http, url, SoakTest.body("second", prompt, false))).isEqualTo(second);
                assertThat(SoakTest.text(http, url, SoakTest.body("llama-tiny", prompt, false))).isNotBlank();

                String metrics = http.send(java.net.http.HttpRequest.newBuilder(url.resolve("/metrics")).build(), HttpResponse.BodyHandlers.ofString()).body();
                assertThat(ServerTest.metric(metrics, "flora_adapter_host_load_failures_total")).isEqualTo(2);
                assertThat(ServerTest.metric(metrics, "flora_adapter_host_loads_total")).isGreaterThanOrEqualTo(4);
                assertThat(ServerTest.metric(metrics, "flora_adapter_host_evictions_total")).isGreaterThanOrEqualTo(4);
                assertThat(ServerTest.metric(metrics, "flora_adapters_in_host")).isEqualTo(1);
                assertThat(registry.referencesHeld()).isZero();
                assertThat(engine.freeBlocks()).isEqualTo(engine.totalBlocks());
            }
        }
    }
}
