package dev.flora.cuda;

import dev.flora.backend.DType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Gathered LoRA's runs as two dense products over the stacked factors of all their adapters, not a
 * pair of products a run (whole runs) or a batched pair of chunks: for a pass (the runs whose factors
 * share a 16-bit type pair) the groups' A rows one under another (R rows: the pass's columns), then
 * v = x[segment] · A_s^T for every row of the runs against every group, v's entries outside a row's own
 * group zeroed, the rest scaled by their group's scale and rounded to B's type, and per class (an
 * output) out[segment] += v[:, class columns] · B_c^T with B_c the class's groups' B side by side. The products are
 * (rows × R) wide, so they fill the GPU where a run's shrink (rows × rank, a long reduction over the
 * model's width) fills few SMs; the zeros cost R / rank times a run's own arithmetic, which tensor cores
 * pay for cheaply while R stays small (a cap, -Dflora.cuda.loraStack). A row's sum is its own group's,
 * the zeros adding nothing; it differs from a run's own products in the order of summation and in
 * rounding scale · v to B's type where a run rounds v and scales the product (the scale folded in,
 * groups of one output with different scales share an expand).
 *
 * @param passes the stacked passes, one per (A type, B type)
 * @param whole  the runs (indices into the call's LoraRuns) whose factors are float32: a run's own products
 */
record LoraStack(List<Pass> passes, int[] whole) {

    /**
     * One pass: its factor types; its groups in column order and where each starts (groupColumn, one
     * entry per group of the call, -1 for the others; R = columns); per column its class, group and scale; the
     * classes; per class its runs sorted by first row (classRuns[c] .. classRuns[c + 1] - 1 of runFirst,
     * runEnd, runGroup); and the segments, the maximal stretches of rows its runs cover, each a dense
     * product's rows.
     */
    record Pass(DType aType, DType bType, int columns, int[] groupColumn, int[] columnClass, int[] columnGroup, float[] columnScale, OutputClass[] classes,
                int[] classRuns, int[] runFirst, int[] runEnd, int[] runGroup, int[] segmentFrom, int[] segmentTo) {

        /** Rows of all segments together (v's rows). */
        int rows() {
            int n = 0;
            for (int s = 0; s < segmentFrom.length; s++) {
                n += segmentTo[s] - segmentFrom[s];
            }
            return n;
        }

        /** x's row of each of v's rows, segment by segment. */
        int[] rowOf() {
            int[] rows = new int[rows()];
            for (int s = 0, i = 0; s < segmentFrom.length; s++) {
                for (int r = segmentFrom[s]; r < segmentTo[s]; r++) {
                    rows[i++] = r;
                }
            }
            return rows;
        }

        /** The group whose run in class c holds row, or -1: a binary search, as lora_stack_mask does it. */
        int groupAt(int c, int row) {
            int lo = classRuns[c];
            int hi = classRuns[c + 1] - 1;
            int found = -1;
            while (lo <= hi) {
                int mid = (lo + hi) >>> 1;
                if (runFirst[mid] <= row) {
                    found = mid;
                    lo = mid + 1;
                } else {
                    hi = mid - 1;
                }
            }
            return found >= 0 && row < runEnd[found] ? runGroup[found] : -1;
        }

        /** Whether v keeps its entry at (row, column): the column is one of the row's own group in the column's class. */
        boolean keeps(int row, int column) {
            return groupAt(columnClass[column], row) == columnGroup[column];
        }
    }

    /** A class: the groups writing one output, columns [from, to) of the pass; group is one of them (its output is the class's). */
    record OutputClass(int group, int from, int to) {
    }

    /** The most classes a pass has (lora_stack_mask keeps a row's group per class in shared memory). */
    static final int MAX_CLASSES = 16;

    /**
     * The stacked plan of a call's whole runs, or null where one does not fit: a pass wider than
     * {@code maxColumns}, more than MAX_CLASSES classes in a pass, or two runs of one class on the same
     * rows (a row's group in an output must be one). Groups are told apart by index: rank (A's rows),
     * factor types, scale and output (the same object for the same output).
     */
    static LoraStack plan(LoraRuns runs, int[] rank, DType[] aType, DType[] bType, float[] scale, Object[] out, int maxColumns) {
        List<Integer> whole = new ArrayList<>();
        java.util.Map<List<DType>, List<Integer>> byTypes = new java.util.LinkedHashMap<>();
        for (int i = 0; i < runs.count(); i++) {
            int g = runs.group()[i];
            if (aType[g] == DType.F32 || bType[g] == DType.F32) {
                whole.add(i);
            } else {
                byTypes.computeIfAbsent(List.of(aType[g], bType[g]), k -> new ArrayList<>()).add(i);
            }
        }
        List<Pass> passes = new ArrayList<>();
        for (var e : byTypes.entrySet()) {
            Pass pass = pass(runs, e.getValue(), e.getKey().get(0), e.getKey().get(1), rank, scale, out, maxColumns);
            if (pass == null) {
                return null;
            }
            passes.add(pass);
        }
        return new LoraStack(List.copyOf(passes), whole.stream().mapToInt(Integer::intValue).toArray());
    }

    private static Pass pass(LoraRuns runs, List<Integer> members, DType aType, DType bType, int[] rank, float[] scale, Object[] out,
                             int maxColumns) {
        int groups = rank.length;
        // Classes (outputs) in order of first appearance, each with its groups in order of first appearance.
        List<List<Integer>> classGroups = new ArrayList<>();
        int[] classOfGroup = new int[groups];
        Arrays.fill(classOfGroup, -1);
        for (int i : members) {
            int g = runs.group()[i];
            if (classOfGroup[g] >= 0) {
                continue;
            }
            int c = 0;
            while (c < classGroups.size() && out[classGroups.get(c).getFirst()] != out[g]) {
                c++;
            }
            if (c == classGroups.size()) {
                classGroups.add(new ArrayList<>());
            }
            classOfGroup[g] = c;
            classGroups.get(c).add(g);
        }
        if (classGroups.size() > MAX_CLASSES) {
            return null;
        }
        int[] groupColumn = new int[groups];
        Arrays.fill(groupColumn, -1);
        OutputClass[] classes = new OutputClass[classGroups.size()];
        int columns = 0;
        for (int c = 0; c < classes.length; c++) {
            int from = columns;
            for (int g : classGroups.get(c)) {
                groupColumn[g] = columns;
                columns += rank[g];
            }
            classes[c] = new OutputClass(classGroups.get(c).getFirst(), from, columns);
        }
        if (columns > maxColumns) {
            return null;
        }
        int[] columnClass = new int[columns];
        int[] columnGroup = new int[columns];
        float[] columnScale = new float[columns];
        for (int g = 0; g < groups; g++) {
            for (int j = 0; j < (groupColumn[g] < 0 ? 0 : rank[g]); j++) {
                columnClass[groupColumn[g] + j] = classOfGroup[g];
                columnGroup[groupColumn[g] + j] = g;
                columnScale[groupColumn[g] + j] = scale[g];
            }
        }
        // The runs by class, then by first row; a class's runs must not share rows.
        Integer[] order = members.toArray(Integer[]::new);
        Arrays.sort(order, java.util.Comparator.<Integer>comparingInt(i -> classOfGroup[runs.group()[i]]).thenComparingInt(i -> runs.first()[i]));
        int n = order.length;
        int[] classRuns = new int[classes.length + 1];
        int[] runFirst = new int[n];
        int[] runEnd = new int[n];
        int[] runGroup = new int[n];
        for (int k = 0; k < n; k++) {
            int i = order[k];
            int c = classOfGroup[runs.group()[i]];
            runFirst[k] = runs.first()[i];
            runEnd[k] = runs.first()[i] + runs.length()[i];
            runGroup[k] = runs.group()[i];
            classRuns[c + 1] = k + 1;
            if (k > 0 && classOfGroup[runGroup[k - 1]] == c && runFirst[k] < runEnd[k - 1]) {
                return null;
            }
        }
        // Segments: the runs' rows merged where they touch or overlap.
        int[][] spans = new int[n][];
        for (int k = 0; k < n; k++) {
            spans[k] = new int[] {runFirst[k], runEnd[k]};
        }
        Arrays.sort(spans, java.util.Comparator.comparingInt(s -> s[0]));
        List<int[]> segments = new ArrayList<>();
        for (int[] s : spans) {
            int[] last = segments.isEmpty() ? null : segments.get(segments.size() - 1);
            if (last != null && s[0] <= last[1]) {
                last[1] = Math.max(last[1], s[1]);
            } else {
                segments.add(s.clone());
            }
        }
        return new Pass(aType, bType, columns, groupColumn, columnClass, columnGroup, columnScale, classes, classRuns, runFirst, runEnd, runGroup,
                segments.stream().mapToInt(s -> s[0]).toArray(), segments.stream().mapToInt(s -> s[1]).toArray());
    }
}
