package dev.flora.cuda;

import dev.flora.backend.DType;
import dev.flora.backend.Tensor;

/**
 * fLoRA's prompt runs with the demodulation in the product's epilogue: for a run of one adapter's
 * consecutive rows, out[run] = Σ_j (b_j / r) ∘ (W0 (a_j ∘ x[run])) as r cuBLASLt products whose
 * per-output alpha is b_j / r (the first writing out, the others adding to it), so the products
 * (rows × r × outs float32) are neither written nor read back by flora_demodulate: at rank 1 the
 * layer is then the base product with the modulation for its rounding. The modulation is flora_modulate's
 * into the rounded input; rows in no run (decode tokens) take floraLinear's three steps as before.
 * Differs from flora_demodulate's arithmetic (the CPU's, bit for bit) in rounding b_j / r first and
 * in the epilogue's sum; within the products' rounding. Groups with a bias stay on the three steps.
 */
final class CudaFloraRuns {
    private final CudaBackend gpu;
    /**
     * -Dflora.cuda.floraRuns=N (default 0: off): runs of N or more consecutive rows of one adapter take
     * the scaled products. Built in session 16 without a GPU; not yet measured.
     */
    private int minRun = CudaBackend.wholeNumberFlag("flora.cuda.floraRuns", 0);
    /** Whether the last layer found no cuBLASLt algorithm for a per-output alpha (and took the three steps). */
    private boolean fellBack;
    private boolean noted;

    CudaFloraRuns(CudaBackend gpu) {
        this.gpu = gpu;
    }

    /** Runs from {@code rows} rows (0: off), as -Dflora.cuda.floraRuns does (tests). */
    void use(int rows) {
        minRun = rows;
    }

    /** Whether the last layer's products found no cuBLASLt algorithm and took the three steps (tests). */
    boolean fellBack() {
        return fellBack;
    }

    /** Whether a layer of these rows would take the scaled products (floraLinears then goes layer by layer). */
    boolean wants(int[][] rows) {
        if (minRun == 0 || !gpu.issuingDirectly()) {
            return false;
        }
        int[] min = new int[rows.length];
        java.util.Arrays.fill(min, minRun);
        return LoraRuns.of(rows, min, 0).count() > 0;
    }

