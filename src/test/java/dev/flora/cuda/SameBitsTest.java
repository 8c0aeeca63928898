package dev.flora.cuda;

import static dev.flora.cuda.SameBits.assertSameBits;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** The GPU tests' bit comparison: what it lets pass, what it stops, and what it says (it runs without a GPU). */
class SameBitsTest {
    @Test
    void equalBitsPassNanIncluded() {
        assertThatCode(() -> assertSameBits(new float[] {1f, Float.NaN, -0f}, new float[] {1f, Float.NaN, -0f}, "a")).doesNotThrowAnyException();
    }

    @Test
    void aDifferenceIsCountedAndPlaced() {
        float[] want = new float[1_000_000];
        float[] got = want.clone();
        got[10] = Math.nextUp(0f);
        got[500_000] = 3f;
        // a million values: the summary comes at once, where AssertJ's element-by-element diff would not
        assertThatThrownBy(() -> assertSameBits(got, want, "step %d", 0))
                .hasMessageContaining("step 0: 2 of 1000000 values differ in their bits")
                .hasMessageContaining("the first at 10")
                .hasMessageContaining("the largest difference 3.0 at 500000");
    }

    @Test
    void zeroesOfOtherSignsDifferAndLengthsMustAgree() {
        assertThatThrownBy(() -> assertSameBits(new float[] {0f}, new float[] {-0f}, "zero")).hasMessageContaining("1 of 1 values differ");
        assertThatThrownBy(() -> assertSameBits(new float[2], new float[3], "lengths")).hasMessageContaining("lengths: 2 values, expected 3");
    }

    @Test
    void aNameWithoutArgumentsIsNotAFormat() {
        assertThatThrownBy(() -> assertSameBits(new float[] {1f}, new float[] {2f}, "100% of it")).hasMessageStartingWith("100% of it: 1 of 1");
    }
}
