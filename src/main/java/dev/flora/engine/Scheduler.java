package dev.flora.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * Decides what each step computes, within a token budget: first one token for every running
 * sequence that is decoding, then prompt chunks (a long prompt is prefilled over several steps),
 * then new sequences, first come first served. A sequence is admitted only when the cache can
 * hold all the positions it may reach, so no running sequence ever waits for blocks.
 */
final class Scheduler {
    /** A sequence's share of one step: tokens [start, start + count) of it. */
    record Chunk(Sequence seq, int start, int count) {
    }

    private final BlockManager blocks;
    private final int maxBatchedTokens;
    private final int maxSequences;
    private final int maxContext;
    final ArrayDeque<Sequence> waiting = new ArrayDeque<>();
    final List<Sequence> running = new ArrayList<>();

    Scheduler(BlockManager blocks, int maxBatchedTokens, int maxSequences, int maxContext) {
        this.blocks = blocks;
        this.maxBatchedTokens = maxBatchedTokens;
        this.maxSequences = maxSequences;
        this.maxContext = maxContext;
    }

    /** The most positions a sequence can reach: its prompt plus every token it may generate, capped by the context. */
    int reservation(Sequence seq) {
        return Math.min(maxContext, seq.promptLength() + Math.max(0, seq.request.sampling().maxTokens() - 1));
    }

    boolean hasWork() {
        return !waiting.isEmpty() || !running.isEmpty();
    }

    List<Chunk> schedule() {
        List<Chunk> chunks = new ArrayList<>();
        int budget = maxBatchedTokens;
        for (Sequence seq : running) {
            if (budget == 0) {
                break;
            }
            int pending = seq.length() - seq.computed;
            int count = Math.min(pending, budget);
            if (count > 0) {
                chunks.add(new Chunk(seq, seq.computed, count));
                budget -= count;
            }
        }
        Iterator<Sequence> it = waiting.iterator();
        while (budget > 0 && running.size() < maxSequences && it.hasNext()) {
            Sequence seq = it.next();
            if (!blocks.ensureCapacity(seq, reservation(seq))) {
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

    void finish(Sequence seq) {
        seq.state = Sequence.State.FINISHED;
        running.remove(seq);
        blocks.release(seq);
    }
}
