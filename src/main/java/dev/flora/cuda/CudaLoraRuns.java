package dev.flora.cuda;

import dev.flora.backend.DType;
import dev.flora.backend.Tensor;

/**
 * Gathered LoRA's prompt runs through cuBLAS: which rows of a call go (of: runs of one adapter's
 * consecutive rows, by rank, whole or in chunks, as the flags below say) and their products (apply:
 * a run's own two, or one batched pair for all chunks of a class); the backend's kernels take the rest
 * (LoraRuns.rest). The runs' flags live here; CudaBackend.loraShrinkExpand asks for the runs first.
 */
final class CudaLoraRuns {
    /**
     * The fewest consecutive rows of one adapter that go to cuBLAS (apply), by rank. A run's two
     * products cost about 11 µs however small (the shrink's output, rows × rank, fills few of the SMs),
     * against the kernels' cost that grows with rows × rank. On the H200 at 4096² (NOTES.md, session 14;
     * 16 runs a step): runs won at rank 64 from 128 rows (429 against 505 µs) and at rank 8 from 512
     * rows (892 against 1,046), lost at rank 8 at 128 rows (371 against 287) and at rank 1 at every
     * length measured (694 against 633 at 512 rows). -Dflora.cuda.loraRunMin=N sets one minimum for
     * every rank.
     */
    static int loraRunMin(int rank) {
        if (rank >= 32) {
            return 128;
        }
        return rank >= 8 ? 256 : Integer.MAX_VALUE;
    }

    /**
     * How many slices of x's columns the chunks' shrink takes (split-K: split × the products in one
     * batched call, their partial sums added after by Cublas.sumParts): the largest number up to
     * {@code wanted} whose slices are whole multiples of 8 columns (16-byte aligned rows), else 1.
     */
    static int chunkSplit(int wanted, int in) {
        for (int s = wanted; s > 1; s--) {
            if (in % (8 * s) == 0) {
                return s;
            }
        }
        return 1;
    }

    /** The default chunk of LoRA's cuBLAS runs (-Dflora.cuda.loraRunChunk). */
    static final int LORA_RUN_CHUNK = 128;
    /** The default fewest runs in a call for chunks (-Dflora.cuda.loraChunkRuns). */
    static final int LORA_CHUNK_RUNS = 8;

