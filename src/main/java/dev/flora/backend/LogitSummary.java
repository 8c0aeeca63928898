package dev.flora.backend;

/**
 * What sampling needs of each row of a step's logits when it needs no more: the largest logit's
 * index (the first on ties, as torch.argmax), its value, and log Σ exp over the row (in double).
 * Greedy decoding reads only these, so a GPU backend returns them instead of copying every row.
 */
public record LogitSummary(int[] argmax, float[] max, double[] logSumExp) {

    /** The summary of rows of logits on the host: max first, then the sum of exp(x − max) in order. */
    public static LogitSummary ofHost(float[] logits, int rows, int vocab) {
        int[] argmax = new int[rows];
        float[] max = new float[rows];
        double[] lse = new double[rows];
        for (int r = 0; r < rows; r++) {
            int offset = r * vocab;
            int best = 0;
            float top = logits[offset];
            float m = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < vocab; i++) {
                float x = logits[offset + i];
                if (x > top) {
                    top = x;
                    best = i;
                }
                m = Math.max(m, x);
            }
            double sum = 0;
            for (int i = 0; i < vocab; i++) {
                sum += StrictMath.exp((double) logits[offset + i] - m);
            }
            argmax[r] = best;
            max[r] = top;
            lse[r] = m + StrictMath.log(sum);
        }
        return new LogitSummary(argmax, max, lse);
    }
}
