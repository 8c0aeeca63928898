package dev.flora.cpu;

/**
 * Row groups cut into runs of at most {@code max} consecutive rows of one group: run k is rows
 * [from[k], from[k] + length[k]) of group[k]. The unit of work of the LoRA kernel, which reads an
 * adapter's matrices once per run.
 */
final class Runs {
    final int[] group;
    final int[] from;
    final int[] length;

    private Runs(int[] group, int[] from, int[] length) {
        this.group = group;
        this.from = from;
        this.length = length;
    }

    static Runs of(int[][] rows, int max) {
        int count = 0;
        for (int[] r : rows) {
            count += (r.length + max - 1) / max;
        }
        int[] group = new int[count];
        int[] from = new int[count];
        int[] length = new int[count];
        for (int g = 0, k = 0; g < rows.length; g++) {
            for (int f = 0; f < rows[g].length; f += max, k++) {
                group[k] = g;
                from[k] = f;
                length[k] = Math.min(max, rows[g].length - f);
            }
        }
        return new Runs(group, from, length);
    }

    int count() {
        return group.length;
    }

    /** Rows over all runs. */
    int tokens() {
        int n = 0;
        for (int l : length) {
            n += l;
        }
        return n;
    }
}
