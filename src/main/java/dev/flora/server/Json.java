package dev.flora.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.engine.Result;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;

import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/** JSON responses as the OpenAI API writes them: bodies, errors, usage, ids. */
final class Json {
    static final ObjectMapper MAPPER = new ObjectMapper();

    private Json() {
    }

    static ObjectNode object() {
        return MAPPER.createObjectNode();
    }

    static void send(Response response, Callback callback, int status, JsonNode body) {
        response.setStatus(status);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "application/json");
        try {
            Content.Sink.write(response, true, MAPPER.writeValueAsString(body), callback);
        } catch (JsonProcessingException e) {
            callback.failed(e);
        }
    }

    static ObjectNode error(ApiError e) {
        ObjectNode err = object().put("message", e.getMessage()).put("type", e.type);
        if (e.param == null) {
            err.putNull("param");
        } else {
            err.put("param", e.param);
        }
        err.put("code", e.status);
        return err;
    }

    /** An id like OpenAI's: a prefix and 24 hex digits. */
    static String id(String prefix) {
        byte[] b = new byte[12];
        ThreadLocalRandom.current().nextBytes(b);
        return prefix + HexFormat.of().formatHex(b);
    }

    static long now() {
        return System.currentTimeMillis() / 1000;
    }

    /** usage: the prompt once, the completion tokens of every choice returned. */
    static void usage(ObjectNode parent, int promptTokens, List<Result> results) {
        int completion = results.stream().mapToInt(r -> r.generated().length).sum();
        parent.putObject("usage").put("prompt_tokens", promptTokens).put("completion_tokens", completion).put("total_tokens", promptTokens + completion);
    }

    /** stop_reason: the stop string, or the stop token id, that ended a choice; else null. */
    static void stopReason(ObjectNode choice, Object reason) {
        switch (reason) {
            case null -> choice.putNull("stop_reason");
            case Integer id -> choice.put("stop_reason", id);
            default -> choice.put("stop_reason", reason.toString());
        }
    }
}
