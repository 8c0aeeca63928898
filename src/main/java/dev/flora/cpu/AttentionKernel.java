package dev.flora.cpu;

import dev.flora.backend.AttentionShape;
import dev.flora.backend.TokenBatch;

/**
 * Causal attention through the paged KV cache. A query at position p reads the keys and values of
 * its own sequence at positions [max(0, p - window + 1), p], in position order, through the
 * sequence's block table; so chunking a prompt or batching it with others changes nothing.
 */
final class AttentionKernel {
    private AttentionKernel() {
    }

    /** Copies this step's keys and values into their cache slots; a negative slot (a recorded step's padding) takes none. */
    static void writeCache(CpuTensor k, CpuTensor v, float[] cacheK, float[] cacheV, int[] slots, int kvWidth) {
        for (int t = 0; t < slots.length; t++) {
            if (slots[t] < 0) {
                continue;
            }
            System.arraycopy(k.array, k.offset + t * kvWidth, cacheK, slots[t] * kvWidth, kvWidth);
            System.arraycopy(v.array, v.offset + t * kvWidth, cacheV, slots[t] * kvWidth, kvWidth);
        }
    }

    static void attend(Kernels kernels, CpuTensor q, float[] cacheK, float[] cacheV, AttentionShape shape, TokenBatch batch, CpuTensor out) {
        int heads = shape.heads();
        int headDim = shape.headDim();
        int group = heads / shape.kvHeads();
        int qWidth = shape.queryWidth();
        int kvWidth = shape.kvWidth();
        int blockSize = batch.blockSize();
        int[] positions = batch.positions();
        long averageContext = positions.length == 0 ? 1 : 1 + positions[positions.length - 1] / 2;
        RowOps.forEach(batch.numTokens() * heads, 2 * headDim * averageContext, job -> {
            int t = job / heads;
            int h = job % heads;
            int kvh = h / group;
            int pos = positions[t];
            int[] table = batch.blockTables()[batch.seqOfToken()[t]];
            int first = shape.slidingWindow() > 0 ? Math.max(0, pos - shape.slidingWindow() + 1) : 0;
            int n = pos - first + 1;
            int qOff = q.offset + t * qWidth + h * headDim;
            float[] scores = new float[n];
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                int p = first + j;
                int slot = table[p / blockSize] * blockSize + p % blockSize;
                float s = kernels.dot(q.array, qOff, cacheK, slot * kvWidth + kvh * headDim, headDim) * shape.scale();
                scores[j] = s;
                max = Math.max(max, s);
            }
            float sum = 0;
            for (int j = 0; j < n; j++) {
                scores[j] = (float) Exp.exp(scores[j] - max);
                sum += scores[j];
            }
            float[] acc = new float[headDim];
            for (int j = 0; j < n; j++) {
                int p = first + j;
                int slot = table[p / blockSize] * blockSize + p % blockSize;
                int vOff = slot * kvWidth + kvh * headDim;
                kernels.axpy(scores[j] / sum, cacheV, vOff, acc, 0, headDim);
            }
            System.arraycopy(acc, 0, out.array, out.offset + t * qWidth + h * headDim, headDim);
        });
    }
}