    private final CudaBackend gpu;
    private final CudaLoraStack stacked;
    /**
     * Gathered LoRA's prompt runs (loraRunMin(rank) or more consecutive rows of one adapter) through two
     * cuBLAS products each (apply). -Dflora.cuda.loraRuns=false: the kernels for every row.
     */
    private boolean on = CudaBackend.booleanFlag("flora.cuda.loraRuns", true);
    /** -Dflora.cuda.loraRunMin=N (positive): runs from N rows at every rank; unset (0): loraRunMin(rank). */
    private int minFlag = CudaBackend.positiveFlag("flora.cuda.loraRunMin", 0);
    /**
     * -Dflora.cuda.loraRunChunk=C (default 128): runs cut into chunks of C rows (the rest of each run to
     * the kernels), those of one rank, types, scale and output width in two batched products for all of
     * them (byChunk), not two products a run, each with a fixed cost of its own (about 11 µs a run on
     * the H200). 0: whole runs. On the H200 (NOTES.md, session 15) chunks of 128 took the layer at 4096²,
     * 16 adapters' runs, from 963 to 810 µs at 8,192 tokens and rank 64, 891 to 658 at rank 8, 535 to
     * 297 at 2,048 tokens and rank 64, and Llama-2-7B's PEFT-workload prefill from 0.555 to 0.446 s.
     */
    private int chunk = CudaBackend.wholeNumberFlag("flora.cuda.loraRunChunk", LORA_RUN_CHUNK);
    /**
     * -Dflora.cuda.loraChunkRuns=N (default 8): the fewest runs a call has for them to go in chunks; with
     * fewer, whole runs. A batched pair of products for a few chunks costs about 145 µs on the H200 at
     * 4096² (one prompt of 512 tokens, 4 chunks: 178 µs against the kernels' 66–263 at ranks 4–64),
     * where whole runs cost 11–35 µs a run (NOTES.md, session 15).
     */
    private int chunkRuns = CudaBackend.positiveFlag("flora.cuda.loraChunkRuns", LORA_CHUNK_RUNS);
    /**
     * -Dflora.cuda.loraChunkSplit=S (default 1: off): the chunks' shrink, x A^T, reduces over the model's
     * width in S slices (chunkSplit), S times the products in its batched call, so that a few chunks
     * keep more SMs busy (their ~145 µs on the H200, session 15). Not yet measured on the GPU.
     */
    private int slices = CudaBackend.positiveFlag("flora.cuda.loraChunkSplit", 1);
    /**
     * -Dflora.cuda.loraStack=N (default 0: off): where a call has loraChunkRuns runs or more, its whole
     * runs as two dense products over their adapters' stacked factors (LoraStack, CudaLoraStack) when
     * those total at most N ranks a pass, in place of chunks. Built after session 15's GPU calls: the
     * chunks' batched shrink fills few SMs (about 145 µs however few chunks), where the stacked shrink's
     * output is rows × N wide. Not yet measured on the GPU.
     */
    private int stackColumns = CudaBackend.wholeNumberFlag("flora.cuda.loraStack", 0);
    /**
     * -Dflora.cuda.loraChunkKernel=true: the chunks' shrink of float32 factors by a kernel
     * (lora_shrink_chunks) in place of cuBLAS's batched product, the entries that share a chunk's rows (a
     * fused call's q, k and v of one adapter) in one block so that x is read once for them all. Sums: a
     * stage's 32 float32 products, the stages in float64, in an order that depends on the row alone. Off: on
     * an H100 (NOTES.md, session 27) it took 376 µs a call against cuBLAS's 935, but cuBLAS's expand after
     * it 1,154 µs against 508 (not understood), and the prompt step ran 2-4 ms slower.
     */
    private boolean kernelShrink = CudaBackend.booleanFlag("flora.cuda.loraChunkKernel", false);
    /**
     * -Dflora.cuda.loraChunkExpand=true: the chunks' expand of float32 B at ranks up to CHUNK_EXPAND_MAX_RANK by a
     * kernel (lora_expand_chunks8, 16, 32) in place of cuBLAS's batched product: a thread an output column, its B
     * row in registers, the rows' outputs read and written once. In session 27 on an H100 cuBLAS's chunk expand
     * took 508 µs a call where the outputs' bytes allow about 360, and 1,154 after lora_shrink_chunks. Not yet
     * measured on the GPU.
     */
    private boolean kernelExpand = CudaBackend.booleanFlag("flora.cuda.loraChunkExpand", false);
    /** lora_expand_chunks's largest rank (lora_expand_chunks32). */
    static final int CHUNK_EXPAND_MAX_RANK = 32;
    /** lora_expand_chunks's most rows an entry (LE_MAX_ROWS: v's rows in shared memory). */
    static final int CHUNK_EXPAND_MAX_ROWS = 128;
    /** lora_expand_chunks launches so far (tests: which expand ran). */
    private int chunkExpandLaunches;
    /** lora_shrink_chunks launches so far (tests: which shrink ran). */
    private int chunkKernelLaunches;
    /** lora_shrink_chunks's most warps a block (LC_MAX_WARPS in kernels.cu): 16 octets of ranks. */
    static final int CHUNK_KERNEL_WARPS = 16;
    /** lora_shrink_chunks's fewest warps a block (LC_MIN_WARPS): a stage's loads of x spread over at least 128 threads. */
    static final int CHUNK_KERNEL_MIN_WARPS = 4;

    CudaLoraRuns(CudaBackend gpu) {
        this.gpu = gpu;
        this.stacked = new CudaLoraStack(gpu);
    }

