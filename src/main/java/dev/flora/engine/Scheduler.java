package dev.flora.engine;

import dev.flora.FloraException;
import dev.flora.adapter.AdapterRange;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.adapter.AdapterVersion;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Decides what each step computes, within a token budget: first the running sequences (one token
 * for each decoding sequence, chunks of the prompts being prefilled), then new sequences, first
 * come first served. Blocks are taken as positions are computed; when the cache runs out, the
 * latest admitted sequence is preempted and recomputed later (never a crash, never a lost request).
 */
final class Scheduler {
    /** A sequence's share of one step: tokens [start, start + count) of it. */
    record Chunk(Sequence seq, int start, int count) {
    }

    private final BlockManager blocks;
    private final AdapterRegistry adapters;
    private final int maxBatchedTokens;
    private final int maxSequences;
    private final int maxContext;
    private final boolean separatePrefillDecode;
    final ArrayDeque<Sequence> waiting = new ArrayDeque<>();
    /** Sequences dropped at admission since the last step, with why (the engine reports them). */
    final List<Refusal> refused = new ArrayList<>();

    record Refusal(Sequence seq, FloraException reason) {
    }
    final List<Sequence> running = new ArrayList<>();
    /** The last schedule admitted nobody else because an adapter was being read from disk. */
    boolean awaitingAdapters;

    Scheduler(BlockManager blocks, AdapterRegistry adapters, int maxBatchedTokens, int maxSequences, int maxContext,
              boolean separatePrefillDecode) {
        this.separatePrefillDecode = separatePrefillDecode;
        this.blocks = blocks;
        this.adapters = adapters;
        this.maxBatchedTokens = maxBatchedTokens;
        this.maxSequences = maxSequences;
        this.maxContext = maxContext;
    }

    /** The most positions a sequence can reach: its prompt plus every token it may generate, capped by the context. */
    int reservation(Sequence seq) {
        return reservation(seq.request);
    }

    int reservation(Request request) {
        return Math.min(maxContext, request.prompt().length + Math.max(0, request.sampling().maxTokens() - 1));
    }

    boolean hasWork() {
        return !waiting.isEmpty() || !running.isEmpty();
    }

    List<Chunk> schedule() {
        awaitingAdapters = false;
        if (!separatePrefillDecode) {
            return schedule(true, true);
        }
        // vLLM 0.1.3's way, the fLoRA paper's baseline: a step is all prompts or all decodes, prompts first.
        List<Chunk> prefill = schedule(false, true);
        return prefill.isEmpty() ? schedule(true, false) : prefill;
    }

    private List<Chunk> schedule(boolean decode, boolean prefill) {
        List<Chunk> chunks = new ArrayList<>();
        int budget = maxBatchedTokens;
        for (Sequence seq : new ArrayList<>(running)) {
            if (budget == 0) {
                break;
            }
            if (seq.state != Sequence.State.RUNNING || (seq.inPrefill() ? !prefill : !decode)) {
                continue;
            }
            int pending = seq.length() - seq.computed;
            int count = Math.min(pending, budget);
            if (count > 0 && makeRoom(seq, seq.computed + count)) {
                chunks.add(new Chunk(seq, seq.computed, count));
                budget -= count;
            }
        }
        if (!prefill) {
            return chunks;
        }
        int window = admissionWindow();
        Iterator<Sequence> it = waiting.iterator();
        for (int examined = 0; budget > 0 && running.size() < maxSequences && examined < window && it.hasNext(); examined++) {
            Sequence seq = it.next();
            List<AdapterVersion> versions;
            int acquired;
            try {
                versions = versionsOf(seq);
                acquired = acquireAdapters(seq, versions);
            } catch (FloraException e) {
                // Its adapter was unloaded before it started, or cannot be read again: this request fails, the others go on.
                it.remove();
                refuse(seq, e);
                continue;
            }
            if (acquired == AdapterRegistry.NOT_IN_HOST) {
                awaitingAdapters = true;
                continue; // read from disk in the background meanwhile; those behind it whose adapters are at hand go first
            }
            if (acquired == AdapterRegistry.NO_SLOT) {
                break; // every adapter slot is held by running sequences: wait for one to finish
            }
            if (!blocks.ensureCapacity(seq, seq.length())) {
                releaseAdapters(seq);
                break; // first come, first served: nobody overtakes the head of the queue
            }
            it.remove();
            seq.rangeVersions = versions; // from now on it uses these versions, whatever is loaded under their names
            seq.state = Sequence.State.RUNNING;
            running.add(seq);
            int count = Math.min(seq.length(), budget);
            chunks.add(new Chunk(seq, 0, count));
            budget -= count;
        }
        return chunks;
    }

