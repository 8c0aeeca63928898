package dev.flora.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.Fixtures;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.bench.BenchShapes;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.EngineLoop;
import dev.flora.loadgen.LoadGenerator;
import dev.flora.model.PretrainedModel;
import dev.flora.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A random-weight model served as it is (the benchmark shapes' directories: config.json and the
 * placeholder tokenizer.json, no weights): text and token-id prompts, streaming, and loadgen's
 * figures, as the latency benchmarks on the GPU run it.
 */
class RandomWeightsServingTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    @Test
    void placeholderTokenizerRoundTripsItsWords() throws Exception {
        Path file = tmp.resolve("tokenizer.json");
        BenchShapes.writePlaceholderTokenizer(file, 700, 1, 2);
        try (Tokenizer t = Tokenizer.load(file)) {
            assertThat(t.encode("w5 w699 w3", false)).containsExactly(5, 699, 3);
            assertThat(t.decode(new int[] {5, 699, 2}, false)).isEqualTo("w5 w699 </s>");
            assertThat(t.encode("nothing w7", false)).containsExactly(0, 7); // unknown words: id 0, <unk>
        }
        BenchShapes.writePlaceholderTokenizer(tmp.resolve("same.json"), 50, 0, 0);
        try (Tokenizer t = Tokenizer.load(tmp.resolve("same.json"))) {
            assertThat(t.decode(new int[] {0, 9}, false)).isEqualTo("<|endoftext|> w9");
        }
    }

    @Test
    void aConfigOnlyDirectoryServesTextAndTokenIdsAndLoadgenMeasuresIt() throws Exception {
        Path dir = tmp.resolve("tiny");
        Files.createDirectories(dir);
        Files.copy(Fixtures.llamaTinyModel().resolve("config.json"), dir.resolve("config.json"));
        BenchShapes.writePlaceholderTokenizer(dir.resolve("tokenizer.json"), 700, 1, 2);
        try (PretrainedModel model = PretrainedModel.load(dir, new CpuBackend(), true)) {
            AdapterRegistry registry = new AdapterRegistry(1);
            EngineLoop loop = new EngineLoop(new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry), 64);
            OpenAiServer server = new OpenAiServer(model, loop, registry, "tiny", null, "127.0.0.1", 0);
            server.start();
            try {
                HttpClient http = HttpClient.newHttpClient();
                URI base = URI.create("http://127.0.0.1:" + server.port());
                String text = "{\"model\": \"tiny\", \"prompt\": \"w10 w11 w12\", \"max_tokens\": 5, \"temperature\": 0, \"ignore_eos\": true}";
                JsonNode a = JSON.readTree(http.send(HttpRequest.newBuilder(base.resolve("/v1/completions"))
                        .POST(HttpRequest.BodyPublishers.ofString(text)).build(), HttpResponse.BodyHandlers.ofString()).body());
                assertThat(a.get("usage").get("completion_tokens").asInt()).isEqualTo(5);
                assertThat(a.get("choices").get(0).get("text").asText()).matches("( ?(w\\d+|<unk>|<s>|</s>)){5}");
                String ids = "{\"model\": \"tiny\", \"prompt\": [10, 11, 12], \"max_tokens\": 5, \"temperature\": 0, \"ignore_eos\": true}";
                JsonNode b = JSON.readTree(http.send(HttpRequest.newBuilder(base.resolve("/v1/completions"))
                        .POST(HttpRequest.BodyPublishers.ofString(ids)).build(), HttpResponse.BodyHandlers.ofString()).body());
                // the text prompt's words are those ids (the placeholder adds no BOS): the same tokens, the same answer
                assertThat(b.get("choices").get(0).get("text").asText()).isEqualTo(a.get("choices").get(0).get("text").asText());

                var config = new LoadGenerator.Config(base, 50, 12, List.of("tiny"), LoadGenerator.Popularity.IDENTICAL, 5, 40, 2, 8, 700, 3,
                        Duration.ofSeconds(60));
                List<LoadGenerator.Sample> samples = LoadGenerator.run(config, n -> { });
                assertThat(samples).hasSize(12).allMatch(s -> s.status() == 200 && s.outputTokens() >= 2 && s.itl().size() == s.outputTokens() - 1);
            } finally {
                server.close();
                loop.close();
            }
        }
    }
}
