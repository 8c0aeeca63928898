package dev.flora.chat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.FloraException;
import dev.flora.chat.jinja.PythonStrings;
import dev.flora.chat.jinja.Template;
import dev.flora.chat.jinja.TemplateError;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A model's chat template(s), found and applied as transformers does (apply_chat_template with
 * tokenize=False): tokenizer_config.json's "chat_template" (one string, or a list of named ones),
 * overridden by chat_template.jinja, plus additional_chat_templates/NAME.jinja; with named
 * templates, "tool_use" when the request has tools, else "default". The special tokens of
 * tokenizer_config.json (bos_token, eos_token, ...) are template variables.
 */
public final class ChatTemplate {
    /** vLLM's words when a model has none. */
    public static final String NO_TEMPLATE = "this model has no chat template (no \"chat_template\" in tokenizer_config.json and no "
            + "chat_template.jinja). As of transformers v4.44, default chat template is no longer allowed, so you must provide "
            + "a chat template if the tokenizer does not define one.";
    private static final List<String> SPECIAL_TOKENS = List.of("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
            "mask_token");

    private final Map<String, Template> templates;
    private final Map<String, Object> specialTokens;
    private final FloraException loadError;

    private ChatTemplate(Map<String, Template> templates, Map<String, Object> specialTokens, FloraException loadError) {
        this.templates = templates;
        this.specialTokens = specialTokens;
        this.loadError = loadError;
    }

    /** The chat template of a model (or tokenizer) directory. Never throws: a missing or broken template is reported when used. */
    public static ChatTemplate load(Path dir) {
        Map<String, Object> special = new LinkedHashMap<>();
        try {
            Map<String, String> sources = new TreeMap<>();
            JsonNode config = readJson(dir.resolve("tokenizer_config.json"));
            if (config != null) {
                JsonNode t = config.get("chat_template");
                if (t != null && t.isTextual()) {
                    sources.put("default", t.asText());
                } else if (t != null && t.isArray()) {
                    for (JsonNode named : t) {
                        if (!named.path("name").isTextual() || !named.path("template").isTextual()) {
                            throw new FloraException(dir.resolve("tokenizer_config.json") + ": every entry of \"chat_template\" needs a \"name\" and a \"template\"");
                        }
                        sources.put(named.get("name").asText(), named.get("template").asText());
                    }
                } else if (t != null && !t.isNull()) {
                    throw new FloraException(dir.resolve("tokenizer_config.json") + ": \"chat_template\" must be a string or a list of {name, template}");
                }
                for (String name : SPECIAL_TOKENS) {
                    String token = tokenText(config.get(name));
                    if (token != null) {
                        special.put(name, token);
                    }
                }
                JsonNode extra = config.get("additional_special_tokens");
                if (extra != null && extra.isArray()) {
                    List<Object> tokens = new ArrayList<>();
                    extra.forEach(n -> {
                        String token = tokenText(n);
                        if (token != null) {
                            tokens.add(token);
                        }
                    });
                    special.put("additional_special_tokens", tokens);
                }
            }
            Path file = dir.resolve("chat_template.jinja");
            if (Files.isRegularFile(file)) {
                sources.put("default", Files.readString(file));
            }
            Path more = dir.resolve("additional_chat_templates");
            if (Files.isDirectory(more)) {
                try (DirectoryStream<Path> files = Files.newDirectoryStream(more, "*.jinja")) {
                    for (Path f : files) {
                        String name = f.getFileName().toString();
                        sources.put(name.substring(0, name.length() - ".jinja".length()), Files.readString(f));
                    }
                }
            }
            Map<String, Template> compiled = new LinkedHashMap<>();
            for (Map.Entry<String, String> e : sources.entrySet()) {
                try {
                    compiled.put(e.getKey(), Template.compile(e.getValue()));
                } catch (TemplateError error) {
                    throw new TemplateError(error.kind(), "the chat template" + (sources.size() > 1 ? " '" + e.getKey() + "'" : "")
                            + " of " + dir + " cannot be used: " + error.getMessage());
                }
            }
            return new ChatTemplate(compiled, special, null);
        } catch (IOException e) {
            return new ChatTemplate(Map.of(), special, new FloraException(dir + ": cannot read the chat template (" + e.getMessage() + ")"));
        } catch (FloraException e) {
            return new ChatTemplate(Map.of(), special, e);
        }
    }

