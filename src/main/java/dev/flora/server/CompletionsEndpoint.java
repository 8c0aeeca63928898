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

/** POST /v1/completions, plain and streamed, as vLLM answers it (echo, logprobs, n, best_of, stop reasons). */
final class CompletionsEndpoint {
    static final String PATH = "/v1/completions";
    private final Serving serving;

    CompletionsEndpoint(Serving serving) {
        this.serving = serving;
    }

    void handle(JsonNode body, Request http, Response response, Callback callback) {
        ModelTarget target = ModelTarget.parse(body, serving.baseName(), serving.adapters());
        CompletionRequest c = CompletionRequest.parse(body, target, serving.model().tokenizer(), serving.context());
        String id = Json.id("cmpl-");
        RequestMetrics metrics = new RequestMetrics(serving.metrics(), serving.baseName(), target.name(), PATH);
        boolean scorePrompt = c.echo() && c.logprobs() != null;
        Generation generation = Generation.start(serving.loop(), serving.model().tokenizer(), id, c.prompt(), c.options(), target.adapter(),
                scorePrompt, metrics);
        long created = Json.now();
        Exchange.answer(generation, c.options(), metrics, http, response, callback,
                choices -> complete(id, created, c, choices),
                (out, g) -> stream(out, g, id, created, c));
    }

    private ObjectNode complete(String id, long created, CompletionRequest c, List<Generation.Choice> choices) {
        ObjectNode out = header(id, created, c);
        ArrayNode array = out.putArray("choices");
        List<Result> results = new ArrayList<>();
        for (int i = 0; i < choices.size(); i++) {
            Generation.Choice choice = choices.get(i);
            results.add(choice.result());
            ObjectNode o = array.addObject().put("index", i).put("text", (c.echo() ? promptText(c) : "") + choice.text());
            if (c.logprobs() != null) {
                o.set("logprobs", logprobs(c, choice.result(), c.echo()));
            } else {
                o.putNull("logprobs");
            }
            o.put("finish_reason", choice.result().finishReason().openAiName());
            Json.stopReason(o, Generation.stopReason(choice.result(), choice.stopString(), c.options().sampling(), serving.model().eosTokenIds()));
        }
        Json.usage(out, c.prompt().length, results);
        return out;
    }

    private int stream(SseStream out, Generation g, String id, long created, CompletionRequest c) throws IOException, InterruptedException {
        if (c.echo()) {
            for (int i = 0; i < g.sequences(); i++) {
                out.send(chunk(id, created, c, i, promptText(c)));
            }
        }
        List<Result> results = new ArrayList<>();
        while (results.size() < g.sequences()) {
            switch (g.next()) {
                case Generation.Token t -> {
                    ObjectNode chunk = chunk(id, created, c, t.sequence(), t.text());
                    if (c.logprobs() != null) {
                        ObjectNode lp = Json.object();
                        addToken(c, t.token(), t.logprob(), t.top(), lp.putArray("tokens"), lp.putArray("token_logprobs"), lp.putArray("top_logprobs"),
                                lp.putArray("text_offset"), new int[] {0});
                        ((ObjectNode) chunk.get("choices").get(0)).set("logprobs", lp);
                    }
                    out.send(chunk);
                }
                case Generation.Finished f -> {
                    ObjectNode last = chunk(id, created, c, f.sequence(), f.text());
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
            ObjectNode usage = header(id, created, c);
            usage.putArray("choices");
            Json.usage(usage, c.prompt().length, results);
            out.send(usage);
        }
        return 200;
    }

    private ObjectNode header(String id, long created, CompletionRequest c) {
        return Json.object().put("id", id).put("object", "text_completion").put("created", created).put("model", c.target().name());
    }

    private ObjectNode chunk(String id, long created, CompletionRequest c, int index, String text) {
        ObjectNode chunk = header(id, created, c);
        chunk.putArray("choices").addObject().put("index", index).put("text", text).putNull("logprobs").putNull("finish_reason");
        return chunk;
    }

    private String promptText(CompletionRequest c) {
        return c.promptText() != null ? c.promptText() : serving.model().tokenizer().decode(c.prompt(), false);
    }

    /** OpenAI's legacy logprobs object: tokens, token_logprobs, top_logprobs, text_offset. */
    private ObjectNode logprobs(CompletionRequest c, Result r, boolean withPrompt) {
        ObjectNode lp = Json.object();
        ArrayNode tokens = lp.putArray("tokens");
        ArrayNode values = lp.putArray("token_logprobs");
        ArrayNode tops = lp.putArray("top_logprobs");
        ArrayNode offsets = lp.putArray("text_offset");
        int[] offset = {0};
        if (withPrompt) {
            for (int i = 0; i < r.prompt().length; i++) {
                addToken(c, r.prompt()[i], i == 0 ? Double.NaN : r.promptLogprobs()[i], i == 0 || r.promptTop() == null ? null : r.promptTop()[i],
                        tokens, values, tops, offsets, offset);
            }
        }
        for (int i = 0; i < r.generated().length; i++) {
            addToken(c, r.generated()[i], r.generatedLogprobs()[i], r.generatedTop() == null ? null : r.generatedTop()[i],
                    tokens, values, tops, offsets, offset);
        }
        return lp;
    }

    private void addToken(CompletionRequest c, int token, double logprob, TopLogprobs top, ArrayNode tokens, ArrayNode values,
                          ArrayNode tops, ArrayNode offsets, int[] offset) {
        String text = tokenText(c, token);
        tokens.add(text);
        if (Double.isNaN(logprob)) {
            values.addNull();
        } else {
            values.add(logprob);
        }
        if (top == null || c.logprobs() == 0) {
            tops.addNull();
        } else {
            ObjectNode t = tops.addObject();
            for (int j = 0; j < top.ids().length; j++) {
                t.put(tokenText(c, top.ids()[j]), top.logprobs()[j]);
            }
            t.put(text, logprob); // the chosen token is always included
        }
        offsets.add(offset[0]);
        offset[0] += text.length();
    }

    private String tokenText(CompletionRequest c, int token) {
        return c.tokensAsIds() ? "token_id:" + token : serving.model().tokenizer().decode(new int[] {token}, false);
    }
}
