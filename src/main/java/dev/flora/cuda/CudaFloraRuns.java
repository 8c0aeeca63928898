package dev.flora.cuda;

import dev.flora.backend.DType;
import dev.flora.backend.FloraProjection;
import dev.flora.backend.Tensor;

import java.util.List;

/**
 * fLoRA's prompt runs with the demodulation in the product's epilogue: for a run of one adapter's
 * consecutive rows, out[run] = Σ_j (b_j / r) ∘ (W0 (a_j ∘ x[run])) as r cuBLASLt products whose
 * per-output alpha is b_j / r (the first writing out, the others adding to it), so the products
 * (rows × r × outs float32) are neither written nor read back by flora_demodulate: at rank 1 the
 * layer is then the base product with the modulation for its rounding. The layers of one input (q, k
 * and v: floraLinears) share one modulation of their runs' rows, as their three steps share one; rows in
 * no run (decode tokens) take the three steps, layer by layer. Differs from flora_demodulate's
 * arithmetic (the CPU's, bit for bit) in rounding b_j / r first and in the epilogue's sum; within the
 * products' rounding. Layers with a bias or float32 weights keep the three steps.
 */
final class CudaFloraRuns {
    private final CudaBackend gpu;
    /**
     * -Dflora.cuda.floraRuns=N (default 0: off): runs of N or more consecutive rows of one adapter take
     * the scaled products. Built in session 16 without a GPU; not yet measured.
     */
    private int minRun = CudaBackend.wholeNumberFlag("flora.cuda.floraRuns", 0);
    /** Whether the last call found no cuBLASLt algorithm for some run (which then took the three steps). */
    private boolean fellBack;
    private boolean noted;

    CudaFloraRuns(CudaBackend gpu) {
        this.gpu = gpu;
    }

    /** Runs from {@code rows} rows (0: off), as -Dflora.cuda.floraRuns does (tests). */
    void use(int rows) {
        minRun = rows;
    }

    /** Whether the last call's products found no cuBLASLt algorithm somewhere and took the three steps (tests). */
    boolean fellBack() {
        return fellBack;
    }

