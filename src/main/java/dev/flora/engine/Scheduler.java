package dev.flora.engine;

import dev.flora.FloraException;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

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
    private final dev.flora.adapter.AdapterRegistry adapters;
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

    Scheduler(BlockManager blocks, dev.flora.adapter.AdapterRegistry adapters, int maxBatchedTokens, int maxSequences, int maxContext,
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
        Iterator<Sequence> it = waiting.iterator();
        while (prefill && budget > 0 && running.size() < maxSequences && it.hasNext()) {
            Sequence seq = it.next();
            boolean acquired;
            try {
                acquired = acquireAdapters(seq);
            } catch (FloraException e) {
                // Its adapter was unloaded while it waited: this request fails, the others go on.
                it.remove();
                seq.state = Sequence.State.FINISHED;
                refused.add(new Refusal(seq, e));
                continue;
            }
            if (!acquired) {
                break; // every adapter slot is held by running sequences: wait for one to finish
            }
            if (!blocks.ensureCapacity(seq, seq.length())) {
                releaseAdapters(seq);
                break; // first come, first served: nobody overtakes the head of the queue
            }
            it.remove();
            seq.state = Sequence.State.RUNNING;
            running.add(seq);
            int count = Math.min(seq.length(), budget);
            chunks.add(new Chunk(seq, 0, count));
            budget -= count;
        }
        return chunks;
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

    /** Takes a resident slot for each adapter the sequence names; all or nothing. */
    private boolean acquireAdapters(Sequence seq) {
        var ranges = seq.request.adapters();
        int[] slots = new int[ranges.size()];
        for (int i = 0; i < slots.length; i++) {
            String name = ranges.get(i).name();
            slots[i] = name == null ? -1 : adapters.acquire(name);
            if (name != null && slots[i] < 0) {
                for (int j = 0; j < i; j++) {
                    if (slots[j] >= 0) {
                        adapters.release(slots[j]);
                    }
                }
                return false;
            }
        }
        seq.rangeSlots = slots;
        return true;
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
