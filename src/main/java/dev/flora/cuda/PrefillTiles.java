package dev.flora.cuda;

import dev.flora.backend.TokenBatch;

import java.util.ArrayList;
import java.util.List;

/**
 * How a step's tokens split between the two attention kernels of a 16-bit KV cache: runs of at
 * least {@link #MIN_RUN} consecutive positions of one sequence (prompt chunks) go to the
 * tensor-core kernel in tiles of up to {@link #TILE} queries, {first token, its position, count,
 * sequence} each; every other token (decode) to the per-token kernel.
 *
 * @param descriptors four ints per tile
 * @param others      the tokens left to the per-token kernel, in order
 */
record PrefillTiles(int[] descriptors, int[] others) {
    /** kernels.cu's FA_M. */
    static final int TILE = 64;
    /** Shorter runs waste most of a tile's 64 rows. */
    static final int MIN_RUN = 16;

    int count() {
        return descriptors.length / 4;
    }

    /** Whether the tensor-core kernel has a version for this head size. */
    static boolean supports(int headDim) {
        return headDim == 64 || headDim == 128;
    }

    /** The split of this batch, or null when the tensor-core kernel has no version for this head size. */
    static PrefillTiles of(TokenBatch batch, int headDim) {
        if (!supports(headDim)) {
            return null;
        }
        int n = batch.numTokens();
        int[] seq = batch.seqOfToken();
        int[] pos = batch.positions();
        List<Integer> tiles = new ArrayList<>();
        int[] others = new int[n];
        int otherCount = 0;
        for (int start = 0; start < n; ) {
            int end = start + 1;
            while (end < n && seq[end] == seq[start] && pos[end] == pos[end - 1] + 1) {
                end++;
            }
            if (end - start >= MIN_RUN) {
                for (int t = start; t < end; t += TILE) {
                    tiles.add(t);
                    tiles.add(pos[t]);
                    tiles.add(Math.min(TILE, end - t));
                    tiles.add(seq[t]);
                }
            } else {
                for (int t = start; t < end; t++) {
                    others[otherCount++] = t;
                }
            }
            start = end;
        }
        return new PrefillTiles(tiles.stream().mapToInt(Integer::intValue).toArray(), java.util.Arrays.copyOf(others, otherCount));
    }
}
