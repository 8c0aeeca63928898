package dev.flora.backend;

import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Caches of device tensors keyed weakly by what they were made from (an adapter's padded or merged
 * copies). A WeakHashMap lets go of a collected key's value only when the map is next touched, so
 * device memory of dropped adapters could stay held while nothing asks for their copies (a benchmark's
 * next rank uploading its own adapters, say): a backend short of memory calls {@link #expunge} after
 * a collection, and the values' own cleaners free them at the next.
 */
public final class WeakDeviceCaches {
    private static final List<Map<?, ?>> CACHES = new CopyOnWriteArrayList<>();

    private WeakDeviceCaches() {
    }

    /** A new synchronized, weakly keyed cache that {@link #expunge} reaches. */
    public static <K, V> Map<K, V> create() {
        Map<K, V> cache = Collections.synchronizedMap(new WeakHashMap<>());
        CACHES.add(cache);
        return cache;
    }

    /** Drops every cache's entries whose keys were collected (WeakHashMap expunges them on any access). */
    public static void expunge() {
        for (Map<?, ?> cache : CACHES) {
            cache.size();
        }
    }
}
