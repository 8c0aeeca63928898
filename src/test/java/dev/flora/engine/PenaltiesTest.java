package dev.flora.engine;

import org.junit.jupiter.api.Test;

import java.util.BitSet;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/** Penalties equal a plain computation of vLLM's definition over the whole vocabulary (masks and counts, as its tensors do). */
class PenaltiesTest {
    private static SamplingParams params(double presence, double frequency, double repetition) {
        return new SamplingParams(1.0, 0, 1.0, 1L, 10, false, Set.of(), 0, 0, presence, frequency, repetition);
    }

    /** vLLM's apply_penalties, written out: repetition over prompt ∪ output, then frequency × count, then presence × mask. */
    private static float[] reference(float[] logits, int[] prompt, int[] output, SamplingParams p) {
        int vocab = logits.length;
        boolean[] promptMask = new boolean[vocab];
        boolean[] outputMask = new boolean[vocab];
        int[] counts = new int[vocab];
        for (int t : prompt) {
            promptMask[t] = true;
        }
        for (int t : output) {
            outputMask[t] = true;
            counts[t]++;
        }
        float[] out = logits.clone();
        float r = (float) p.repetitionPenalty();
        for (int i = 0; i < vocab; i++) {
            float penalty = promptMask[i] || outputMask[i] ? r : 1.0f;
            float scaling = out[i] > 0 ? 1.0f / penalty : penalty;
            out[i] *= scaling;
        }
        for (int i = 0; i < vocab; i++) {
            out[i] -= (float) p.frequencyPenalty() * counts[i];
            out[i] -= (float) p.presencePenalty() * (outputMask[i] ? 1 : 0);
        }
        return out;
    }

    @Test
    void equalAPlainComputationOfTheDefinition() {
        SplittableRandom random = new SplittableRandom(2024);
        for (int trial = 0; trial < 200; trial++) {
            int vocab = 8 + random.nextInt(60);
            float[] logits = new float[vocab];
            for (int i = 0; i < vocab; i++) {
                logits[i] = random.nextInt(10) == 0 ? 0f : (float) (random.nextDouble() * 20 - 10);
            }
            int[] prompt = random.ints(1 + random.nextInt(12), 0, vocab).toArray();
            int[] output = random.ints(random.nextInt(12), 0, vocab).toArray();
            SamplingParams p = params(random.nextDouble() * 4 - 2, random.nextDouble() * 4 - 2,
                    random.nextBoolean() ? 1.0 : 0.2 + random.nextDouble() * 1.8);
            BitSet promptTokens = new BitSet();
            for (int t : prompt) {
                promptTokens.set(t);
            }
            Map<Integer, Integer> counts = new HashMap<>();
            for (int t : output) {
                counts.merge(t, 1, Integer::sum);
            }
            float[] actual = logits.clone();
            Penalties.apply(actual, promptTokens, counts, p);
            assertThat(actual).as("trial %d", trial).containsExactly(reference(logits, prompt, output, p));
        }
    }

    @Test
    void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() {
        float[] row = {2f, -2f, 2f, -2f};
        Map<Integer, Integer> output = new HashMap<>(Map.of(1, 1));
        BitSet prompt = new BitSet();
        prompt.set(0);
        Penalties.apply(row, prompt, output, params(0, 0, 2));
        assertThat(row).containsExactly(1f, -4f, 2f, -2f);
    }

    @Test
    void frequencyCountsAndPresenceDoesNot() {
        float[] row = {1f, 1f, 1f};
        Penalties.apply(row, new BitSet(), new HashMap<>(Map.of(0, 3, 1, 1)), params(0.5, 0.25, 1));
        assertThat(row).containsExactly(1f - 0.75f - 0.5f, 1f - 0.25f - 0.5f, 1f);
    }
}
