package dev.flora.engine;

import dev.flora.adapter.AdapterSlots;
import dev.flora.backend.KvCache;
import dev.flora.backend.StepRecorder;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.model.CausalLM;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Decode steps replayed from recordings (CUDA graphs) where the backend records: a step of n
 * sequences, one token each, is padded to the next recorded size and replayed, logits included.
 * Padding tokens write no cache slot, take no adapter, and their rows are never read. A step with
 * adapters goes to the recorder's replayAdapted, which replays only a recording of the very same
 * work (else the step runs directly).
 */
final class DecodeGraphs {
    /** Recorded sizes: small steps exactly, larger ones within 12.5–33% of padding. */
    private static final int[] SIZES = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256};

    private final CausalLM model;
    private final KvCache cache;
    private final AdapterSlots adapters;
    private final StepRecorder recorder;
    private final int maxBlocks;
    private final Map<Integer, StepRecorder.Recording> recordings = new HashMap<>();

    private DecodeGraphs(CausalLM model, KvCache cache, AdapterSlots adapters, StepRecorder recorder, int maxBlocks) {
        this.model = model;
        this.cache = cache;
        this.adapters = adapters;
        this.recorder = recorder;
        this.maxBlocks = maxBlocks;
    }

    /**
     * Replays for this engine, or null where the backend records nothing or it is turned off (the
     * engine's config, or -Dflora.stepGraphs=false: a diagnostic, to time steps launched directly).
     */
    static DecodeGraphs of(CausalLM model, KvCache cache, AdapterSlots adapters, int maxBlocks, boolean enabled) {
        StepRecorder recorder = model.backend().stepRecorder();
        boolean allowed = !"false".equals(System.getProperty("flora.stepGraphs"));
        return enabled && allowed && recorder != null ? new DecodeGraphs(model, cache, adapters, recorder, maxBlocks) : null;
    }

    /** The step's logits [numTokens, vocab] (rows of a larger tensor), or null when the step is not one to replay. */
    Tensor logits(TokenBatch batch) {
        int n = batch.numTokens();
        int size = sizeFor(n);
        if (size == 0 || batch.numSequences() != n || batch.logitRows().length != n) {
            return null;
        }
        boolean adapted = false;
        for (int t = 0; t < n; t++) {
            if (batch.logitRows()[t] != t || batch.seqOfToken()[t] != t || batch.blockTables()[t].length > maxBlocks) {
                return null;
            }
            adapted |= batch.adapterSlots()[t] >= 0;
        }
        TokenBatch padded = padded(batch, size);
        if (adapted) {
            Tensor logits = recorder.replayAdapted(padded, maxBlocks, adapterWork(padded),
                    b -> model.logits(model.forward(b, cache, adapters)));
            return logits == null ? null : model.backend().rows(logits, 0, n);
        }
        StepRecorder.Recording recording = recordings.computeIfAbsent(size,
                s -> recorder.record(padded, maxBlocks, b -> model.logits(model.forward(b, cache, adapters))));
        return model.backend().rows(recording.replay(padded), 0, n);
    }

    /**
     * What decides a padded step's adapter work besides its shape: each token's slot and the adapter
     * in it (by identity: a reloaded adapter is another object, in other memory), and how adapters
     * are computed (the strategy, the cost model by identity); null where that cannot be told.
     */
    private List<Object> adapterWork(TokenBatch padded) {
        List<Object> key = new ArrayList<>(padded.numTokens() + 2);
        key.add(adapters.strategy());
        key.add(new Identity(adapters.costModel()));
        for (int slot : padded.adapterSlots()) {
            Object adapter = slot >= 0 ? adapters.adapter(slot) : null;
            if (slot >= 0 && adapter == null) {
                return null; // slots that do not name their adapters: every step is compared by its work
            }
            key.add(slot);
            key.add(new Identity(adapter));
        }
        return key;
    }

    /** Equal when the very same object (or both null). */
    private record Identity(Object of) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Identity i && i.of == of;
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(of);
        }
    }

    /**
     * Records now every size a step of up to {@code sequences} tokens pads to (vLLM captures its graphs
     * at start-up too), on steps of padding only, which write no cache slot; returns how many were new.
     */
    int recordUpTo(int sequences) {
        int last = sizeFor(Math.max(1, sequences));
        int made = 0;
        TokenBatch none = new TokenBatch(new int[0], new int[0], new int[0], new int[0], new int[0], new int[0][], new int[0],
                cache.blockSize(), new int[0]);
        for (int size : SIZES) {
            if (size > last && last != 0) {
                break;
            }
            if (!recordings.containsKey(size)) {
                TokenBatch padded = padded(none, size);
                recordings.put(size, recorder.record(padded, maxBlocks, b -> model.logits(model.forward(b, cache, adapters))));
                made++;
            }
        }
        return made;
    }

    private static int sizeFor(int n) {
        for (int s : SIZES) {
            if (s >= n) {
                return s;
            }
        }
        return 0;
    }

    /** The batch with padding tokens up to size: each its own sequence at position 0, writing no slot. */
    static TokenBatch padded(TokenBatch batch, int size) {
        int n = batch.numTokens();
        int[] tokens = java.util.Arrays.copyOf(batch.tokens(), size);
        int[] positions = java.util.Arrays.copyOf(batch.positions(), size);
        int[] seqOf = new int[size];
        int[] adapterSlots = new int[size];
        int[] slots = new int[size];
        int[][] tables = new int[size][];
        int[] contexts = new int[size];
        int[] logitRows = new int[size];
        for (int t = 0; t < size; t++) {
            seqOf[t] = t;
            logitRows[t] = t;
            boolean real = t < n;
            adapterSlots[t] = real ? batch.adapterSlots()[t] : -1;
            slots[t] = real ? batch.cacheSlots()[t] : -1;
            tables[t] = real ? batch.blockTables()[t] : new int[] {0};
            contexts[t] = real ? batch.contextLengths()[t] : 1;
        }
        return new TokenBatch(tokens, positions, seqOf, adapterSlots, slots, tables, contexts, batch.blockSize(), logitRows);
    }
}
