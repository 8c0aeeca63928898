package dev.flora.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.FloraException;
import dev.flora.chat.ChatTemplate;
import dev.flora.chat.Conversation;
import dev.flora.chat.jinja.Template;
import dev.flora.chat.jinja.TemplateError;
import dev.flora.engine.SamplingParams;
import dev.flora.tokenizer.Tokenizer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A parsed POST /v1/chat/completions body, its conversation rendered by the model's chat template
 * and tokenised without adding special tokens again (vLLM's add_special_tokens=false), checked as
 * OpenAI and vLLM define the fields. Options Flora does not implement are refused by name.
 *
 * @param promptText  the rendered prompt
 * @param logprobs    return the log-probability of each generated token
 * @param topLogprobs and of this many most likely alternatives (0-20)
 * @param role        the role of the answer: "assistant", or the last message's role without a generation prompt
 */
record ChatRequest(ModelTarget target, Conversation conversation, String promptText, int[] prompt, GenerationOptions options,
                   boolean logprobs, int topLogprobs, boolean echo, String role) {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Content parts of other modalities, refused by name (Flora serves text-only models). */
    private static final Set<String> TEXT_TYPES = Set.of("text", "input_text");
    /** Template variables a request's chat_template_kwargs may not replace. */
    private static final Set<String> RESERVED = Set.of("messages", "tools", "documents", "add_generation_prompt", "continue_final_message");

    static ChatRequest parse(JsonNode body, ModelTarget target, ChatTemplate template, Tokenizer tokenizer, int context) {
        refuseUnsupported(body);
        List<Object> messages = messages(body);
        List<Object> tools = tools(body);
        boolean addGenerationPrompt = !body.has("add_generation_prompt") || body.get("add_generation_prompt").isNull()
                || GenerationOptions.bool(body, "add_generation_prompt");
        boolean continueFinal = GenerationOptions.bool(body, "continue_final_message");
        if (addGenerationPrompt && continueFinal) {
            throw ApiError.badRequest("continue_final_message", "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
        }
        Map<String, Object> kwargs = kwargs(body);
        Conversation conversation = new Conversation(messages, tools, addGenerationPrompt, continueFinal, kwargs);
        String text = render(template, conversation);
        int[] prompt = tokenizer.encode(text, GenerationOptions.bool(body, "add_special_tokens"));
        if (prompt.length == 0) {
            throw ApiError.badRequest("messages", "the rendered prompt has no tokens");
        }
        String maxField = body.has("max_completion_tokens") && !body.get("max_completion_tokens").isNull() ? "max_completion_tokens" : "max_tokens";
        if (prompt.length >= context) {
            CompletionRequest.checkContext(prompt.length, 1, context, maxField);
        }
        // vLLM's default: as many tokens as the context leaves.
        int maxTokens = GenerationOptions.integer(body, maxField, context - prompt.length, 0);
        CompletionRequest.checkContext(prompt.length, maxTokens, context, maxField);
        boolean logprobs = GenerationOptions.bool(body, "logprobs");
        int top = 0;
        if (body.has("top_logprobs") && !body.get("top_logprobs").isNull()) {
            if (!logprobs) {
                throw ApiError.badRequest("top_logprobs", "when using `top_logprobs`, `logprobs` must be set to true.");
            }
            top = GenerationOptions.integer(body, "top_logprobs", 0, 0);
            if (top > SamplingParams.MAX_LOGPROBS) {
                throw ApiError.badRequest("top_logprobs", "top_logprobs must be in [0, " + SamplingParams.MAX_LOGPROBS + "], got " + top);
            }
        }
        GenerationOptions options = GenerationOptions.parse(body, maxTokens, top);
        String role = addGenerationPrompt ? "assistant" : String.valueOf(((Map<?, ?>) messages.getLast()).get("role"));
        return new ChatRequest(target, conversation, text, prompt, options, logprobs, top, GenerationOptions.bool(body, "echo"), role);
    }

    private static String render(ChatTemplate template, Conversation conversation) {
        try {
            return template.render(conversation);
        } catch (TemplateError e) {
            throw ApiError.badRequest("messages", e.kind() == TemplateError.Kind.RAISED ? e.getMessage() : "the chat template failed: " + e.getMessage());
        } catch (FloraException e) {
            throw ApiError.badRequest("messages", e.getMessage());
        }
    }

    private static void refuseUnsupported(JsonNode body) {
        for (String field : List.of("functions", "function_call", "audio", "prediction", "web_search_options")) {
            if (body.has(field) && !body.get(field).isNull()) {
                throw ApiError.badRequest(field, field + " is not supported by Flora");
            }
        }
        if (body.has("chat_template") && !body.get("chat_template").isNull()) {
            throw ApiError.badRequest("chat_template", "chat_template in the request is not accepted; the model's own template is used");
        }
        JsonNode format = body.get("response_format");
        if (format != null && !format.isNull() && !"text".equals(format.path("type").asText())) {
            throw ApiError.badRequest("response_format", "response_format " + format.path("type").asText("") + " (guided decoding) is not supported by Flora");
        }
        JsonNode modalities = body.get("modalities");
        if (modalities != null && modalities.isArray()) {
            for (JsonNode m : modalities) {
                if (!"text".equals(m.asText())) {
                    throw ApiError.badRequest("modalities", "modalities: '" + m.asText() + "' is not supported; Flora answers with text");
                }
            }
        }
        JsonNode choice = body.get("tool_choice");
        boolean hasTools = body.has("tools") && body.get("tools").isArray() && !body.get("tools").isEmpty();
        String toolChoice = choice == null || choice.isNull() ? (hasTools ? "auto" : "none") : choice.isTextual() ? choice.asText() : "named";
        if (!toolChoice.equals("none")) {
            throw ApiError.badRequest("tool_choice", "tool_choice \"" + toolChoice + "\" needs a tool-call parser, which Flora does not have; "
                    + "send tool_choice \"none\" to give the tools to the chat template and get the model's text as it is");
        }
    }

    /** The messages as template values: content parts joined into one text, tool call arguments parsed into objects (as vLLM does). */
    private static List<Object> messages(JsonNode body) {
        JsonNode list = body.get("messages");
        if (list == null || !list.isArray() || list.isEmpty()) {
            throw ApiError.badRequest("messages", "\"messages\" must be a non-empty list of messages");
        }
        List<Object> out = new ArrayList<>();
        for (JsonNode m : list) {
            if (!m.isObject() || !m.path("role").isTextual()) {
                throw ApiError.badRequest("messages", "every message must be an object with a \"role\"");
            }
            @SuppressWarnings("unchecked")
            Map<Object, Object> message = (Map<Object, Object>) Template.value(m);
            message.put("content", content(m.get("content")));
            JsonNode calls = m.get("tool_calls");
            if (calls != null && calls.isArray()) {
                List<Object> parsed = new ArrayList<>();
                for (JsonNode call : calls) {
                    @SuppressWarnings("unchecked")
                    Map<Object, Object> c = (Map<Object, Object>) Template.value(call);
                    JsonNode arguments = call.path("function").path("arguments");
                    if (arguments.isTextual() && c.get("function") instanceof Map<?, ?> f) {
                        try {
                            @SuppressWarnings("unchecked")
                            Map<Object, Object> function = (Map<Object, Object>) f;
                            function.put("arguments", Template.value(JSON.readTree(arguments.asText())));
                        } catch (JsonProcessingException e) {
                            throw ApiError.badRequest("messages", "tool call arguments must be JSON (" + e.getOriginalMessage() + ")");
                        }
                    }
                    parsed.add(c);
                }
                message.put("tool_calls", parsed);
            }
            out.add(message);
        }
        return out;
    }

    /** A message's content: a string, null, or text parts joined with newlines; other parts are refused by type. */
    private static Object content(JsonNode content) {
        if (content == null || content.isNull()) {
            return null;
        }
        if (content.isTextual()) {
            return content.asText();
        }
        if (!content.isArray()) {
            throw ApiError.badRequest("messages", "a message's content must be a string or a list of content parts");
        }
        List<String> texts = new ArrayList<>();
        for (JsonNode part : content) {
            String type = part.path("type").asText("");
            if (!TEXT_TYPES.contains(type)) {
                throw ApiError.badRequest("messages", "content part type '" + type + "' is not supported; Flora serves text-only models");
            }
            texts.add(part.path("text").asText(""));
        }
        return String.join("\n", texts);
    }

    @SuppressWarnings("unchecked")
    private static List<Object> tools(JsonNode body) {
        JsonNode tools = body.get("tools");
        if (tools == null || tools.isNull()) {
            return null;
        }
        if (!tools.isArray()) {
            throw ApiError.badRequest("tools", "\"tools\" must be a list of tools");
        }
        return (List<Object>) Template.value(tools);
    }

    private static Map<String, Object> kwargs(JsonNode body) {
        Map<String, Object> kwargs = new LinkedHashMap<>();
        JsonNode given = body.get("chat_template_kwargs");
        if (given != null && !given.isNull()) {
            if (!given.isObject()) {
                throw ApiError.badRequest("chat_template_kwargs", "chat_template_kwargs must be an object");
            }
            given.properties().forEach(e -> {
                if (RESERVED.contains(e.getKey())) {
                    throw ApiError.badRequest("chat_template_kwargs", "chat_template_kwargs may not set '" + e.getKey() + "'; use the request's own field");
                }
                kwargs.put(e.getKey(), Template.value(e.getValue()));
            });
        }
        JsonNode documents = body.get("documents");
        if (documents != null && !documents.isNull()) {
            kwargs.put("documents", Template.value(documents));
        }
        return kwargs;
    }
}
