package dev.flora.cuda;

import dev.flora.backend.DType;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** Where the skinny products apply and how they split the input (no GPU needed). */
class CudaSkinnyProductsTest {
    @Test
    void takesUpToSixtyFourRowsOfWholeChunksBySixteenBitWeights() {
        assertThat(CudaSkinnyProducts.fits(64, 4096, 4096, DType.BF16)).isTrue();
        assertThat(CudaSkinnyProducts.fits(1, 32, 1, DType.F16)).isTrue();
        assertThat(CudaSkinnyProducts.fits(65, 4096, 4096, DType.BF16)).as("past 64 rows").isFalse();
        assertThat(CudaSkinnyProducts.fits(64, 4100, 4096, DType.BF16)).as("a width not in whole chunks of 32").isFalse();
        assertThat(CudaSkinnyProducts.fits(64, 4096, 4096, DType.F32)).as("float32 weights").isFalse();
        assertThat(CudaSkinnyProducts.fits(0, 4096, 4096, DType.BF16)).isFalse();
    }

    /** Every split whole chunks, together the whole input, the last not empty; enough blocks; the partial sums in their room. */
    @Test
    void splitsCoverTheInputInWholeChunksAndFillTheGpu() {
        int sms = 132;
        int[][] shapes = {{64, 4096, 4096}, {64, 4096, 11008}, {64, 11008, 4096}, {8, 4096, 32000}, {64, 5120, 152064}, {5, 96, 70}, {64, 32, 64}};
        for (int[] shape : shapes) {
            int rows = shape[0];
            int in = shape[1];
            int outs = shape[2];
            int[] s = CudaSkinnyProducts.split(rows, in, outs, sms);
            int length = s[0];
            int splits = s[1];
            assertThat(length % CudaSkinnyProducts.CHUNK).as("whole chunks %d x %d -> %d", rows, in, outs).isZero();
            assertThat((long) length * splits).as("covers the input").isGreaterThanOrEqualTo(in);
            assertThat((long) length * (splits - 1)).as("the last split is not empty").isLessThan(in);
            assertThat((long) splits * rows * outs * Float.BYTES).as("partials fit").isLessThanOrEqualTo(CudaSkinnyProducts.PARTIAL_BYTES);
            int tiles = (outs + CudaSkinnyProducts.FEATURES - 1) / CudaSkinnyProducts.FEATURES;
            assertThat((long) tiles * splits).as("blocks %d x %d -> %d", rows, in, outs)
                    .isGreaterThanOrEqualTo(Math.min((long) CudaSkinnyProducts.BLOCKS_PER_SM * sms / 2, (long) tiles * (in / CudaSkinnyProducts.CHUNK)));
        }
        assertThat(CudaSkinnyProducts.split(64, 4096, 4096, sms)).as("32 feature tiles of 128: 16 splits of 256").containsExactly(256, 16);
    }
}
