package dev.flora.engine;

/**
 * One sequence to run: a tokenised prompt and how to continue it.
 *
 * @param promptLogprobs also score every prompt token given the ones before it
 */
public record Request(String id, int[] prompt, SamplingParams sampling, boolean promptLogprobs) {
}
