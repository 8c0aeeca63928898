package dev.flora.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * Runs a loop's iterations on every core with little dispatch cost: a decode step issues about a
 * hundred parallel loops of a few tens of microseconds each, where a fork/join hand-off costs as
 * much as the work. Workers spin briefly for the next loop before parking. Iterations are split
 * into contiguous static ranges, one per thread; the calling thread takes the first.
 */
final class WorkerPool {
    private static final long SPIN_NANOS = 200_000;
    private static final ThreadLocal<Boolean> IS_WORKER = ThreadLocal.withInitial(() -> false);
    static final WorkerPool SHARED = new WorkerPool(Runtime.getRuntime().availableProcessors());

    private final Thread[] workers;
    private final int threads;
    private volatile IntConsumer body;
    private volatile int count;
    private volatile long generation;
    private final AtomicInteger pending = new AtomicInteger();
    private volatile Throwable failure;

    WorkerPool(int threads) {
        this.threads = Math.max(1, threads);
        this.workers = new Thread[this.threads - 1];
        for (int w = 0; w < workers.length; w++) {
            int index = w + 1;
            workers[w] = Thread.ofPlatform().daemon().name("flora-cpu-" + index).start(() -> work(index));
        }
    }

    int threads() {
        return threads;
    }

    /**
     * Runs body(i) for every i in [0, n); returns when all are done. One loop at a time; a loop
     * started from inside another (or from a worker) runs on the calling thread alone.
     */
    void run(int n, IntConsumer loop) {
        if (n <= 1 || threads == 1 || Thread.holdsLock(this) || IS_WORKER.get()) {
            for (int i = 0; i < n; i++) {
                loop.accept(i);
            }
            return;
        }
        synchronized (this) {
            dispatch(n, loop);
        }
    }

    private void dispatch(int n, IntConsumer loop) {
        body = loop;
        count = n;
        failure = null;
        pending.set(workers.length);
        generation++;
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
        try {
            range(0, n, loop);
        } catch (Throwable t) {
            failure = t;
        }
        while (pending.get() > 0) {
            Thread.onSpinWait();
        }
        body = null;
        Throwable f = failure;
        if (f != null) {
            if (f instanceof RuntimeException r) {
                throw r;
            }
            if (f instanceof Error e) {
                throw e;
            }
            throw new IllegalStateException(f);
        }
    }

    private void range(int index, int n, IntConsumer loop) {
        int from = (int) ((long) n * index / threads);
        int to = (int) ((long) n * (index + 1) / threads);
        for (int i = from; i < to; i++) {
            loop.accept(i);
        }
    }

    private void work(int index) {
        IS_WORKER.set(true);
        long seen = 0;
        while (true) {
            long spinUntil = System.nanoTime() + SPIN_NANOS;
            while (generation == seen) {
                if (System.nanoTime() > spinUntil) {
                    LockSupport.park(this);
                } else {
                    Thread.onSpinWait();
                }
            }
            seen = generation;
            try {
                range(index, count, body);
            } catch (Throwable t) {
                failure = t;
            } finally {
                pending.decrementAndGet();
            }
        }
    }
}
