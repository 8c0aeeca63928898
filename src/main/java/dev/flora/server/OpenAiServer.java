package dev.flora.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.adapter.AdapterVersion;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.chat.ChatTemplate;
import dev.flora.engine.EngineLoop;
import dev.flora.model.PretrainedModel;
import dev.flora.tokenizer.TokenBytes;
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

/**
 * The OpenAI-compatible HTTP API, as vLLM serves it: POST /v1/completions and
 * /v1/chat/completions (plain and SSE streaming), GET /v1/models (the base model and every
 * adapter; a request picks one by its "model"), adapter loading, GET /health and /metrics. Jetty 12
 * serves it, every request on its own virtual thread.
 */
public final class OpenAiServer implements AutoCloseable {
    private static final ObjectMapper JSON = Json.MAPPER;
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
    private final CompletionsEndpoint completions;
    private final ChatEndpoint chat;
    private final ChatTemplate chatTemplate;
    private volatile java.nio.file.Path adapterRoot;

    public OpenAiServer(PretrainedModel model, EngineLoop loop, AdapterRegistry adapters, String baseName, String apiKey, String host, int port) {
        this.model = model;
        this.loop = loop;
        this.adapters = adapters;
        this.baseName = baseName;
        this.apiKey = apiKey;
        this.metrics = new ServerMetrics(loop, baseName, adapters);
        loop.onStep(n -> metrics.stepTokens.observe(n));
        this.chatTemplate = ChatTemplate.load(model.directory().path());
        Serving serving = new Serving(model, loop, adapters, baseName, metrics, chatTemplate, TokenBytes.load(model.tokenizer().path()));
        this.completions = new CompletionsEndpoint(serving);
        this.chat = new ChatEndpoint(serving);
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

    /** Why /v1/chat/completions cannot serve this model (no usable chat template), or null when it can. */
    public String chatProblem() {
        return chatTemplate.problem();
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
                case "POST " + CompletionsEndpoint.PATH -> completions.handle(readBody(request), request, response, callback);
                case "POST " + ChatEndpoint.PATH -> chat.handle(readBody(request), request, response, callback);
                case "POST /v1/load_lora_adapter" -> send(response, callback, 200, loadAdapter(readBody(request)));
                case "POST /v1/unload_lora_adapter" -> send(response, callback, 200, unloadAdapter(readBody(request)));
                default -> {
                    if (path.equals("/v1/models") || path.equals(CompletionsEndpoint.PATH) || path.equals(ChatEndpoint.PATH)) {
                        throw new ApiError(405, "invalid_request_error", null, method + " is not allowed on " + path);
                    }
                    throw ApiError.notFound(null, "no route " + method + " " + path);
                }
            }
        } catch (IOException e) {
            callback.failed(e);
        } catch (ApiError e) {
            sendError(path, response, callback, e);
        } catch (EngineLoop.Busy e) {
            sendError(path, response, callback, new ApiError(503, "server_busy", null, e.getMessage()));
        } catch (FloraException e) {
            sendError(path, response, callback, ApiError.badRequest(null, e.getMessage()));
        } catch (RuntimeException e) {
            sendError(path, response, callback, new ApiError(500, "internal_error", null, "internal error: " + e));
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

    private void sendError(String path, Response response, Callback callback, ApiError e) {
        metrics.requests.labelValues(Integer.toString(e.status), "-").inc();
        if (path.equals(CompletionsEndpoint.PATH) || path.equals(ChatEndpoint.PATH)) {
            metrics.http(path, e.status);
        }
        send(response, callback, e.status, Json.object().set("error", Json.error(e)));
    }

    private static void send(Response response, Callback callback, int status, JsonNode body) {
        Json.send(response, callback, status, body);
    }
}
