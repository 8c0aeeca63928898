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
 */
public record SamplingParams(double temperature, int topK, double topP, Long seed, int maxTokens, boolean ignoreEos,
                             Set<Integer> stopTokens, int minTokens, int logprobs) {
    public static final int MAX_LOGPROBS = 20;

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
        stopTokens = Set.copyOf(stopTokens);
    }

    public static SamplingParams greedy(int maxTokens, boolean ignoreEos) {
        return new SamplingParams(0, 0, 1, null, maxTokens, ignoreEos, Set.of());
    }

    public boolean isGreedy() {
        return temperature == 0;
    }
}
