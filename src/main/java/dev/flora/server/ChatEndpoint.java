package dev.flora.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.engine.Result;
import dev.flora.engine.TopLogprobs;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * POST /v1/chat/completions, plain ("chat.completion") and streamed ("chat.completion.chunk": a
 * first delta with the role, then content deltas, a last one with finish_reason, optionally usage,
 * then [DONE]), as vLLM answers it. Logprobs come per token with its UTF-8 bytes.
 */
final class ChatEndpoint {
    static final String PATH = "/v1/chat/completions";
    /** vLLM clamps log-probabilities to this (JSON has no -Infinity). */
    private static final double MIN_LOGPROB = -9999.0;
    private final Serving serving;

    ChatEndpoint(Serving serving) {
        this.serving = serving;
    }

    void handle(JsonNode body, Request http, Response response, Callback callback) {
        ModelTarget target = ModelTarget.parse(body, serving.baseName(), serving.adapters());
        ChatRequest c = ChatRequest.parse(body, target, serving.chatTemplate(), serving.model().tokenizer(), serving.context());
        String id = Json.id("chatcmpl-");
        RequestMetrics metrics = new RequestMetrics(serving.metrics(), serving.baseName(), target.name(), PATH);
        Generation generation = Generation.start(serving.loop(), serving.model().tokenizer(), id, c.prompt(), c.options(), target.adapter(),
                false, metrics);
        long created = Json.now();
        Exchange.answer(generation, c.options(), metrics, http, response, callback,
                choices -> complete(id, created, c, choices),
                (out, g) -> stream(out, g, id, created, c));
    }

    private ObjectNode complete(String id, long created, ChatRequest c, List<Generation.Choice> choices) {
        ObjectNode out = header(id, created, c, "chat.completion");
        ArrayNode array = out.putArray("choices");
        List<Result> results = new ArrayList<>();
        for (int i = 0; i < choices.size(); i++) {
            Generation.Choice choice = choices.get(i);
            results.add(choice.result());
            ObjectNode o = array.addObject().put("index", i);
            o.putObject("message").put("role", c.role()).put("content", echoed(c) + choice.text()).putNull("refusal").putArray("tool_calls");
            if (c.logprobs()) {
                ArrayNode content = o.putObject("logprobs").putArray("content");
                Result r = choice.result();
                for (int t = 0; t < r.generated().length; t++) {
                    content.add(entry(c, r.generated()[t], r.generatedLogprobs()[t], r.generatedTop() == null ? null : r.generatedTop()[t]));
                }
            } else {
                o.putNull("logprobs");
            }
            o.put("finish_reason", choice.result().finishReason().openAiName());
            Json.stopReason(o, Generation.stopReason(choice.result(), choice.stopString(), c.options().sampling(), serving.model().eosTokenIds()));
        }
        Json.usage(out, c.prompt().length, results);
        return out;
    }

    private int stream(SseStream out, Generation g, String id, long created, ChatRequest c) throws IOException, InterruptedException {
        String echo = echoed(c);
        for (int i = 0; i < g.sequences(); i++) {
            ObjectNode first = chunk(id, created, c, i);
            delta(first).put("role", c.role()).put("content", "");
            out.send(first);
            if (!echo.isEmpty()) {
                ObjectNode echoed = chunk(id, created, c, i);
                delta(echoed).put("content", echo);
                out.send(echoed);
            }
        }
        List<Result> results = new ArrayList<>();
        while (results.size() < g.sequences()) {
            switch (g.next()) {
                case Generation.Token t -> {
                    if (t.text().isEmpty() && !c.logprobs()) {
                        continue; // nothing to show yet (a partial character, or text that may become a stop string)
                    }
                    ObjectNode chunk = chunk(id, created, c, t.sequence());
                    delta(chunk).put("content", t.text());
                    if (c.logprobs()) {
                        ObjectNode choice = (ObjectNode) chunk.get("choices").get(0);
                        choice.putObject("logprobs").putArray("content").add(entry(c, t.token(), t.logprob(), t.top()));
                    }
                    out.send(chunk);
                }
                case Generation.Finished f -> {
                    ObjectNode last = chunk(id, created, c, f.sequence());
                    if (!f.text().isEmpty()) {
                        delta(last).put("content", f.text());
                    }
                    ObjectNode choice = (ObjectNode) last.get("choices").get(0);
                    choice.put("finish_reason", f.result().finishReason().openAiName());
                    Json.stopReason(choice, Generation.stopReason(f.result(), f.stopString(), c.options().sampling(), serving.model().eosTokenIds()));
                    out.send(last);
                    results.add(f.result());
                }
                case Generation.Failed f -> {
                    g.cancel();
                    out.send(Json.object().set("error", Json.error(ApiError.badRequest(null, f.error().getMessage()))));
                    return 500;
                }
                case Generation.Gone gone -> throw new Generation.ClientGone();
            }
        }
        if (c.options().includeUsage()) {
            ObjectNode usage = header(id, created, c, "chat.completion.chunk");
            usage.putArray("choices");
            Json.usage(usage, c.prompt().length, results);
            out.send(usage);
        }
        return 200;
    }

    /** With echo, the answer starts with the last message's content when that message has the answer's role (vLLM). */
    private static String echoed(ChatRequest c) {
        if (!c.echo()) {
            return "";
        }
        Object last = c.conversation().messages().getLast();
        if (last instanceof Map<?, ?> m && c.role().equals(m.get("role")) && m.get("content") instanceof String content) {
            return content;
        }
        return "";
    }

    /** One token of logprobs.content: its text, log-probability, UTF-8 bytes and the most likely alternatives (the chosen one always among them). */
    private ObjectNode entry(ChatRequest c, int token, double logprob, TopLogprobs top) {
        ObjectNode e = token(token, logprob);
        ArrayNode alternatives = e.putArray("top_logprobs");
        if (c.topLogprobs() > 0 && top != null) {
            boolean chosenListed = false;
            for (int j = 0; j < top.ids().length; j++) {
                alternatives.add(token(top.ids()[j], top.logprobs()[j]));
                chosenListed |= top.ids()[j] == token;
            }
            if (!chosenListed) {
                alternatives.add(token(token, logprob));
            }
        }
        return e;
    }

    private ObjectNode token(int id, double logprob) {
        ObjectNode t = Json.object().put("token", serving.model().tokenizer().decode(new int[] {id}, false)).put("logprob", Math.max(logprob, MIN_LOGPROB));
        ArrayNode bytes = t.putArray("bytes");
        for (byte b : serving.tokenBytes().bytes(id)) {
            bytes.add(b & 0xff);
        }
        return t;
    }

    private static ObjectNode header(String id, long created, ChatRequest c, String object) {
        return Json.object().put("id", id).put("object", object).put("created", created).put("model", c.target().name());
    }

    private static ObjectNode chunk(String id, long created, ChatRequest c, int index) {
        ObjectNode chunk = header(id, created, c, "chat.completion.chunk");
        chunk.putArray("choices").addObject().put("index", index).putObject("delta");
        ((ObjectNode) chunk.get("choices").get(0)).putNull("logprobs").putNull("finish_reason");
        return chunk;
    }

    private static ObjectNode delta(ObjectNode chunk) {
        return (ObjectNode) chunk.get("choices").get(0).get("delta");
    }
}
