package dev.flora.adapter;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

/** The host tier's least-recently-used order, and what it must never drop. */
class HostAdapterCacheTest {
    static AdapterVersion version(long id) {
        return new AdapterVersion("a" + id, id, Path.of("/adapters/a" + id), "hash" + id, null);
    }

    static Adapter adapter(long id) {
        return new Adapter("a" + id, AdapterKind.LORA, Path.of("/adapters/a" + id), null, Map.of(), "hash" + id);
    }

    @Test
    void dropsTheLeastRecentlyUsedFirst() {
        HostAdapterCache cache = new HostAdapterCache(3);
        List<AdapterVersion> evicted = new ArrayList<>();
        for (long id = 1; id <= 3; id++) {
            assertThat(cache.put(version(id), adapter(id), v -> false, evicted)).isTrue();
        }
        assertThat(evicted).isEmpty();
        assertThat(cache.get(version(1))).isNotNull(); // 1 is now the most recently used
        assertThat(cache.order()).containsExactly(version(2), version(3), version(1));
        cache.put(version(4), adapter(4), v -> false, evicted);
        assertThat(evicted).containsExactly(version(2));
        cache.put(version(5), adapter(5), v -> false, evicted);
        assertThat(evicted).containsExactly(version(2), version(3));
        assertThat(cache.order()).containsExactly(version(1), version(4), version(5));
        assertThat(cache.contains(version(2))).isFalse();
        assertThat(cache.evictions()).isEqualTo(2);
        assertThat(cache.size()).isEqualTo(3);
    }

    @Test
    void neverDropsWhatIsProtected() {
        HostAdapterCache cache = new HostAdapterCache(2);
        List<AdapterVersion> evicted = new ArrayList<>();
        cache.put(version(1), adapter(1), v -> false, evicted);
        cache.put(version(2), adapter(2), v -> false, evicted);
        // 1 is the least recently used but in use: 2 goes instead.
        Set<AdapterVersion> inUse = Set.of(version(1));
        assertThat(cache.put(version(3), adapter(3), inUse::contains, evicted)).isTrue();
        assertThat(evicted).containsExactly(version(2));
        // Everything held is in use: nothing is dropped and the newcomer is not kept.
        Set<AdapterVersion> all = Set.of(version(1), version(3));
        assertThat(cache.put(version(4), adapter(4), all::contains, evicted)).isFalse();
        assertThat(cache.order()).containsExactly(version(1), version(3));
        assertThat(evicted).containsExactly(version(2));
    }

    @Test
    void containsDoesNotCountAsAUse() {
        HostAdapterCache cache = new HostAdapterCache(2);
        List<AdapterVersion> evicted = new ArrayList<>();
        cache.put(version(1), adapter(1), v -> false, evicted);
        cache.put(version(2), adapter(2), v -> false, evicted);
        assertThat(cache.contains(version(1))).isTrue();
        cache.put(version(3), adapter(3), v -> false, evicted);
        assertThat(evicted).containsExactly(version(1));
    }
}
