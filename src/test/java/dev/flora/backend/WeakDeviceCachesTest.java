package dev.flora.backend;

import org.junit.jupiter.api.Test;

import java.lang.ref.WeakReference;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

class WeakDeviceCachesTest {
    /** Collects until {@code ref} is cleared or 50 rounds pass; whether it was cleared. */
    private static boolean collected(WeakReference<?> ref) throws InterruptedException {
        for (int round = 0; round < 50 && ref.get() != null; round++) {
            System.gc();
            Thread.sleep(10); // room for a collector that runs System.gc() concurrently; nothing here is timed
        }
        return ref.get() == null;
    }

    @Test
    void aCollectedKeysValueIsHeldUntilExpungedThenLetGo() throws InterruptedException {
        Map<Object, Object> cache = WeakDeviceCaches.create();
        Object key = new Object();
        Object value = new byte[1024];
        cache.put(key, value);
        WeakReference<Object> keyRef = new WeakReference<>(key);
        WeakReference<Object> valueRef = new WeakReference<>(value);
        key = null;
        value = null;
        assertThat(collected(keyRef)).as("the key is collected").isTrue();
        // Untouched, the map still holds the value strongly (what kept a dropped adapter's device copies).
        assertThat(collected(valueRef)).as("value collected before any access").isFalse();
        WeakDeviceCaches.expunge();
        assertThat(collected(valueRef)).as("value collected after expunge").isTrue();
        assertThat(cache).isEmpty();
    }
}
