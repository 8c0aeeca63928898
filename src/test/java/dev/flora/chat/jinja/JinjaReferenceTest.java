package dev.flora.chat.jinja;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Every case of tools/reference/chat/jinja_cases.py renders exactly as Jinja2 rendered it in
 * transformers' environment (fixtures/chat/jinja_references.json), or fails where Jinja2 failed
 * (with the template's own message for raise_exception).
 */
class JinjaReferenceTest {
    @TestFactory
    List<DynamicTest> rendersAsJinja2Does() throws IOException {
        JsonNode root;
        try (InputStream in = JinjaReferenceTest.class.getResourceAsStream("/fixtures/chat/jinja_references.json")) {
            root = new ObjectMapper().readTree(in);
        }
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : root.get("cases")) {
            tests.add(DynamicTest.dynamicTest(c.get("name").asText(), () -> check(c)));
        }
        return tests;
    }

    private static void check(JsonNode c) {
        String template = c.get("template").asText();
        Map<String, Object> variables = new LinkedHashMap<>();
        c.get("variables").properties().forEach(e -> variables.put(e.getKey(), Template.value(e.getValue())));
        if (c.has("text")) {
            assertThat(Template.compile(template).render(variables)).isEqualTo(c.get("text").asText());
            return;
        }
        String error = c.get("error").asText();
        assertThatThrownBy(() -> Template.compile(template).render(variables))
                .isInstanceOf(TemplateError.class)
                .satisfies(e -> {
                    if (error.startsWith("TemplateError: ")) {
                        assertThat(((TemplateError) e).kind()).isEqualTo(TemplateError.Kind.RAISED);
                        assertThat(e.getMessage()).isEqualTo(error.substring("TemplateError: ".length()));
                    } else {
                        assertThat(((TemplateError) e).kind()).isNotEqualTo(TemplateError.Kind.RAISED);
                    }
                });
    }
}
