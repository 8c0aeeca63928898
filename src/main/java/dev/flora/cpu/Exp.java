package dev.flora.cpu;

/**
 * e^x from additions and multiplications only, so it gives the same bits in the interpreter and in
 * every JIT tier (Math.exp may be an intrinsic whose last bit differs from the interpreted
 * version, which would make a token's result depend on how warm the JVM is). StrictMath.exp is
 * deterministic too but several times slower, and exp runs once per attention score and per
 * activation. Accuracy: below 1e-13 relative.
 */
final class Exp {
    private static final double LN2_HI = 0.6931471803691238;      // high bits of ln 2
    private static final double LN2_LO = 1.9082149292705877e-10;  // ln 2 - LN2_HI
    private static final double INV_LN2 = 1.4426950408889634;

    private Exp() {
    }

    static double exp(double x) {
        if (x > 709.0) {
            return Double.POSITIVE_INFINITY;
        }
        if (x < -745.0) {
            return 0.0;
        }
        if (x != x) {
            return x;
        }
        // x = k ln2 + r with |r| <= ln2 / 2 (Cody-Waite), then e^r by a degree-11 Taylor polynomial
        // (truncation below 2e-14 relative: far below float precision, which is what callers keep).
        double k = Math.rint(x * INV_LN2);
        double r = (x - k * LN2_HI) - k * LN2_LO;
        double p = 1.0 / 39916800.0;
        p = p * r + 1.0 / 3628800.0;
        p = p * r + 1.0 / 362880.0;
        p = p * r + 1.0 / 40320.0;
        p = p * r + 1.0 / 5040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        return Math.scalb(p, (int) k);
    }
}
