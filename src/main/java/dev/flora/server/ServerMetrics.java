package dev.flora.server;

import dev.flora.adapter.AdapterRegistry;
import dev.flora.engine.EngineLoop;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;

import java.io.IOException;
import java.io.OutputStream;

/**
 * The server's Prometheus metrics, under the names gateways read from vLLM (vllm:...) plus
 * Flora's own: request counts by status and adapter, latencies, tokens per step, preemptions.
 */
final class ServerMetrics {
    private final PrometheusRegistry registry = new PrometheusRegistry();
    final Counter requests;
    final Counter promptTokens;
    final Counter generationTokens;
    final Histogram timeToFirstToken;
    final Histogram timePerOutputToken;
    final Histogram endToEnd;
    final Histogram stepTokens;
    private final Counter httpRequests;
    private long lastStepsSeen;

    ServerMetrics(EngineLoop loop, String baseName, AdapterRegistry adapters) {
        int maxAdapters = adapters.capacity();
        GaugeWithCallback.builder().name("vllm:num_requests_running").help("Requests running in the engine")
                .labelNames("model_name").callback(cb -> cb.call(loop.snapshot().running(), baseName)).register(registry);
        GaugeWithCallback.builder().name("vllm:num_requests_waiting").help("Requests waiting to be admitted")
                .labelNames("model_name").callback(cb -> cb.call(loop.snapshot().waiting(), baseName)).register(registry);
        GaugeWithCallback.builder().name("vllm:kv_cache_usage_perc").help("Fraction of KV-cache blocks in use (0 to 1)")
                .labelNames("model_name").callback(cb -> cb.call(loop.snapshot().kvCacheUsage(), baseName)).register(registry);
        GaugeWithCallback.builder().name("vllm:lora_requests_info").help("Adapters in use; the value is the time of the reading")
                .labelNames("running_lora_adapters", "waiting_lora_adapters", "max_lora")
                .callback(cb -> {
                    EngineLoop.Snapshot s = loop.snapshot();
                    cb.call(System.currentTimeMillis() / 1000.0, String.join(",", s.runningAdapters()), String.join(",", s.waitingAdapters()),
                            Integer.toString(maxAdapters));
                }).register(registry);
        GaugeWithCallback.builder().name("flora_preemptions").help("Sequences preempted (recomputed later) so far")
                .callback(cb -> cb.call(loop.snapshot().preemptions())).register(registry);
        // The host-memory tier (--max-cpu-adapters): adapters held, and reads from disk of adapters it had dropped.
        GaugeWithCallback.builder().name("flora_adapters_in_host").help("Adapters held in host memory")
                .callback(cb -> cb.call(adapters.hostStats().inHost())).register(registry);
        CounterWithCallback.builder().name("flora_adapter_host_loads").help("Adapters read from disk again by the background loader")
                .callback(cb -> cb.call(adapters.hostStats().loads())).register(registry);
        CounterWithCallback.builder().name("flora_adapter_host_evictions").help("Adapters dropped from host memory (least recently used)")
                .callback(cb -> cb.call(adapters.hostStats().evictions())).register(registry);
        CounterWithCallback.builder().name("flora_adapter_host_load_failures").help("Adapters that could not be read from disk again")
                .callback(cb -> cb.call(adapters.hostStats().failures())).register(registry);
        requests = Counter.builder().name("flora_requests_total").help("Completion requests by HTTP status and model or adapter")
                .labelNames("status", "model").register(registry);
        promptTokens = Counter.builder().name("vllm:prompt_tokens_total").help("Prompt tokens processed").labelNames("model_name").register(registry);
        generationTokens = Counter.builder().name("vllm:generation_tokens_total").help("Tokens generated").labelNames("model_name").register(registry);
        timeToFirstToken = Histogram.builder().name("vllm:time_to_first_token_seconds").help("Time to first token")
                .classicUpperBounds(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30).labelNames("model_name").register(registry);
        timePerOutputToken = Histogram.builder().name("vllm:time_per_output_token_seconds").help("Time per output token after the first")
                .classicUpperBounds(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5).labelNames("model_name").register(registry);
        endToEnd = Histogram.builder().name("vllm:e2e_request_latency_seconds").help("End-to-end request latency")
                .classicUpperBounds(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120).labelNames("model_name").register(registry);
        httpRequests = Counter.builder().name("http_requests_total").help("HTTP requests by handler, method and status class (as vLLM's instrumentator counts them)")
                .labelNames("handler", "method", "status").register(registry);
        stepTokens = Histogram.builder().name("flora_step_tokens").help("Tokens computed per engine step")
                .classicUpperBounds(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192).register(registry);
    }

    /** Counts a POST to an API path with its status, grouped as 2xx, 4xx, 5xx. */
    void http(String handler, int status) {
        httpRequests.labelValues(handler, "POST", status / 100 + "xx").inc();
    }

    void write(OutputStream out) throws IOException {
        new PrometheusTextFormatWriter(false).write(out, registry.scrape());
    }
}
