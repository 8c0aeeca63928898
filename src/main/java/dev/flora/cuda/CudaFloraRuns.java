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

    /** Each group's runs (LoraRuns: whole runs of minRun rows or more). */
    private LoraRuns runsOf(int[][] rows) {
        int[] min = new int[rows.length];
        java.util.Arrays.fill(min, minRun);
        return LoraRuns.of(rows, min, 0);
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
        int count = 0;
        LoraRuns[] runs = new LoraRuns[layers.size()];
        for (int p = 0; p < layers.size(); p++) {
            FloraProjection l = layers.get(p);
            if (l.bias() != null || l.weight().dtype() != type || type == DType.F32) {
                return false;
            }
            runs[p] = runsOf(l.rows());
            count += runs[p].count();
        }
        if (count == 0) {
            return false;
        }
        int in = x.cols();
        fellBack = false;
        // One layout for every layer's groups (layer by layer), of their rows in runs, in order.
        java.util.List<int[]> jointRows = new java.util.ArrayList<>();
        java.util.List<Tensor> jointA = new java.util.ArrayList<>();
        java.util.List<Tensor> jointBt = new java.util.ArrayList<>();
        java.util.List<Integer> jointOuts = new java.util.ArrayList<>();
        int[][] firstGroup = new int[layers.size()][]; // joint group index of layer p's group g
        int[][] startInGroup = new int[layers.size()][]; // where run i starts among its group's rows in runs
        for (int p = 0; p < layers.size(); p++) {
            FloraProjection l = layers.get(p);
            int groups = l.rows().length;
            int[] inRuns = new int[groups];
            startInGroup[p] = new int[runs[p].count()];
            for (int i = 0; i < runs[p].count(); i++) {
                int g = runs[p].group()[i];
                startInGroup[p][i] = inRuns[g];
                inRuns[g] += runs[p].length()[i];
            }
            int[][] runRows = new int[groups][];
            int[] filled = new int[groups];
            for (int g = 0; g < groups; g++) {
                runRows[g] = new int[inRuns[g]];
            }
            for (int i = 0; i < runs[p].count(); i++) {
                int g = runs[p].group()[i];
                for (int k = 0; k < runs[p].length()[i]; k++) {
                    runRows[g][filled[g]++] = runs[p].first()[i] + k;
                }
            }
            firstGroup[p] = new int[groups];
            for (int g = 0; g < groups; g++) {
                firstGroup[p][g] = jointRows.size();
                jointRows.add(runRows[g]);
                jointA.add(l.a()[g]);
                jointBt.add(l.bt()[g]);
                jointOuts.add(l.out().cols());
            }
        }
        int groups = jointRows.size();
        int[] base = new int[groups]; // as floraLayout: joint group k's stacked rows from base[k], r_k blocks of n_k rows
        int[] pairOf = new int[groups]; // joint group k's first (k, j) alpha vector, in floats from the start
        long stacked = 0;
        long alphaFloats = 0;
        for (int k = 0; k < groups; k++) {
            int r = jointA.get(k).rows();
            base[k] = Math.toIntExact(stacked);
            stacked += (long) r * jointRows.get(k).length;
            pairOf[k] = Math.toIntExact(alphaFloats);
            alphaFloats += jointRows.get(k).length > 0 ? (long) r * jointOuts.get(k) : 0;
        }
        CudaTensor alpha = gpu.allocateTyped(DType.F32, 1, Math.toIntExact(Math.max(1, alphaFloats)));
        for (int p = 0; p < layers.size(); p++) { // alpha vector (k, j) = Bᵀ_k[j] / r_k in float32, a launch a layer
            java.util.List<Long> btRow = new java.util.ArrayList<>();
            java.util.List<Integer> btType = new java.util.ArrayList<>();
            java.util.List<Float> factor = new java.util.ArrayList<>();
            int firstPair = -1;
            for (int g = 0; g < layers.get(p).rows().length; g++) {
                int k = firstGroup[p][g];
                if (jointRows.get(k).length == 0) {
                    continue;
                }
                firstPair = firstPair < 0 ? pairOf[k] : firstPair;
                CudaTensor b = CudaTensor.of(jointBt.get(k));
                for (int j = 0; j < b.rows(); j++) {
                    btRow.add(b.pointer + (long) j * b.cols() * b.dtype().bytes());
                    btType.add(b.typeCode());
                    factor.add(1f / b.rows());
                }
            }
            if (btRow.isEmpty()) {
                continue;
            }
            long[] rowPointers = btRow.stream().mapToLong(Long::longValue).toArray();
            int[] types = btType.stream().mapToInt(Integer::intValue).toArray();
            float[] factors = new float[factor.size()];
            for (int i = 0; i < factors.length; i++) {
                factors[i] = factor.get(i);
            }
            long[] d = gpu.packed(alpha, rowPointers, types, factors);
            int outs = layers.get(p).out().cols();
            gpu.launchRows("flora_scales", rowPointers.length, d[0], d[1], d[2], alpha.pointer + (long) firstPair * Float.BYTES, outs);
        }
        CudaBackend.FloraLayout l = gpu.floraLayout(jointRows.toArray(int[][]::new), jointA.toArray(Tensor[]::new), in,
                jointBt.toArray(Tensor[]::new), jointOuts.stream().mapToInt(Integer::intValue).toArray(), alpha, "floraLinears");
        CudaTensor half = gpu.roundingBuffer(type, l.stacked(), in);
        gpu.modulate(x, l, half);
        CublasLt lt = gpu.cublasLt();
        int cublasType = CudaBackend.cublasType(type);
        long bytes = type.bytes();
        // Every layer's runs first: the three steps below write the shared rounding buffer that holds half.
        boolean[] failed = new boolean[layers.size()];
        for (int p = 0; p < layers.size(); p++) {
            FloraProjection layer = layers.get(p);
            CudaTensor w = CudaTensor.of(layer.weight());
            CudaTensor out = CudaTensor.of(layer.out());
            int outs = out.cols();
            boolean done = true;
            runs:
            for (int i = 0; i < runs[p].count(); i++) {
                int k = firstGroup[p][runs[p].group()[i]];
                int r = jointA.get(k).rows();
                int n = jointRows.get(k).length;
                for (int j = 0; j < r; j++) {
                    long input = half.pointer + ((long) base[k] + (long) j * n + startInGroup[p][i]) * in * bytes;
                    long start = gpu.profiling ? gpu.begin() : 0;
                    if (!lt.scaledLinear(input, in, w.pointer, out.pointer + (long) runs[p].first()[i] * outs * Float.BYTES, outs, runs[p].length()[i],
                            in, outs, cublasType, alpha.pointer + ((long) pairOf[k] + (long) j * outs) * Float.BYTES, j > 0)) {
                        done = false;
                        break runs;
                    }
                    if (gpu.profiling) {
                        gpu.end("cublasLt flora run", start);
                    }
                }
            }
            failed[p] = !done;
            if (!done && !noted) {
                noted = true;
                System.err.println("note: cuBLASLt has no product with a per-output alpha for a " + in + " -> " + outs
                        + " layer here; fLoRA's runs of such layers take floraLinear's three steps");
            }
        }
        for (int p = 0; p < layers.size(); p++) {
            FloraProjection layer = layers.get(p);
            if (failed[p]) { // every run row of the layer again, by the three steps (they write all of them)
                fellBack = true;
                threeSteps(x, runRowsOf(runs[p], layer.rows().length), layer);
            }
            int rest = 0;
            for (int[] rr : runs[p].rest()) {
                rest += rr.length;
            }
            if (rest > 0) {
                threeSteps(x, runs[p].rest(), layer);
            }
        }
        return true;
    }

    /** Each group's rows in its runs, in order. */
    private static int[][] runRowsOf(LoraRuns runs, int groups) {
        java.util.List<java.util.List<Integer>> rows = new java.util.ArrayList<>();
        for (int g = 0; g < groups; g++) {
            rows.add(new java.util.ArrayList<>());
        }
        for (int i = 0; i < runs.count(); i++) {
            for (int k = 0; k < runs.length()[i]; k++) {
                rows.get(runs.group()[i]).add(runs.first()[i] + k);
            }
        }
        return rows.stream().map(r -> r.stream().mapToInt(Integer::intValue).toArray()).toArray(int[][]::new);
    }

    /** floraLinear's three steps for these rows of a layer (16-bit weight, no bias), writing every one of their output rows. */
    private void threeSteps(CudaTensor x, int[][] rows, FloraProjection layer) {
        CudaTensor w = CudaTensor.of(layer.weight());
        CudaTensor out = CudaTensor.of(layer.out());
        CudaTensor products = CudaTensor.of(layer.products());
        CudaBackend.FloraLayout l = gpu.floraLayout(rows, layer.a(), x.cols(), layer.bt(), out.cols(), out, "floraLinear");
        CudaTensor half = gpu.roundingBuffer(w.dtype(), l.stacked(), x.cols());
        gpu.modulate(x, l, half);
        CudaTensor part = new CudaTensor(products.pointer, DType.F32, l.stacked(), out.cols(), products);
        gpu.product(half, w, null, part);
        gpu.demodulate(part, l, null, out);
    }
}
