package dev.flora.cuda;

import dev.flora.backend.DType;
import dev.flora.backend.KvCache;

/**
 * The paged KV cache in device memory: keys and values per layer, slot-major, as {@code dtype}
 * (float32, or a 16-bit model's own type). The memory lives as long as {@code lifetime} is
 * reachable, which this record keeps.
 */
record CudaKvCache(int layers, int numBlocks, int blockSize, int kvWidth, DType dtype, long[] keys, long[] values, Object lifetime)
        implements KvCache {

    int typeCode() {
        return CudaTensor.typeCode(dtype);
    }
}