    /**
     * The runs of a gathered LoRA call that go to cuBLAS (those of the groups without a bias: the
     * products add none), or null where runs are off or a graph is recorded or replayed (a recorded
     * step's replays need not share its runs).
     */
    LoraRuns of(int[][] rows, Tensor[] a, Tensor[] b, Tensor[] bias, float[] scale, Tensor[] outs) {
        if (!on || !gpu.issuingDirectly()) {
            return null;
        }
        int groups = rows.length;
        int[] minRun = new int[groups];
        for (int g = 0; g < groups; g++) {
            minRun[g] = bias[g] != null ? Integer.MAX_VALUE : minFlag > 0 ? minFlag : loraRunMin(a[g].rows());
        }
        if (stackColumns > 0) {
            LoraRuns whole = LoraRuns.of(rows, minRun, 0);
            if (whole.count() >= chunkRuns) {
                int[] rank = new int[groups];
                DType[] aType = new DType[groups];
                DType[] bType = new DType[groups];
                for (int g = 0; g < groups; g++) {
                    rank[g] = a[g].rows();
                    aType[g] = a[g].dtype();
                    bType[g] = b[g].dtype();
                }
                LoraStack plan = LoraStack.plan(whole, rank, aType, bType, scale, outs, stackColumns);
                if (plan != null) {
                    return whole.stacked(plan);
                }
            }
        }
        return LoraRuns.of(rows, minRun, chunk, chunkRuns);
    }

    /**
     * Gathered LoRA's runs through cuBLAS: per run v = x[run] A_g^T, then out_g[run] += scale_g · v B_g^T
     * (cuBLAS's beta = 1), reading x and writing out in place, with no gather, padding or scatter. With
     * 16-bit factors x and v are rounded to the factor's type first, as the base product rounds x and as
     * PEFT's LoRA runs in a 16-bit model; float32 factors take float32 x and v in pedantic float32. x goes
     * through the shared rounding buffer, a type at a time (the stream runs each rounding after the
     * shrinks before it).
     */
    void apply(CudaTensor x, LoraRuns runs, Tensor[] a, Tensor[] b, float[] scale, Tensor[] outs) {
        if (runs.chunked()) {
            byChunk(x, runs, a, b, scale, outs);
            return;
        }
        if (runs.stack() != null) {
            stacked.apply(x, runs.stack(), a, b, outs);
            if (runs.stack().whole().length > 0) { // float32 factors: a run's own products
                apply(x, runs.only(runs.stack().whole()), a, b, scale, outs);
            }
            return;
        }
        int in = x.cols();
        java.util.Set<DType> aTypes = java.util.EnumSet.noneOf(DType.class);
        for (int g : runs.group()) {
            aTypes.add(a[g].dtype());
        }
        long[] offset = shrunkOffsets(runs, a);
        CudaTensor v = gpu.allocateTyped(DType.F32, 1, Math.toIntExact(offset[runs.count()]));
        Cublas cublas = gpu.cublas();
        for (DType type : aTypes) { // the shrinks, a type of A at a time (each rounding of x overwrites the last)
            CudaTensor input = null;
            for (int i = 0; i < runs.count(); i++) {
                int g = runs.group()[i];
                CudaTensor ag = CudaTensor.of(a[g]);
                if (ag.dtype() != type) {
                    continue;
                }
                if (input == null) {
                    input = gpu.inputFor(x, ag);
                }
                int rank = ag.rows();
                long start = gpu.profiling ? gpu.begin() : 0;
                cublas.linearStrided(input.pointer + (long) runs.first()[i] * in * type.bytes(), in, ag.pointer,
                        v.pointer + offset[i] * Float.BYTES, rank, runs.length()[i], in, rank, CudaBackend.cublasType(type), 1f, false);
                if (gpu.profiling) {
                    gpu.end("cublas lora run shrink", start);
                }
            }
        }
        java.util.Map<DType, CudaTensor> vFor = new java.util.EnumMap<>(DType.class);
        for (int i = 0; i < runs.count(); i++) { // the expands, v rounded to B's type once for all runs
            int g = runs.group()[i];
            CudaTensor bg = CudaTensor.of(b[g]);
            CudaTensor vb = vFor.computeIfAbsent(bg.dtype(), t -> t == DType.F32 ? v : gpu.roundInto(v, gpu.allocateTyped(t, v.rows(), v.cols())));
            int rank = a[g].rows();
            CudaTensor o = CudaTensor.of(outs[g]);
            long start = gpu.profiling ? gpu.begin() : 0;
            cublas.linearStrided(vb.pointer + offset[i] * bg.dtype().bytes(), rank, bg.pointer, o.pointer + (long) runs.first()[i] * o.cols() * Float.BYTES,
                    o.cols(), runs.length()[i], rank, o.cols(), CudaBackend.cublasType(bg.dtype()), scale[g], true);
            if (gpu.profiling) {
                gpu.end("cublas lora run expand", start);
            }
        }
    }

