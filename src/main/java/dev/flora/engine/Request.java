package dev.flora.engine;

import dev.flora.adapter.AdapterRange;

import java.util.List;

/**
 * One sequence to run: a tokenised prompt and how to continue it.
 *
 * @param promptLogprobs also score every prompt token given the ones before it
 * @param adapters       which adapter each token uses, by prompt position (empty: the base model)
 * @param stopAfter      asked after each generated token (after the listener heard it): end now? (stop
 *                       strings live in text, outside the engine); null: never
 */
public record Request(String id, int[] prompt, SamplingParams sampling, boolean promptLogprobs, List<AdapterRange> adapters,
                      java.util.function.IntPredicate stopAfter) {
    public Request {
        adapters = List.copyOf(adapters);
    }

    public Request(String id, int[] prompt, SamplingParams sampling, boolean promptLogprobs, List<AdapterRange> adapters) {
        this(id, prompt, sampling, promptLogprobs, adapters, null);
    }

    /** This request, also ending when {@code stop} says so after a token. */
    public Request withStop(java.util.function.IntPredicate stop) {
        return new Request(id, prompt, sampling, promptLogprobs, adapters, stop);
    }

    /** A request on the base model. */
    public Request(String id, int[] prompt, SamplingParams sampling, boolean promptLogprobs) {
        this(id, prompt, sampling, promptLogprobs, List.of());
    }

    /** A request whose every token uses one adapter (null: the base model). */
    public static Request withAdapter(String id, int[] prompt, SamplingParams sampling, boolean promptLogprobs, String adapter) {
        return new Request(id, prompt, sampling, promptLogprobs, adapter == null ? List.of() : List.of(new AdapterRange(0, adapter)));
    }
}
