package dev.flora.cpu;

import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class WorkerPoolTest {
    @Test
    void everyIterationRunsExactlyOnce() {
        WorkerPool pool = new WorkerPool(3);
        for (int n : new int[] {0, 1, 2, 3, 7, 100, 1001}) {
            AtomicIntegerArray hits = new AtomicIntegerArray(Math.max(n, 1));
            for (int round = 0; round < 50; round++) {
                pool.run(n, hits::incrementAndGet);
            }
            for (int i = 0; i < n; i++) {
                assertThat(hits.get(i)).as("iteration %d of %d", i, n).isEqualTo(50);
            }
        }
    }

    @Test
    void nestedLoopsRunOnTheCallingThreadInsteadOfDeadlocking() {
        WorkerPool pool = new WorkerPool(2);
        AtomicIntegerArray hits = new AtomicIntegerArray(16);
        pool.run(4, outer -> pool.run(4, inner -> hits.incrementAndGet(outer * 4 + inner)));
        for (int i = 0; i < 16; i++) {
            assertThat(hits.get(i)).isEqualTo(1);
        }
    }

    @Test
    void aFailureReachesTheCallerAfterEveryThreadStopped() {
        WorkerPool pool = new WorkerPool(2);
        assertThatThrownBy(() -> pool.run(10, i -> {
            if (i == 7) {
                throw new IllegalArgumentException("boom at " + i);
            }
        })).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("boom at 7");
        AtomicIntegerArray hits = new AtomicIntegerArray(10);
        pool.run(10, hits::incrementAndGet);
        for (int i = 0; i < 10; i++) {
            assertThat(hits.get(i)).isEqualTo(1);
        }
    }
}
