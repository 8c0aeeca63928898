package dev.flora.engine;

/**
 * A finished sequence.
 *
 * @param promptLogprobs log-probability of each prompt token given the ones before it (NaN for the
 *                       first), or null if not asked for
 * @param generatedLogprobs log-probability of each generated token under the raw distribution
 * @param promptTop    the most likely tokens at each prompt position (null entry first), when asked for
 * @param generatedTop the most likely tokens at each generation step, when asked for
 */
public record Result(String id, int[] prompt, double[] promptLogprobs, int[] generated, double[] generatedLogprobs,
                     FinishReason finishReason, TopLogprobs[] promptTop, TopLogprobs[] generatedTop) {
}