    /** Where each run's shrunk rows v [its rows, its rank] start in one buffer for all runs, and (last) its size, in elements. */
    private static long[] shrunkOffsets(LoraRuns runs, Tensor[] a) {
        long[] offset = new long[runs.count() + 1];
        for (int i = 0; i < runs.count(); i++) {
            offset[i + 1] = offset[i] + (long) runs.length()[i] * a[runs.group()[i]].rows();
        }
        return offset;
    }

    /** Runs of one batched pair of products: the same rows (a chunk), rank, factor types, scale and output width. */
    private record ChunkClass(int rows, int rank, DType aType, DType bType, float scale, int outCols) {
    }

    /**
     * apply for runs of one length (chunks, -Dflora.cuda.loraRunChunk): the runs of each ChunkClass
     * in one cublasGemmBatchedEx for their shrinks (v_i = x[run i] A_i^T) and one for their expands
     * (out_i[run i] += scale · v_i B_i^T), pointer arrays uploaded as LoRA-bmm's are; x and v rounded as
     * apply rounds them, a type of A at a time through the shared buffer.
     */
    private void byChunk(CudaTensor x, LoraRuns runs, Tensor[] a, Tensor[] b, float[] scale, Tensor[] outs) {
        int in = x.cols();
        java.util.Map<ChunkClass, java.util.List<Integer>> classes = new java.util.LinkedHashMap<>();
        for (int i = 0; i < runs.count(); i++) {
            int g = runs.group()[i];
            classes.computeIfAbsent(new ChunkClass(runs.length()[i], a[g].rows(), a[g].dtype(), b[g].dtype(), scale[g], outs[g].cols()),
                    k -> new java.util.ArrayList<>()).add(i);
        }
        long[] offset = shrunkOffsets(runs, a);
        int total = Math.toIntExact(offset[runs.count()]);
        CudaTensor v = gpu.allocateTyped(DType.F32, 1, total);
        int split = chunkSplit(slices, in);
        int slice = in / split;
        CudaTensor parts = split == 1 ? v : gpu.allocateTyped(DType.F32, split, total); // slice s's partial v at row s
        Cublas cublas = gpu.cublas();
        java.util.Set<DType> aTypes = java.util.EnumSet.noneOf(DType.class);
        classes.keySet().forEach(c -> aTypes.add(c.aType()));
        for (DType type : aTypes) { // the shrinks, a type of A at a time (each rounding of x overwrites the last)
            if (type == DType.F32 && kernelShrink && split == 1) {
                shrinkByKernel(x, runs, classes, a, offset, v);
                continue;
            }
            CudaTensor input = type == DType.F32 ? x : gpu.rounded(x, type);
            for (var e : classes.entrySet()) {
                ChunkClass c = e.getKey();
                if (c.aType() != type) {
                    continue;
                }
                java.util.List<Integer> members = e.getValue();
                int count = members.size() * split;
                long[] xs = new long[count];
                long[] ws = new long[count];
                long[] vs = new long[count];
                for (int m = 0; m < members.size(); m++) {
                    int i = members.get(m);
                    for (int sl = 0; sl < split; sl++) { // chunk m's product over columns [sl·slice, (sl + 1)·slice)
                        int entry = m * split + sl;
                        xs[entry] = input.pointer + ((long) runs.first()[i] * in + (long) sl * slice) * type.bytes();
                        ws[entry] = CudaTensor.of(a[runs.group()[i]]).pointer + (long) sl * slice * type.bytes();
                        vs[entry] = parts.pointer + ((long) sl * total + offset[i]) * Float.BYTES;
                    }
                }
                long[] p = gpu.packed(x, xs, ws, vs);
                long start = gpu.profiling ? gpu.begin() : 0;
                cublas.batchedLinearStrided(p[0], in, p[1], in, p[2], c.rank(), count, c.rows(), slice, c.rank(), CudaBackend.cublasType(type), 1f, false);
                if (gpu.profiling) {
                    gpu.end("cublas lora chunks shrink", start);
                }
            }
        }
        if (split > 1) { // v = the slices' partial sums added, in float32, before any rounding to B's type
            float[] ones = new float[split];
            java.util.Arrays.fill(ones, 1f);
            long start = gpu.profiling ? gpu.begin() : 0;
            cublas.sumParts(parts.pointer, split, total, gpu.packed(x, ones)[0], v.pointer);
            if (gpu.profiling) {
                gpu.end("cublas lora chunks split sum", start);
            }
        }
        java.util.Map<DType, CudaTensor> vFor = new java.util.EnumMap<>(DType.class);
        java.util.Map<Integer, java.util.List<Integer>> byKernel = new java.util.TreeMap<>(); // rank -> the runs lora_expand_chunks takes
        for (var e : classes.entrySet()) { // the expands, v rounded to B's type once for all runs
            ChunkClass c = e.getKey();
            if (kernelExpand && c.bType() == DType.F32 && c.rank() <= CHUNK_EXPAND_MAX_RANK && c.rows() <= CHUNK_EXPAND_MAX_ROWS) {
                byKernel.computeIfAbsent(c.rank(), r -> new java.util.ArrayList<>()).addAll(e.getValue());
                continue;
            }
            CudaTensor vb = vFor.computeIfAbsent(c.bType(), t -> t == DType.F32 ? v : gpu.roundInto(v, gpu.allocateTyped(t, v.rows(), v.cols())));
            java.util.List<Integer> members = e.getValue();
            long[] vs = new long[members.size()];
            long[] ws = new long[members.size()];
            long[] os = new long[members.size()];
            for (int m = 0; m < members.size(); m++) {
                int i = members.get(m);
                int g = runs.group()[i];
                vs[m] = vb.pointer + offset[i] * c.bType().bytes();
                ws[m] = CudaTensor.of(b[g]).pointer;
                os[m] = CudaTensor.of(outs[g]).pointer + (long) runs.first()[i] * c.outCols() * Float.BYTES;
            }
            long[] p = gpu.packed(x, vs, ws, os);
            long start = gpu.profiling ? gpu.begin() : 0;
            cublas.batchedLinearStrided(p[0], c.rank(), p[1], c.rank(), p[2], c.outCols(), members.size(), c.rows(), c.rank(), c.outCols(),
                    CudaBackend.cublasType(c.bType()), c.scale(), true);
            if (gpu.profiling) {
                gpu.end("cublas lora chunks expand", start);
            }
        }
        for (var e : byKernel.entrySet()) {
            java.util.List<Integer> members = e.getValue();
            int n = members.size();
            long[] vs = new long[n];
            long[] bs = new long[n];
            long[] os = new long[n];
            int[] cols = new int[n];
            int[] rows = new int[n];
            float[] scales = new float[n];
            for (int m = 0; m < n; m++) {
                int i = members.get(m);
                int g = runs.group()[i];
                vs[m] = v.pointer + offset[i] * Float.BYTES;
                bs[m] = CudaTensor.of(b[g]).pointer;
                cols[m] = outs[g].cols();
                os[m] = CudaTensor.of(outs[g]).pointer + (long) runs.first()[i] * cols[m] * Float.BYTES;
                rows[m] = runs.length()[i];
                scales[m] = scale[g];
            }
            gpu.loraExpandChunks(x, vs, bs, os, cols, rows, scales, e.getKey());
            chunkExpandLaunches++;
        }
    }

