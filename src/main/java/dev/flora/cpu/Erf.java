package dev.flora.cpu;

/** The error function in double precision (Java's Math has none): series near 0, continued fraction in the tails. */
final class Erf {
    private Erf() {
    }

    static double erf(double x) {
        double ax = Math.abs(x);
        if (ax < 2.5) {
            // erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
            double term = ax;
            double sum = ax;
            double x2 = ax * ax;
            for (int n = 1; n < 80; n++) {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.abs(add) < 1e-17 * Math.abs(sum)) {
                    break;
                }
            }
            return Math.copySign(sum * 2.0 / Math.sqrt(Math.PI), x);
        }
        if (ax > 6.5) {
            return Math.copySign(1.0, x);
        }
        return Math.copySign(1.0 - erfcTail(ax), x);
    }

    /** erfc(x) for x >= 2.5 by the Lentz evaluation of its continued fraction. */
    private static double erfcTail(double x) {
        // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
        double tiny = 1e-300;
        double f = x;
        double c = x;
        double d = 0;
        for (int k = 1; k < 200; k++) {
            double a = k / 2.0;
            d = x + a * d;
            d = d == 0 ? tiny : d;
            c = x + a / c;
            c = c == 0 ? tiny : c;
            d = 1 / d;
            double delta = c * d;
            f *= delta;
            if (Math.abs(delta - 1) < 1e-16) {
                break;
            }
        }
        return StrictMath.exp(-x * x) / Math.sqrt(Math.PI) / f;
    }
}
