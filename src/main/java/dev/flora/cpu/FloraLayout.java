package dev.flora.cpu;

import dev.flora.backend.Tensor;

/**
 * Where each group's modulated copies sit in fLoRA's stacked matrix (group g from base[g], copy j
 * of its token i at row base[g] + j n_g + i), and every token of every group as one flat index m
 * (group[m], index[m]), so that one parallel loop covers all groups.
 */
final class FloraLayout {
    final int[] base;
    final int[] group;
    final int[] index;
    private final int stackedRows;
    private final int maxRank;

    private FloraLayout(int[] base, int[] group, int[] index, int stackedRows, int maxRank) {
        this.base = base;
        this.group = group;
        this.index = index;
        this.stackedRows = stackedRows;
        this.maxRank = maxRank;
    }

    /** The layout of these row groups, each with the rank of its factor (factor[g].rows()). */
    static FloraLayout of(int[][] rows, Tensor[] factor) {
        int[] base = new int[rows.length];
        int tokens = 0;
        int stacked = 0;
        int maxRank = 0;
        for (int g = 0; g < rows.length; g++) {
            base[g] = stacked;
            stacked += factor[g].rows() * rows[g].length;
            tokens += rows[g].length;
            maxRank = Math.max(maxRank, factor[g].rows());
        }
        int[] group = new int[tokens];
        int[] index = new int[tokens];
        for (int g = 0, m = 0; g < rows.length; g++) {
            for (int i = 0; i < rows[g].length; i++, m++) {
                group[m] = g;
                index[m] = i;
            }
        }
        return new FloraLayout(base, group, index, stacked, maxRank);
    }

    int stackedRows() {
        return stackedRows;
    }

    int tokens() {
        return group.length;
    }

    int maxRank() {
        return maxRank;
    }
}
