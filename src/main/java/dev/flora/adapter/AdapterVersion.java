package dev.flora.adapter;

import java.nio.file.Path;

/**
 * One registration of an adapter name: every load (and every {@code load_inplace}) makes a new
 * version, and a sequence uses the versions it started with until it ends.
 *
 * @param id          unique within a registry (the cache key; versions compare by it)
 * @param dir         where it was read from, or null for an adapter made in memory
 * @param contentHash what a reload from {@code dir} must find again (null with no files)
 * @param kept        the adapter itself when it stays in host memory for good (no files to reload
 *                    it from, or no cap on host memory), else null: the host tier holds it, or the disk
 */
public record AdapterVersion(String name, long id, Path dir, String contentHash, Adapter kept) {

    /** Whether the host tier may drop it: it has files to be read again from. */
    public boolean evictable() {
        return kept == null;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AdapterVersion v && v.id == id;
    }

    @Override
    public int hashCode() {
        return Long.hashCode(id);
    }
}