    /**
     * How many sequences at the head of the queue may be admitted now. With a cap on host memory, the
     * longest prefix (up to the most sequences that may run) whose adapters fit in host memory beside
     * the resident ones: those adapters are kept there, and the ones on disk are read in the
     * background, in queue order. Sequences whose adapter is gone fail here, each alone.
     */
    private int admissionWindow() {
        int room = adapters.hostRoom();
        if (room == AdapterRegistry.UNLIMITED) {
            return Integer.MAX_VALUE;
        }
        Set<AdapterVersion> wanted = new LinkedHashSet<>();
        int window = 0;
        for (Iterator<Sequence> it = waiting.iterator(); window < maxSequences && it.hasNext(); ) {
            Sequence seq = it.next();
            List<AdapterVersion> versions;
            try {
                versions = versionsOf(seq);
            } catch (FloraException e) {
                it.remove();
                refuse(seq, e);
                continue;
            }
            Set<AdapterVersion> needed = new LinkedHashSet<>();
            for (AdapterVersion v : versions) {
                if (v != null && !wanted.contains(v) && adapters.needsHostRoom(v)) {
                    needed.add(v);
                }
            }
            if (wanted.size() + needed.size() > room) {
                break;
            }
            wanted.addAll(needed);
            window++;
        }
        adapters.want(wanted);
        return window;
    }

    /**
     * The adapter version of each of a sequence's ranges (null: the base model): those it started
     * with, or before it starts the ones registered now. Throws when a name is no longer registered
     * or the last attempt to read a version from disk failed.
     */
    private List<AdapterVersion> versionsOf(Sequence seq) {
        List<AdapterVersion> versions = seq.rangeVersions;
        if (versions == null) {
            versions = new ArrayList<>();
            for (AdapterRange r : seq.request.adapters()) {
                versions.add(r.name() == null ? null : adapters.current(r.name()));
            }
        }
        for (AdapterVersion v : versions) {
            FloraException failure = v == null ? null : adapters.takeFailure(v);
            if (failure != null) {
                throw failure;
            }
        }
        return versions;
    }

    private void refuse(Sequence seq, FloraException reason) {
        seq.state = Sequence.State.FINISHED;
        refused.add(new Refusal(seq, reason));
    }

    /**
     * Blocks for a running sequence's next positions. When the cache is full, the latest admitted
     * sequence is preempted: its blocks and adapter slots are freed and it goes back to the front of
     * the queue, to recompute its tokens (prompt and generated so far, with their adapter map) when
     * it is admitted again. False only if the sequence preempted itself.
     */
    private boolean makeRoom(Sequence seq, int positions) {
        while (!blocks.ensureCapacity(seq, positions)) {
            Sequence victim = running.getLast();
            preempt(victim);
            if (victim == seq) {
                return false;
            }
        }
        return true;
    }

    private void preempt(Sequence seq) {
        running.remove(seq);
        blocks.release(seq);
        releaseAdapters(seq);
        seq.computed = 0;
        seq.state = Sequence.State.WAITING;
        waiting.addFirst(seq);
        preemptions++;
    }

    long preemptions;

    void finish(Sequence seq) {
        seq.state = Sequence.State.FINISHED;
        running.remove(seq);
        blocks.release(seq);
        releaseAdapters(seq);
    }

    /** Takes a resident slot for each range's adapter version; all or nothing: 0, or why not (NO_SLOT, NOT_IN_HOST). */
    private int acquireAdapters(Sequence seq, List<AdapterVersion> versions) {
        int[] slots = new int[versions.size()];
        for (int i = 0; i < slots.length; i++) {
            AdapterVersion v = versions.get(i);
            slots[i] = v == null ? -1 : adapters.acquire(v);
            if (v != null && slots[i] < 0) {
                for (int j = 0; j < i; j++) {
                    if (slots[j] >= 0) {
                        adapters.release(slots[j]);
                    }
                }
                return slots[i];
            }
        }
        seq.rangeSlots = slots;
        return 0;
    }

    private void releaseAdapters(Sequence seq) {
        for (int slot : seq.rangeSlots) {
            if (slot >= 0) {
                adapters.release(slot);
            }
        }
        seq.rangeSlots = new int[0];
    }
}
