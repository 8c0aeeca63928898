package dev.flora.cuda;

import dev.flora.backend.DeviceMemoryFull;

import java.lang.foreign.MemorySegment;

/**
 * A prompt step's products (-Dflora.cuda.tunedProducts=N: from N rows, 1024 by default) by the fastest of
 * cuBLASLt's candidate algorithms for the shape, timed once a shape against cublasGemmEx's own choice and
 * kept. On an H100 at 16,384 rows (NOTES.md, session 27) the choices took 692.7 against GemmEx's 724.5 µs
 * at 4,096² (q, k, v, o), 1,852.9 against 1,895.7 at 11,008 × 4,096 (gate, up) and 1,974.2 against 2,123.1
 * at 4,096 × 11,008 (down). Which algorithm runs depends on the shape, as GemmEx's choice does; the tuning
 * runs at a shape's first call (a few products' time, once).
 */
final class CudaTunedProducts {
    /** Candidates timed a shape: the heuristic's first few. */
    private static final int CANDIDATES = 8;
    /** Timed runs a candidate (after one untimed): the fastest counts. */
    private static final int RUNS = 3;

    /** A shape's choice: cuBLASLt's layouts and algorithm, or null for cublasGemmEx; each timing in µs, GemmEx first. */
    record Choice(CublasLt.Candidates shape, MemorySegment algorithm, double[] micros) {
    }

    private final CudaBackend gpu;
    private final java.util.Map<java.util.List<Integer>, Choice> choices = new java.util.HashMap<>();

    CudaTunedProducts(CudaBackend gpu) {
        this.gpu = gpu;
    }

    /**
     * o (+)= in · W^T (16-bit in and W, float32 o, rows packed) by the shape's choice, timing the candidates
     * at the shape's first call: into o itself where the product overwrites it, else into step memory of
     * o's size, so that what o holds is added once (where the device has no room for it, GemmEx for the shape).
     */
    void linear(CudaTensor in, CudaTensor w, CudaTensor o, boolean accumulate) {
        int type = CudaBackend.cublasType(w.dtype());
        java.util.List<Integer> key = java.util.List.of(in.rows(), in.cols(), w.rows(), type);
        Choice choice = choices.get(key);
        if (choice == null) {
            long scratch = o.pointer;
            if (accumulate) {
                try {
                    scratch = gpu.scratchFloats((long) in.rows() * w.rows());
                } catch (DeviceMemoryFull e) {
                    scratch = 0; // no room to time it: GemmEx for this shape, as without tuning
                }
            }
            choice = scratch == 0 ? new Choice(null, null, new double[0]) : tune(in, w, scratch, type);
            choices.put(key, choice);
        }
        if (choice.algorithm() == null || !gpu.cublasLt().linear(choice.shape(), choice.algorithm(), in.pointer, w.pointer, o.pointer, accumulate)) {
            gpu.cublas().linear(in.pointer, w.pointer, o.pointer, in.rows(), in.cols(), w.rows(), type, accumulate);
        }
    }

    /** GemmEx and each candidate into {@code out} (overwritten), fastest of RUNS each; the fastest of all. */
    private Choice tune(CudaTensor in, CudaTensor w, long out, int type) {
        CublasLt lt = gpu.cublasLt();
        CublasLt.Candidates shape = lt.candidates(in.rows(), in.cols(), w.rows(), type, CANDIDATES);
        java.util.List<MemorySegment> algorithms = shape.algorithms();
        double[] micros = new double[algorithms.size() + 1];
        micros[0] = fastest(() -> {
            gpu.cublas().linear(in.pointer, w.pointer, out, in.rows(), in.cols(), w.rows(), type, false);
            return true;
        });
        int best = 0;
        for (int i = 0; i < algorithms.size(); i++) {
            MemorySegment algorithm = algorithms.get(i);
            micros[i + 1] = fastest(() -> lt.linear(shape, algorithm, in.pointer, w.pointer, out, false));
            if (micros[i + 1] < micros[best]) {
                best = i + 1;
            }
        }
        if (forced >= 0 && forced <= algorithms.size()) {
            best = forced;
        }
        if (gpu.profiling) {
            System.err.printf("flora.cuda.tunedProducts: %d x %d . (%d x %d)^T: %s (%.1f us), cublasGemmEx %.1f us, %d candidates%n", in.rows(),
                    in.cols(), w.rows(), w.cols(), best == 0 ? "cublasGemmEx" : "cuBLASLt candidate " + best, micros[best], micros[0],
                    algorithms.size());
        }
        return new Choice(shape, best == 0 ? null : algorithms.get(best - 1), micros);
    }

    /** The fastest of RUNS timed runs after one untimed, in µs (infinite where the run is refused). */
    private double fastest(java.util.function.BooleanSupplier run) {
        if (!run.getAsBoolean()) {
            return Double.POSITIVE_INFINITY;
        }
        Driver driver = gpu.driver();
        MemorySegment start = driver.createEvent();
        MemorySegment end = driver.createEvent();
        double best = Double.POSITIVE_INFINITY;
        for (int r = 0; r < RUNS; r++) {
            driver.record(start, gpu.stream());
            run.getAsBoolean();
            driver.record(end, gpu.stream());
            best = Math.min(best, driver.elapsed(start, end) * 1e3);
        }
        driver.destroyEvent(start);
        driver.destroyEvent(end);
        return best;
    }

    /** Tests: the choice of shapes tuned from now on, whatever the timings (0: GemmEx, i: the i-th candidate, -1: the fastest). */
    private int forced = -1;

    /** Forgets every choice and makes the next ones {@code choice} where it exists (-1: the fastest, as without), for tests. */
    void force(int choice) {
        forced = choice;
        choices.clear();
    }

    /** The shapes tuned so far and their choices (tests). */
    java.util.Map<java.util.List<Integer>, Choice> choices() {
        return java.util.Collections.unmodifiableMap(choices);
    }
}
