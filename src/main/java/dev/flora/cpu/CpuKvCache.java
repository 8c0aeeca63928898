package dev.flora.cpu;

import dev.flora.FloraException;
import dev.flora.backend.KvCache;

/** Keys and values per layer, each [numBlocks * blockSize, kvWidth] float32. */
final class CpuKvCache implements KvCache {
    private final int numBlocks;
    private final int blockSize;
    private final int kvWidth;
    final float[][] keys;
    final float[][] values;

    CpuKvCache(int layers, int numBlocks, int blockSize, int kvWidth) {
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.kvWidth = kvWidth;
        long perLayer = (long) numBlocks * blockSize * kvWidth;
        if (perLayer > Integer.MAX_VALUE - 16) {
            throw new FloraException("a KV cache of " + numBlocks + " blocks is too large for one layer on the CPU; give it less memory");
        }
        this.keys = new float[layers][(int) perLayer];
        this.values = new float[layers][(int) perLayer];
    }

    @Override
    public int layers() {
        return keys.length;
    }

    @Override
    public int numBlocks() {
        return numBlocks;
    }

    @Override
    public int blockSize() {
        return blockSize;
    }

    @Override
    public int kvWidth() {
        return kvWidth;
    }
}
