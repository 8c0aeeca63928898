package dev.flora.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.adapter.AdapterVersion;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineLoop;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.TopLogprobs;
import dev.flora.model.PretrainedModel;
import dev.flora.tokenizer.IncrementalDecoder;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.VirtualThreadPool;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The OpenAI-compatible HTTP API, as vLLM serves it: POST /v1/completions (plain and SSE
 * streaming), GET /v1/models (the base model and every adapter; a request picks one by its
 * "model"), GET /health. Jetty 12 serves it, every request on its own virtual thread.
 */
public final class OpenAiServer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long MAX_BODY_BYTES = 16L << 20;

    private final PretrainedModel model;
    private final EngineLoop loop;
    private final AdapterRegistry adapters;
    private final String baseName;
    private final String apiKey;
    private final Server server;
    private final ServerConnector connector;
    private final long created = System.currentTimeMillis() / 1000;
    private final ServerMetrics metrics;
    private volatile java.nio.file.Path adapterRoot;

    public OpenAiServer(PretrainedModel model, EngineLoop loop, AdapterRegistry adapters, String baseName, String apiKey, String host, int port) {
        this.model = model;
        this.loop = loop;
        this.adapters = adapters;
        this.baseName = baseName;
        this.apiKey = apiKey;
        this.metrics = new ServerMetrics(loop, baseName, adapters);
        loop.onStep(n -> metrics.stepTokens.observe(n));
        // Most requests wait on the engine: many more of them than Jetty's default of 200 threads may be in flight.
        VirtualThreadPool threads = new VirtualThreadPool();
        threads.setMaxThreads(1 << 16);
        threads.setMaxConcurrentTasks(1 << 16);
        this.server = new Server(threads);
        this.connector = new ServerConnector(server);
        connector.setHost(host);
        connector.setPort(port);
        connector.setAcceptQueueSize(4096); // bursts of many simultaneous clients are normal for a batching server
        server.addConnector(connector);
        server.setHandler(new Handler.Abstract() {
            @Override
            public boolean handle(org.eclipse.jetty.server.Request request, Response response, Callback callback) {
                serve(request, response, callback);
                return true;
            }
        });
    }

    /** Allows POST /v1/load_lora_adapter for directories under this root (symlinks resolved). */
    public void allowAdapterLoading(java.nio.file.Path root) {
        try {
            this.adapterRoot = root.toRealPath();
        } catch (IOException e) {
            throw new FloraException(root + ": --adapter-root is not an existing directory");
        }
    }

    public void start() {
        try {
            server.start();
        } catch (Exception e) {
            throw new FloraException("cannot listen on " + connector.getHost() + ":" + connector.getPort() + " (" + e.getMessage() + ")", e);
        }
    }

    /** The port listened on (useful with port 0). */
    public int port() {
        return connector.getLocalPort();
    }

    @Override
    public void close() {
        try {
            server.stop();
        } catch (Exception e) {
            // stopping: nothing left to do
        }
    }

    private void serve(org.eclipse.jetty.server.Request request, Response response, Callback callback) {
        String path = org.eclipse.jetty.server.Request.getPathInContext(request);
        String method = request.getMethod();
        try {
            if (path.equals("/health")) {
                send(response, callback, 200, JSON.createObjectNode());
                return;
            }
            if (path.equals("/metrics") && method.equals("GET")) {
                response.setStatus(200);
                response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
                try (OutputStream out = Content.Sink.asOutputStream(response)) {
                    metrics.write(out);
                }
                callback.succeeded();
                return;
            }
            if (apiKey != null && !("Bearer " + apiKey).equals(request.getHeaders().get(HttpHeader.AUTHORIZATION))) {
                throw new ApiError(401, "authentication_error", null, "invalid or missing API key (Authorization: Bearer KEY)");
            }
            switch (method + " " + path) {
                case "GET /v1/models" -> send(response, callback, 200, models());
                case "POST /v1/completions" -> completions(request, response, callback);
                case "POST /v1/load_lora_adapter" -> send(response, callback, 200, loadAdapter(readBody(request)));
                case "POST /v1/unload_lora_adapter" -> send(response, callback, 200, unloadAdapter(readBody(request)));
                default -> {
                    if (path.equals("/v1/models") || path.equals("/v1/completions")) {
                        throw new ApiError(405, "invalid_request_error", null, method + " is not allowed on " + path);
                    }
                    throw ApiError.notFound(null, "no route " + method + " " + path);
                }
            }
        } catch (IOException e) {
            callback.failed(e);
        } catch (ApiError e) {
            sendError(response, callback, e);
        } catch (EngineLoop.Busy e) {
            sendError(response, callback, new ApiError(503, "server_busy", null, e.getMessage()));
        } catch (FloraException e) {
            sendError(response, callback, ApiError.badRequest(null, e.getMessage()));
        } catch (RuntimeException e) {
            sendError(response, callback, new ApiError(500, "internal_error", null, "internal error: " + e));
        }
    }

    private ObjectNode models() {
        ObjectNode out = JSON.createObjectNode().put("object", "list");
        ArrayNode data = out.putArray("data");
        data.addObject().put("id", baseName).put("object", "model").put("created", created).put("owned_by", "flora")
                .put("root", model.directory().path().toString()).putNull("parent").put("max_model_len", model.model().spec().maxContext());
        for (AdapterVersion a : adapters.adapters()) {
            data.addObject().put("id", a.name()).put("object", "model").put("created", created).put("owned_by", "flora")
                    .put("root", a.dir() == null ? a.name() : a.dir().toString()).put("parent", baseName);
        }
        return out;
    }

    /** vLLM's runtime adapter loading: {"lora_name", "lora_path", "load_inplace"}, from under --adapter-root only. */
    private synchronized ObjectNode loadAdapter(JsonNode body) {
        if (adapterRoot == null) {
            throw ApiError.badRequest(null, "runtime adapter loading is off; start flora serve with --adapter-root DIR");
        }
        String name = text(body, "lora_name");
        String path = text(body, "lora_path");
        boolean inplace = body.path("load_inplace").asBoolean(false);
        if (name.equals(baseName)) {
            throw ApiError.badRequest("lora_name", "'" + name + "' is the base model's id");
        }
        if (adapters.contains(name) && !inplace) {
            throw ApiError.badRequest("lora_name", "The lora adapter '" + name + "' has already been loaded; set load_inplace to replace it");
        }
        java.nio.file.Path dir;
        try {
            java.nio.file.Path given = java.nio.file.Path.of(path);
            dir = (given.isAbsolute() ? given : adapterRoot.resolve(given)).toRealPath();
        } catch (IOException | java.nio.file.InvalidPathException e) {
            throw ApiError.notFound("lora_path", "no adapter directory at '" + path + "'");
        }
        if (!dir.startsWith(adapterRoot)) {
            throw new ApiError(403, "invalid_request_error", "lora_path", "'" + path + "' is outside --adapter-root");
        }
        dev.flora.adapter.Adapter adapter = dev.flora.adapter.AdapterLoader.load(name, dir, model.model().linears(), model.model().backend());
        if (inplace) {
            adapters.replace(adapter);
        } else {
            adapters.register(adapter);
        }
        return JSON.createObjectNode().put("message", "Success: LoRA adapter '" + name + "' added successfully.");
    }

    private synchronized ObjectNode unloadAdapter(JsonNode body) {
        String name = text(body, "lora_name");
        if (!adapters.unregister(name)) {
            throw ApiError.notFound("lora_name", "The lora adapter '" + name + "' cannot be found.");
        }
        return JSON.createObjectNode().put("message", "Success: LoRA adapter '" + name + "' removed successfully.");
    }

    private static String text(JsonNode body, String key) {
        JsonNode n = body == null ? null : body.get(key);
        if (n == null || !n.isTextual() || n.asText().isBlank()) {
            throw ApiError.badRequest(key, "\"" + key + "\" is required");
        }
        return n.asText();
    }

    private JsonNode readBody(org.eclipse.jetty.server.Request request) {
        long length = request.getLength();
        if (length > MAX_BODY_BYTES) {
            throw new ApiError(413, "invalid_request_error", null, "the request body is larger than " + MAX_BODY_BYTES + " bytes");
        }
        String text;
        try {
            text = Content.Source.asString(request, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw ApiError.badRequest(null, "cannot read the request body (" + e.getMessage() + ")");
        }
        if (text.length() > MAX_BODY_BYTES) {
            throw new ApiError(413, "invalid_request_error", null, "the request body is larger than " + MAX_BODY_BYTES + " bytes");
        }
        try {
            return JSON.readTree(text);
        } catch (JsonProcessingException e) {
            throw ApiError.badRequest(null, "the body is not valid JSON (" + e.getOriginalMessage() + ")");
        }
    }

    private void completions(org.eclipse.jetty.server.Request httpRequest, Response response, Callback callback) {
        CompletionRequest c = CompletionRequest.parse(readBody(httpRequest), baseName, adapters, model.tokenizer(), model.model().spec().maxContext());
        String id = "cmpl-" + HexFormat.of().formatHex(randomBytes());
        boolean scorePrompt = c.echo() && c.logprobs() != null;
        Request request = Request.withAdapter(id, c.prompt(), c.sampling(), scorePrompt, c.adapter());
        if (c.stream()) {
            stream(id, c, request, response, callback);
            return;
        }
        CompletableFuture<Result> done = new CompletableFuture<>();
        IncrementalDecoder decoder = new IncrementalDecoder(model.tokenizer(), c.prompt());
        StopStrings stops = new StopStrings(c.stop(), c.includeStop());
        StringBuilder text = new StringBuilder(c.echo() ? promptText(c) : "");
        loop.submit(request.withStop(token -> stops.stopped()), measured(c, new Engine.Listener() {
            @Override
            public void onToken(String requestId, int token, double logprob, TopLogprobs top) {
                text.append(stops.add(decoder.add(token)));
            }

            @Override
            public void onFinish(Result result) {
                text.append(stops.add(decoder.finish())).append(stops.finish());
                done.complete(result);
            }

            @Override
            public void onError(String requestId, RuntimeException error) {
                done.completeExceptionally(error);
            }
        }));
        Result r;
        try {
            r = done.get();
        } catch (InterruptedException e) {
            loop.cancel(id);
            Thread.currentThread().interrupt();
            throw new ApiError(500, "internal_error", null, "interrupted");
        } catch (ExecutionException e) {
            throw e.getCause() instanceof RuntimeException re ? re : new IllegalStateException(e.getCause());
        }
        ObjectNode out = JSON.createObjectNode().put("id", id).put("object", "text_completion")
                .put("created", System.currentTimeMillis() / 1000).put("model", c.model());
        ObjectNode choice = out.putArray("choices").addObject().put("index", 0).put("text", text.toString());
        if (c.logprobs() != null) {
            choice.set("logprobs", logprobs(c, r, c.echo()));
        } else {
            choice.putNull("logprobs");
        }
        choice.put("finish_reason", r.finishReason().openAiName());
        if (stops.matched() != null) {
            choice.put("stop_reason", stops.matched());
        }
        usage(out.putObject("usage"), c.prompt().length, r.generated().length);
        send(response, callback, 200, out);
    }

    /** Wraps a request's listener to record its latencies, token counts and outcome in the metrics. */
    private Engine.Listener measured(CompletionRequest c, Engine.Listener inner) {
        long submitted = System.nanoTime();
        return new Engine.Listener() {
            private long first;

            @Override
            public void onToken(String requestId, int token, double logprob, TopLogprobs top) {
                if (first == 0) {
                    first = System.nanoTime();
                    metrics.timeToFirstToken.labelValues(baseName).observe((first - submitted) / 1e9);
                }
                inner.onToken(requestId, token, logprob, top);
            }

            @Override
            public void onFinish(Result result) {
                long end = System.nanoTime();
                int n = result.generated().length;
                if (n > 1) {
                    metrics.timePerOutputToken.labelValues(baseName).observe((end - first) / 1e9 / (n - 1));
                }
                metrics.endToEnd.labelValues(baseName).observe((end - submitted) / 1e9);
                metrics.promptTokens.labelValues(baseName).inc(result.prompt().length);
                metrics.generationTokens.labelValues(baseName).inc(n);
                metrics.requests.labelValues("200", c.model()).inc();
                inner.onFinish(result);
            }

            @Override
            public void onError(String requestId, RuntimeException error) {
                metrics.requests.labelValues("500", c.model()).inc();
                inner.onError(requestId, error);
            }
        };
    }

    private static byte[] randomBytes() {
        byte[] b = new byte[12];
        ThreadLocalRandom.current().nextBytes(b);
        return b;
    }

    private String promptText(CompletionRequest c) {
        return c.promptText() != null ? c.promptText() : model.tokenizer().decode(c.prompt(), false);
    }

    private static void usage(ObjectNode usage, int prompt, int completion) {
        usage.put("prompt_tokens", prompt).put("completion_tokens", completion).put("total_tokens", prompt + completion);
    }

    /** OpenAI's legacy logprobs object: tokens, token_logprobs, top_logprobs, text_offset. */
    private ObjectNode logprobs(CompletionRequest c, Result r, boolean withPrompt) {
        ObjectNode lp = JSON.createObjectNode();
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
        return c.tokensAsIds() ? "token_id:" + token : model.tokenizer().decode(new int[] {token}, false);
    }

    /** Server-sent events: one chunk per piece of text, a last chunk with finish_reason, optionally usage, then [DONE]. */
    private void stream(String id, CompletionRequest c, Request request, Response response, Callback callback) {
        record Event(int token, double logprob, TopLogprobs top, String text, Result finished, RuntimeException error) {
        }
        LinkedBlockingQueue<Event> events = new LinkedBlockingQueue<>();
        IncrementalDecoder decoder = new IncrementalDecoder(model.tokenizer(), c.prompt());
        StopStrings stops = new StopStrings(c.stop(), c.includeStop());
        // Text is decoded and checked for stop strings on the engine thread, so the engine can stop at once.
        loop.submit(request.withStop(token -> stops.stopped()), measured(c, new Engine.Listener() {
            @Override
            public void onToken(String requestId, int token, double logprob, TopLogprobs top) {
                events.add(new Event(token, logprob, top, stops.add(decoder.add(token)), null, null));
            }

            @Override
            public void onFinish(Result result) {
                events.add(new Event(-1, 0, null, stops.add(decoder.finish()) + stops.finish(), result, null));
            }

            @Override
            public void onError(String requestId, RuntimeException error) {
                events.add(new Event(-1, 0, null, "", null, error));
            }
        }));
        response.setStatus(200);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/event-stream; charset=utf-8");
        response.getHeaders().put(HttpHeader.CACHE_CONTROL, "no-cache");
        long createdAt = System.currentTimeMillis() / 1000;
        try (OutputStream out = Content.Sink.asOutputStream(response)) {
            if (c.echo()) {
                ObjectNode chunk = chunk(id, c, createdAt, promptText(c));
                writeEvent(out, chunk);
            }
            while (true) {
                Event e = events.take();
                if (e.error != null) {
                    writeEvent(out, JSON.createObjectNode().set("error", errorBody(ApiError.badRequest(null, e.error.getMessage()))));
                    break;
                }
                if (e.finished != null) {
                    ObjectNode last = chunk(id, c, createdAt, e.text);
                    ObjectNode lastChoice = (ObjectNode) last.get("choices").get(0);
                    lastChoice.put("finish_reason", e.finished.finishReason().openAiName());
                    if (stops.matched() != null) {
                        lastChoice.put("stop_reason", stops.matched());
                    }
                    writeEvent(out, last);
                    if (c.includeUsage()) {
                        ObjectNode u = JSON.createObjectNode().put("id", id).put("object", "text_completion").put("created", createdAt)
                                .put("model", c.model());
                        u.putArray("choices");
                        usage(u.putObject("usage"), c.prompt().length, e.finished.generated().length);
                        writeEvent(out, u);
                    }
                    break;
                }
                ObjectNode chunk = chunk(id, c, createdAt, e.text);
                if (c.logprobs() != null) {
                    ObjectNode lp = JSON.createObjectNode();
                    ArrayNode tokens = lp.putArray("tokens");
                    ArrayNode values = lp.putArray("token_logprobs");
                    ArrayNode tops = lp.putArray("top_logprobs");
                    ArrayNode offsets = lp.putArray("text_offset");
                    addToken(c, e.token, e.logprob, e.top, tokens, values, tops, offsets, new int[] {0});
                    ((ObjectNode) chunk.get("choices").get(0)).set("logprobs", lp);
                }
                writeEvent(out, chunk);
            }
            out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
            out.flush();
            callback.succeeded();
        } catch (IOException e) {
            loop.cancel(id); // the client went away: free its blocks now
            callback.failed(e);
        } catch (InterruptedException e) {
            loop.cancel(id);
            Thread.currentThread().interrupt();
            callback.failed(e);
        }
    }

    private static ObjectNode chunk(String id, CompletionRequest c, long created, String text) {
        ObjectNode chunk = JSON.createObjectNode().put("id", id).put("object", "text_completion").put("created", created).put("model", c.model());
        chunk.putArray("choices").addObject().put("index", 0).put("text", text).putNull("logprobs").putNull("finish_reason");
        return chunk;
    }

    private static void writeEvent(OutputStream out, JsonNode event) throws IOException {
        out.write(("data: " + JSON.writeValueAsString(event) + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private static ObjectNode errorBody(ApiError e) {
        ObjectNode err = JSON.createObjectNode().put("message", e.getMessage()).put("type", e.type);
        if (e.param == null) {
            err.putNull("param");
        } else {
            err.put("param", e.param);
        }
        err.put("code", e.status);
        return err;
    }

    private void sendError(Response response, Callback callback, ApiError e) {
        metrics.requests.labelValues(Integer.toString(e.status), "-").inc();
        ObjectNode body = JSON.createObjectNode();
        body.set("error", errorBody(e));
        send(response, callback, e.status, body);
    }

    private static void send(Response response, Callback callback, int status, JsonNode body) {
        response.setStatus(status);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "application/json");
        try {
            Content.Sink.write(response, true, JSON.writeValueAsString(body), callback);
        } catch (JsonProcessingException e) {
            callback.failed(e);
        }
    }
}
