package dev.flora.engine;

import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class SamplerTest {
    private static SamplingParams params(double temperature, int topK, double topP) {
        return new SamplingParams(temperature, topK, topP, 1L, 10, false, Set.of());
    }

    @Test
    void greedyTakesTheFirstMaximum() {
        float[] logits = {0.5f, 2f, -1f, 2f};
        assertThat(Sampler.sample(logits, 0, 4, params(0, 0, 1), new SplittableRandom(1))).isEqualTo(1);
        assertThat(Sampler.argmax(new float[] {9f, 1f, 3f, 9f, 9f}, 1, 4)).isEqualTo(2);
    }

    @Test
    void logitSummaryIsStableForLargeLogitsAndTakesTheFirstMaximum() {
        float[] logits = {1000f, 1000f, -3f, 7f, 7f, 1f};
        dev.flora.backend.LogitSummary s = dev.flora.backend.LogitSummary.ofHost(logits, 2, 3);
        assertThat(s.logSumExp()[0]).isCloseTo(1000 + Math.log(2 + Math.exp(-1003)), within(1e-9));
        assertThat(s.argmax()).containsExactly(0, 0);
        assertThat(s.max()).containsExactly(1000f, 7f);
        assertThat(s.logSumExp()[1]).isCloseTo(7 + Math.log(2 + Math.exp(-6)), within(1e-12));
    }

    private static Map<Integer, Integer> histogram(float[] logits, SamplingParams p, int draws) {
        SplittableRandom random = new SplittableRandom(99);
        Map<Integer, Integer> counts = new HashMap<>();
        for (int i = 0; i < draws; i++) {
            counts.merge(Sampler.sample(logits, 0, logits.length, p, random), 1, Integer::sum);
        }
        return counts;
    }

    @Test
    void samplingFollowsTheSoftmax() {
        float[] logits = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.2)};
        Map<Integer, Integer> counts = histogram(logits, params(1, 0, 1), 40_000);
        assertThat(counts.get(0) / 40_000.0).isCloseTo(0.5, within(0.015));
        assertThat(counts.get(1) / 40_000.0).isCloseTo(0.3, within(0.015));
        assertThat(counts.get(2) / 40_000.0).isCloseTo(0.2, within(0.015));
    }

    @Test
    void temperatureSharpens() {
        float[] logits = {(float) Math.log(0.6), (float) Math.log(0.4)};
        // At T = 0.5 probabilities go as p^2: 0.36 / (0.36 + 0.16).
        Map<Integer, Integer> counts = histogram(logits, params(0.5, 0, 1), 40_000);
        assertThat(counts.get(0) / 40_000.0).isCloseTo(0.36 / 0.52, within(0.015));
    }

    @Test
    void topKKeepsOnlyTheKMostLikely() {
        float[] logits = {3f, 1f, 2f, 0f};
        assertThat(histogram(logits, params(1, 2, 1), 5_000).keySet()).containsExactlyInAnyOrder(0, 2);
    }

    @Test
    void topPKeepsTheSmallestPrefixReachingP() {
        float[] logits = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.15), (float) Math.log(0.05)};
        assertThat(histogram(logits, params(1, 0, 0.8), 5_000).keySet()).containsExactlyInAnyOrder(0, 1);
        assertThat(histogram(logits, params(1, 0, 0.81), 5_000).keySet()).containsExactlyInAnyOrder(0, 1, 2);
        assertThat(histogram(logits, params(1, 0, 0.01), 1_000).keySet()).containsExactly(0);
    }

    @Test
    void aSeedMakesDrawsReproducible() {
        float[] logits = new float[50];
        for (int i = 0; i < logits.length; i++) {
            logits[i] = (float) Math.sin(i);
        }
        SamplingParams p = params(1, 0, 1);
        int[] a = new int[20];
        int[] b = new int[20];
        SplittableRandom ra = new SplittableRandom(5);
        SplittableRandom rb = new SplittableRandom(5);
        for (int i = 0; i < 20; i++) {
            a[i] = Sampler.sample(logits, 0, 50, p, ra);
            b[i] = Sampler.sample(logits, 0, 50, p, rb);
        }
        assertThat(a).containsExactly(b);
        assertThat(java.util.Arrays.stream(a).distinct().count()).isGreaterThan(3);
    }

    /** The old definition: every index boxed and sorted by a comparator, highest first, ties by index. */
    private static Integer[] referenceOrder(float[] logits, double t) {
        Integer[] order = new Integer[logits.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, (a, b) -> {
            int c = Double.compare(logits[b] / t, logits[a] / t);
            return c != 0 ? c : Integer.compare(a, b);
        });
        return order;
    }

    @Test
    void highestFirstIsTheComparatorOrderWithTiesByIndex() {
        SplittableRandom random = new SplittableRandom(3);
        for (int trial = 0; trial < 40; trial++) {
            int n = 1 + random.nextInt(3000);
            float[] logits = new float[n];
            for (int i = 0; i < n; i++) {
                // few distinct values (many ties), signed zeros, large and small magnitudes
                logits[i] = switch (random.nextInt(5)) {
                    case 0 -> 0f;
                    case 1 -> -0f;
                    case 2 -> random.nextInt(7) - 3;
                    case 3 -> (float) (random.nextGaussian() * 1e6);
                    default -> (float) random.nextGaussian();
                };
            }
            Integer[] want = referenceOrder(logits, 0.7);
            for (int keep : new int[] {1, Math.max(1, n / 10), n}) {
                int[] got = Sampler.highestFirst(logits, 0, n, keep);
                for (int i = 0; i < keep; i++) {
                    assertThat(got[i]).as("trial %d keep %d position %d", trial, keep, i).isEqualTo(want[i]);
                }
            }
        }
    }

    @Test
    void topKAndTopPDrawWhatTheComparatorSortDrew() {
        float[] logits = new float[5000];
        SplittableRandom values = new SplittableRandom(8);
        for (int i = 0; i < logits.length; i++) {
            logits[i] = (float) (values.nextGaussian() * 2);
        }
        for (SamplingParams p : List.of(params(0.8, 40, 1), params(1.3, 0, 0.9), params(0.5, 200, 0.7))) {
            for (long seed = 0; seed < 200; seed++) {
                // the old algorithm, written out: order, tempered probabilities, top-k, top-p, a draw
                Integer[] order = referenceOrder(logits, p.temperature());
                int keep = p.topK() > 0 ? Math.min(p.topK(), logits.length) : logits.length;
                double max = logits[order[0]] / p.temperature();
                double[] probs = new double[keep];
                double total = 0;
                for (int i = 0; i < keep; i++) {
                    probs[i] = StrictMath.exp(logits[order[i]] / p.temperature() - max);
                    total += probs[i];
                }
                if (p.topP() < 1) {
                    double cumulative = 0;
                    int cut = keep;
                    for (int i = 0; i < keep; i++) {
                        cumulative += probs[i] / total;
                        if (cumulative >= p.topP()) {
                            cut = i + 1;
                            break;
                        }
                    }
                    keep = cut;
                    total = 0;
                    for (int i = 0; i < keep; i++) {
                        total += probs[i];
                    }
                }
                double u = new SplittableRandom(seed).nextDouble() * total;
                int want = order[keep - 1];
                for (int i = 0; i < keep; i++) {
                    u -= probs[i];
                    if (u < 0) {
                        want = order[i];
                        break;
                    }
                }
                assertThat(Sampler.sample(logits, 0, logits.length, p, new SplittableRandom(seed))).as("%s seed %d", p, seed).isEqualTo(want);
            }
        }
    }

    @Test
    void badParametersAreRefusedByName() {
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> params(-1, 0, 1)).hasMessageContaining("temperature");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> params(1, -2, 1)).hasMessageContaining("top-k");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> params(1, 0, 0)).hasMessageContaining("top-p");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> params(1, 0, 1.5)).hasMessageContaining("top-p");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> params(Double.NaN, 0, 1)).hasMessageContaining("temperature");
    }
}
