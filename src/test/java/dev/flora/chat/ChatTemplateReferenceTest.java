package dev.flora.chat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.Fixtures;
import dev.flora.chat.jinja.Template;
import dev.flora.chat.jinja.TemplateError;
import dev.flora.tokenizer.Tokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Flora's rendering of real chat templates (Llama-3, Qwen-3 with tools and enable_thinking, Mistral,
 * Llama-2, Gemma from chat_template.jinja, named ChatML templates, none) equals transformers 5.17's
 * apply_chat_template for every conversation of tools/reference/chat/cases.json
 * (fixtures/chat/chat_references.json): the text exactly, its token ids (tokenised without adding
 * special tokens again), and the template's own error where it refuses a conversation.
 */
class ChatTemplateReferenceTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Map<String, Tokenizer> TOKENIZERS = new HashMap<>();

    @AfterAll
    static void close() {
        TOKENIZERS.values().forEach(Tokenizer::close);
    }

    static Path chatFixtures() {
        return Fixtures.llamaTiny().resolveSibling("chat");
    }

    static Path tools() {
        // The conversations live beside the script that rendered them.
        Path dir = Path.of("").toAbsolutePath();
        return dir.resolve("tools/reference/chat/cases.json");
    }

    @TestFactory
    List<DynamicTest> rendersAsTransformersDoes() throws IOException {
        JsonNode cases = JSON.readTree(tools().toFile());
        JsonNode references = JSON.readTree(chatFixtures().resolve("chat_references.json").toFile()).get("results");
        Map<String, JsonNode> byCase = new LinkedHashMap<>();
        for (JsonNode c : cases.get("generic")) {
            byCase.put(c.get("name").asText(), c);
        }
        cases.get("special").properties().forEach(e -> e.getValue().forEach(c -> byCase.put(e.getKey() + "/" + c.get("name").asText(), c)));
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode r : references) {
            String template = r.get("template").asText();
            String caseName = r.get("case").asText();
            JsonNode c = byCase.containsKey(template + "/" + caseName) ? byCase.get(template + "/" + caseName) : byCase.get(caseName);
            String tokenizer = cases.get("templates").get(template).get("tokenizer").asText();
            tests.add(DynamicTest.dynamicTest(template + " " + caseName, () -> check(template, tokenizer, c, r)));
        }
        assertThat(tests).hasSizeGreaterThanOrEqualTo(40);
        return tests;
    }

    private static void check(String template, String tokenizerName, JsonNode c, JsonNode reference) {
        ChatTemplate chat = ChatTemplate.load(chatFixtures().resolve(template));
        Map<String, Object> kwargs = new LinkedHashMap<>();
        if (c.has("kwargs")) {
            c.get("kwargs").properties().forEach(e -> kwargs.put(e.getKey(), Template.value(e.getValue())));
        }
        @SuppressWarnings("unchecked")
        List<Object> messages = (List<Object>) Template.value(c.get("messages"));
        @SuppressWarnings("unchecked")
        List<Object> toolList = c.has("tools") ? (List<Object>) Template.value(c.get("tools")) : null;
        Conversation conversation = new Conversation(messages, toolList, c.get("add_generation_prompt").asBoolean(), false, kwargs);
        if (reference.has("error")) {
            String error = reference.get("error").asText();
            if (error.startsWith("TemplateError: ")) {
                assertThatThrownBy(() -> chat.render(conversation)).isInstanceOf(TemplateError.class)
                        .hasMessage(error.substring("TemplateError: ".length()));
            } else {
                assertThat(chat.isPresent()).isFalse();
                assertThatThrownBy(() -> chat.render(conversation)).hasMessageContaining("no chat template");
            }
            return;
        }
        String text = chat.render(conversation);
        assertThat(text).isEqualTo(reference.get("text").asText());
        Tokenizer tokenizer = TOKENIZERS.computeIfAbsent(tokenizerName, name -> {
            Path file = cache().resolve(name).resolve("tokenizer.json");
            assertThat(file).as("%s is missing: run tools/fetch-tokenizers.sh (./flora test does)", file).exists();
            return Tokenizer.load(file);
        });
        assertThat(tokenizer.encode(text, false)).containsExactly(Fixtures.ints(reference.get("ids")));
    }

    static Path cache() {
        String env = System.getenv("FLORA_CACHE");
        Path base = env != null && !env.isBlank() ? Path.of(env) : Path.of(System.getProperty("user.home"), ".cache", "flora");
        return base.resolve("tokenizers");
    }
}