    /**
     * The layers (one input x; floraLinear gives one, floraLinears several) with their runs through the
     * scaled products and their other rows by the three steps; false, with nothing done, where runs are
     * off, a layer has a bias or a weight of another or a float32 type, a graph is recorded or
     * replayed, or no layer has a run.
     */
    boolean apply(CudaTensor x, List<FloraProjection> layers) {
        if (minRun == 0 || !gpu.issuingDirectly()) {
            return false;
        }
        DType type = layers.getFirst().weight().dtype();
        int n = layers.size();
        int[][][] rows = new int[n][][];
        int[][] rank = new int[n][];
        int[] outs = new int[n];
        for (int p = 0; p < n; p++) {
            FloraProjection l = layers.get(p);
            if (l.bias() != null || l.weight().dtype() != type || type == DType.F32) {
                return false;
            }
            rows[p] = l.rows();
            rank[p] = new int[l.a().length];
            for (int g = 0; g < l.a().length; g++) {
                rank[p][g] = l.a()[g].rows();
            }
            outs[p] = l.out().cols();
        }
        FloraRunPlan plan = FloraRunPlan.of(rows, rank, outs, minRun);
        if (plan.count() == 0) {
            return false;
        }
        int in = x.cols();
        fellBack = false;
        int groups = plan.jointRows().size();
        Tensor[] jointA = new Tensor[groups];
        Tensor[] jointBt = new Tensor[groups];
        int[] jointOuts = new int[groups];
        for (int k = 0; k < groups; k++) {
            FloraProjection l = layers.get(plan.jointLayer()[k]);
            jointA[k] = l.a()[plan.jointGroup()[k]];
            jointBt[k] = l.bt()[plan.jointGroup()[k]];
            jointOuts[k] = outs[plan.jointLayer()[k]];
        }
        CudaTensor alpha = gpu.allocateTyped(DType.F32, 1, Math.toIntExact(Math.max(1, plan.alphaFloats())));
        // The layout first: it checks every group's A and Bᵀ against each other and the widths.
        CudaBackend.FloraLayout l = gpu.floraLayout(plan.jointRows().toArray(int[][]::new), jointA, in, jointBt, jointOuts, alpha, "floraLinears");
        // alpha vector (k, j) = Bᵀ_k[j] / r_k in float32: a launch a layer, its groups' vectors one after another.
        for (int p = 0; p < n; p++) {
            int pairs = 0;
            for (int g = 0; g < rows[p].length; g++) {
                pairs += plan.jointRows().get(plan.firstGroup()[p][g]).length > 0 ? rank[p][g] : 0;
            }
            if (pairs == 0) {
                continue;
            }
            long[] btRow = new long[pairs];
            int[] btType = new int[pairs];
            float[] factor = new float[pairs];
            int firstPair = -1;
            for (int g = 0, m = 0; g < rows[p].length; g++) {
                int k = plan.firstGroup()[p][g];
                if (plan.jointRows().get(k).length == 0) {
                    continue;
                }
                firstPair = firstPair < 0 ? plan.pairOf()[k] : firstPair;
                CudaTensor b = CudaTensor.of(jointBt[k]);
                for (int j = 0; j < b.rows(); j++, m++) {
                    btRow[m] = b.pointer + (long) j * b.cols() * b.dtype().bytes();
                    btType[m] = b.typeCode();
                    factor[m] = 1f / b.rows();
                }
            }
            long[] d = gpu.packed(alpha, btRow, btType, factor);
            gpu.launchRows("flora_scales", pairs, d[0], d[1], d[2], alpha.pointer + (long) firstPair * Float.BYTES, outs[p]);
        }
        CudaTensor half = gpu.roundingBuffer(type, l.stacked(), in);
        gpu.modulate(x, l, half);
        CublasLt lt = gpu.cublasLt();
        int cublasType = CudaBackend.cublasType(type);
        long bytes = type.bytes();
        // Every layer's runs first: the three steps below write the shared rounding buffer that holds half.
        boolean[] failed = new boolean[n];
        for (int p = 0; p < n; p++) {
            LoraRuns runs = plan.runs()[p];
            CudaTensor w = CudaTensor.of(layers.get(p).weight());
            CudaTensor out = CudaTensor.of(layers.get(p).out());
            runs:
            for (int i = 0; i < runs.count(); i++) {
                for (int j = 0; j < rank[p][runs.group()[i]]; j++) {
                    long start = gpu.profiling ? gpu.begin() : 0;
                    if (!lt.scaledLinear(half.pointer + plan.stackedRow(p, i, j) * in * bytes, in, w.pointer,
                            out.pointer + (long) runs.first()[i] * outs[p] * Float.BYTES, outs[p], runs.length()[i], in, outs[p], cublasType,
                            alpha.pointer + plan.alphaAt(p, i, j, outs[p]) * Float.BYTES, j > 0)) {
                        failed[p] = true;
                        break runs;
                    }
                    if (gpu.profiling) {
                        gpu.end("cublasLt flora run", start);
                    }
                }
            }
            if (failed[p] && !noted) {
                noted = true;
                System.err.println("note: cuBLASLt has no product with a per-output alpha for a " + in + " -> " + outs[p]
                        + " layer here; fLoRA's runs of such layers take floraLinear's three steps");
            }
        }
        for (int p = 0; p < n; p++) {
            FloraProjection layer = layers.get(p);
            if (failed[p]) { // every run row of the layer again, by the three steps (they write all of them)
                fellBack = true;
                threeSteps(x, FloraRunPlan.runRows(plan.runs()[p], rows[p].length), layer);
            }
            int rest = 0;
            for (int[] rr : plan.runs()[p].rest()) {
                rest += rr.length;
            }
            if (rest > 0) {
                threeSteps(x, plan.runs()[p].rest(), layer);
            }
        }
        return true;
    }

    /** floraLinear's three steps for these rows of a layer (16-bit weight, no bias), writing every one of their output rows. */
    private void threeSteps(CudaTensor x, int[][] rows, FloraProjection layer) {
        CudaTensor out = CudaTensor.of(layer.out());
        CudaBackend.FloraLayout l = gpu.floraLayout(rows, layer.a(), x.cols(), layer.bt(), out.cols(), out, "floraLinear");
        gpu.floraThroughCublas(x, l, CudaTensor.of(layer.weight()), null, CudaTensor.of(layer.products()), out);
    }
}
