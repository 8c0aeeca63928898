package dev.flora.cuda;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Where CudaFloraRuns finds things (no GPU needed): each layer's runs; one joint layout of every
 * layer's groups (layer by layer) over their rows in runs, as floraLayout lays it out (joint group k's
 * stacked rows from base[k], r_k blocks of n_k rows, block j holding a_j ∘ x of its rows in order);
 * where run i of layer p starts among its group's rows in runs; and where each joint group's alpha
 * vectors (b_j / r, a layer's output width each) start in one float32 buffer.
 *
 * @param runs         each layer's runs
 * @param jointRows    joint group k's rows in runs, in order
 * @param jointLayer   joint group k's layer
 * @param jointGroup   joint group k's group in its layer
 * @param firstGroup   [p][g]: layer p's group g's joint index
 * @param startInGroup [p][i]: where layer p's run i starts among its group's rows in runs
 * @param base         joint group k's first stacked row
 * @param pairOf       joint group k's first alpha vector, in floats (groups of no run: where the next starts)
 * @param alphaFloats  floats of all alpha vectors
 */
record FloraRunPlan(LoraRuns[] runs, List<int[]> jointRows, int[] jointLayer, int[] jointGroup, int[][] firstGroup, int[][] startInGroup,
                    int[] base, int[] pairOf, long alphaFloats) {

    /**
     * The plan of layers with these rows (rows[p][g]), ranks (rank[p][g]) and output widths, runs of
     * {@code minRun} rows or more.
     */
    static FloraRunPlan of(int[][][] rows, int[][] rank, int[] outs, int minRun) {
        int layers = rows.length;
        LoraRuns[] runs = new LoraRuns[layers];
        List<int[]> jointRows = new ArrayList<>();
        List<Integer> jointLayer = new ArrayList<>();
        List<Integer> jointGroup = new ArrayList<>();
        int[][] firstGroup = new int[layers][];
        int[][] startInGroup = new int[layers][];
        for (int p = 0; p < layers; p++) {
            int groups = rows[p].length;
            int[] min = new int[groups];
            Arrays.fill(min, minRun);
            runs[p] = LoraRuns.of(rows[p], min, 0);
            int[][] runRows = runRows(runs[p], groups);
            int[] seen = new int[groups];
            startInGroup[p] = new int[runs[p].count()];
            for (int i = 0; i < runs[p].count(); i++) {
                int g = runs[p].group()[i];
                startInGroup[p][i] = seen[g];
                seen[g] += runs[p].length()[i];
            }
            firstGroup[p] = new int[groups];
            for (int g = 0; g < groups; g++) {
                firstGroup[p][g] = jointRows.size();
                jointRows.add(runRows[g]);
                jointLayer.add(p);
                jointGroup.add(g);
            }
        }
        int groups = jointRows.size();
        int[] base = new int[groups];
        int[] pairOf = new int[groups];
        long stacked = 0;
        long alphaFloats = 0;
        for (int k = 0; k < groups; k++) {
            int r = rank[jointLayer.get(k)][jointGroup.get(k)];
            base[k] = Math.toIntExact(stacked);
            stacked += (long) r * jointRows.get(k).length;
            pairOf[k] = Math.toIntExact(alphaFloats);
            alphaFloats += jointRows.get(k).length > 0 ? (long) r * outs[jointLayer.get(k)] : 0;
        }
        return new FloraRunPlan(runs, jointRows, jointLayer.stream().mapToInt(Integer::intValue).toArray(),
                jointGroup.stream().mapToInt(Integer::intValue).toArray(), firstGroup, startInGroup, base, pairOf, alphaFloats);
    }

    /** Runs in all layers. */
    int count() {
        int n = 0;
        for (LoraRuns r : runs) {
            n += r.count();
        }
        return n;
    }

    /** Each group's rows in its runs, in order. */
    static int[][] runRows(LoraRuns runs, int groups) {
        int[] size = new int[groups];
        for (int i = 0; i < runs.count(); i++) {
            size[runs.group()[i]] += runs.length()[i];
        }
        int[][] rows = new int[groups][];
        int[] filled = new int[groups];
        for (int g = 0; g < groups; g++) {
            rows[g] = new int[size[g]];
        }
        for (int i = 0; i < runs.count(); i++) {
            int g = runs.group()[i];
            for (int k = 0; k < runs.length()[i]; k++) {
                rows[g][filled[g]++] = runs.first()[i] + k;
            }
        }
        return rows;
    }

    /** The first stacked row of layer p's run i, block j (its rows follow in order). */
    long stackedRow(int p, int i, int j) {
        int k = firstGroup[p][runs[p].group()[i]];
        return (long) base[k] + (long) j * jointRows.get(k).length + startInGroup[p][i];
    }

    /** Where layer p's run i's alpha vector j starts, in floats. */
    long alphaAt(int p, int i, int j, int outs) {
        return pairOf[firstGroup[p][runs[p].group()[i]]] + (long) j * outs;
    }
}
