package dev.flora.chat;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.chat.jinja.TemplateError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Where a model's chat template comes from, and what apply_chat_template does around the rendering. */
class ChatTemplateTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String ECHO = "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{% if add_generation_prompt %}>{% endif %}";

    @TempDir
    Path dir;

    private ObjectNode config() {
        return JSON.createObjectNode().put("bos_token", "<s>");
    }

    private void write(ObjectNode config) throws IOException {
        Files.writeString(dir.resolve("tokenizer_config.json"), JSON.writeValueAsString(config));
    }

    private static List<Object> messages(String... roleContent) {
        List<Object> out = new ArrayList<>();
        for (int i = 0; i < roleContent.length; i += 2) {
            Map<Object, Object> m = new LinkedHashMap<>();
            m.put("role", roleContent[i]);
            m.put("content", roleContent[i + 1]);
            out.add(m);
        }
        return out;
    }

    private static Conversation conversation(List<Object> messages, List<Object> tools) {
        return new Conversation(messages, tools, true, false, Map.of());
    }

    @Test
    void aModelWithoutTemplateSaysSo() throws IOException {
        write(config());
        ChatTemplate t = ChatTemplate.load(dir);
        assertThat(t.isPresent()).isFalse();
        assertThat(t.problem()).contains("no chat template");
        assertThatThrownBy(() -> t.render(conversation(messages("user", "hi"), null))).hasMessageContaining("no chat template");
        assertThat(ChatTemplate.load(dir.resolve("missing")).problem()).contains("no chat template");
    }

    @Test
    void aBrokenTemplateIsReportedWithItsFileAndLine() throws IOException {
        write(config().put("chat_template", "ok\n{% for m in messages %}"));
        ChatTemplate t = ChatTemplate.load(dir);
        assertThat(t.problem()).contains(dir.toString()).contains("endfor");
        assertThatThrownBy(() -> t.render(conversation(messages("user", "hi"), null))).isInstanceOf(TemplateError.class);
    }

    @Test
    void chatTemplateJinjaOverridesTheConfigAndNamedTemplatesFollowTools() throws IOException {
        write(config().put("chat_template", "from config"));
        Files.writeString(dir.resolve("chat_template.jinja"), ECHO + "\n");
        Files.createDirectories(dir.resolve("additional_chat_templates"));
        Files.writeString(dir.resolve("additional_chat_templates/tool_use.jinja"), "tools: {{ tools | length }}");
        ChatTemplate t = ChatTemplate.load(dir);
        assertThat(t.names()).containsExactlyInAnyOrder("default", "tool_use");
        assertThat(t.render(conversation(messages("user", "hi"), null))).isEqualTo("[user:hi]>");
        assertThat(t.render(conversation(messages("user", "hi"), List.of(Map.of("type", "function"))))).isEqualTo("tools: 1");
    }

    @Test
    void namedTemplatesWithoutDefault() throws IOException {
        ObjectNode c = config();
        c.putArray("chat_template").addObject().put("name", "tool_use").put("template", "tools");
        write(c);
        ChatTemplate t = ChatTemplate.load(dir);
        assertThat(t.render(conversation(messages("user", "hi"), List.of()))).isEqualTo("tools");
        assertThatThrownBy(() -> t.render(conversation(messages("user", "hi"), null))).hasMessageContaining("none named \"default\"");
    }

    @Test
    void specialTokensAndKwargsAreVariables() throws IOException {
        ObjectNode c = JSON.createObjectNode().put("chat_template", "{{ bos_token }}|{{ eos_token }}|{{ unk_token }}|{{ flag }}|{{ documents }}");
        c.putObject("bos_token").put("content", "<|begin|>").put("special", true);
        c.put("eos_token", "<|end|>");
        c.putNull("unk_token");
        write(c);
        Conversation withFlag = new Conversation(messages("user", "x"), null, true, false, Map.of("flag", true));
        assertThat(ChatTemplate.load(dir).render(withFlag)).isEqualTo("<|begin|>|<|end|>||True|None");
    }

    /** continue_final_message: the prompt ends where the last message's content ends (its trailing space kept only if the template kept it). */
    @Test
    void continueFinalMessageCutsAfterTheLastContent() throws IOException {
        write(config().put("chat_template", "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>\n{% endfor %}"));
        ChatTemplate t = ChatTemplate.load(dir);
        assertThat(t.render(new Conversation(messages("user", "Hi", "assistant", "Hello, I am "), null, false, true, Map.of())))
                .isEqualTo("<user>Hi</user>\n<assistant>Hello, I am");
        write(config().put("chat_template", "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"));
        assertThat(ChatTemplate.load(dir).render(new Conversation(messages("user", "Hi", "assistant", "Hello, I am "), null, false, true, Map.of())))
                .isEqualTo("<user>Hi</user><assistant>Hello, I am ");
        write(config().put("chat_template", "{% for m in messages %}{{ m.role }}{% endfor %}"));
        assertThatThrownBy(() -> ChatTemplate.load(dir).render(new Conversation(messages("assistant", "gone"), null, false, true, Map.of())))
                .hasMessageContaining("does not appear in the chat");
    }
}