    private static JsonNode readJson(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            return null;
        }
        try {
            return new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new FloraException(file + ": not valid JSON (" + e.getMessage().lines().findFirst().orElse("") + ")");
        }
    }

    /** A special token as tokenizer_config.json writes it: a string, or an AddedToken dict with "content". */
    private static String tokenText(JsonNode n) {
        if (n == null || n.isNull()) {
            return null;
        }
        if (n.isTextual()) {
            return n.asText();
        }
        return n.path("content").isTextual() ? n.get("content").asText() : null;
    }

    /** Whether the model has a usable template (else {@link #render} says why not). */
    public boolean isPresent() {
        return loadError == null && !templates.isEmpty();
    }

    /** Why chat cannot be used with this model (no template, or one that does not load), or null when it can. */
    public String problem() {
        return loadError != null ? loadError.getMessage() : templates.isEmpty() ? NO_TEMPLATE : null;
    }

    /** The template names, "default" for a single one. */
    public java.util.Set<String> names() {
        return templates.keySet();
    }

    /**
     * The prompt text, exactly as apply_chat_template(tokenize=False) makes it. Throws a
     * {@link TemplateError} when the template refuses the conversation (its raise_exception message)
     * or fails, and a {@link FloraException} when there is no template.
     */
    public String render(Conversation c) {
        if (loadError != null) {
            throw loadError;
        }
        if (templates.isEmpty()) {
            throw new FloraException(NO_TEMPLATE);
        }
        Map<String, Object> variables = new LinkedHashMap<>(specialTokens);
        variables.putAll(c.kwargs());
        variables.put("messages", c.messages());
        variables.put("tools", c.tools());
        variables.putIfAbsent("documents", null);
        variables.put("add_generation_prompt", c.addGenerationPrompt());
        String text = select(c.tools() != null).render(variables);
        return c.continueFinalMessage() ? cutAfterFinalMessage(text, c.messages()) : text;
    }

    private Template select(boolean tools) {
        if (templates.size() == 1 && templates.containsKey("default")) {
            return templates.get("default");
        }
        if (tools && templates.containsKey("tool_use")) {
            return templates.get("tool_use");
        }
        if (templates.containsKey("default")) {
            return templates.get("default");
        }
        throw new FloraException("this model has several chat templates " + templates.keySet() + " and none named \"default\"");
    }

    /** continue_final_message as transformers does it: the text ends where the final message's content ends. */
    private static String cutAfterFinalMessage(String text, List<Object> messages) {
        if (messages.isEmpty() || !(messages.getLast() instanceof Map<?, ?> last)) {
            throw new FloraException("continue_final_message needs a final message to continue");
        }
        String content = finalText(last.get("content"));
        String stripped = PythonStrings.strip(content);
        int at = text.lastIndexOf(stripped);
        if (at < 0) {
            throw new FloraException("continue_final_message is set but the final message does not appear in the chat after "
                    + "applying the chat template! This can happen if the chat template deletes portions of the final message.");
        }
        int leftStripped = PythonStrings.lstrip(content).length();
        if (text.substring(at, Math.min(text.length(), at + leftStripped)).equals(content)) {
            return text.substring(0, at + leftStripped); // the template kept the message's own spacing
        }
        return text.substring(0, at + stripped.length());
    }

    private static String finalText(Object content) {
        if (content instanceof String s) {
            return s;
        }
        if (content instanceof List<?> blocks) {
            for (int i = blocks.size() - 1; i >= 0; i--) {
                if (blocks.get(i) instanceof Map<?, ?> block && block.get("text") instanceof String text) {
                    return text;
                }
            }
        }
        throw new FloraException("continue_final_message is set but we could not find any text to continue in the final message!");
    }
}