    /** A chunk's rows and the rank of the entries (float32 shrinks) that share them: one group of lora_shrink_chunks. */
    private record ChunkRows(int first, int rows, int rank) {
    }

    /**
     * The float32 classes' shrinks by lora_shrink_chunks: v_i = x[run i] A_i^T into v at offset[i], the runs
     * that share their rows and rank in one group (x read once for them), a launch per rank.
     */
    private void shrinkByKernel(CudaTensor x, LoraRuns runs, java.util.Map<ChunkClass, java.util.List<Integer>> classes, Tensor[] a, long[] offset,
                                CudaTensor v) {
        java.util.Map<ChunkRows, java.util.List<Integer>> groups = new java.util.LinkedHashMap<>();
        for (var e : classes.entrySet()) {
            if (e.getKey().aType() == DType.F32) {
                for (int i : e.getValue()) {
                    groups.computeIfAbsent(new ChunkRows(runs.first()[i], runs.length()[i], e.getKey().rank()), k -> new java.util.ArrayList<>()).add(i);
                }
            }
        }
        java.util.Map<Integer, java.util.List<ChunkRows>> byRank = new java.util.TreeMap<>();
        groups.keySet().forEach(k -> byRank.computeIfAbsent(k.rank(), r -> new java.util.ArrayList<>()).add(k));
        for (var e : byRank.entrySet()) {
            java.util.List<ChunkRows> keys = e.getValue();
            int n = keys.size();
            int[] chunkFirst = new int[n];
            int[] chunkRows = new int[n];
            int[] entryStart = new int[n];
            int[] entryCount = new int[n];
            int entries = keys.stream().mapToInt(k -> groups.get(k).size()).sum();
            long[] aPtr = new long[entries];
            long[] vPtr = new long[entries];
            for (int s = 0, at = 0; s < n; s++) {
                ChunkRows k = keys.get(s);
                chunkFirst[s] = k.first();
                chunkRows[s] = k.rows();
                entryStart[s] = at;
                for (int i : groups.get(k)) {
                    aPtr[at] = CudaTensor.of(a[runs.group()[i]]).pointer;
                    vPtr[at++] = v.pointer + offset[i] * Float.BYTES;
                }
                entryCount[s] = at - entryStart[s];
            }
            gpu.loraShrinkChunks(x, chunkFirst, chunkRows, entryStart, entryCount, aPtr, vPtr, e.getKey());
            chunkKernelLaunches++;
        }
    }

