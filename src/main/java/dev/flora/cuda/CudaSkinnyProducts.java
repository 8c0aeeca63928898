package dev.flora.cuda;

import dev.flora.backend.DType;

/**
 * Products of a decode step's few rows (up to MAX_ROWS) by a 16-bit weight through Flora's own
 * tensor-core kernel (skinny_products_*), not cuBLAS: the weight streams once, split over the input so
 * that the blocks fill the GPU, and the splits' partial sums are added in split order by the last
 * block of each feature tile (deterministic). -Dflora.cuda.skinnyProducts=true; built in session 16
 * without a GPU, off until measured against cuBLAS (2.5–3.3 TB/s at 64 rows on the H200, session 6).
 */
final class CudaSkinnyProducts {
    /** The most rows: 8 tiles of 8 (the kernels' N). */
    static final int MAX_ROWS = 64;
    /** Output features a block takes (skinny_products' SK_FEATURES). */
    static final int FEATURES = 128;
    /** Input columns a chunk (SK_KC): the input's width must be a multiple. */
    static final int CHUNK = 32;
    /** Room for the splits' partial sums: the splits are cut down to fit. */
    static final long PARTIAL_BYTES = 64L << 20;
    /** Feature tiles the counters cover (weights up to 1,048,576 rows). */
    static final int MAX_TILES = 16384;
    /** Blocks aimed for a streaming multiprocessor. */
    static final int BLOCKS_PER_SM = 4;

    private final long partials;
    private final long counters;
    private final int sms;

    CudaSkinnyProducts(long partials, long counters, int sms) {
        this.partials = partials;
        this.counters = counters;
        this.sms = sms;
    }

    /** Whether the kernel takes rows × in → outs by a weight of this type. */
    static boolean fits(int rows, int in, int outs, DType type) {
        return rows >= 1 && rows <= MAX_ROWS && in % CHUNK == 0 && in > 0 && outs > 0 && (outs + FEATURES - 1) / FEATURES <= MAX_TILES
                && (type == DType.BF16 || type == DType.F16);
    }

    /**
     * The split of the input: {split length, splits}, whole chunks each, about BLOCKS_PER_SM blocks an SM
     * in all, the partial sums within PARTIAL_BYTES.
     */
    static int[] split(int rows, int in, int outs, int sms) {
        int tiles = (outs + FEATURES - 1) / FEATURES;
        int chunks = in / CHUNK;
        long wanted = Math.max(1, ((long) BLOCKS_PER_SM * sms + tiles - 1) / tiles);
        long room = Math.max(1, PARTIAL_BYTES / ((long) rows * outs * Float.BYTES));
        int splits = (int) Math.min(Math.min(wanted, chunks), room);
        int perSplit = (chunks + splits - 1) / splits;
        int length = perSplit * CHUNK;
        return new int[] {length, (in + length - 1) / length};
    }

    /** The kernel and its arguments for out[rows, outs] (+)= x W^T (x rounded to W's type, contiguous rows). */
    Launch launch(CudaTensor x, CudaTensor w, CudaTensor out, boolean accumulate) {
        int rows = x.rows();
        int[] s = split(rows, x.cols(), w.rows(), sms);
        String kernel = "skinny_products_" + (w.dtype() == DType.BF16 ? "bf16" : "f16") + "_" + ((rows + 7) / 8);
        return new Launch(kernel, (w.rows() + FEATURES - 1) / FEATURES, s[1], new Object[] {x.pointer, w.pointer, out.pointer, partials, counters,
                rows, x.cols(), w.rows(), s[0], accumulate ? 1 : 0});
    }

    /** A launch: kernel, grid (feature tiles × splits) of 128 threads, arguments. */
    record Launch(String kernel, int tiles, int splits, Object[] args) {
    }
}
