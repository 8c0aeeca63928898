package dev.flora.cuda;

import dev.flora.backend.DType;
import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.stream.IntStream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/**
 * The stacked runs' plan (no GPU needed): its layout, its refusals, and the plan carried out in float64
 * as CudaLoraStack carries it out (stacked A, v for every row against every column, the mask by the
 * plan's keeps, one expand per class) against each run's own LoRA.
 */
class LoraStackTest {
    private static int[] range(int from, int to) {
        return IntStream.range(from, to).toArray();
    }

    /** A fused q/k/v call's groups: adapter u's module m is group 3u + m, all three on the adapter's rows. */
    private record Call(int[][] rows, int[] rank, DType[] aType, DType[] bType, float[] scale, Object[] out, int[] outWidth) {
        static Call qkv(int[][] adapterRows, int[] adapterRank, DType[] adapterType, float[] adapterScale, Object[] outputs, int[] widths) {
            int groups = adapterRows.length * 3;
            Call c = new Call(new int[groups][], new int[groups], new DType[groups], new DType[groups], new float[groups], new Object[groups],
                    new int[groups]);
            for (int u = 0; u < adapterRows.length; u++) {
                for (int m = 0; m < 3; m++) {
                    int g = 3 * u + m;
                    c.rows[g] = adapterRows[u];
                    c.rank[g] = adapterRank[u];
                    c.aType[g] = adapterType[u];
                    c.bType[g] = adapterType[u];
                    c.scale[g] = adapterScale[u];
                    c.out[g] = outputs[m];
                    c.outWidth[g] = widths[m];
                }
            }
            return c;
        }

        LoraRuns runs(int minRun) {
            int[] min = new int[rows.length];
            java.util.Arrays.fill(min, minRun);
            return LoraRuns.of(rows, min, 0);
        }

        LoraStack plan(LoraRuns runs, int maxColumns) {
            return LoraStack.plan(runs, rank, aType, bType, scale, out, maxColumns);
        }
    }

    private static final Object Q = "q";
    private static final Object K = "k";
    private static final Object V = "v";

    private static Call fourAdapters() {
        return Call.qkv(new int[][] {range(0, 150), range(150, 300), IntStream.concat(IntStream.of(301, 305), IntStream.range(320, 400)).toArray(),
                        IntStream.concat(IntStream.of(310, 315), IntStream.range(400, 600)).toArray()},
                new int[] {8, 16, 4, 64}, new DType[] {DType.BF16, DType.BF16, DType.F16, DType.BF16}, new float[] {0.5f, 2f, 1.25f, -0.75f},
                new Object[] {Q, K, V}, new int[] {20, 8, 8});
    }

    @Test
    void passesClassesColumnsAndSegments() {
        Call call = fourAdapters();
        LoraRuns runs = call.runs(64);
        LoraStack stack = call.plan(runs, 4096);
        assertThat(stack).isNotNull();
        assertThat(stack.whole()).isEmpty();
        assertThat(stack.passes()).hasSize(2);
        LoraStack.Pass bf16 = stack.passes().get(0);
        assertThat(bf16.aType()).isEqualTo(DType.BF16);
        assertThat(bf16.columns()).as("adapters 0, 1, 3 on three outputs").isEqualTo(3 * (8 + 16 + 64));
        assertThat(bf16.classes()).as("q, k, v: a class each, whatever the adapters' scales").extracting(LoraStack.OutputClass::from)
                .containsExactly(0, 88, 176);
        assertThat(bf16.columnScale()[0]).isEqualTo(0.5f);
        assertThat(bf16.columnScale()[8]).isEqualTo(2f);
        assertThat(bf16.groupColumn()[0]).isZero();        // q of adapter 0
        assertThat(bf16.groupColumn()[3]).isEqualTo(8);    // q of adapter 1
        assertThat(bf16.groupColumn()[9]).isEqualTo(24);   // q of adapter 3
        assertThat(bf16.groupColumn()[4]).isEqualTo(88 + 8); // k of adapter 1
        assertThat(bf16.groupColumn()[6]).as("adapter 2 is in the f16 pass").isEqualTo(-1);
        assertThat(bf16.segmentFrom()).as("runs that touch join; the decode rows' gap splits").containsExactly(0, 400);
        assertThat(bf16.segmentTo()).containsExactly(300, 600);
        assertThat(bf16.rows()).isEqualTo(500);
        assertThat(bf16.rowOf()).startsWith(0, 1).endsWith(598, 599).contains(299, 400).doesNotContain(300, 350);
        LoraStack.Pass f16 = stack.passes().get(1);
        assertThat(f16.columns()).isEqualTo(12);
        assertThat(f16.segmentFrom()).containsExactly(320);
        assertThat(bf16.keeps(10, 3)).as("row 10 (adapter 0) keeps q's columns of adapter 0").isTrue();
        assertThat(bf16.keeps(10, 8)).as("but not adapter 1's").isFalse();
        assertThat(bf16.keeps(200, 88 + 8)).as("row 200 (adapter 1) keeps k's columns of adapter 1").isTrue();
        assertThat(bf16.keeps(599, 176 + 24 + 63)).as("row 599, v's last column of adapter 3").isTrue();
        assertThat(bf16.keeps(310, 24)).as("a row left to the kernels keeps nothing").isFalse();
    }

