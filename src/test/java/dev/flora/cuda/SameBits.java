package dev.flora.cuda;

import static org.assertj.core.api.Assertions.fail;

/**
 * Bit-for-bit comparison of float arrays that fails at once with a summary: how many values differ, the
 * first, and the largest difference. AssertJ's containsExactly diffs two arrays element by element in
 * quadratic time: on the H200 (session 19) a mismatch of 768,000 values ran for minutes and reported
 * nothing before the run's time limit.
 */
final class SameBits {
    private SameBits() {
    }

    /** Fails unless got and want hold the same float bits (NaN equal to NaN, as Float.equals). */
    static void assertSameBits(float[] got, float[] want, String what, Object... args) {
        String name = args.length == 0 ? what : String.format(what, args); // a name without arguments may hold a %
        if (got.length != want.length) {
            fail("%s: %d values, expected %d", name, got.length, want.length);
        }
        int differ = 0;
        int first = -1;
        int worst = -1;
        double largest = 0;
        for (int i = 0; i < got.length; i++) {
            if (Float.floatToIntBits(got[i]) == Float.floatToIntBits(want[i])) {
                continue;
            }
            differ++;
            if (first < 0) {
                first = i;
            }
            double d = Math.abs((double) got[i] - want[i]);
            if (worst < 0 || d > largest || Double.isNaN(d)) {
                worst = i;
                largest = d;
            }
        }
        if (differ > 0) {
            fail("%s: %d of %d values differ in their bits; the first at %d (%s, expected %s), the largest difference %s at %d (%s, expected %s)",
                    name, differ, got.length, first, got[first], want[first], largest, worst, got[worst], want[worst]);
        }
    }

    static void assertSameBits(float[] got, float[] want) {
        assertSameBits(got, want, "values");
    }
}
