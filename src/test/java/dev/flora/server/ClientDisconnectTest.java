package dev.flora.server;

import dev.flora.Fixtures;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.backend.Backend;
import dev.flora.backend.KvCache;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.adapter.AdapterSlots;
import dev.flora.cpu.CpuBackend;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.EngineLoop;
import dev.flora.model.CausalLM;
import dev.flora.model.Linear;
import dev.flora.model.ModelSpec;
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.Test;

import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.function.BooleanSupplier;

import static dev.flora.server.ServerTest.metric;
import static org.assertj.core.api.Assertions.assertThat;

/** A client that disconnects cancels its request at once, streamed or not, and its KV blocks go back to the cache. */
class ClientDisconnectTest {
    /** The model, a little slower per step: a request of many tokens is surely still running when its client goes. */
    record SlowModel(CausalLM inner, long millis) implements CausalLM {
        @Override
        public Backend backend() {
            return inner.backend();
        }

        @Override
        public ModelSpec spec() {
            return inner.spec();
        }

        @Override
        public Tensor forward(TokenBatch batch, KvCache cache, AdapterSlots adapters) {
            try {
                Thread.sleep(millis);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return inner.forward(batch, cache, adapters);
        }

        @Override
        public Map<String, Linear> linears() {
            return inner.linears();
        }

        @Override
        public Tensor logits(Tensor hidden) {
            return inner.logits(hidden);
        }
    }

    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (!condition.getAsBoolean()) {
            assertThat(System.nanoTime()).as("waiting for %s", what).isLessThan(deadline);
            Thread.sleep(10);
        }
    }

    @Test
    void aDisconnectedClientsRequestIsCancelledAndItsBlocksFreed() throws Exception {
        PretrainedModel loaded = PretrainedModel.load(Fixtures.llamaTinyChatModel(), new CpuBackend());
        PretrainedModel slow = new PretrainedModel(loaded.directory(), new SlowModel(loaded.model(), 20), loaded.tokenizer(), loaded.eosTokenIds());
        AdapterRegistry none = new AdapterRegistry(1);
        Engine engine = new Engine(slow.model(), EngineConfig.DEFAULT, slow.eosTokenIds(), none);
        try (slow; EngineLoop loop = new EngineLoop(engine, 8);
             OpenAiServer server = new OpenAiServer(slow, loop, none, "llama-tiny", null, "127.0.0.1", 0)) {
            server.start();
            String chat = "{\"model\": \"llama-tiny\", \"max_tokens\": 400, \"ignore_eos\": true, \"messages\": [{\"role\": \"user\", \"content\": \"go on\"}]}";
            String completion = "{\"model\": \"llama-tiny\", \"max_tokens\": 400, \"ignore_eos\": true, \"prompt\": \"go on\", \"stream\": true}";
            int cancelled = 0;
            for (String[] request : new String[][] {{ChatEndpoint.PATH, chat}, {CompletionsEndpoint.PATH, completion}}) {
                long stepsBefore = loop.engine().steps();
                try (Socket socket = new Socket("127.0.0.1", server.port())) {
                    OutputStream out = socket.getOutputStream();
                    byte[] body = request[1].getBytes(StandardCharsets.UTF_8);
                    out.write(("POST " + request[0] + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: " + body.length
                            + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                    out.write(body);
                    out.flush();
                    await("the request to run", () -> loop.snapshot().running() == 1);
                } // the client goes away here, long before 400 tokens
                cancelled++;
                await("the request to be cancelled", () -> loop.snapshot().running() == 0 && loop.snapshot().waiting() == 0
                        && loop.snapshot().kvCacheUsage() == 0);
                assertThat(loop.engine().steps() - stepsBefore).as("steps run for %s", request[0]).isLessThan(400);
            }
            String metrics = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/metrics")).GET().build(),
                    HttpResponse.BodyHandlers.ofString()).body();
            assertThat(metric(metrics, "flora_requests_total{model=\"llama-tiny\",status=\"499\"}")).isEqualTo(cancelled);
            assertThat(metric(metrics, "flora_requests_total{model=\"llama-tiny\",status=\"200\"}")).isZero();
            // And the server still answers.
            HttpResponse<String> after = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + ChatEndpoint.PATH))
                    .POST(HttpRequest.BodyPublishers.ofString(chat.replace("400", "3"))).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(after.statusCode()).isEqualTo(200);
        }
    }
}
