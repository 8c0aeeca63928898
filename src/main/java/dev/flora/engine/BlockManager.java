package dev.flora.engine;

import java.util.ArrayDeque;
import java.util.Arrays;

/** Hands out the KV cache's fixed-size blocks to sequences and takes them back. */
final class BlockManager {
    private final int blockSize;
    private final int numBlocks;
    private final ArrayDeque<Integer> free = new ArrayDeque<>();

    BlockManager(int numBlocks, int blockSize) {
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        for (int b = 0; b < numBlocks; b++) {
            free.add(b);
        }
    }

    int blockSize() {
        return blockSize;
    }

    int numBlocks() {
        return numBlocks;
    }

    int freeBlocks() {
        return free.size();
    }

    int blocksFor(int tokens) {
        return (tokens + blockSize - 1) / blockSize;
    }

    /** Grows the sequence's table to hold {@code tokens} positions; false (and nothing taken) if blocks run out. */
    boolean ensureCapacity(Sequence seq, int tokens) {
        int need = blocksFor(tokens) - seq.blockTable.length;
        if (need <= 0) {
            return true;
        }
        if (need > free.size()) {
            return false;
        }
        int[] table = Arrays.copyOf(seq.blockTable, seq.blockTable.length + need);
        for (int i = seq.blockTable.length; i < table.length; i++) {
            table[i] = free.poll();
        }
        seq.blockTable = table;
        return true;
    }

    void release(Sequence seq) {
        for (int b : seq.blockTable) {
            free.add(b);
        }
        seq.blockTable = new int[0];
    }

    /** The cache slot of a sequence's position. */
    int slot(Sequence seq, int position) {
        return seq.blockTable[position / blockSize] * blockSize + position % blockSize;
    }
}