    @Test
    void refusedWhereAPassIsTooWideOrAClassHasTwoGroupsOnARow() {
        Call call = fourAdapters();
        LoraRuns runs = call.runs(64);
        assertThat(call.plan(runs, 3 * (8 + 16 + 64))).as("the bf16 pass just fits").isNotNull();
        assertThat(call.plan(runs, 3 * (8 + 16 + 64) - 1)).as("one column short").isNull();
        // Two groups on one output and scale, on overlapping rows: a row would have two groups in a class.
        int[][] rows = {range(0, 100), range(50, 150)};
        LoraRuns clash = LoraRuns.of(rows, new int[] {10, 10}, 0);
        assertThat(LoraStack.plan(clash, new int[] {4, 4}, new DType[] {DType.BF16, DType.BF16}, new DType[] {DType.BF16, DType.BF16},
                new float[] {1f, 1f}, new Object[] {Q, Q}, 4096)).isNull();
        assertThat(LoraStack.plan(clash, new int[] {4, 4}, new DType[] {DType.BF16, DType.BF16}, new DType[] {DType.BF16, DType.BF16},
                new float[] {1f, 1f}, new Object[] {Q, K}, 4096)).as("on two outputs: a class each").isNotNull();
        // More classes than the mask keeps.
        int n = LoraStack.MAX_CLASSES + 1;
        int[][] many = new int[n][];
        Object[] outs = new Object[n];
        for (int g = 0; g < n; g++) {
            many[g] = range(0, 20);
            outs[g] = "out" + g;
        }
        int[] min = new int[n];
        java.util.Arrays.fill(min, 10);
        DType[] types = new DType[n];
        java.util.Arrays.fill(types, DType.BF16);
        assertThat(LoraStack.plan(LoraRuns.of(many, min, 0), new int[n], types, types, new float[n], outs, 4096)).isNull();
    }

    @Test
    void float32FactorsStayOnTheirOwnProducts() {
        int[][] rows = {range(0, 100), range(100, 200)};
        LoraRuns runs = LoraRuns.of(rows, new int[] {10, 10}, 0);
        LoraStack stack = LoraStack.plan(runs, new int[] {4, 8}, new DType[] {DType.F32, DType.BF16}, new DType[] {DType.F32, DType.BF16},
                new float[] {1f, 1f}, new Object[] {Q, Q}, 4096);
        assertThat(stack.whole()).containsExactly(0);
        assertThat(stack.passes()).hasSize(1);
        assertThat(stack.passes().get(0).columns()).isEqualTo(8);
        LoraRuns alone = runs.only(stack.whole());
        assertThat(alone.group()).containsExactly(0);
        assertThat(alone.length()).containsExactly(100);
        assertThat(runs.stacked(stack).stack()).isSameAs(stack);
    }

