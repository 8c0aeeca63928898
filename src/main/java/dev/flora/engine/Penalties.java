package dev.flora.engine;

import java.util.BitSet;
import java.util.Map;

/**
 * vLLM's penalties on one row of logits, in its order and in float: first the repetition penalty
 * (transformers' CTRL-style: a positive logit divided by it, a negative one multiplied, for every
 * token of the prompt or the output so far), then OpenAI's frequency penalty (times how often the
 * token was generated) and presence penalty (once if it was generated at all).
 */
final class Penalties {
    private Penalties() {
    }

    static void apply(float[] row, BitSet promptTokens, Map<Integer, Integer> outputCounts, SamplingParams p) {
        if (p.repetitionPenalty() != 1) {
            float penalty = (float) p.repetitionPenalty();
            float inverse = 1.0f / penalty;
            for (int id = promptTokens.nextSetBit(0); id >= 0 && id < row.length; id = promptTokens.nextSetBit(id + 1)) {
                if (!outputCounts.containsKey(id)) {
                    row[id] *= row[id] > 0 ? inverse : penalty;
                }
            }
            for (int id : outputCounts.keySet()) {
                if (id < row.length) {
                    row[id] *= row[id] > 0 ? inverse : penalty;
                }
            }
        }
        float frequency = (float) p.frequencyPenalty();
        float presence = (float) p.presencePenalty();
        if (frequency != 0 || presence != 0) {
            for (Map.Entry<Integer, Integer> e : outputCounts.entrySet()) {
                int id = e.getKey();
                if (id < row.length) {
                    row[id] -= frequency * e.getValue();
                    row[id] -= presence;
                }
            }
        }
    }
}
