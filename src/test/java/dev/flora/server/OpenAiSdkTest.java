package dev.flora.server;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.errors.NotFoundException;
import com.openai.core.JsonValue;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import com.openai.models.models.Model;
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

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The server as the official OpenAI Java SDK sees it (the llama-tiny model, with a chat template). */
class OpenAiSdkTest {
    static PretrainedModel model;
    static EngineLoop loop;
    static OpenAiServer server;
    static OpenAIClient client;

    @BeforeAll
    static void start() {
        model = PretrainedModel.load(Fixtures.llamaTinyChatModel(), new CpuBackend());
        AdapterRegistry registry = new AdapterRegistry(2);
        registry.pin(AdapterStrategy.EXACT);
        for (String name : List.of("lora-all-r8", "flora-all-r4")) {
            registry.register(AdapterLoader.load(name, Fixtures.llamaTiny().resolve("adapters").resolve(name), model.model().linears(), model.model().backend()));
        }
        loop = new EngineLoop(new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds(), registry), 32);
        server = new OpenAiServer(model, loop, registry, "llama-tiny", "test-key", "127.0.0.1", 0);
        server.start();
        client = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + server.port() + "/v1").apiKey("test-key").maxRetries(0).build();
    }

    @AfterAll
    static void stop() {
        client.close();
        server.close();
        loop.close();
        model.close();
    }

    @Test
    void listsTheBaseModelAndTheAdapters() {
        List<String> ids = client.models().list().data().stream().map(Model::id).toList();
        assertThat(ids).containsExactly("llama-tiny", "lora-all-r8", "flora-all-r4");
    }

    @Test
    void completionsWithAdaptersByModel() {
        Fixtures.Expected e = Fixtures.llamaTinyExpected().stream().filter(x -> "lora-all-r8".equals(x.adapter())).findFirst().orElseThrow();
        Completion c = client.completions().create(CompletionCreateParams.builder().model("lora-all-r8").prompt(e.prompt())
                .maxTokens(4).temperature(0.0).echo(true).logprobs(1).build());
        var choice = c.choices().getFirst();
        assertThat(choice.text()).startsWith(e.prompt());
        List<Double> tokenLogprobs = choice.logprobs().orElseThrow().tokenLogprobs().orElseThrow();
        for (int t = 1; t < e.logprobs().length; t++) {
            assertThat(Math.abs(tokenLogprobs.get(t) - e.logprobs()[t])).isLessThanOrEqualTo(1e-4);
        }
        assertThat(c.usage().orElseThrow().promptTokens()).isEqualTo(e.tokens().length);
        assertThat(choice.finishReason()).isEqualTo(com.openai.models.completions.CompletionChoice.FinishReason.LENGTH);
    }

    @Test
    void streamingEqualsNonStreaming() {
        CompletionCreateParams params = CompletionCreateParams.builder().model("flora-all-r4").prompt("def fibonacci(n):")
                .maxTokens(10).temperature(0.0).build();
        String whole = client.completions().create(params).choices().getFirst().text();
        StringBuilder streamed = new StringBuilder();
        try (StreamResponse<Completion> stream = client.completions().createStreaming(params)) {
            stream.stream().forEach(chunk -> chunk.choices().forEach(ch -> streamed.append(ch.text())));
        }
        assertThat(streamed.toString()).isEqualTo(whole);
    }

    @Test
    void unknownModelsAreNotFound() {
        assertThatThrownBy(() -> client.completions().create(CompletionCreateParams.builder().model("nope").prompt("x").maxTokens(1).build()))
                .isInstanceOf(NotFoundException.class);
    }

    private static ChatCompletionCreateParams.Builder chat(String model, String user) {
        return ChatCompletionCreateParams.builder().model(model).addSystemMessage("Answer in Köln dialect 🙂").addUserMessage(user)
                .maxCompletionTokens(12).putAdditionalBodyProperty("ignore_eos", JsonValue.from(true));
    }

    @Test
    void chatCompletions() {
        ChatCompletion c = client.chat().completions().create(chat("lora-all-r8", "Wie geht's? 東京").temperature(0.0).build());
        assertThat(c.choices()).hasSize(1);
        ChatCompletion.Choice choice = c.choices().getFirst();
        assertThat(choice.message().content()).isPresent();
        assertThat(choice.finishReason()).isEqualTo(ChatCompletion.Choice.FinishReason.LENGTH);
        assertThat(c.usage().orElseThrow().completionTokens()).isEqualTo(12);
        // The same conversation on the base model answers differently from the adapter's.
        ChatCompletion base = client.chat().completions().create(chat("llama-tiny", "Wie geht's? 東京").temperature(0.0).build());
        assertThat(base.choices().getFirst().message().content()).isNotEqualTo(choice.message().content());
    }

    @Test
    void chatStreamingEqualsNonStreaming() {
        ChatCompletionCreateParams params = chat("flora-all-r4", "👋🏽 你好，世界").temperature(0.9).seed(11).n(2).logprobs(true).topLogprobs(2).build();
        ChatCompletion whole = client.chat().completions().create(params);
        StringBuilder[] streamed = {new StringBuilder(), new StringBuilder()};
        try (StreamResponse<ChatCompletionChunk> stream = client.chat().completions().createStreaming(params)) {
            stream.stream().forEach(chunk -> chunk.choices().forEach(ch -> ch.delta().content().ifPresent(streamed[(int) ch.index()]::append)));
        }
        for (int i = 0; i < 2; i++) {
            assertThat(streamed[i].toString()).isEqualTo(whole.choices().get(i).message().content().orElseThrow());
            assertThat(whole.choices().get(i).logprobs().orElseThrow().content().orElseThrow()).hasSize(12);
        }
    }
}
