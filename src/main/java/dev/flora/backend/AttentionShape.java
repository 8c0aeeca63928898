package dev.flora.backend;

/**
 * Geometry of one attention layer. Query head h reads KV head {@code h / (heads / kvHeads)}
 * (grouped-query attention, as transformers' repeat_kv). {@code slidingWindow} > 0 lets a query at
 * position p see only keys at positions &gt; p - slidingWindow (transformers' sliding mask).
 */
public record AttentionShape(int heads, int kvHeads, int headDim, float scale, int slidingWindow) {
    public AttentionShape {
        if (heads <= 0 || kvHeads <= 0 || headDim <= 0 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("bad attention shape: heads " + heads + ", kv heads " + kvHeads + ", head dim " + headDim);
        }
    }

    public int queryWidth() {
        return heads * headDim;
    }

    public int kvWidth() {
        return kvHeads * headDim;
    }
}
