package dev.flora.chat;

import java.util.List;
import java.util.Map;

/**
 * What a chat template renders: apply_chat_template's arguments. Values are template values
 * ({@link dev.flora.chat.jinja.Template#value}): messages are maps with "role", "content", ...
 *
 * @param tools                null when the request has none (templates test {@code tools is not none})
 * @param continueFinalMessage end the prompt inside the last message, to be continued (no end-of-turn)
 * @param kwargs               extra template variables (vLLM's chat_template_kwargs, e.g. enable_thinking)
 */
public record Conversation(List<Object> messages, List<Object> tools, boolean addGenerationPrompt, boolean continueFinalMessage,
                           Map<String, Object> kwargs) {
    public Conversation {
        if (addGenerationPrompt && continueFinalMessage) {
            throw new IllegalArgumentException("add_generation_prompt and continue_final_message exclude each other");
        }
    }
}
