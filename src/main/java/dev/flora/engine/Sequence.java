package dev.flora.engine;

import dev.flora.adapter.AdapterVersion;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/** A request in flight: its tokens, how many of them the KV cache holds, and its blocks. */
final class Sequence {
    enum State { WAITING, RUNNING, FINISHED }

    final Request request;
    final SplittableRandom random;
    private int[] tokens;
    private int length;
    final double[] promptLogprobs;
    /** Most likely tokens at each prompt position (when logprobs were asked for). */
    final TopLogprobs[] promptTop;
    private TopLogprobs[] generatedTop = new TopLogprobs[8];
    private double[] generatedLogprobs = new double[8];
    /** Tokens whose keys and values are in the cache. */
    int computed;
    int[] blockTable = new int[0];
    /** Adapter slot of each of the request's ranges once admitted (-1: base model). */
    int[] rangeSlots = new int[0];
    /**
     * The adapter version of each range (null: base model), fixed when it is first admitted: after a
     * preemption it is recomputed with the same versions, even if its names were loaded again since.
     */
    List<AdapterVersion> rangeVersions;
    State state = State.WAITING;
    FinishReason finishReason;
    /** How often each token was generated so far (for presence and frequency penalties). */
    final java.util.Map<Integer, Integer> outputCounts = new java.util.HashMap<>();
    private java.util.BitSet promptTokens;

    Sequence(Request request) {
        this.request = request;
        this.tokens = Arrays.copyOf(request.prompt(), request.prompt().length + 16);
        this.length = request.prompt().length;
        Long seed = request.sampling().seed();
        this.random = seed == null ? new SplittableRandom() : new SplittableRandom(seed);
        if (request.promptLogprobs()) {
            promptLogprobs = new double[request.prompt().length];
            promptLogprobs[0] = Double.NaN;
            promptTop = request.sampling().logprobs() > 0 ? new TopLogprobs[request.prompt().length] : null;
        } else {
            promptLogprobs = null;
            promptTop = null;
        }
    }

    int promptLength() {
        return request.prompt().length;
    }

    int length() {
        return length;
    }

    int token(int position) {
        return tokens[position];
    }

    /** The adapter slot of a position: the last range starting at or before it (generated tokens: the last range). */
    int slotAt(int position) {
        var ranges = request.adapters();
        int slot = -1;
        for (int i = 0; i < ranges.size() && ranges.get(i).from() <= position; i++) {
            slot = rangeSlots[i];
        }
        return slot;
    }

    int generatedCount() {
        return length - promptLength();
    }

    boolean inPrefill() {
        return computed < promptLength();
    }

    void append(int token, double logprob, TopLogprobs top) {
        if (length == tokens.length) {
            tokens = Arrays.copyOf(tokens, tokens.length * 2);
        }
        int g = generatedCount();
        if (g == generatedLogprobs.length) {
            generatedLogprobs = Arrays.copyOf(generatedLogprobs, g * 2);
            generatedTop = Arrays.copyOf(generatedTop, g * 2);
        }
        generatedLogprobs[g] = logprob;
        generatedTop[g] = top;
        tokens[length++] = token;
        outputCounts.merge(token, 1, Integer::sum);
    }

    /** The distinct tokens of the prompt (for the repetition penalty), computed once. */
    java.util.BitSet promptTokens() {
        if (promptTokens == null) {
            promptTokens = new java.util.BitSet();
            for (int t : request.prompt()) {
                promptTokens.set(t);
            }
        }
        return promptTokens;
    }

    Result result() {
        return new Result(request.id(), request.prompt(), promptLogprobs,
                Arrays.copyOfRange(tokens, promptLength(), length),
                Arrays.copyOf(generatedLogprobs, generatedCount()), finishReason,
                promptTop, request.sampling().logprobs() > 0 ? Arrays.copyOf(generatedTop, generatedCount()) : null);
    }
}
