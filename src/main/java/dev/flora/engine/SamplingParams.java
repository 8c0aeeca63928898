package dev.flora.engine;

import dev.flora.FloraException;

import java.util.Set;

/**
 * How to pick each generated token, as OpenAI and vLLM name the knobs.
 *
 * @param temperature 0 means greedy (argmax)
 * @param topK        0 means no limit
 * @param topP        1 means no nucleus cut
 * @param seed        null: a random seed
 * @param maxTokens   most tokens to generate
 * @param ignoreEos   keep going past end-of-sequence tokens
 * @param stopTokens  token ids that end generation (besides the model's EOS unless ignored)
 * @param minTokens   EOS and stop tokens cannot be sampled before this many tokens (vLLM's min_tokens)
 * @param logprobs    how many most likely tokens to report with each token's log-probability (0-20)
 * @param presencePenalty   subtracted from the logit of every token already generated (OpenAI's, in [-2, 2])
 * @param frequencyPenalty  subtracted once per time a token was already generated (OpenAI's, in [-2, 2])
 * @param repetitionPenalty divides positive and multiplies negative logits of tokens in the prompt or already
 *                          generated (transformers' and vLLM's, > 0; 1 is none)
 */
public record SamplingParams(double temperature, int topK, double topP, Long seed, int maxTokens, boolean ignoreEos,
                             Set<Integer> stopTokens, int minTokens, int logprobs, double presencePenalty, double frequencyPenalty,
                             double repetitionPenalty) {
    public static final int MAX_LOGPROBS = 20;

    public SamplingParams(double temperature, int topK, double topP, Long seed, int maxTokens, boolean ignoreEos, Set<Integer> stopTokens,
                          int minTokens, int logprobs) {
        this(temperature, topK, topP, seed, maxTokens, ignoreEos, stopTokens, minTokens, logprobs, 0, 0, 1);
    }

    public SamplingParams(double temperature, int topK, double topP, Long seed, int maxTokens, boolean ignoreEos, Set<Integer> stopTokens) {
        this(temperature, topK, topP, seed, maxTokens, ignoreEos, stopTokens, 0, 0);
    }

    public SamplingParams {
        if (minTokens < 0 || minTokens > maxTokens) {
            throw new FloraException("min tokens must be in [0, max tokens], got " + minTokens);
        }
        if (logprobs < 0 || logprobs > MAX_LOGPROBS) {
            throw new FloraException("logprobs must be in [0, " + MAX_LOGPROBS + "], got " + logprobs);
        }
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new FloraException("temperature must be a finite number >= 0, got " + temperature);
        }
        if (topK < 0) {
            throw new FloraException("top-k must be >= 0 (0: no limit), got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new FloraException("top-p must be in (0, 1], got " + topP);
        }
        if (maxTokens < 0) {
            throw new FloraException("max tokens must be >= 0, got " + maxTokens);
        }
        if (!(presencePenalty >= -2 && presencePenalty <= 2)) {
            throw new FloraException("presence penalty must be in [-2, 2], got " + presencePenalty);
        }
        if (!(frequencyPenalty >= -2 && frequencyPenalty <= 2)) {
            throw new FloraException("frequency penalty must be in [-2, 2], got " + frequencyPenalty);
        }
        if (!(repetitionPenalty > 0) || Double.isInfinite(repetitionPenalty)) {
            throw new FloraException("repetition penalty must be a finite number > 0, got " + repetitionPenalty);
        }
        stopTokens = Set.copyOf(stopTokens);
    }

    public static SamplingParams greedy(int maxTokens, boolean ignoreEos) {
        return new SamplingParams(0, 0, 1, null, maxTokens, ignoreEos, Set.of());
    }

    public boolean isGreedy() {
        return temperature == 0;
    }

    public boolean hasPenalties() {
        return presencePenalty != 0 || frequencyPenalty != 0 || repetitionPenalty != 1;
    }

    /** The same parameters with another seed (vLLM gives the i-th of n sequences seed + i). */
    public SamplingParams withSeed(Long newSeed) {
        return new SamplingParams(temperature, topK, topP, newSeed, maxTokens, ignoreEos, stopTokens, minTokens, logprobs, presencePenalty,
                frequencyPenalty, repetitionPenalty);
    }
}
