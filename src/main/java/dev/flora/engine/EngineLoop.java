package dev.flora.engine;

import dev.flora.FloraException;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Continuous batching: one thread owns the {@link Engine} and runs steps while there is work;
 * requests join (and cancellations land) between steps, from any thread. Each request has its
 * own listener, called on the loop thread. A bounded number of requests may wait.
 */
public final class EngineLoop implements AutoCloseable {
    /** The queue of waiting requests is full: try again later (HTTP 429/503). */
    public static final class Busy extends FloraException {
        public Busy(String message) {
            super(message);
        }
    }

    private record Submission(Request request, Engine.Listener listener) {
    }

    private final Engine engine;
    private final int maxWaiting;
    private final ConcurrentLinkedQueue<Submission> incoming = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<String> cancelled = new ConcurrentLinkedQueue<>();
    private final Map<String, Engine.Listener> listeners = new ConcurrentHashMap<>();
    private final AtomicInteger queued = new AtomicInteger();
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition wake = lock.newCondition();
    private final Thread thread;
    private volatile boolean closed;
    private volatile Snapshot snapshot = new Snapshot(0, 0, 0, java.util.Set.of(), java.util.Set.of(), 0, 0);

    /**
     * The engine's state after the last step, for metrics (read from any thread).
     *
     * @param stepTokens tokens computed in the last step
     */
    public record Snapshot(int running, int waiting, double kvCacheUsage, java.util.Set<String> runningAdapters,
                           java.util.Set<String> waitingAdapters, long preemptions, int stepTokens) {
    }

    public EngineLoop(Engine engine, int maxWaiting) {
        this.engine = engine;
        this.maxWaiting = maxWaiting;
        engine.adapters().onLoadEvent(this::signal); // an adapter read from disk may let waiting requests start
        this.thread = Thread.ofPlatform().name("flora-engine").daemon().start(this::loop);
    }

    public Engine engine() {
        return engine;
    }

    /** Queues a request; its listener hears its tokens and its end. Refuses what could never run, and a full queue. */
    public void submit(Request request, Engine.Listener listener) {
        engine.check(request);
        if (queued.incrementAndGet() > maxWaiting) {
            queued.decrementAndGet();
            throw new Busy("the server is busy: " + maxWaiting + " requests are already waiting; retry later");
        }
        if (listeners.putIfAbsent(request.id(), listener) != null) {
            queued.decrementAndGet();
            throw new FloraException("request id '" + request.id() + "' is already in use");
        }
        incoming.add(new Submission(request, listener));
        signal();
    }

    /** Stops a request wherever it is; its blocks and adapter slots are freed before the next step. */
    public void cancel(String requestId) {
        cancelled.add(requestId);
        signal();
    }

    private volatile java.util.function.IntConsumer stepObserver = n -> { };

    /** Called on the loop thread after every step with the number of tokens it computed (metrics). */
    public void onStep(java.util.function.IntConsumer observer) {
        this.stepObserver = observer;
    }

    public Snapshot snapshot() {
        return snapshot;
    }

    /** Requests running in the engine after the last step. */
    public int running() {
        return snapshot.running();
    }

    /** Requests waiting to be admitted (queued here or in the engine) after the last step. */
    public int waiting() {
        return snapshot.waiting();
    }

    private void signal() {
        lock.lock();
        try {
            wake.signal();
        } finally {
            lock.unlock();
        }
    }

    private final Engine.Listener dispatch = new Engine.Listener() {
        @Override
        public void onToken(String requestId, int token, double logprob, TopLogprobs top) {
            Engine.Listener l = listeners.get(requestId);
            if (l != null) {
                l.onToken(requestId, token, logprob, top);
            }
        }

        @Override
        public void onFinish(Result result) {
            Engine.Listener l = listeners.remove(result.id());
            if (l != null) {
                l.onFinish(result);
            }
        }

        @Override
        public void onError(String requestId, RuntimeException error) {
            Engine.Listener l = listeners.remove(requestId);
            if (l != null) {
                l.onError(requestId, error);
            }
        }
    };

    private void loop() {
        while (!closed) {
            for (String id; (id = cancelled.poll()) != null; ) {
                if (engine.abort(id)) {
                    listeners.remove(id);
                } else {
                    // Not in the engine yet: drop it from the incoming queue if it is there.
                    String target = id;
                    if (incoming.removeIf(s -> s.request().id().equals(target))) {
                        queued.decrementAndGet();
                        listeners.remove(id);
                    }
                }
            }
            for (Submission s; (s = incoming.poll()) != null; ) {
                queued.decrementAndGet();
                try {
                    engine.submit(s.request());
                } catch (RuntimeException e) {
                    listeners.remove(s.request().id());
                    s.listener().onError(s.request().id(), e);
                }
            }
            if (engine.hasWork()) {
                long loadsSeen = engine.adapters().loadEvents();
                try {
                    engine.step(dispatch);
                } catch (RuntimeException e) {
                    failAll(e);
                }
                snapshot = new Snapshot(engine.runningCount(), engine.waitingCount() + queued.get(), engine.kvCacheUsage(), engine.adapterNames(true),
                        engine.adapterNames(false), engine.preemptions(), engine.lastStepTokens());
                stepObserver.accept(engine.lastStepTokens());
                if (engine.waitingForAdapters()) {
                    pause(loadsSeen);
                }
                continue;
            }
            snapshot = new Snapshot(0, queued.get(), engine.kvCacheUsage(), java.util.Set.of(), java.util.Set.of(), engine.preemptions(), 0);
            lock.lock();
            try {
                if (incoming.isEmpty() && cancelled.isEmpty() && !closed) {
                    wake.awaitNanos(50_000_000L);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } finally {
                lock.unlock();
            }
        }
    }

    /** Nothing could run: waits for an adapter load to end (after {@code loadsSeen}), a request, a cancellation or close. */
    private void pause(long loadsSeen) {
        lock.lock();
        try {
            if (incoming.isEmpty() && cancelled.isEmpty() && !closed && engine.adapters().loadEvents() == loadsSeen) {
                wake.awaitNanos(50_000_000L);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            closed = true;
        } finally {
            lock.unlock();
        }
    }

    /** A step failed (a bug): every request in flight gets the error rather than waiting forever. */
    private void failAll(RuntimeException e) {
        for (String id : List.copyOf(listeners.keySet())) {
            engine.abort(id);
            Engine.Listener l = listeners.remove(id);
            if (l != null) {
                l.onError(id, e);
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        signal();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
