package dev.flora.engine;

import org.junit.jupiter.api.Test;

import java.util.HashMap;
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

    @Test
    void badParametersAreRefusedByName() {
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> params(-1, 0, 1)).hasMessageContaining("temperature");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> params(1, -2, 1)).hasMessageContaining("top-k");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> params(1, 0, 0)).hasMessageContaining("top-p");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> params(1, 0, 1.5)).hasMessageContaining("top-p");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> params(Double.NaN, 0, 1)).hasMessageContaining("temperature");
    }
}
