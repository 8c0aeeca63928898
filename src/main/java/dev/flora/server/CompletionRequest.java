package dev.flora.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.engine.SamplingParams;
import dev.flora.tokenizer.Tokenizer;

/**
 * A parsed POST /v1/completions body, checked as the OpenAI API and vLLM define the fields.
 * Options Flora does not implement are refused by name, never ignored.
 *
 * @param target     the base model or the adapter the "model" field names
 * @param promptText the prompt as text (null when token ids were sent)
 * @param logprobs   null: no logprobs; else how many top log-probabilities per token (0-20)
 */
record CompletionRequest(ModelTarget target, int[] prompt, String promptText, GenerationOptions options, boolean echo, Integer logprobs,
                         boolean tokensAsIds) {

    static CompletionRequest parse(JsonNode body, ModelTarget target, Tokenizer tokenizer, int context) {
        if (body.has("suffix") && !body.get("suffix").isNull()) {
            throw ApiError.badRequest("suffix", "suffix is not supported");
        }
        int[] prompt;
        String promptText;
        JsonNode p = body.get("prompt");
        if (p != null && p.isArray() && p.size() == 1 && p.get(0).isTextual()) {
            p = p.get(0);
        }
        if (p == null || p.isNull()) {
            throw ApiError.badRequest("prompt", "\"prompt\" is required");
        } else if (p.isTextual()) {
            promptText = p.asText();
            prompt = tokenizer.encode(promptText, true);
        } else if (p.isArray() && !p.isEmpty() && allInts(p)) {
            prompt = new int[p.size()];
            for (int i = 0; i < prompt.length; i++) {
                prompt[i] = p.get(i).asInt();
            }
            promptText = null;
        } else if (p.isArray() && (p.isEmpty() || p.get(0).isArray() || p.get(0).isTextual())) {
            throw ApiError.badRequest("prompt", "several prompts in one request are not supported; send one prompt (a string or token ids) per request");
        } else {
            throw ApiError.badRequest("prompt", "\"prompt\" must be a string or a list of token ids");
        }
        if (prompt.length == 0) {
            throw ApiError.badRequest("prompt", "the prompt has no tokens");
        }
        int maxTokens = GenerationOptions.integer(body, "max_tokens", 16, 0);
        checkContext(prompt.length, maxTokens, context, "max_tokens");
        Integer logprobs = null;
        if (body.has("logprobs") && !body.get("logprobs").isNull()) {
            JsonNode lp = body.get("logprobs");
            if (!lp.isIntegralNumber() || lp.asInt() < 0 || lp.asInt() > SamplingParams.MAX_LOGPROBS) {
                throw ApiError.badRequest("logprobs", "logprobs must be an integer in [0, " + SamplingParams.MAX_LOGPROBS + "]");
            }
            logprobs = lp.asInt();
        }
        GenerationOptions options = GenerationOptions.parse(body, maxTokens, logprobs == null ? 0 : logprobs);
        return new CompletionRequest(target, prompt, promptText, options, GenerationOptions.bool(body, "echo"), logprobs,
                GenerationOptions.bool(body, "return_tokens_as_token_ids"));
    }

    /** vLLM's refusal of a prompt plus completion longer than the model's context. */
    static void checkContext(int promptTokens, int maxTokens, int context, String field) {
        if (promptTokens + maxTokens > context) {
            throw new ApiError(400, "invalid_request_error", field, "This model's maximum context length is " + context
                    + " tokens. However, you requested " + (promptTokens + maxTokens) + " tokens (" + promptTokens
                    + " in the prompt, " + maxTokens + " for the completion). Please reduce the length of the prompt or " + field + ".");
        }
    }

    private static boolean allInts(JsonNode array) {
        for (JsonNode n : array) {
            if (!n.isIntegralNumber()) {
                return false;
            }
        }
        return true;
    }
}
