package dev.flora.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.engine.SamplingParams;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * How to generate, from the fields /v1/completions and /v1/chat/completions share (as OpenAI and
 * vLLM name them): sampling, penalties, stop strings and tokens, n and best_of, streaming.
 * Known options Flora does not implement are refused by name, never ignored.
 *
 * @param n      choices returned
 * @param bestOf sequences generated, the n with the highest cumulative log-probability returned
 */
record GenerationOptions(SamplingParams sampling, int n, int bestOf, List<String> stop, boolean includeStop, boolean stream,
                         boolean includeUsage) {
    /** Most sequences one request may ask for (n or best_of). */
    static final int MAX_SEQUENCES = 64;

    /** vLLM sampling options Flora does not implement, with the value that means "off". */
    private static final List<Object[]> UNSUPPORTED = List.of(
            new Object[] {"min_p", 0.0}, new Object[] {"use_beam_search", false}, new Object[] {"length_penalty", 1.0},
            new Object[] {"prompt_logprobs", null}, new Object[] {"allowed_token_ids", null}, new Object[] {"bad_words", null},
            new Object[] {"logits_processors", null}, new Object[] {"truncate_prompt_tokens", null},
            new Object[] {"guided_json", null}, new Object[] {"guided_regex", null}, new Object[] {"guided_choice", null},
            new Object[] {"guided_grammar", null}, new Object[] {"guided_decoding_backend", null}, new Object[] {"structured_outputs", null},
            new Object[] {"skip_special_tokens", true}, new Object[] {"spaces_between_special_tokens", true});

    /**
     * @param maxTokens   the completion's token budget, already read (its field name differs per endpoint)
     * @param logprobs    top log-probabilities per token (0-20), already read
     */
    static GenerationOptions parse(JsonNode body, int maxTokens, int logprobs) {
        for (Object[] u : UNSUPPORTED) {
            refuseUnlessDefault(body, (String) u[0], u[1]);
        }
        if (body.has("logit_bias") && !body.get("logit_bias").isNull() && !(body.get("logit_bias").isObject() && body.get("logit_bias").isEmpty())) {
            throw ApiError.badRequest("logit_bias", "logit_bias is not supported");
        }
        JsonNode streamOptions = body.get("stream_options");
        if (streamOptions != null && streamOptions.path("continuous_usage_stats").asBoolean(false)) {
            throw ApiError.badRequest("stream_options", "stream_options.continuous_usage_stats is not supported; include_usage sends usage once at the end");
        }
        double temperature = number(body, "temperature", 1.0);
        double topP = number(body, "top_p", 1.0);
        int topK = Math.max(0, integer(body, "top_k", 0, -1)); // vLLM: -1 (or 0) is no limit
        if (temperature < 0 || temperature > 100) {
            throw ApiError.badRequest("temperature", "temperature must be in [0, 100], got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw ApiError.badRequest("top_p", "top_p must be in (0, 1], got " + topP);
        }
        Long seed = body.has("seed") && !body.get("seed").isNull() ? body.get("seed").asLong() : null;
        int minTokens = integer(body, "min_tokens", 0, 0);
        if (minTokens > maxTokens) {
            throw ApiError.badRequest("min_tokens", "min_tokens (" + minTokens + ") must not exceed the maximum number of tokens (" + maxTokens + ")");
        }
        double presence = number(body, "presence_penalty", 0);
        double frequency = number(body, "frequency_penalty", 0);
        double repetition = number(body, "repetition_penalty", 1);
        if (!(presence >= -2 && presence <= 2)) {
            throw ApiError.badRequest("presence_penalty", "presence_penalty must be in [-2, 2], got " + presence);
        }
        if (!(frequency >= -2 && frequency <= 2)) {
            throw ApiError.badRequest("frequency_penalty", "frequency_penalty must be in [-2, 2], got " + frequency);
        }
        if (!(repetition > 0)) {
            throw ApiError.badRequest("repetition_penalty", "repetition_penalty must be greater than zero, got " + repetition);
        }
        Set<Integer> stopIds = new HashSet<>();
        JsonNode stopTokenIds = body.get("stop_token_ids");
        if (stopTokenIds != null && !stopTokenIds.isNull()) {
            if (!stopTokenIds.isArray()) {
                throw ApiError.badRequest("stop_token_ids", "stop_token_ids must be a list of token ids");
            }
            for (JsonNode id : stopTokenIds) {
                if (!id.isIntegralNumber()) {
                    throw ApiError.badRequest("stop_token_ids", "stop_token_ids must be a list of token ids, got " + id);
                }
                stopIds.add(id.asInt());
            }
        }
        int n = integer(body, "n", 1, 1);
        int bestOf = body.has("best_of") && !body.get("best_of").isNull() ? integer(body, "best_of", n, 1) : n;
        if (bestOf < n) {
            throw ApiError.badRequest("best_of", "best_of must be greater than or equal to n, got n=" + n + " and best_of=" + bestOf);
        }
        if (bestOf > MAX_SEQUENCES) {
            throw ApiError.badRequest(body.has("best_of") ? "best_of" : "n", "at most " + MAX_SEQUENCES + " sequences per request (n and best_of)");
        }
        boolean stream = bool(body, "stream");
        if (stream && bestOf > n) {
            throw ApiError.badRequest("best_of", "best_of is not supported with stream: the best sequences are known only at the end");
        }
        SamplingParams sampling;
        try {
            sampling = new SamplingParams(temperature, topK, topP, seed, maxTokens, bool(body, "ignore_eos"), stopIds, minTokens, logprobs,
                    presence, frequency, repetition);
        } catch (RuntimeException e) {
            throw ApiError.badRequest(null, e.getMessage());
        }
        boolean includeUsage = streamOptions != null && streamOptions.path("include_usage").asBoolean(false);
        return new GenerationOptions(sampling, n, bestOf, stopStrings(body), bool(body, "include_stop_str_in_output"), stream, includeUsage);
    }

    private static void refuseUnlessDefault(JsonNode body, String key, Object off) {
        JsonNode v = body.get(key);
        if (v == null || v.isNull()) {
            return;
        }
        boolean isOff = off instanceof Boolean b ? v.isBoolean() && v.asBoolean() == b
                : off instanceof Double d ? v.isNumber() && v.asDouble() == d
                : false;
        if (!isOff) {
            throw ApiError.badRequest(key, key + " is not supported by Flora");
        }
    }

    /** "stop": a string or a list of non-empty strings (OpenAI allows up to 4; Flora takes any number). */
    private static List<String> stopStrings(JsonNode body) {
        JsonNode stop = body.get("stop");
        if (stop == null || stop.isNull()) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
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
        return List.copyOf(out);
    }

    static int integer(JsonNode body, String key, int fallback, int min) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isIntegralNumber() || n.asLong() < min || n.asLong() > Integer.MAX_VALUE) {
            throw ApiError.badRequest(key, key + " must be an integer >= " + min + ", got " + n);
        }
        return n.asInt();
    }

    static double number(JsonNode body, String key, double fallback) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isNumber()) {
            throw ApiError.badRequest(key, key + " must be a number, got " + n);
        }
        return n.asDouble();
    }

    static boolean bool(JsonNode body, String key) {
        JsonNode n = body.get(key);
        if (n != null && !n.isNull() && !n.isBoolean()) {
            throw ApiError.badRequest(key, key + " must be true or false, got " + n);
        }
        return n != null && n.asBoolean(false);
    }
}