    /** The plan carried out in float64 equals every run's own x A^T B^T · scale, and leaves other rows alone, over seeded random calls. */
    @Test
    void carriedOutInFloat64ItIsEachRunsOwnLora() {
        Random random = new Random(29);
        for (int trial = 0; trial < 40; trial++) {
            int in = 3 + random.nextInt(20);
            int adapters = 1 + random.nextInt(6);
            int[][] adapterRows = new int[adapters][];
            int[] ranks = new int[adapters];
            DType[] types = new DType[adapters];
            float[] scales = new float[adapters];
            int next = 0;
            for (int u = 0; u < adapters; u++) {
                int len = 1 + random.nextInt(40);
                adapterRows[u] = range(next, next + len);
                next += len + (random.nextBoolean() ? 0 : random.nextInt(5)); // touching or a gap
                ranks[u] = 1 + random.nextInt(9);
                types[u] = random.nextInt(4) == 0 ? DType.F16 : DType.BF16;
                scales[u] = random.nextBoolean() ? 1f : 0.25f * (1 + random.nextInt(8));
            }
            int t = next;
            int[] widths = {1 + random.nextInt(12), 1 + random.nextInt(12), 1 + random.nextInt(12)};
            Call call = Call.qkv(adapterRows, ranks, types, scales, new Object[] {Q, K, V}, widths);
            LoraRuns runs = call.runs(1 + random.nextInt(12));
            LoraStack stack = call.plan(runs, 4096);
            assertThat(stack).isNotNull();
            int groups = call.rows().length;
            double[][] a = new double[groups][];
            double[][] b = new double[groups][];
            for (int g = 0; g < groups; g++) {
                a[g] = random.doubles((long) call.rank()[g] * in, -1, 1).toArray();
                b[g] = random.doubles((long) call.outWidth()[g] * call.rank()[g], -1, 1).toArray();
            }
            double[] x = random.doubles((long) t * in, -1, 1).toArray();
            java.util.Map<Object, double[]> got = new java.util.HashMap<>();
            java.util.Map<Object, double[]> want = new java.util.HashMap<>();
            for (int m = 0; m < 3; m++) {
                got.put(call.out()[m], new double[t * widths[m]]);
                want.put(call.out()[m], new double[t * widths[m]]);
            }
            for (int i = 0; i < runs.count(); i++) { // each run's own LoRA
                int g = runs.group()[i];
                for (int r = runs.first()[i]; r < runs.first()[i] + runs.length()[i]; r++) {
                    addLora(x, r, in, a[g], b[g], call.rank()[g], call.outWidth()[g], call.scale()[g], want.get(call.out()[g]));
                }
            }
            for (LoraStack.Pass p : stack.passes()) {
                carryOut(p, x, in, a, b, call, got);
            }
            for (Object o : got.keySet()) {
                assertThat(got.get(o)).as("trial %d output %s", trial, o).containsExactly(want.get(o), within(1e-12));
            }
        }
    }

    private static void addLora(double[] x, int row, int in, double[] a, double[] b, int rank, int width, float scale, double[] out) {
        double[] v = new double[rank];
        for (int j = 0; j < rank; j++) {
            for (int c = 0; c < in; c++) {
                v[j] += a[j * in + c] * x[row * in + c];
            }
        }
        for (int o = 0; o < width; o++) {
            double d = 0;
            for (int j = 0; j < rank; j++) {
                d += b[o * rank + j] * v[j];
            }
            out[row * width + o] += scale * d;
        }
    }

    /** CudaLoraStack's steps for one pass, in float64: stacked A, v = x A_s^T over the segments, the mask, one expand per class. */
    private static void carryOut(LoraStack.Pass p, double[] x, int in, double[][] a, double[][] b, Call call, java.util.Map<Object, double[]> outs) {
        int columns = p.columns();
        double[] stackedA = new double[columns * in];
        for (int k = 0; k < columns; k++) {
            int g = p.columnGroup()[k];
            System.arraycopy(a[g], (k - p.groupColumn()[g]) * in, stackedA, k * in, in);
        }
        int[] rowOf = p.rowOf();
        double[] kept = new double[rowOf.length * columns];
        for (int i = 0; i < rowOf.length; i++) {
            for (int k = 0; k < columns; k++) {
                double v = 0;
                for (int c = 0; c < in; c++) {
                    v += stackedA[k * in + c] * x[rowOf[i] * in + c];
                }
                kept[i * columns + k] = p.keeps(rowOf[i], k) ? p.columnScale()[k] * v : 0;
            }
        }
        for (LoraStack.OutputClass c : p.classes()) {
            int width = call.outWidth()[c.group()];
            double[] out = outs.get(call.out()[c.group()]);
            int span = c.to() - c.from();
            double[] stackedB = new double[width * span];
            for (int k = c.from(); k < c.to(); k++) {
                int g = p.columnGroup()[k];
                int rank = call.rank()[g];
                for (int o = 0; o < width; o++) {
                    stackedB[o * span + k - c.from()] = b[g][o * rank + k - p.groupColumn()[g]];
                }
            }
            for (int i = 0; i < rowOf.length; i++) {
                for (int o = 0; o < width; o++) {
                    double d = 0;
                    for (int k = 0; k < span; k++) {
                        d += kept[i * columns + c.from() + k] * stackedB[o * span + k];
                    }
                    out[rowOf[i] * width + o] += d;
                }
            }
        }
    }
}
