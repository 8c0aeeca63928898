package dev.flora.adapter;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.function.Predicate;

/**
 * The host-memory tier: at most {@code capacity} loaded adapter versions; the least recently used
 * one goes first when room is needed, never a protected one (resident for a running sequence, or
 * wanted by a waiting sequence about to be admitted). Not thread-safe: its registry guards it.
 */
final class HostAdapterCache {
    private final int capacity;
    /** Access order: the first entry is the least recently used. */
    private final LinkedHashMap<AdapterVersion, Adapter> lru = new LinkedHashMap<>(16, 0.75f, true);
    private long evictions;

    HostAdapterCache(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("host capacity must be at least 1, got " + capacity);
        }
        this.capacity = capacity;
    }

    int capacity() {
        return capacity;
    }

    int size() {
        return lru.size();
    }

    long evictions() {
        return evictions;
    }

    boolean contains(AdapterVersion version) {
        return lru.containsKey(version);
    }

    /** The loaded adapter, now the most recently used; null when it is not in host memory. */
    Adapter get(AdapterVersion version) {
        return lru.get(version);
    }

    /**
     * Adds a loaded version as the most recently used, first dropping the least recently used
     * unprotected versions while the cache is full (they are added to {@code evicted}). False, and
     * nothing added, when every version held is protected.
     */
    boolean put(AdapterVersion version, Adapter adapter, Predicate<AdapterVersion> isProtected, List<AdapterVersion> evicted) {
        if (lru.containsKey(version)) {
            lru.get(version);
            return true;
        }
        while (lru.size() >= capacity) {
            AdapterVersion victim = leastRecentlyUsedUnprotected(isProtected);
            if (victim == null) {
                return false;
            }
            lru.remove(victim);
            evicted.add(victim);
            evictions++;
        }
        lru.put(version, adapter);
        return true;
    }

    /** Drops a version (its name was unloaded or replaced); true if it was held. */
    boolean remove(AdapterVersion version) {
        return lru.remove(version) != null;
    }

    /** The versions held, least recently used first. */
    List<AdapterVersion> order() {
        return List.copyOf(lru.keySet());
    }

    private AdapterVersion leastRecentlyUsedUnprotected(Predicate<AdapterVersion> isProtected) {
        for (AdapterVersion v : lru.keySet()) {
            if (!isProtected.test(v)) {
                return v;
            }
        }
        return null;
    }
}
