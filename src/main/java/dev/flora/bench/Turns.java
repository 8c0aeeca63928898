package dev.flora.bench;

/**
 * The order in which n interleaved cases take their turns in cycle t: case (t + k·s_t) mod n at
 * position k, with the stride s_t coprime with n and changing from cycle to cycle, so that over
 * the cycles every case comes first, last and after every other about equally often (what a case
 * leaves in the caches, or a case running twice in a row, favours no one in particular).
 */
final class Turns {
    private Turns() {
    }

    /** The case at position k of cycle t. */
    static int of(int n, int t, int k) {
        int stride = stride(n, t / n);
        return (int) ((t + (long) k * stride) % n);
    }

    /** The i-th stride in [1, n) coprime with n, cyclically (1 when n is 1 or 2). */
    private static int stride(int n, int i) {
        int count = 0;
        for (int s = 1; s < n; s++) {
            if (gcd(s, n) == 1) {
                count++;
            }
        }
        if (count == 0) {
            return 1;
        }
        int want = i % count;
        for (int s = 1; s < n; s++) {
            if (gcd(s, n) == 1 && want-- == 0) {
                return s;
            }
        }
        return 1;
    }

    private static int gcd(int a, int b) {
        return b == 0 ? a : gcd(b, a % b);
    }
}
