package dev.flora.server;

import dev.flora.engine.Result;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/** One API request's share of the metrics: time to first token, time per output token, end-to-end latency, counts. */
final class RequestMetrics {
    private final ServerMetrics metrics;
    private final String baseName;
    private final String model;
    private final String handler;
    private final long submitted = System.nanoTime();
    private final AtomicLong first = new AtomicLong();
    private final AtomicBoolean finished = new AtomicBoolean();
    private volatile int promptTokens;

    RequestMetrics(ServerMetrics metrics, String baseName, String model, String handler) {
        this.metrics = metrics;
        this.baseName = baseName;
        this.model = model;
        this.handler = handler;
    }

    /** A sequence generated a token (called on the engine thread). */
    void token() {
        if (first.get() == 0 && first.compareAndSet(0, System.nanoTime())) {
            metrics.timeToFirstToken.labelValues(baseName).observe((first.get() - submitted) / 1e9);
        }
    }

    /** A sequence ended; {@code firstToken} is when it produced its first token (nanoTime). */
    void sequenceFinished(Result result, long firstToken) {
        int n = result.generated().length;
        if (n > 1) {
            metrics.timePerOutputToken.labelValues(baseName).observe((System.nanoTime() - firstToken) / 1e9 / (n - 1));
        }
        metrics.generationTokens.labelValues(baseName).inc(n);
        promptTokens = result.prompt().length;
    }

    /** The request is over with this HTTP status (499: the client went away first). Counted once. */
    void finish(int status) {
        if (!finished.compareAndSet(false, true)) {
            return;
        }
        if (status == 200) {
            metrics.endToEnd.labelValues(baseName).observe((System.nanoTime() - submitted) / 1e9);
            metrics.promptTokens.labelValues(baseName).inc(promptTokens);
        }
        metrics.requests.labelValues(Integer.toString(status), model).inc();
        metrics.http(handler, status);
    }
}
