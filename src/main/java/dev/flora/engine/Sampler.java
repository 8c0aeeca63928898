package dev.flora.engine;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from a row of logits: argmax at temperature 0, otherwise temperature,
 * then top-k, then top-p (the order of transformers' logits warpers), then a draw.
 */
final class Sampler {
    private Sampler() {
    }

    /** Index of the largest logit; the first one on ties, as torch.argmax. */
    static int argmax(float[] logits, int offset, int n) {
        int best = 0;
        float max = logits[offset];
        for (int i = 1; i < n; i++) {
            if (logits[offset + i] > max) {
                max = logits[offset + i];
                best = i;
            }
        }
        return best;
    }

    /**
     * A draw from the tempered softmax. With every token allowed (no top-k, top-p 1) the draw walks
     * the probabilities in index order: no ordering is needed to sample a categorical distribution,
     * so a row costs one pass. With top-k or top-p the candidates are ordered highest first, ties by
     * index (so that a seed always gives the same draw), by sorting primitive keys, the k largest
     * alone when k is small.
     */
    static int sample(float[] logits, int offset, int n, SamplingParams p, SplittableRandom random) {
        if (p.isGreedy()) {
            return argmax(logits, offset, n);
        }
        double t = p.temperature();
        if (p.topK() == 0 && p.topP() >= 1) {
            double max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < n; i++) {
                max = Math.max(max, logits[offset + i] / t);
            }
            double[] probs = new double[n];
            double total = 0;
            for (int i = 0; i < n; i++) {
                probs[i] = StrictMath.exp(logits[offset + i] / t - max);
                total += probs[i];
            }
            double u = random.nextDouble() * total;
            int last = 0;
            for (int i = 0; i < n; i++) {
                if (probs[i] > 0) {
                    last = i;
                    u -= probs[i];
                    if (u < 0) {
                        return i;
                    }
                }
            }
            return last; // rounding left u at zero: the last token that can be drawn
        }
        int keep = p.topK() > 0 ? Math.min(p.topK(), n) : n;
        int[] order = highestFirst(logits, offset, n, keep);
        double max = logits[offset + order[0]] / t;
        double[] probs = new double[keep];
        double total = 0;
        for (int i = 0; i < keep; i++) {
            probs[i] = StrictMath.exp(logits[offset + order[i]] / t - max);
            total += probs[i];
        }
        if (p.topP() < 1) {
            // Smallest prefix whose probability reaches top_p; always at least one token.
            double cumulative = 0;
            int cut = keep;
            for (int i = 0; i < keep; i++) {
                cumulative += probs[i] / total;
                if (cumulative >= p.topP()) {
                    cut = i + 1;
                    break;
                }
            }
            keep = cut;
            total = 0;
            for (int i = 0; i < keep; i++) {
                total += probs[i];
            }
        }
        double u = random.nextDouble() * total;
        for (int i = 0; i < keep; i++) {
            u -= probs[i];
            if (u < 0) {
                return order[i];
            }
        }
        return order[keep - 1];
    }

    /**
     * The indices of the {@code keep} largest logits, largest first, ties by index. Each logit and
     * its index make one long whose natural order is that order (a float's bits made monotonic,
     * inverted, above the index), so a primitive sort does it; dividing by a positive temperature
     * keeps the order. Few of many: a bounded heap of the largest keys first.
     */
    static int[] highestFirst(float[] logits, int offset, int n, int keep) {
        long[] keys;
        if (keep < n / 8) {
            // A max-heap on keys (the largest key is the least likely of the kept) of size keep.
            keys = new long[keep];
            int size = 0;
            for (int i = 0; i < n; i++) {
                long k = key(logits[offset + i], i);
                if (size < keep) {
                    keys[size] = k;
                    siftUp(keys, size++);
                } else if (k < keys[0]) {
                    keys[0] = k;
                    siftDown(keys, size);
                }
            }
        } else {
            keys = new long[n];
            for (int i = 0; i < n; i++) {
                keys[i] = key(logits[offset + i], i);
            }
        }
        Arrays.sort(keys);
        int[] order = new int[keep];
        for (int i = 0; i < keep; i++) {
            order[i] = (int) keys[i];
        }
        return order;
    }

    /** Larger logits give smaller keys; equal logits order by index. */
    static long key(float logit, int index) {
        int bits = Float.floatToRawIntBits(logit);
        int monotonic = bits ^ ((bits >> 31) & 0x7fffffff);
        return ((long) ~monotonic << 32) | (index & 0xffffffffL);
    }

    private static void siftUp(long[] heap, int i) {
        while (i > 0) {
            int parent = (i - 1) / 2;
            if (heap[parent] >= heap[i]) {
                return;
            }
            long x = heap[parent];
            heap[parent] = heap[i];
            heap[i] = x;
            i = parent;
        }
    }

    private static void siftDown(long[] heap, int size) {
        int i = 0;
        while (true) {
            int l = 2 * i + 1;
            int r = l + 1;
            int top = i;
            if (l < size && heap[l] > heap[top]) {
                top = l;
            }
            if (r < size && heap[r] > heap[top]) {
                top = r;
            }
            if (top == i) {
                return;
            }
            long x = heap[top];
            heap[top] = heap[i];
            heap[i] = x;
            i = top;
        }
    }
}
