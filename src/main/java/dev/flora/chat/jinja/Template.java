package dev.flora.chat.jinja;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A Jinja2 template as transformers renders chat templates: its sandboxed environment with
 * trim_blocks, lstrip_blocks, loop controls, tojson (ensure_ascii=False), raise_exception and
 * strftime_now. A hand-written interpreter of the part of Jinja2 that chat templates use, with
 * Python's semantics for values (str methods, slicing, truthiness, float printing); anything else
 * is refused when the template is compiled, naming the construct. Compiled once, rendered from
 * any thread.
 */
public final class Template {
    private final List<Ast.Node> nodes;

    private Template(List<Ast.Node> nodes) {
        this.nodes = nodes;
    }

    /** Parses a template; a {@link TemplateError} says what is wrong or unsupported, and where. */
    public static Template compile(String source) {
        return new Template(Parser.parse(source));
    }

    /**
     * Renders with these variables (values as {@link #value(JsonNode)} makes them: String, Long,
     * Double, Boolean, null, List, Map).
     */
    public String render(Map<String, ?> variables) {
        Scope globals = new Scope(null);
        Builtins.install(globals);
        Scope top = new Scope(globals);
        variables.forEach(top::set);
        Renderer renderer = new Renderer();
        try {
            return renderer.render(nodes, top);
        } catch (TemplateError e) {
            if (e.kind() == TemplateError.Kind.RUNTIME || e.kind() == TemplateError.Kind.UNSUPPORTED) {
                throw new TemplateError(e.kind(), "line " + renderer.line + ": " + e.getMessage());
            }
            throw e;
        } catch (StackOverflowError e) {
            throw new TemplateError(TemplateError.Kind.RUNTIME, "the template nests too deeply");
        } catch (RuntimeException e) {
            // A value of a type a filter or method did not expect (Python would raise a TypeError).
            throw new TemplateError(TemplateError.Kind.RUNTIME, "line " + renderer.line + ": the template failed (" + e + ")");
        }
    }

    /** A JSON value as a template value, as Python's json.loads gives it (objects keep their key order). */
    public static Object value(JsonNode node) {
        if (node == null || node.isNull() || node.isMissingNode()) {
            return null;
        }
        if (node.isTextual()) {
            return node.asText();
        }
        if (node.isBoolean()) {
            return node.asBoolean();
        }
        if (node.isIntegralNumber()) {
            return node.canConvertToLong() ? (Object) node.asLong() : (Object) node.bigIntegerValue();
        }
        if (node.isNumber()) {
            return node.asDouble();
        }
        if (node.isArray()) {
            List<Object> out = new ArrayList<>();
            node.forEach(n -> out.add(value(n)));
            return out;
        }
        Map<Object, Object> out = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            out.put(e.getKey(), value(e.getValue()));
        }
        return out;
    }
}
