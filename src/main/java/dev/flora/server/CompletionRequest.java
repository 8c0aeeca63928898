package dev.flora.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.engine.SamplingParams;
import dev.flora.tokenizer.Tokenizer;

import java.util.HashSet;
import java.util.Set;

/**
 * A parsed POST /v1/completions body, checked as the OpenAI API and vLLM define the fields.
 * Options Flora does not implement are refused by name, never ignored.
 *
 * @param adapter null for the base model
 * @param promptText the prompt as text (decoded from token ids when those were sent)
 */
record CompletionRequest(String model, String adapter, int[] prompt, String promptText, SamplingParams sampling, boolean stream,
                         boolean includeUsage, boolean echo, Integer logprobs, boolean tokensAsIds, java.util.List<String> stop,
                         boolean includeStop) {

    static CompletionRequest parse(JsonNode body, String baseName, AdapterRegistry adapters, Tokenizer tokenizer, int context) {
        if (body == null || !body.isObject()) {
            throw ApiError.badRequest(null, "the request body must be a JSON object");
        }
        JsonNode modelNode = body.get("model");
        if (modelNode == null || !modelNode.isTextual()) {
            throw ApiError.badRequest("model", "\"model\" is required: the base model's id or an adapter's name (see GET /v1/models)");
        }
        String model = modelNode.asText();
        String adapter = null;
        if (!model.equals(baseName)) {
            if (!adapters.contains(model)) {
                throw ApiError.notFound("model", "The model `" + model + "` does not exist.");
            }
            adapter = model;
        }
        refuseUnsupported(body);
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
        int maxTokens = intOr(body, "max_tokens", 16, 0);
        if (prompt.length + maxTokens > context) {
            throw new ApiError(400, "invalid_request_error", "max_tokens", "This model's maximum context length is " + context
                    + " tokens. However, you requested " + (prompt.length + maxTokens) + " tokens (" + prompt.length
                    + " in the prompt, " + maxTokens + " for the completion). Please reduce the length of the prompt or max_tokens.");
        }
        double temperature = doubleOr(body, "temperature", 1.0);
        double topP = doubleOr(body, "top_p", 1.0);
        int topK = body.has("top_k") && !body.get("top_k").isNull() ? body.get("top_k").asInt() : 0;
        if (temperature < 0 || temperature > 100) {
            throw ApiError.badRequest("temperature", "temperature must be in [0, 100], got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw ApiError.badRequest("top_p", "top_p must be in (0, 1], got " + topP);
        }
        Long seed = body.has("seed") && !body.get("seed").isNull() ? body.get("seed").asLong() : null;
        int minTokens = intOr(body, "min_tokens", 0, 0);
        if (minTokens > maxTokens) {
            throw ApiError.badRequest("min_tokens", "min_tokens (" + minTokens + ") must not exceed max_tokens (" + maxTokens + ")");
        }
        Integer logprobs = null;
        if (body.has("logprobs") && !body.get("logprobs").isNull()) {
            JsonNode lp = body.get("logprobs");
            if (!lp.isIntegralNumber() || lp.asInt() < 0 || lp.asInt() > SamplingParams.MAX_LOGPROBS) {
                throw ApiError.badRequest("logprobs", "logprobs must be an integer in [0, " + SamplingParams.MAX_LOGPROBS + "]");
            }
            logprobs = lp.asInt();
        }
        Set<Integer> stopIds = new HashSet<>();
        JsonNode stopTokenIds = body.get("stop_token_ids");
        if (stopTokenIds != null && stopTokenIds.isArray()) {
            stopTokenIds.forEach(n -> stopIds.add(n.asInt()));
        }
        SamplingParams sampling;
        try {
            sampling = new SamplingParams(temperature, Math.max(0, topK), topP, seed, maxTokens, bool(body, "ignore_eos"), stopIds,
                    minTokens, logprobs == null ? 0 : logprobs);
        } catch (RuntimeException e) {
            throw ApiError.badRequest(null, e.getMessage());
        }
        JsonNode streamOptions = body.get("stream_options");
        boolean includeUsage = streamOptions != null && streamOptions.path("include_usage").asBoolean(false);
        return new CompletionRequest(model, adapter, prompt, promptText, sampling, bool(body, "stream"), includeUsage, bool(body, "echo"),
                logprobs, bool(body, "return_tokens_as_token_ids"), stopStrings(body), bool(body, "include_stop_str_in_output"));
    }

    /** "stop": a string or a list of non-empty strings (OpenAI allows up to 4; Flora takes any number). */
    private static java.util.List<String> stopStrings(JsonNode body) {
        JsonNode stop = body.get("stop");
        if (stop == null || stop.isNull()) {
            return java.util.List.of();
        }
        java.util.List<String> out = new java.util.ArrayList<>();
        if (stop.isTextual()) {
            out.add(stop.asText());
        } else if (stop.isArray()) {
            for (JsonNode s : stop) {
                if (!s.isTextual()) {
                    throw ApiError.badRequest("stop", "\"stop\" must be a string or a list of strings");
                }
                out.add(s.asText());
            }
        } else {
            throw ApiError.badRequest("stop", "\"stop\" must be a string or a list of strings");
        }
        if (out.stream().anyMatch(String::isEmpty)) {
            throw ApiError.badRequest("stop", "stop strings must not be empty");
        }
        return java.util.List.copyOf(out);
    }

    private static void refuseUnsupported(JsonNode body) {
        if (body.has("n") && !body.get("n").isNull() && body.get("n").asInt() != 1) {
            throw ApiError.badRequest("n", "n other than 1 is not supported; send one request per completion");
        }
        if (body.has("best_of") && !body.get("best_of").isNull() && body.get("best_of").asInt() != 1) {
            throw ApiError.badRequest("best_of", "best_of other than 1 is not supported");
        }
        for (String penalty : new String[] {"presence_penalty", "frequency_penalty"}) {
            if (body.has(penalty) && !body.get(penalty).isNull() && body.get(penalty).asDouble() != 0) {
                throw ApiError.badRequest(penalty, penalty + " is not supported yet");
            }
        }
        if (body.has("repetition_penalty") && !body.get("repetition_penalty").isNull() && body.get("repetition_penalty").asDouble() != 1) {
            throw ApiError.badRequest("repetition_penalty", "repetition_penalty is not supported yet");
        }
        if (body.has("logit_bias") && body.get("logit_bias").isObject() && !body.get("logit_bias").isEmpty()) {
            throw ApiError.badRequest("logit_bias", "logit_bias is not supported");
        }
        if (body.has("suffix") && !body.get("suffix").isNull()) {
            throw ApiError.badRequest("suffix", "suffix is not supported");
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

    private static int intOr(JsonNode body, String key, int fallback, int min) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isIntegralNumber() || n.asLong() < min || n.asLong() > Integer.MAX_VALUE) {
            throw ApiError.badRequest(key, key + " must be an integer >= " + min + ", got " + n);
        }
        return n.asInt();
    }

    private static double doubleOr(JsonNode body, String key, double fallback) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isNumber()) {
            throw ApiError.badRequest(key, key + " must be a number, got " + n);
        }
        return n.asDouble();
    }

    private static boolean bool(JsonNode body, String key) {
        JsonNode n = body.get(key);
        if (n != null && !n.isNull() && !n.isBoolean()) {
            throw ApiError.badRequest(key, key + " must be true or false, got " + n);
        }
        return n != null && n.asBoolean(false);
    }
}