    /** lora_shrink_chunks launches so far (tests). */
    int chunkKernelLaunches() {
        return chunkKernelLaunches;
    }

    /** lora_expand_chunks launches so far (tests). */
    int chunkExpandLaunches() {
        return chunkExpandLaunches;
    }

    /** The chunks' float32 expand by lora_expand_chunks or by cuBLAS, as -Dflora.cuda.loraChunkExpand does (tests run both). */
    void useChunkExpand(boolean on) {
        kernelExpand = on;
    }

    /** The chunks' float32 shrink by lora_shrink_chunks or by cuBLAS, as -Dflora.cuda.loraChunkKernel does (tests run both). */
    void useChunkKernel(boolean on) {
        kernelShrink = on;
    }

    /**
     * Runs on or off, as -Dflora.cuda.loraRuns does, from {@code minRun} rows at every rank, as
     * -Dflora.cuda.loraRunMin sets (0: loraRunMin(rank); tests: runs in short fixture prompts).
     */
    void use(boolean on, int minRun) {
        this.on = on;
        minFlag = minRun;
    }

    /** Runs cut into chunks of {@code rows} rows and batched, as -Dflora.cuda.loraRunChunk does (0: whole runs; tests run both), from one run a call. */
    void useChunks(int rows) {
        chunk = rows;
        chunkRuns = 1;
    }

    /** The chunks' shrink in up to {@code slices} slices of the width, as -Dflora.cuda.loraChunkSplit does (tests). */
    void useSplit(int slices) {
        this.slices = slices;
    }

    /** Whole runs stacked in passes of at most {@code columns} ranks, as -Dflora.cuda.loraStack does (0: off), from one run a call (tests). */
    void useStack(int columns) {
        stackColumns = columns;
        chunkRuns = 1;
    }

    /** Runs as they are without flags: on, minimum by rank, chunks of LORA_RUN_CHUNK from LORA_CHUNK_RUNS runs a call, the chunks' shrink and expand as -Dflora.cuda.loraChunkKernel and loraChunkExpand say (tests restore this). */
    void useDefaults() {
        on = true;
        minFlag = 0;
        chunk = LORA_RUN_CHUNK;
        chunkRuns = LORA_CHUNK_RUNS;
        slices = 1;
        stackColumns = 0;
        kernelShrink = CudaBackend.booleanFlag("flora.cuda.loraChunkKernel", false);
        kernelExpand = CudaBackend.booleanFlag("flora.cuda.loraChunkExpand", false);
    }
}
