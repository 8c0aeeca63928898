package dev.flora.engine;

/** The k most likely tokens at one step, by descending log-probability under the raw distribution (ties: lower id first). */
public record TopLogprobs(int[] ids, double[] logprobs) {
    static TopLogprobs of(float[] logits, int offset, int n, double logSumExp, int k) {
        int[] ids = new int[k];
        float[] best = new float[k];
        java.util.Arrays.fill(best, Float.NEGATIVE_INFINITY);
        java.util.Arrays.fill(ids, -1);
        for (int i = 0; i < n; i++) {
            float v = logits[offset + i];
            if (v > best[k - 1] || ids[k - 1] < 0) {
                int j = k - 1;
                while (j > 0 && (v > best[j - 1] || ids[j - 1] < 0)) {
                    best[j] = best[j - 1];
                    ids[j] = ids[j - 1];
                    j--;
                }
                best[j] = v;
                ids[j] = i;
            }
        }
        double[] lp = new double[k];
        for (int j = 0; j < k; j++) {
            lp[j] = best[j] - logSumExp;
        }
        return new TopLogprobs(ids, lp);
    }
}
