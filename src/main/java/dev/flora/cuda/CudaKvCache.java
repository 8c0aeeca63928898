package dev.flora.cuda;

import dev.flora.backend.KvCache;

/**
 * The paged KV cache in device memory: float32 keys and values per layer, slot-major. The memory
 * lives as long as {@code lifetime} is reachable, which this record keeps.
 */
record CudaKvCache(int layers, int numBlocks, int blockSize, int kvWidth, long[] keys, long[] values, Object lifetime) implements KvCache {
}
