package dev.flora.cuda;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/**
 * CudaFloraRuns' plan carried out in float64 as CudaFloraRuns carries it out (no GPU needed): the joint
 * modulation at the plan's stacked rows, the alpha vectors written a layer at a time from its first
 * group's, then per run and rank the product of its stacked rows scaled by the alpha vector at
 * alphaAt, against fLoRA's own formula for every row in a run, over seeded random layers.
 */
class FloraRunPlanTest {
    @Test
    void carriedOutInFloat64ItIsEachRunsOwnFlora() {
        Random random = new Random(41);
        for (int trial = 0; trial < 60; trial++) {
            int in = 2 + random.nextInt(6);
            int layers = 1 + random.nextInt(3);
            int t = 0;
            int groupsPerLayer = 1 + random.nextInt(4);
            // The layers share the tokens (one input); each group one or two stretches of rows (two runs of
            // a group, where the second starts past the first among its rows), some with a lone row after.
            int[][] groupRows = new int[groupsPerLayer][];
            for (int g = 0; g < groupsPerLayer; g++) {
                java.util.List<Integer> r = new java.util.ArrayList<>();
                for (int stretch = random.nextInt(2); stretch >= 0; stretch--) {
                    int len = 1 + random.nextInt(30);
                    for (int i = 0; i < len; i++) {
                        r.add(t + i);
                    }
                    if (random.nextBoolean()) {
                        r.add(t + len + 1); // a lone row after a gap
                    }
                    t += len + 3 + random.nextInt(3);
                }
                groupRows[g] = r.stream().mapToInt(Integer::intValue).toArray();
            }
            int[][][] rows = new int[layers][][];
            int[][] rank = new int[layers][];
            int[] outs = new int[layers];
            double[][][] a = new double[layers][][];
            double[][][] bt = new double[layers][][];
            double[][] w = new double[layers][];
            for (int p = 0; p < layers; p++) {
                rows[p] = groupRows;
                rank[p] = new int[groupsPerLayer];
                outs[p] = 1 + random.nextInt(7);
                a[p] = new double[groupsPerLayer][];
                bt[p] = new double[groupsPerLayer][];
                for (int g = 0; g < groupsPerLayer; g++) {
                    rank[p][g] = 1 + random.nextInt(4);
                    a[p][g] = random.doubles((long) rank[p][g] * in, -1, 1).toArray();
                    bt[p][g] = random.doubles((long) rank[p][g] * outs[p], -1, 1).toArray();
                }
                w[p] = random.doubles((long) outs[p] * in, -1, 1).toArray();
            }
            double[] x = random.doubles((long) t * in, -1, 1).toArray();
            int minRun = 1 + random.nextInt(12);
            FloraRunPlan plan = FloraRunPlan.of(rows, rank, outs, minRun);
            // The joint modulation: block j of joint group k holds a_j ∘ x of its rows in runs, in order.
            int stacked = 0;
            for (int k = 0; k < plan.jointRows().size(); k++) {
                stacked += rank[plan.jointLayer()[k]][plan.jointGroup()[k]] * plan.jointRows().get(k).length;
            }
            double[] half = new double[stacked * in];
            for (int k = 0; k < plan.jointRows().size(); k++) {
                int p = plan.jointLayer()[k];
                int g = plan.jointGroup()[k];
                int[] kr = plan.jointRows().get(k);
                for (int j = 0; j < rank[p][g]; j++) {
                    for (int i = 0; i < kr.length; i++) {
                        for (int c = 0; c < in; c++) {
                            half[(plan.base()[k] + j * kr.length + i) * in + c] = a[p][g][j * in + c] * x[kr[i] * in + c];
                        }
                    }
                }
            }
            // The alpha vectors, a launch a layer: its groups with runs, in order, from the first one's pairOf.
            double[] alpha = new double[(int) Math.max(1, plan.alphaFloats())];
            for (int p = 0; p < layers; p++) {
                int firstPair = -1;
                int m = 0;
                for (int g = 0; g < groupsPerLayer; g++) {
                    int k = plan.firstGroup()[p][g];
                    if (plan.jointRows().get(k).length == 0) {
                        continue;
                    }
                    firstPair = firstPair < 0 ? plan.pairOf()[k] : firstPair;
                    for (int j = 0; j < rank[p][g]; j++, m++) {
                        for (int c = 0; c < outs[p]; c++) {
                            alpha[firstPair + m * outs[p] + c] = bt[p][g][j * outs[p] + c] / rank[p][g];
                        }
                    }
                }
            }
            for (int p = 0; p < layers; p++) {
                LoraRuns runs = plan.runs()[p];
                double[] out = new double[t * outs[p]];
                double[] want = new double[t * outs[p]];
                for (int i = 0; i < runs.count(); i++) {
                    int g = runs.group()[i];
                    for (int j = 0; j < rank[p][g]; j++) {
                        long from = plan.stackedRow(p, i, j);
                        long at = plan.alphaAt(p, i, j, outs[p]);
                        for (int row = 0; row < runs.length()[i]; row++) {
                            for (int o = 0; o < outs[p]; o++) {
                                double d = 0;
                                for (int c = 0; c < in; c++) {
                                    d += w[p][o * in + c] * half[(int) ((from + row) * in + c)];
                                }
                                int target = (runs.first()[i] + row) * outs[p] + o;
                                out[target] = (j > 0 ? out[target] : 0) + alpha[(int) (at + o)] * d;
                            }
                        }
                    }
                    for (int row = runs.first()[i]; row < runs.first()[i] + runs.length()[i]; row++) { // fLoRA's own formula
                        for (int o = 0; o < outs[p]; o++) {
                            double sum = 0;
                            for (int j = 0; j < rank[p][g]; j++) {
                                double d = 0;
                                for (int c = 0; c < in; c++) {
                                    d += w[p][o * in + c] * a[p][g][j * in + c] * x[row * in + c];
                                }
                                sum += bt[p][g][j * outs[p] + o] * d;
                            }
                            want[row * outs[p] + o] = sum / rank[p][g];
                        }
                    }
                }
                assertThat(out).as("trial %d layer %d", trial, p).containsExactly(want, within(1e-12));
            }
        }
    }

    @Test
    void aGroupWithoutRunsTakesNoRowsAndNoAlpha() {
        int[][][] rows = {{{0, 1, 2, 3}, {10, 12, 14}}};
        FloraRunPlan plan = FloraRunPlan.of(rows, new int[][] {{2, 3}}, new int[] {5}, 4);
        assertThat(plan.count()).isEqualTo(1);
        assertThat(plan.jointRows().get(1)).as("scattered rows: no run").isEmpty();
        assertThat(plan.runs()[0].rest()[1]).containsExactly(10, 12, 14);
        assertThat(plan.alphaFloats()).as("two vectors of 5 for the group with a run").isEqualTo(10);
        assertThat(plan.stackedRow(0, 0, 1)).as("block 1 of 4 rows").isEqualTo(4);
    }
}
