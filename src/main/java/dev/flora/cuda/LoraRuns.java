package dev.flora.cuda;

import java.util.ArrayList;
import java.util.List;

/**
 * How a gathered LoRA call's tokens split between cuBLAS and the gathered kernels: runs of at least
 * its group's {@code minRun} consecutive rows of one group (a prompt chunk, whose rows the step packs together)
 * go to two products of their own, x[run] A^T and then scale · (that) B^T added to out[run]; every
 * other row stays with its group for the kernels. A prompt's LoRA is then two small GEMMs at cuBLAS's
 * speed, with no gather, padding or scatter pass over the rows.
 *
 * @param group   each run's group
 * @param first   each run's first row (of x and of its group's output)
 * @param length  each run's rows
 * @param rest    per group, its rows in no run, in their order
 * @param chunked whether the runs are chunks of one length (batched products), not whole runs (a run's own products)
 * @param stack   whole runs' plan as two dense products over their stacked factors (LoraStack), or null
 */
record LoraRuns(int[] group, int[] first, int[] length, int[][] rest, boolean chunked, LoraStack stack) {
    int count() {
        return group.length;
    }

    /** These whole runs to go stacked, as {@code plan} says. */
    LoraRuns stacked(LoraStack plan) {
        if (chunked) {
            throw new IllegalStateException("chunks are not stacked");
        }
        return new LoraRuns(group, first, length, rest, false, plan);
    }

    /** The runs {@code which} (indices) alone, whole, with no rest: those a stacked plan leaves to their own products. */
    LoraRuns only(int[] which) {
        int[] g = new int[which.length];
        int[] f = new int[which.length];
        int[] l = new int[which.length];
        for (int k = 0; k < which.length; k++) {
            g[k] = group[which[k]];
            f[k] = first[which[k]];
            l[k] = length[which[k]];
        }
        return new LoraRuns(g, f, l, new int[rest.length][0], false, null);
    }

    /** Rows in runs, all together. */
    int tokens() {
        int n = 0;
        for (int l : length) {
            n += l;
        }
        return n;
    }

    /**
     * The runs of each group's rows (maximal stretches of consecutive rows, r, r + 1, ..., as the group
     * lists them) of at least {@code minRun[g]} rows; a group whose minimum is Integer.MAX_VALUE keeps
     * all its rows.
     */
    static LoraRuns of(int[][] rows, int[] minRun) {
        return of(rows, minRun, 0);
    }

    /**
     * {@link #of(int[][], int[])} with each run cut into runs of {@code chunk} rows (0: whole runs), its
     * last rows short of a chunk left to the kernels: runs of one length, which batched products take
     * together.
     */
    static LoraRuns of(int[][] rows, int[] minRun, int chunk) {
        return of(rows, minRun, chunk, 1);
    }

    /**
     * Whole runs where a call has fewer than {@code chunkFrom} of them, else {@link #of(int[][], int[], int)}'s
     * chunks: a whole run's two products cost about 11–35 µs on the H200 however short, a batched
     * pair for all chunks about 145 µs however few (a long reduction, x A^T with K the model's width,
     * over few chunks keeps few SMs busy); so chunks pay from several runs, whole runs below.
     */
    static LoraRuns of(int[][] rows, int[] minRun, int chunk, int chunkFrom) {
        if (chunkFrom < 1) {
            throw new IllegalArgumentException("chunks from " + chunkFrom + " runs");
        }
        LoraRuns whole = split(rows, minRun, 0);
        return chunk == 0 || whole.count() < chunkFrom ? whole : split(rows, minRun, chunk);
    }

    private static LoraRuns split(int[][] rows, int[] minRun, int chunk) {
        if (chunk < 0) {
            throw new IllegalArgumentException("a chunk of " + chunk + " rows");
        }
        List<int[]> runs = new ArrayList<>();
        int[][] rest = new int[rows.length][];
        for (int g = 0; g < rows.length; g++) {
            int[] r = rows[g];
            if (minRun[g] < 1) {
                throw new IllegalArgumentException("a run needs a row at least, not " + minRun[g]);
            }
            if (minRun[g] == Integer.MAX_VALUE) {
                rest[g] = r;
                continue;
            }
            int[] left = new int[r.length];
            int kept = 0;
            for (int i = 0; i < r.length; ) {
                int j = i + 1;
                while (j < r.length && r[j] == r[j - 1] + 1) {
                    j++;
                }
                int size = chunk == 0 ? j - i : chunk; // a whole run is one chunk of its own length
                int whole = j - i >= minRun[g] ? (j - i) / size * size : 0;
                for (int c = 0; c < whole; c += size) {
                    runs.add(new int[] {g, r[i + c], size});
                }
                System.arraycopy(r, i + whole, left, kept, j - i - whole); // the rows short of a run or a chunk
                kept += j - i - whole;
                i = j;
            }
            rest[g] = kept == r.length ? r : java.util.Arrays.copyOf(left, kept);
        }
        int[] group = new int[runs.size()];
        int[] first = new int[runs.size()];
        int[] length = new int[runs.size()];
        for (int i = 0; i < runs.size(); i++) {
            group[i] = runs.get(i)[0];
            first[i] = runs.get(i)[1];
            length[i] = runs.get(i)[2];
        }
        return new LoraRuns(group, first, length, rest, chunk > 0, null);
    }
}
