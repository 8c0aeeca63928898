package dev.flora.model;

import dev.flora.adapter.AdapterSlots;
import dev.flora.backend.Backend;
import dev.flora.backend.KvCache;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;

/** A decoder-only language model, written once against {@link Backend}. */
public interface CausalLM {
    Backend backend();

    ModelSpec spec();

    /**
     * Runs one flattened step: writes every token's keys and values to the cache and returns the
     * final hidden states (after the last norm) of {@link TokenBatch#logitRows()}, in order. Each
     * token's adapted layers use the adapter in its slot ({@link TokenBatch#adapterSlots()}).
     */
    Tensor forward(TokenBatch batch, KvCache cache, AdapterSlots adapters);

    /** The linear layers adapters may target, by module name as transformers names them. */
    java.util.Map<String, Linear> linears();

    /** Logits [rows, vocab] for final hidden states. */
    Tensor logits(Tensor hidden);
}
