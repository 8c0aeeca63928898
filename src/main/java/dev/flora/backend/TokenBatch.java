package dev.flora.backend;

/**
 * One forward step: T tokens flattened across sequences (prefill chunks and decode tokens
 * together). Token t belongs to sequence {@code seqOfToken[t]} at {@code positions[t]}, uses
 * adapter {@code adapterSlots[t]} (-1: none) and writes its keys and values to KV-cache slot
 * {@code cacheSlots[t]}. Sequence s attends through {@code blockTables[s]} over its first
 * {@code contextLengths[s]} positions (those of earlier steps and of this one). A token's
 * result depends only on its own sequence, never on the rest of the batch.
 *
 * @param logitRows the tokens whose final hidden states the step returns, in order
 */
public record TokenBatch(
        int[] tokens,
        int[] positions,
        int[] seqOfToken,
        int[] adapterSlots,
        int[] cacheSlots,
        int[][] blockTables,
        int[] contextLengths,
        int blockSize,
        int[] logitRows) {

    public int numTokens() {
        return tokens.length;
    }

    public int numSequences() {
        return blockTables.length;
    }
}
