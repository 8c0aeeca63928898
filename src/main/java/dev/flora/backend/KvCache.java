package dev.flora.backend;

/**
 * A paged key/value cache owned by a backend: for every layer, {@code numBlocks * blockSize}
 * slots of {@code kvHeads * headDim} keys and as many values. Which blocks belong to which
 * sequence is the engine's business (block tables in {@link TokenBatch}).
 */
public interface KvCache {
    int layers();

    int numBlocks();

    int blockSize();

    int kvWidth();

    /** The type keys and values are stored as. */
    default DType dtype() {
        return DType.F32;
    }

    /** Bytes one block takes across all layers, keys and values. */
    static long bytesPerBlock(int layers, int blockSize, int kvWidth, DType dtype) {
        return 2L * layers * blockSize * kvWidth * dtype.bytes();
    }
}
