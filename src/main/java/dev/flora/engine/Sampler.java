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

    static int sample(float[] logits, int offset, int n, SamplingParams p, SplittableRandom random) {
        if (p.isGreedy()) {
            return argmax(logits, offset, n);
        }
        double[] scaled = new double[n];
        for (int i = 0; i < n; i++) {
            scaled[i] = logits[offset + i] / p.temperature();
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        // Highest first; ties by index so that a seed always gives the same draw.
        Arrays.sort(order, (a, b) -> {
            int c = Double.compare(scaled[b], scaled[a]);
            return c != 0 ? c : Integer.compare(a, b);
        });
        int keep = p.topK() > 0 ? Math.min(p.topK(), n) : n;
        double max = scaled[order[0]];
        double[] probs = new double[keep];
        double total = 0;
        for (int i = 0; i < keep; i++) {
            probs[i] = StrictMath.exp(scaled[order[i]] - max);
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
}
