package dev.flora.engine;

/**
 * A finished sequence.
 *
 * @param promptLogprobs log-probability of each prompt token given the ones before it (NaN for the
 *                       first), or null if not asked for
 * @param generatedLogprobs log-probability of each generated token under the raw distribution
 */
public record Result(String id, int[] prompt, double[] promptLogprobs, int[] generated, double[] generatedLogprobs,
                     FinishReason finishReason) {
}