    /**
     * floraLinear's layer with its runs through the scaled products; false, with nothing done, where
     * they are off, the layer has a bias or a float32 weight, a graph is recorded or replayed, or no
     * group has a run.
     */
    boolean apply(CudaTensor x, int[][] rows, Tensor[] a, Tensor[] bt, CudaTensor w, CudaTensor bias, CudaTensor products, CudaTensor out) {
        if (minRun == 0 || bias != null || w.dtype() == DType.F32 || !gpu.issuingDirectly()) {
            return false;
        }
        int groups = rows.length;
        int[] min = new int[groups];
        java.util.Arrays.fill(min, minRun);
        LoraRuns runs = LoraRuns.of(rows, min, 0);
        if (runs.count() == 0) {
            return false;
        }
        int in = x.cols();
        int outs = out.cols();
        // Each group's rows in runs, in order, and where each run starts among them.
        int[] inRuns = new int[groups];
        int[] startInGroup = new int[runs.count()];
        for (int i = 0; i < runs.count(); i++) {
            int g = runs.group()[i];
            startInGroup[i] = inRuns[g];
            inRuns[g] += runs.length()[i];
        }
        int[][] runRows = new int[groups][];
        int[] filled = new int[groups];
        for (int g = 0; g < groups; g++) {
            runRows[g] = new int[inRuns[g]];
        }
        for (int i = 0; i < runs.count(); i++) {
            int g = runs.group()[i];
            for (int k = 0; k < runs.length()[i]; k++) {
                runRows[g][filled[g]++] = runs.first()[i] + k;
            }
        }
        int[] base = new int[groups]; // as floraLayout: group g's stacked rows from base[g], r_g blocks of n_g rows
        int[] pairOf = new int[groups]; // group g's first (g, j) alpha vector
        int stacked = 0;
        int pairs = 0;
        for (int g = 0; g < groups; g++) {
            base[g] = stacked;
            stacked += a[g].rows() * inRuns[g];
            pairOf[g] = pairs;
            pairs += inRuns[g] > 0 ? a[g].rows() : 0;
        }
        // alpha vector (g, j) = Bᵀ_g[j] / r_g in float32, one launch for all.
        long[] btRow = new long[pairs];
        int[] btType = new int[pairs];
        float[] factor = new float[pairs];
        for (int g = 0; g < groups; g++) {
            if (inRuns[g] == 0) {
                continue;
            }
            CudaTensor b = CudaTensor.of(bt[g]);
            for (int j = 0; j < b.rows(); j++) {
                btRow[pairOf[g] + j] = b.pointer + (long) j * b.cols() * b.dtype().bytes();
                btType[pairOf[g] + j] = b.typeCode();
                factor[pairOf[g] + j] = 1f / b.rows();
            }
        }
        long[] p = gpu.packed(out, btRow, btType, factor);
        CudaTensor alpha = gpu.allocateTyped(DType.F32, pairs, outs);
        gpu.launchRows("flora_scales", pairs, p[0], p[1], p[2], alpha.pointer, outs);
        CudaBackend.FloraLayout l = gpu.floraLayout(runRows, a, in, bt, outs, out, "floraLinear");
        CudaTensor half = gpu.roundingBuffer(w.dtype(), l.stacked(), in);
        gpu.modulate(x, l, half);
        CublasLt lt = gpu.cublasLt();
        int type = CudaBackend.cublasType(w.dtype());
        long bytes = w.dtype().bytes();
        boolean done = true;
        runs:
        for (int i = 0; i < runs.count(); i++) {
            int g = runs.group()[i];
            int r = a[g].rows();
            for (int j = 0; j < r; j++) {
                long input = half.pointer + (long) (base[g] + j * inRuns[g] + startInGroup[i]) * in * bytes;
                long start = gpu.profiling ? gpu.begin() : 0;
                if (!lt.scaledLinear(input, in, w.pointer, out.pointer + (long) runs.first()[i] * outs * Float.BYTES, outs, runs.length()[i], in, outs,
                        type, alpha.pointer + (long) (pairOf[g] + j) * outs * Float.BYTES, j > 0)) {
                    done = false;
                    break runs;
                }
                if (gpu.profiling) {
                    gpu.end("cublasLt flora run", start);
                }
            }
        }
        fellBack = !done;
        if (!done) { // no algorithm: the runs' rows by the three steps (their demodulation writes every one of them)
            if (!noted) {
                noted = true;
                System.err.println("note: cuBLASLt has no product with a per-output alpha for a " + in + " -> " + outs
                        + " layer here; fLoRA's runs of such layers take floraLinear's three steps");
            }
            CudaTensor runProducts = new CudaTensor(products.pointer, DType.F32, l.stacked(), outs, products);
            gpu.product(half, w, null, runProducts);
            gpu.demodulate(runProducts, l, null, out);
        }
        int restTokens = 0;
        for (int[] r : runs.rest()) {
            restTokens += r.length;
        }
        if (restTokens > 0) {
            CudaBackend.FloraLayout rest = gpu.floraLayout(runs.rest(), a, in, bt, outs, out, "floraLinear");
            CudaTensor restHalf = gpu.roundingBuffer(w.dtype(), rest.stacked(), in);
            gpu.modulate(x, rest, restHalf);
            CudaTensor restProducts = new CudaTensor(products.pointer, DType.F32, rest.stacked(), outs, products);
            gpu.product(restHalf, w, null, restProducts);
            gpu.demodulate(restProducts, rest, null, out);
        }
        return true;
    }
}
