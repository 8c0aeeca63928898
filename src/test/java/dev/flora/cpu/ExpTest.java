package dev.flora.cpu;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

class ExpTest {
    @Test
    void matchesStrictMathToNearlyFullDoublePrecision() {
        SplittableRandom r = new SplittableRandom(3);
        double worst = 0;
        for (int i = 0; i < 200_000; i++) {
            double x = r.nextDouble(-100, 88);
            double expected = StrictMath.exp(x);
            worst = Math.max(worst, Math.abs(Exp.exp(x) - expected) / expected);
        }
        assertThat(worst).isLessThan(1e-13);
        assertThat(Exp.exp(0)).isEqualTo(1.0);
        assertThat(Exp.exp(-1000)).isZero();
        assertThat(Exp.exp(1000)).isInfinite();
        assertThat(Exp.exp(Double.NEGATIVE_INFINITY)).isZero();
        assertThat(Exp.exp(Double.NaN)).isNaN();
    }
}
