package dev.flora.engine;

/**
 * @param blockSize        positions per KV-cache block
 * @param maxBatchedTokens token budget of one step (prefill chunks and decode tokens together)
 * @param maxSequences     most sequences running at once
 * @param kvCacheBytes     memory for the KV cache; the engine takes no more than its sequences can use
 * @param separatePrefillDecode steps of prompts only or decodes only, prompts first (vLLM 0.1.3, the
 *                         fLoRA paper's baseline), instead of mixing them
 * @param stepGraphs       replay decode steps from recordings (CUDA graphs) where the backend records
 */
public record EngineConfig(int blockSize, int maxBatchedTokens, int maxSequences, long kvCacheBytes, boolean separatePrefillDecode,
                           boolean stepGraphs) {
    public static final EngineConfig DEFAULT = new EngineConfig(16, 8192, 256, 1L << 30, false, true);

    public EngineConfig(int blockSize, int maxBatchedTokens, int maxSequences, long kvCacheBytes, boolean separatePrefillDecode) {
        this(blockSize, maxBatchedTokens, maxSequences, kvCacheBytes, separatePrefillDecode, true);
    }

    public EngineConfig {
        if (blockSize <= 0 || maxBatchedTokens <= 0 || maxSequences <= 0 || kvCacheBytes <= 0) {
            throw new IllegalArgumentException("engine sizes must be positive");
        }
    }

    public EngineConfig withMaxBatchedTokens(int tokens) {
        return new EngineConfig(blockSize, tokens, maxSequences, kvCacheBytes, separatePrefillDecode, stepGraphs);
    }

    public EngineConfig withMaxSequences(int sequences) {
        return new EngineConfig(blockSize, maxBatchedTokens, sequences, kvCacheBytes, separatePrefillDecode, stepGraphs);
    }

    public EngineConfig withKvCacheBytes(long bytes) {
        return new EngineConfig(blockSize, maxBatchedTokens, maxSequences, bytes, separatePrefillDecode, stepGraphs);
    }

    public EngineConfig withSeparatePrefillDecode(boolean separate) {
        return new EngineConfig(blockSize, maxBatchedTokens, maxSequences, kvCacheBytes, separate, stepGraphs);
    }

    public EngineConfig withStepGraphs(boolean graphs) {
        return new EngineConfig(blockSize, maxBatchedTokens, maxSequences, kvCacheBytes, separatePrefillDecode, graphs);
    }
}
