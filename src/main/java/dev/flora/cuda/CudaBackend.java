package dev.flora.cuda;

import dev.flora.FloraException;
import dev.flora.backend.Activation;
import dev.flora.backend.AttentionShape;
import dev.flora.backend.Backend;
import dev.flora.backend.DType;
import dev.flora.backend.FloraProjection;
import dev.flora.backend.KvCache;
import dev.flora.backend.LoraTerms;
import dev.flora.backend.LogitSummary;
import dev.flora.backend.RmsNorm;
import dev.flora.backend.StepRecorder;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.safetensors.TensorView;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The CUDA backend: the same operations as the CPU backend, on one NVIDIA GPU. Activations are
 * float32 in device memory; weights keep their checkpoint type (F32, BF16, F16). Products go
 * through cuBLAS: float32 weights in pedantic float32 (no TF32), bf16 / f16 weights with the
 * activations rounded to the weight's type and float32 accumulation, as transformers runs a bf16
 * model. The other operations are Flora's own kernels (kernels.cu, compiled by NVRTC).
 */
public final class CudaBackend implements Backend {
    private static final int THREADS = 256;
    /** Products of up to this many rows with a bf16 / f16 weight use Flora's own GEMV kernel. */
    private static final int GEMV_MAX_ROWS = 4;
    /** kernels.cu's GEMV_ROWS (weight rows per block) and GEMV_THREADS. */
    private static final int GEMV_ROWS = 4;
    private static final int GEMV_THREADS = 128;
    /** kernels.cu's RMS_THREADS: rms_norm and the normed GEMVs sum a row with this many threads, in one order. */
    private static final int RMS_THREADS = 128;
    /**
     * Output columns per block of lora_expand (-Dflora.cuda.loraExpandColumns, 512 by default since session 27;
     * 1024 before): fewer make more blocks of a decode step's expand, each as long as a few memory round trips.
     * The same bits (each column's sum is its own). On an H100 (NOTES.md, session 27) 512 decoded the PEFT
     * workload 0.7-2.0% faster than 1024 in 4 of 4 rounds (end to end +0.4-1.2%); 256 was mixed.
     */
    private int loraExpandColumns = positiveFlag("flora.cuda.loraExpandColumns", 512);
    /** Input columns per block of lora_shrink: 256 is one 8-column load per lane of a warp. */
    private static final int LORA_SHRINK_SPAN = 256;
    /** lora_fused's largest rank (LORA_FUSED_RANKS) and most adapted tokens a call (a decode step of 256 sequences' q, k and v). */
    static final int LORA_FUSED_MAX_RANK = 64;
    static final int LORA_FUSED_MAX_TOKENS = 1024;
    /** lora_fused's block (LORA_FUSED_THREADS: its loops and warp sums assume it). */
    private static final int LORA_FUSED_THREADS = 256;
    /** kernels.cu's LT_TOKENS, LT_RANKS and LT_SPAN: the tiled LoRA kernels' tokens a tile (and columns a round), largest rank, input columns a block. */
    private static final int LORA_TILE_TOKENS = 32;
    private static final int LORA_TILE_RANKS = 64;
    private static final int LORA_TILE_SPAN = 1024;
    /**
     * The tiled kernels take the groups of at least LORA_TILED_MIN_GROUP tokens and rank
     * LORA_TILED_MIN_RANK or more, when those hold LORA_TILED_MIN_TOKENS tokens in all. On the H200
     * at d = 6144 they beat the per-token kernels from rank 16 (512 to 8192 tokens: 1.1-6.5x the
     * layer's speed) and lost below rank 8 (NOTES.md).
     */
    private static final int LORA_TILED_MIN_TOKENS = 128;
    private static final int LORA_TILED_MIN_GROUP = 8;
    private static final int LORA_TILED_MIN_RANK = 16;
    /** kernels.cu's FLORA_META: flora_gemv's ints per stacked row. */
    private static final int FLORA_META = 5;
    /** kernels.cu's FLORA_COLUMNS: columns per block of flora_modulate and flora_demodulate. */
    private static final int FLORA_COLUMNS = 1024;
    /** kernels.cu's ROTARY_MAX_HALF: the largest half head size of the rotary kernels. */
    private static final int ROTARY_MAX_HALF = 256;
    /** (token, head) pairs whose attention splits the last split joins (attention's counters); more go to attention_combine. */
    private static final int ATTENTION_COUNTERS = 1 << 20;
    /**
     * -Dflora.cuda.overlap=false launches the GEMVs without programmatic dependent launch (they then
     * start only when the kernel before them has ended): to measure what the overlap buys.
     */
    private final boolean overlapFlag = booleanFlag("flora.cuda.overlap", true);
    /** Decode attention: blocks per SM aimed at, the most splits of one context, the fewest positions a split takes. */
    private static final int ATTENTION_BLOCKS_PER_SM = 32;
    /**
     * The blocks per SM a decode step's attention splits its contexts for (-Dflora.cuda.attentionSplitBlocks,
     * default ATTENTION_BLOCKS_PER_SM): at 64 sequences of about 300 positions, 32 gives 3 splits of
     * about 100 positions (6,144 blocks). A tunable for the float32 lane sums (session 21, not yet timed),
     * which leave a block less arithmetic per position; the third form's choice keeps the default.
     */
    private final int attentionSplitBlocks = positiveFlag("flora.cuda.attentionSplitBlocks", ATTENTION_BLOCKS_PER_SM);
    private static final int ATTENTION_MAX_SPLITS = 64;
    // Positions a decode attention block takes at least (-Dflora.cuda.attentionMinSplit): fewer make more
    // blocks for short contexts, more make fewer splits to join.
    private int attentionMinSplit = positiveFlag("flora.cuda.attentionMinSplit", 32);
    private final boolean overlapAttention = booleanFlag("flora.cuda.overlapAttention", true);
    private static final ThreadLocal<CudaBackend> BOUND = new ThreadLocal<>();
    /** -Dflora.cuda.profile=true: wait for every operation and add up its time by name (printed at close). */
    final boolean profiling = booleanFlag("flora.cuda.profile", false);
    /**
     * A one-token decode step's q/k/v GEMV also rotates q and k and writes the cache
     * (gemv_qkv_rope_norm1), in place of rotary_write_kv's launch: +3% batch-1 decode on the H200
     * (NOTES.md, session 8). -Dflora.cuda.fuseRotation=false: the separate kernels.
     */
    private boolean fuseRotation = booleanFlag("flora.cuda.fuseRotation", true);
    /**
     * An fLoRA layer of at most GEMV_MAX_ROWS stacked rows (16-bit weight) modulates, multiplies and
     * demodulates in one GEMV launch (flora_gemv*) instead of three, with the same bits: +7.5% decode
     * at batch 1 with fLoRA r1 on q,k on the H200 (NOTES.md). -Dflora.cuda.fuseFlora=false: three.
     */
    private boolean fuseFlora = booleanFlag("flora.cuda.fuseFlora", true);
    /**
     * flora_modulate and flora_demodulate four columns a thread, one access per operand, where rows
     * allow (the same bits): fLoRA r1 at 4096², 8,192 tokens, 640 against 727 µs on the H200 (NOTES.md,
     * session 14). -Dflora.cuda.floraVectors=false: a column a thread.
     */
    private boolean floraVectors = booleanFlag("flora.cuda.floraVectors", true);
    /**
     * Batched products (-Dflora.cuda.batchedProducts=false turns them off): the products of one input
     * with weights of one shape and no bias (q, k and v of a model without grouped KV heads; gate and
     * up) in one cublasGemmBatchedEx where the input has at most BATCHED_PRODUCTS_MAX_ROWS rows (a decode
     * step of more rows than the GEMV takes): one launch whose blocks cover them all, where each alone
     * is short (a 4096² product of 64 rows: 13.2 µs, 2.5 TB/s, on the H200 by NCU, session 6). On by
     * default since session 20: Llama-2-7B decode +10.1% at 8 sequences, +5.8% at 32, +6.4% at 64, +5.2%
     * at 128 (none at 1, which takes the GEMV), the PEFT workload +4.7% (NOTES.md, session 20).
     */
    private boolean batchedProducts = booleanFlag("flora.cuda.batchedProducts", true);
    /**
     * fLoRA's joint layers (floraLinears: q and k of one shape, the same tokens and ranks) take their
     * products from the modulated rows in one batched cuBLAS call, as batchedProducts takes the base
     * model's (-Dflora.cuda.floraBatchedProducts=false: a product a layer). Session 28, H100: with a
     * product a layer fLoRA r1 and r2 on q, k at 64 sequences decoded at 0.945 and 0.948 of what their
     * bytes allow (goal 0.95), where the base model's q, k and v take one batched call.
     */
    private boolean floraBatchedProducts = booleanFlag("flora.cuda.floraBatchedProducts", true);
    /**
     * The gated MLP's activation written in 16 bits for the down product by one kernel (normGatedLinearAdd),
     * rather than in float32 then rounded by to_half; the same bits. On by default since session 25 (H100,
     * Llama-2-7B 64 x (256 + 64): end to end +1.5% without adapters, +1.8% on the PEFT workload, prefill
     * -3.5%; NOTES.md). -Dflora.cuda.mlpHalf=false: float32 then to_half.
     */
    private boolean mlpHalf = booleanFlag("flora.cuda.mlpHalf", true);
    /** batchedPointers' arrays by the pointers they hold, and how many sets eager steps may add to it. */
    private final java.util.Map<java.util.List<Long>, Long> batchedPointerSets = new java.util.HashMap<>();
    private int batchedPointerSetLimit = 4096;
    /**
     * -Dflora.cuda.skinnyProducts=true: products of up to 64 rows by a 16-bit weight through Flora's own
     * tensor-core kernel rather than cuBLAS (CudaSkinnyProducts). Built in session 16 without a GPU;
     * right on the H200 but 2.7x slower than cuBLAS at 64 x (256 + 64) (decode 2,500 against 6,640
     * tok/s, session 19): off.
     */
    private boolean skinnyProducts = booleanFlag("flora.cuda.skinnyProducts", false);
    /**
     * -Dflora.cuda.loraFused=N (N ≥ 1; 0, the default, is off): gathered LoRA calls of up to
     * LORA_FUSED_MAX_TOKENS adapted tokens (a decode step's) and ranks up to LORA_FUSED_MAX_RANK in one
     * launch, lora_fused, N blocks a token (each its shrink, then its expand over a 1/N of the output
     * columns), rather than lora_shrink and lora_expand. Built in session 17 without a GPU; right on
     * the H200 but slower on the PEFT workload's decode (N = 1: -21.6%, N = 4: -26.0%, session 19): off.
     */
    private int loraFused = wholeNumberFlag("flora.cuda.loraFused", 0);
    /**
     * lora_shrink and lora_expand launched overlapped (programmatic dependent launch, as the GEMVs): each
     * asks L2 for its block's slice of the adapter's factors before it waits for the kernel before it, so
     * B streams in while the shrink drains. The same bits either way. On by default since session 25 (H100,
     * the PEFT workload: decode +1.1%, end to end +0.6%; NOTES.md). -Dflora.cuda.loraOverlap=false: plain launches.
     */
    private boolean loraOverlap = booleanFlag("flora.cuda.loraOverlap", true);
    /**
     * The small kernels between the products (OVERLAPPED_SMALL) launched overlapped too: each may start as
     * the kernel before it drains, and waits for it before reading. The same bits either way. On by
     * default since session 25 (H100: decode +0.6% without adapters, +0.8% on the PEFT workload; NOTES.md).
     * -Dflora.cuda.overlapSmall=false: plain launches.
     */
    private boolean overlapSmall = booleanFlag("flora.cuda.overlapSmall", true);
    /**
     * -Dflora.cuda.loraFirst=true: where a step's only adapters on q, k and v are gathered LoRA taken token
     * by token, lora_shrink runs right after the norm (launched overlapped, it streams A while the norm
     * runs) and before the products, lora_expand after them (normLinearsLora); the same bits. Off: on an
     * H100 in session 25 the PEFT workload decoded 0.4% slower with it (NOTES.md).
     */
    private boolean loraFirst = booleanFlag("flora.cuda.loraFirst", false);
    private long loraFirstCalls; // normLinearsLora calls that took the shrink-first order (tests check they ran)
    /** The kernels overlapSmall launches overlapped: each calls grid_wait() before it reads. */
    private static final java.util.Set<String> OVERLAPPED_SMALL = java.util.Set.of("rms_norm", "to_half", "gated_activation",
            "gated_activation_half", "add_in_place");
    private CudaSkinnyProducts skinny; // its buffers, made at the first product it takes outside a recording
    static final int BATCHED_PRODUCTS_MAX_ROWS = 256;
    /**
     * Gathered LoRA in prompt steps by tiles of one adapter's tokens (lora_shrink_tiled,
     * lora_expand_tiled; tiledLora()). -Dflora.cuda.tiledLora=false: the per-token kernels always.
     */
    private boolean tiledLora = booleanFlag("flora.cuda.tiledLora", true);
    /** Gathered LoRA's prompt runs through cuBLAS, and their flags. */
    private final CudaLoraRuns loraRuns = new CudaLoraRuns(this);
    /**
     * -Dflora.cuda.tunedProducts=N (1024 by default since session 27; 0: off): products of N rows or more by
     * 16-bit weights through the fastest of cuBLASLt's candidates for the shape, timed at its first call
     * against cublasGemmEx (CudaTunedProducts). On an H100 (NOTES.md, session 27) Llama-2-7B's 16,384-token
     * prompt step took 2.3-3.8% less time with it (64 × (256 + 64), end to end +1.7% on the PEFT workload and
     * +0.2-1.4% without adapters, both rounds above both default rounds).
     */
    private int tunedProducts = wholeNumberFlag("flora.cuda.tunedProducts", TUNED_PRODUCTS_ROWS);
    /** The default fewest rows of a tuned product (-Dflora.cuda.tunedProducts): prompt steps, never a recorded decode step. */
    static final int TUNED_PRODUCTS_ROWS = 1024;
    private final CudaTunedProducts tuned = new CudaTunedProducts(this);
    /**
     * The decode attention kernel: by default (auto) the third form (attention_v3_*: the second with each
     * chunk's keys and values staged in shared memory) where a step launches blocks enough to hide its
     * waits for them, else the second (attention_v2_*: 16-byte loads, several in flight a lane); both
     * for 16-bit caches and head sizes 64 and 128, the same bits. On the H200 the third gave +3.5%
     * decode at 64 sequences of 256 + 64 (llama2-7b shape) and -10% at one sequence (NOTES.md, session
     * 12). attention_* (v1) for every other cache and head size. -Dflora.cuda.attention=v1|v2|v3|v4 takes
     * one form everywhere it applies; v4 (attention_v4_*, session 17) streams each lane group's own
     * positions with its own online softmax, keys and values in flight together: right on the H200, but
     * 3.1% slower than auto at 64 sequences (7.5% with rounds of one position; session 19).
     */
    private String decodeAttentionForm = attentionForm(System.getProperty("flora.cuda.attention", "auto"));
    /**
     * The prefill attention's tile kernel: v2 (attention_tiles2_*, session 17) by default since session
     * 20, the same sums in the same order as v1 (attention_tiles_*, -Dflora.cuda.attentionTiles=v1) with
     * each tile's cache slots looked up once, the key and value tiles copied by cp.async while the tile
     * before is multiplied: the same bits as v1 on the H200 (session 20; session 19's "differ" was
     * AssertJ's quadratic diff timing out on equal arrays), 6.4-14% off Llama-2-7B prefills of 8 x 512
     * to 4 x 2,048 tokens.
     */
    private String tileAttentionForm = tileAttentionForm(System.getProperty("flora.cuda.attentionTiles", "v2"));
    private final java.util.Map<String, long[]> profile = new java.util.TreeMap<>();
    private int profileTokens; // the current step's, to tell prefill from decode in the profile

    private final Driver driver;
    private final MemorySegment context;
    private final MemorySegment stream;
    private final MemorySegment weightStream; // weight(TensorView)'s copies
    private final KernelModule kernels;
    private Cublas cublas; // made at the first product: only libcuda is needed to start
    private final Object cublasWorkspace = new Object();
    private long cublasWorkspacePointer;
    private CublasLt cublasLt;
    private final CudaFloraRuns floraRuns = new CudaFloraRuns(this);
    private MemorySegment staging; // page-locked host memory for copies back (staging())
    private CudaStep fixedStep; // while recorded work runs: the step data prepare() returns
    /** How stream work is issued now: run, captured into a graph, or only logged (a replay's dry run). */
    private Issue issue = Issue.RUN;
    /** While capturing or logging: every launch, product, fill and upload destination, in order (WorkLog). */
    private java.util.List<Object> workLog;
    /** The thread running the recorded or logged work: another's operations (an adapter loading) are not part of it. */
    private Thread issuingThread;

    /** RUN: on the stream now; CAPTURE: into the graph the stream captures; LOG: only into the work log (uploads excepted). */
    enum Issue { RUN, CAPTURE, LOG }

    private final DeviceMemory memory;
    private final String deviceName;
    private final int smCount;
    private final boolean overlap; // programmatic dependent launch: Hopper (compute capability 9) on
    private final long attentionCounters; // ATTENTION_COUNTERS ints, zero between launches
    private MemorySegment[] timingEvents; // deviceMicros()'s start and end
    private long queueNanos; // how long deviceMicros()'s last work took the host to queue
    private RoundingBuffer rounding; // roundingBuffer()'s, valid in memory generation roundingGeneration
    private long roundingGeneration;

    record CudaStep(TokenBatch batch, long tokens, long positions, long seqOfToken, long cacheSlots, long blockTables,
                            int maxBlocks, int longestContext) implements StepData {
    }

    private CudaBackend(int ordinal) {
        this.driver = Driver.load();
        int count = driver.deviceCount();
        if (count == 0) {
            throw new CudaException("no CUDA device: the driver sees no GPU (--device cpu works without one)");
        }
        if (ordinal < 0 || ordinal >= count) {
            throw new CudaException("CUDA device " + ordinal + " does not exist (" + count + " found)");
        }
        int device = driver.device(ordinal);
        this.context = driver.retainPrimaryContext(device);
        BOUND.set(this);
        this.deviceName = driver.deviceName(device);
        this.smCount = driver.attribute(device, Driver.ATTR_SM_COUNT);
        this.stream = driver.createStream();
        this.weightStream = driver.createStream();
        this.memory = new DeviceMemory(driver, this::waitForStreams);
        int major = driver.attribute(device, Driver.ATTR_COMPUTE_MAJOR);
        this.kernels = KernelModule.load(driver, major, driver.attribute(device, Driver.ATTR_COMPUTE_MINOR));
        this.overlap = overlapFlag && major >= 9;
        this.attentionCounters = memory.permanent(4L * ATTENTION_COUNTERS, this);
        driver.fill32(attentionCounters, 0, ATTENTION_COUNTERS, stream);
    }

    /** The backend on GPU {@code ordinal}; a {@link FloraException} saying why when there is none. */
    public static CudaBackend open(int ordinal) {
        return new CudaBackend(ordinal);
    }

    @Override
    public String device() {
        return "cuda";
    }

    @Override
    public String name() {
        return "cuda (" + deviceName + ", " + smCount + " SMs)";
    }

    /** Runs work with stream operations issued so, logged into log (when not null), on the step data of step. */
    <T> T issuing(Issue how, java.util.List<Object> log, CudaStep step, java.util.function.Supplier<T> work) {
        issue = how;
        workLog = log;
        fixedStep = step;
        issuingThread = Thread.currentThread();
        try {
            return work.get();
        } finally {
            issue = Issue.RUN;
            workLog = null;
            fixedStep = null;
            issuingThread = null;
        }
    }

    private boolean issuingHere() {
        return issuingThread == Thread.currentThread();
    }

    /** Whether this thread runs a recorder's work now (its run, dry run or capture), on fixedStep's data. */
    private boolean inRecordedWork() {
        return fixedStep != null && issuingHere();
    }

    /** Chooses the decode attention kernel (tests run each form) as -Dflora.cuda.attention does: auto, v1, v2, v3 or v4. */
    void useDecodeAttention(String form) {
        decodeAttentionForm = attentionForm(form);
    }

    /** A JVM flag's positive integer value (fallback where unset), or a refusal a user can act on. */
    static int positiveFlag(String name, int fallback) {
        return positiveFlag(name, System.getProperty(name), fallback);
    }

    static int positiveFlag(String name, String value, int fallback) {
        if (value == null) {
            return fallback;
        }
        try {
            int v = Integer.parseInt(value.trim());
            if (v >= 1) {
                return v;
            }
        } catch (NumberFormatException e) {
            // refused below
        }
        throw new FloraException("-D" + name + " takes a positive whole number, not '" + value + "'");
    }

    /** A JVM flag of 0 or more (0: the feature off; fallback where unset), or a refusal a user can act on. */
    static int wholeNumberFlag(String name, int fallback) {
        return wholeNumberFlag(name, System.getProperty(name), fallback);
    }

    static int wholeNumberFlag(String name, String value, int fallback) {
        if (value != null && value.trim().equals("0")) {
            return 0;
        }
        try {
            return positiveFlag(name, value, fallback);
        } catch (FloraException e) {
            throw new FloraException("-D" + name + " takes 0 or a positive whole number, not '" + value + "'");
        }
    }

    /** A JVM flag's true or false (fallback where unset), or a refusal a user can act on. */
    static boolean booleanFlag(String name, boolean fallback) {
        return booleanFlag(name, System.getProperty(name), fallback);
    }

    static boolean booleanFlag(String name, String value, boolean fallback) {
        if (value == null) {
            return fallback;
        }
        return switch (value.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "true" -> true;
            case "false" -> false;
            default -> throw new FloraException("-D" + name + " takes true or false, not '" + value + "'");
        };
    }

    static String tileAttentionForm(String form) {
        if (!form.equals("v1") && !form.equals("v2")) {
            throw new FloraException("-Dflora.cuda.attentionTiles takes v1 or v2 (the prefill attention's tile kernel), not '" + form + "'");
        }
        return form;
    }

    /** The fewest positions a decode attention split takes, as -Dflora.cuda.attentionMinSplit sets it (tests make long splits with it). */
    void useAttentionMinSplit(int positions) {
        attentionMinSplit = positiveFlag("flora.cuda.attentionMinSplit", Integer.toString(positions), 32);
    }

    int attentionMinSplit() {
        return attentionMinSplit;
    }

    /** Chooses the prefill attention's tile kernel (tests run both) as -Dflora.cuda.attentionTiles does: v1 or v2. */
    void useTileAttention(String form) {
        tileAttentionForm = tileAttentionForm(form);
    }

    String tileAttention() {
        return tileAttentionForm;
    }

    static String attentionForm(String form) {
        if (!java.util.List.of("auto", "v1", "v2", "v3", "v4").contains(form)) {
            throw new FloraException("-Dflora.cuda.attention takes auto, v1, v2, v3 or v4 (the decode attention kernel), not '" + form + "'");
        }
        return form;
    }

    /**
     * The form auto takes for a launch of this many blocks: the third where there are at least
     * ATTENTION_BLOCKS_PER_SM a multiprocessor (other blocks' loads then cover a block's wait for its
     * staged chunk), else the second. At one sequence of 256 + 64 (320 blocks on the H200's 132
     * multiprocessors) the third was 10% slower; at 64 sequences (6,144 blocks) 3.5% faster.
     */
    static String autoAttentionForm(long blocks, int smCount) {
        return blocks >= (long) ATTENTION_BLOCKS_PER_SM * smCount ? "v3" : "v2";
    }

    String decodeAttention() {
        return decodeAttentionForm;
    }

    // For the graph recorder (GraphRecorder).
    void bindContext() {
        bind();
    }

    Driver driver() {
        return driver;
    }

    MemorySegment stream() {
        return stream;
    }

    MemorySegment context() {
        return context;
    }

    DeviceMemory memory() {
        return memory;
    }

    /** The primary context is current per thread: make it current on whichever thread calls. */
    private void bind() {
        if (BOUND.get() != this) {
            driver.setCurrent(context);
            BOUND.set(this);
        }
    }

    // ---- memory ----

    CudaTensor allocateTyped(DType type, int rows, int cols) {
        Object lifetime = new Object();
        long bytes = Math.max(1, (long) rows * cols * type.bytes());
        long pointer = memory.allocate(bytes, lifetime);
        return new CudaTensor(pointer, type, rows, cols, lifetime);
    }

    /**
     * A 16-bit copy of a product's input for cuBLAS. Every product of a step (or recording) shares one
     * buffer, grown when a larger one is asked for: the stream runs the rounding and the products in
     * order, and a prefill step of 40 layers would otherwise hold 40 × 4 copies (tens of GB at 8192
     * tokens).
     */
    CudaTensor roundingBuffer(DType type, int rows, int cols) {
        long bytes = (long) rows * cols * type.bytes();
        if (rounding == null || roundingGeneration != memory.generation() || rounding.bytes() < bytes) {
            Object lifetime = new Object();
            rounding = new RoundingBuffer(memory.allocate(Math.max(1, bytes), lifetime), bytes, lifetime);
            roundingGeneration = memory.generation();
        }
        return new CudaTensor(rounding.pointer(), type, rows, cols, rounding.lifetime());
    }

    private record RoundingBuffer(long pointer, long bytes, Object lifetime) {
    }

    void upload(long device, MemorySegment host, long bytes) {
        if (bytes > 0) {
            driver.copyToDevice(device, host, bytes, stream);
        }
    }

    /** Int arrays for a kernel, in step (or owned) device memory. */
    private long ints(int[] values, Object owner) {
        return packed(owner, (Object) values)[0];
    }

    /** Floats in permanent device memory (weights, tensors made from the host), copied as weight(TensorView)'s are. */
    private long permanentFloats(float[] values, Object owner) {
        try (Arena arena = Arena.ofConfined()) {
            return permanentCopy(arena.allocateFrom(ValueLayout.JAVA_FLOAT, values), Math.max(4L, values.length * 4L), owner);
        }
    }

    /** Longs (device pointers) in permanent device memory, copied as permanentFloats' are. */
    private long permanentLongs(long[] values, Object owner) {
        try (Arena arena = Arena.ofConfined()) {
            return permanentCopy(arena.allocateFrom(ValueLayout.JAVA_LONG, values), Math.max(8L, values.length * 8L), owner);
        }
    }

    /** host's bytes in a permanent buffer of {@code bytes}, copied on the weights' stream and waited for. */
    private long permanentCopy(MemorySegment host, long bytes, Object owner) {
        long pointer = memory.permanent(bytes, owner);
        if (host.byteSize() > 0) {
            driver.copyToDevice(pointer, host, host.byteSize(), weightStream);
            driver.synchronize(weightStream);
        }
        return pointer;
    }

    /** Small arrays (int[], long[], float[]) for one launch, uploaded in one copy: device pointers in the order given. */
    long[] packed(Object owner, Object... arrays) {
        long[] offsets = new long[arrays.length];
        long size = 0;
        for (int i = 0; i < arrays.length; i++) {
            offsets[i] = size;
            long bytes = switch (arrays[i]) {
                case int[] v -> 4L * v.length;
                case long[] v -> 8L * v.length;
                case float[] v -> 4L * v.length;
                default -> throw new IllegalArgumentException("packed: " + arrays[i].getClass());
            };
            size += (bytes + 7) / 8 * 8;
        }
        long device = memory.allocateUpload(Math.max(8, size), owner);
        if (workLog != null && issuingHere()) {
            workLog.add("upload");
            workLog.add(device);
            if (issue == Issue.CAPTURE) {
                // Not part of the graph: a replay's dry run copies each step's own data here first.
                return offsetsFrom(device, offsets);
            }
        }
        MemorySegment staged = memory.stage(Math.max(8, size)); // page-locked within a step: the copy never waits for the stream
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = staged != null ? staged : arena.allocate(Math.max(8, size), 8);
            for (int i = 0; i < arrays.length; i++) {
                switch (arrays[i]) {
                    case int[] v -> MemorySegment.copy(v, 0, host, ValueLayout.JAVA_INT, offsets[i], v.length);
                    case long[] v -> MemorySegment.copy(v, 0, host, ValueLayout.JAVA_LONG, offsets[i], v.length);
                    case float[] v -> MemorySegment.copy(v, 0, host, ValueLayout.JAVA_FLOAT, offsets[i], v.length);
                    default -> throw new IllegalArgumentException();
                }
            }
            upload(device, host, size);
        }
        return offsetsFrom(device, offsets);
    }

    private static long[] offsetsFrom(long device, long[] offsets) {
        long[] pointers = new long[offsets.length];
        for (int i = 0; i < offsets.length; i++) {
            pointers[i] = device + offsets[i];
        }
        return pointers;
    }

    @Override
    public Tensor weight(TensorView source, int rows, int cols) {
        bind();
        if ((long) rows * cols != source.numel()) {
            throw new IllegalArgumentException(source + " viewed as [" + rows + ", " + cols + "]");
        }
        DType type = source.dtype();
        if (type != DType.F32 && type != DType.BF16 && type != DType.F16) {
            return weight(source.toFloatArray(), rows, cols);
        }
        Object lifetime = new Object();
        long bytes = source.numel() * type.bytes();
        long pointer = memory.permanent(bytes, lifetime);
        if (source.isRandom()) {
            // On the weights' stream too: never part of a step being recorded or logged on another thread.
            CudaTensor t = new CudaTensor(pointer, type, rows, cols, lifetime);
            int grid = (int) Math.min((t.numel() + THREADS - 1) / THREADS, 65535L * 8);
            kernels.launch("fill_random", grid, 1, THREADS, 0, weightStream, pointer, t.typeCode(), t.numel(), source.seed(), rows == 1 ? 1 : 0);
            driver.synchronize(weightStream);
            return t;
        }
        // On a stream of its own: an adapter read beside serving neither waits for the step's work nor
        // holds it up (nor touches a stream a graph is being recorded on).
        driver.copyToDevice(pointer, source.data(), bytes, weightStream);
        driver.synchronize(weightStream); // the source may be unmapped once this returns
        return new CudaTensor(pointer, type, rows, cols, lifetime);
    }

    @Override
    public Tensor weight(float[] values, int rows, int cols) {
        bind();
        if (values.length != (long) rows * cols) {
            throw new IllegalArgumentException(values.length + " values for [" + rows + ", " + cols + "]");
        }
        Object lifetime = new Object();
        long pointer = permanentFloats(values, lifetime);
        driver.synchronize(stream);
        return new CudaTensor(pointer, DType.F32, rows, cols, lifetime);
    }

    @Override
    public Tensor allocate(int rows, int cols) {
        bind();
        CudaTensor t = allocateTyped(DType.F32, rows, cols);
        if (t.numel() > 0 && !logged("fill", rows, cols, 0, 0, t.pointer)) {
            driver.fill32(t.pointer, 0, t.numel(), stream);
        }
        return t;
    }

    @Override
    public Tensor fromHost(float[] values, int rows, int cols) {
        bind();
        if (values.length != (long) rows * cols) {
            throw new IllegalArgumentException(values.length + " values for [" + rows + ", " + cols + "]");
        }
        // Always long-lived: models make their constants (inverse frequencies, say) this way.
        Object lifetime = new Object();
        return new CudaTensor(permanentFloats(values, lifetime), DType.F32, rows, cols, lifetime);
    }

    @Override
    public Tensor rows(Tensor t, int from, int count) {
        CudaTensor c = CudaTensor.of(t);
        if (from < 0 || count < 0 || from + count > c.rows()) {
            throw new IndexOutOfBoundsException("rows [" + from + ", " + (from + count) + ") of " + c.rows());
        }
        return new CudaTensor(c.pointer + (long) from * c.cols() * c.dtype().bytes(), c.dtype(), count, c.cols(), c);
    }

    @Override
    public float[] toHost(Tensor t) {
        bind();
        long started = profiling ? begin() : 0;
        try {
            return copyToHost(t);
        } finally {
            if (profiling) {
                end("toHost", started);
            }
        }
    }

    /** Synchronized: the page-locked buffer is one, and an adapter loader's thread may copy back beside the engine's. */
    private synchronized float[] copyToHost(Tensor t) {
        if (issue != Issue.RUN && issuingHere()) {
            throw new IllegalStateException("recorded work reads nothing back from the GPU"); // the step then runs directly
        }
        CudaTensor c = CudaTensor.of(t);
        int n = Math.toIntExact(c.numel());
        MemorySegment host = staging(c.bytes());
        if (n > 0) {
            driver.copyToHost(host, c.pointer, c.bytes(), stream);
        }
        driver.synchronize(stream);
        float[] out = new float[n];
        switch (c.dtype()) {
            case F32 -> MemorySegment.copy(host, ValueLayout.JAVA_FLOAT, 0, out, 0, n);
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.intBitsToFloat((host.getAtIndex(ValueLayout.JAVA_SHORT, i) & 0xffff) << 16);
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.float16ToFloat(host.getAtIndex(ValueLayout.JAVA_SHORT, i));
                }
            }
            default -> throw new IllegalStateException("toHost of " + c.dtype());
        }
        return out;
    }

    /**
     * A page-locked host buffer of at least {@code bytes}, reused by every copy back (callers hold
     * this backend's lock): copies from pageable memory go through a driver staging buffer at a
     * fraction of the bus's speed. Grows by doubling; the old one is freed once the stream is idle.
     */
    private MemorySegment staging(long bytes) {
        if (staging == null || staging.byteSize() < bytes) {
            driver.synchronize(stream);
            if (staging != null) {
                driver.freeHost(staging);
            }
            long size = Math.max(1L << 20, Long.highestOneBit(Math.max(1, bytes - 1)) << 1);
            staging = driver.allocHost(size);
        }
        return staging;
    }

    @Override
    public synchronized LogitSummary summarizeLogits(Tensor logits, float[] onHost) {
        bind();
        CudaTensor c = CudaTensor.of(logits);
        int rows = c.rows();
        if (c.dtype() != DType.F32) {
            throw new IllegalArgumentException("summarizeLogits of " + c.dtype() + " logits");
        }
        if (rows == 0) {
            return new LogitSummary(new int[0], new float[0], new double[0]);
        }
        long started = profiling ? begin() : 0;
        long bytes = rows * 16L;
        long summary = memory.allocate(bytes, logits);
        launch("logit_summary", rows, 1, 1024, 0, c.pointer, c.cols(), summary, summary + rows * 8L, summary + rows * 12L);
        MemorySegment host = staging(bytes);
        driver.copyToHost(host, summary, bytes, stream);
        driver.synchronize(stream);
        double[] lse = new double[rows];
        float[] max = new float[rows];
        int[] argmax = new int[rows];
        MemorySegment.copy(host, ValueLayout.JAVA_DOUBLE, 0, lse, 0, rows);
        MemorySegment.copy(host, ValueLayout.JAVA_FLOAT, rows * 8L, max, 0, rows);
        MemorySegment.copy(host, ValueLayout.JAVA_INT, rows * 12L, argmax, 0, rows);
        if (profiling) {
            end("summarizeLogits", started);
        }
        return new LogitSummary(argmax, max, lse);
    }

    @Override
    public KvCache allocateKvCache(int layers, int numBlocks, int blockSize, int kvWidth, DType type) {
        bind();
        if (type != DType.F32 && type != DType.BF16 && type != DType.F16) {
            throw new IllegalArgumentException("a KV cache of " + type);
        }
        Object lifetime = new Object();
        long[] keys = new long[layers];
        long[] values = new long[layers];
        long perLayer = (long) numBlocks * blockSize * kvWidth * type.bytes();
        for (int l = 0; l < layers; l++) {
            keys[l] = memory.permanent(perLayer, lifetime);
            values[l] = memory.permanent(perLayer, lifetime);
            driver.fill32(keys[l], 0, perLayer / 4, stream);
            driver.fill32(values[l], 0, perLayer / 4, stream);
        }
        driver.synchronize(stream);
        return new CudaKvCache(layers, numBlocks, blockSize, kvWidth, type, keys, values, lifetime);
    }

    /** A 16-bit model's cache in its own type; float32 models keep the exact float32 cache. */
    @Override
    public DType kvCacheType(DType weights) {
        return weights == DType.BF16 || weights == DType.F16 ? weights : DType.F32;
    }

    Cublas cublas() {
        if (cublas == null) {
            cublasWorkspacePointer = memory.permanent(Cublas.WORKSPACE_BYTES, cublasWorkspace);
            cublas = new Cublas(stream, cublasWorkspacePointer);
        }
        return cublas;
    }

    /** cuBLASLt on the same stream and workspace, made at its first use (fLoRA's scaled products, CudaFloraRuns). */
    CublasLt cublasLt() {
        if (cublasLt == null) {
            cublas();
            cublasLt = new CublasLt(stream, cublasWorkspacePointer);
        }
        return cublasLt;
    }

    @Override
    public StepData prepare(TokenBatch batch) {
        bind();
        if (inRecordedWork()) {
            return fixedStep;
        }
        memory.beginStep();
        profileTokens = batch.numTokens();
        int maxBlocks = 1;
        for (int[] table : batch.blockTables()) {
            maxBlocks = Math.max(maxBlocks, table.length);
        }
        int[] tables = new int[batch.numSequences() * maxBlocks];
        for (int s = 0; s < batch.numSequences(); s++) {
            System.arraycopy(batch.blockTables()[s], 0, tables, s * maxBlocks, batch.blockTables()[s].length);
        }
        int longest = 1;
        for (int p : batch.positions()) {
            longest = Math.max(longest, p + 1);
        }
        Object step = new Object();
        return new CudaStep(batch, ints(batch.tokens(), step), ints(batch.positions(), step), ints(batch.seqOfToken(), step),
                ints(batch.cacheSlots(), step), ints(tables, step), maxBlocks, longest);
    }

    // ---- operations ----

    /** rows blocks of THREADS threads (none for no rows). */
    void launchRows(String kernel, int rows, Object... args) {
        if (rows > 0) {
            launch(kernel, rows, 1, THREADS, 0, args);
        }
    }

    private void launch(String kernel, int gridX, int gridY, int block, int shared, Object... args) {
        if (logged(kernel, gridX, gridY, block, shared, args)) {
            return;
        }
        long start = profiling ? begin() : 0;
        kernels.launch(kernel, gridX, gridY, block, shared, stream, args);
        if (profiling) {
            end(kernel, start);
        }
    }

    /**
     * lora_shrink_chunks (CudaLoraRuns.byChunk's float32 shrink by a kernel): chunk group s's entries
     * entryStart[s] .. + entryCount[s], each v = x[chunkFirst[s] .. + chunkRows[s]] A^T, all of rank
     * {@code rank}; blocks of 32 rows and a warp an octet of the entries' ranks, 4 to 16 warps (LC_MIN_WARPS, LC_MAX_WARPS).
     */
    void loraShrinkChunks(CudaTensor x, int[] chunkFirst, int[] chunkRows, int[] entryStart, int[] entryCount, long[] aPtr, long[] vPtr, int rank) {
        int rows = java.util.Arrays.stream(chunkRows).max().orElse(0);
        int entries = java.util.Arrays.stream(entryCount).max().orElse(0);
        int octets = (entries * rank + 7) / 8;
        int warps = Math.max(CudaLoraRuns.CHUNK_KERNEL_MIN_WARPS, Math.min(CudaLoraRuns.CHUNK_KERNEL_WARPS, octets));
        int rowTiles = (rows + 31) / 32;
        long[] p = packed(x, chunkFirst, chunkRows, entryStart, entryCount, aPtr, vPtr);
        launch("lora_shrink_chunks", chunkFirst.length, rowTiles * ((octets + warps - 1) / warps), 32 * warps, 0, x.pointer, x.cols(), p[0], p[1],
                p[2], p[3], p[4], p[5], rank, rowTiles);
    }

    /**
     * lora_expand_chunks8, 16 or 32 (CudaLoraRuns.byChunk's float32 expand by a kernel): entry e's rows
     * outPtr[e] .. + entryRows[e] rows of outCols[e] columns += scale[e] · v_e B_e^T, all of rank {@code rank}
     * (at most CudaLoraRuns.CHUNK_EXPAND_MAX_RANK); blocks of 256 output columns.
     */
    void loraExpandChunks(Object owner, long[] vPtr, long[] bPtr, long[] outPtr, int[] outCols, int[] entryRows, float[] scale, int rank) {
        int widest = java.util.Arrays.stream(outCols).max().orElse(0);
        long[] p = packed(owner, vPtr, bPtr, outPtr, outCols, entryRows, scale);
        String kernel = "lora_expand_chunks" + (rank <= 8 ? 8 : rank <= 16 ? 16 : 32);
        launch(kernel, vPtr.length, (widest + 255) / 256, 256, 0, p[0], p[1], p[2], p[3], p[4], p[5], rank);
    }

    /** A GEMV kernel (it calls grid_wait() first): launched to overlap the end of the kernel before it where the GPU can. */
    private void launchOverlapped(String kernel, int gridX, int block, Object... args) {
        launchOverlapped(kernel, gridX, 1, block, args);
    }

    /** A kernel that reads what earlier kernels wrote only after grid_wait(), overlapping the end of the one before it. */
    private void launchOverlapped(String kernel, int gridX, int gridY, int block, Object... args) {
        launchOverlapped(kernel, gridX, gridY, block, 0, args);
    }

    /** launchOverlapped with {@code shared} bytes of dynamic shared memory. */
    private void launchOverlapped(String kernel, int gridX, int gridY, int block, int shared, Object... args) {
        if (!overlap) {
            launch(kernel, gridX, gridY, block, shared, args);
            return;
        }
        if (logged("overlapped " + kernel, gridX, gridY, block, shared, args)) {
            return;
        }
        long start = profiling ? begin() : 0;
        kernels.launchOverlapped(kernel, gridX, gridY, block, shared, stream, args);
        if (profiling) {
            end(kernel, start);
        }
    }

    /**
     * Notes an operation in the work log while one is kept (its name, sizes and every argument: equal
     * logs mean interchangeable graphs); whether it stops there, in a dry run.
     */
    private boolean logged(String what, int a, int b, int c, int d, Object... args) {
        if (workLog == null || !issuingHere()) {
            return false;
        }
        workLog.add(what);
        workLog.add(a);
        workLog.add(b);
        workLog.add(c);
        workLog.add(d);
        java.util.Collections.addAll(workLog, args);
        return issue == Issue.LOG;
    }

    long begin() {
        if (fixedStep != null) {
            return 0; // recording: nothing may wait
        }
        driver.synchronize(stream);
        return System.nanoTime();
    }

    void end(String what, long start) {
        if (fixedStep != null) {
            return;
        }
        driver.synchronize(stream);
        long[] t = profile.computeIfAbsent(String.format("%-24s %6d tokens", what, profileTokens), k -> new long[2]);
        t[0] += System.nanoTime() - start;
        t[1]++;
    }

    private void launchElements(String kernel, long n, Object... args) {
        if (n > 0) {
            int grid = (int) Math.min((n + THREADS - 1) / THREADS, 65535L * 8);
            launchSmall(kernel, grid, 1, THREADS, args);
        }
    }

    /** A kernel of OVERLAPPED_SMALL launched overlapped (unless -Dflora.cuda.overlapSmall=false); any other kernel as launch does. */
    private void launchSmall(String kernel, int gridX, int gridY, int block, Object... args) {
        if (overlapSmall && OVERLAPPED_SMALL.contains(kernel)) {
            launchOverlapped(kernel, gridX, gridY, block, 0, args);
        } else {
            launch(kernel, gridX, gridY, block, 0, args);
        }
    }

    /** An element-wise kernel that takes {@code width} elements per access when {@code vec}. */
    private void launchVector(String kernel, long n, int width, boolean vec, Object... args) {
        launchElements(kernel, vec ? Math.max(1, n / width) : n, args);
    }

    /** Whether every pointer allows 16-byte accesses. */
    private static boolean aligned(long... pointers) {
        for (long p : pointers) {
            if ((p & 15) != 0) {
                return false;
            }
        }
        return true;
    }

    /** An optional tensor (a bias, say) as this backend's, or null. */
    private static CudaTensor orNull(Tensor t) {
        return t == null ? null : CudaTensor.of(t);
    }

    private static Long ptr(CudaTensor t) {
        return t == null ? null : t.pointer;
    }

    private static int type(CudaTensor t) {
        return t == null ? 0 : t.typeCode();
    }

    @Override
    public void embed(Tensor table, StepData step, Tensor out) {
        bind();
        CudaTensor tab = CudaTensor.of(table);
        CudaStep s = (CudaStep) step;
        launchRows("embed", s.batch().numTokens(), tab.pointer, tab.typeCode(), s.tokens(), CudaTensor.of(out).pointer, tab.cols());
    }

    @Override
    public void addPositionEmbedding(Tensor table, StepData step, Tensor x) {
        bind();
        CudaTensor tab = CudaTensor.of(table);
        CudaStep s = (CudaStep) step;
        launchRows("add_rows_of", s.batch().numTokens(), tab.pointer, tab.typeCode(), s.positions(), CudaTensor.of(x).pointer, tab.cols());
    }

    @Override
    public void splitQkv(Tensor fused, int headDim, boolean perHead, Tensor q, Tensor k, Tensor v) {
        bind();
        int qw = q.cols();
        int kw = k.cols();
        if (fused.cols() != qw + 2 * kw || (perHead && qw != kw)) {
            throw new IllegalArgumentException("splitQkv: fused width " + fused.cols() + " for q " + qw + ", k/v " + kw);
        }
        launchRows("split_qkv", fused.rows(), CudaTensor.of(fused).pointer, CudaTensor.of(q).pointer, CudaTensor.of(k).pointer,
                CudaTensor.of(v).pointer, qw, kw, headDim, perHead ? 1 : 0);
    }

    @Override
    public void gatherRows(Tensor x, int[] rows, Tensor out) {
        bind();
        if (rows.length > 0) {
            launchRows("gather_rows", rows.length, CudaTensor.of(x).pointer, ints(rows, out), CudaTensor.of(out).pointer, x.cols());
        }
    }

    @Override
    public void scatterRows(Tensor src, int[] rows, float scale, Tensor bias, boolean accumulate, Tensor dst) {
        bind();
        if (rows.length > 0) {
            CudaTensor b = bias == null ? null : CudaTensor.of(bias);
            launchRows("scatter_rows", rows.length, CudaTensor.of(src).pointer, ints(rows, dst), scale, ptr(b), type(b),
                    accumulate ? 1 : 0, CudaTensor.of(dst).pointer, dst.cols());
        }
    }

    @Override
    public void mulRows(Tensor x, int[] rows, Tensor vectors, int vectorRow) {
        bind();
        CudaTensor v = CudaTensor.of(vectors);
        int n = rows == null ? x.rows() : rows.length;
        if (n > 0) {
            launchRows("mul_rows", n, CudaTensor.of(x).pointer, rows == null ? null : ints(rows, x), v.pointer, v.typeCode(), vectorRow,
                    x.cols());
        }
    }

    @Override
    public void mulRowsGrouped(Tensor x, int[][] rows, Tensor[] vectors) {
        bind();
        int total = 0;
        for (int[] r : rows) {
            total += r.length;
        }
        if (total == 0) {
            return;
        }
        int[] rowOf = new int[total];
        int[] groupOf = new int[total];
        long[] vectorPtr = new long[rows.length];
        int[] vectorType = new int[rows.length];
        for (int g = 0, k = 0; g < rows.length; g++) {
            CudaTensor v = CudaTensor.of(vectors[g]);
            if (v.cols() != x.cols()) {
                throw new IllegalArgumentException("mulRowsGrouped: a vector of " + v.cols() + " for rows of " + x.cols());
            }
            vectorPtr[g] = v.pointer;
            vectorType[g] = v.typeCode();
            for (int r : rows[g]) {
                rowOf[k] = r;
                groupOf[k++] = g;
            }
        }
        long[] p = packed(x, rowOf, groupOf, vectorPtr, vectorType);
        launchRows("mul_rows_grouped", total, CudaTensor.of(x).pointer, p[0], p[1], p[2], p[3], x.cols());
    }

    @Override
    public void rmsNorm(Tensor x, Tensor weight, float eps, Tensor out) {
        bind();
        rmsNorm(CudaTensor.of(x), new RmsNorm(weight, eps), CudaTensor.of(out), null);
    }

    /**
     * out = x normed; {@code rounded} (when not null, 16-bit) also receives it rounded to its type. out may be
     * null where rounded is not and nothing reads the float32 rows (no adapter on the products after).
     */
    private void rmsNorm(CudaTensor x, RmsNorm norm, CudaTensor out, CudaTensor rounded) {
        CudaTensor w = CudaTensor.of(norm.weight());
        if (x.rows() > 0) {
            launchSmall("rms_norm", x.rows(), 1, RMS_THREADS, x.pointer, w.pointer, w.typeCode(), norm.eps(), out == null ? null : out.pointer, x.cols(),
                    rounded == null ? null : rounded.pointer, rounded != null && rounded.dtype() == DType.BF16 ? 1 : 0);
        }
    }

    @Override
    public void layerNorm(Tensor x, Tensor weight, Tensor bias, float eps, Tensor out) {
        bind();
        CudaTensor w = CudaTensor.of(weight);
        CudaTensor b = bias == null ? null : CudaTensor.of(bias);
        launchRows("layer_norm", x.rows(), CudaTensor.of(x).pointer, w.pointer, w.typeCode(), ptr(b), type(b), eps,
                CudaTensor.of(out).pointer, x.cols());
    }

    @Override
    public void linear(Tensor x, Tensor weight, Tensor bias, Tensor out) {
        bind();
        CudaTensor in = CudaTensor.of(x);
        CudaTensor w = CudaTensor.of(weight);
        CudaTensor o = CudaTensor.of(out);
        if (w.cols() != in.cols() || o.cols() != w.rows() || o.rows() != in.rows()) {
            throw new IllegalArgumentException("linear: x [" + in.rows() + ", " + in.cols() + "] W [" + w.rows() + ", " + w.cols()
                    + "] out [" + o.rows() + ", " + o.cols() + "]");
        }
        if (in.rows() == 0) {
            return;
        }
        CudaTensor b = bias == null ? null : CudaTensor.of(bias);
        if (gemv(in, w)) {
            gemvInto(in, w, b, o, false);
            return;
        }
        product(inputFor(in, w), w, b, o);
    }

    /** What cuBLAS reads for in · w^T: in itself for float32 weights, else in rounded to the weight's type. */
    CudaTensor inputFor(CudaTensor in, CudaTensor w) {
        return w.dtype() == DType.F32 ? in : rounded(in, w.dtype());
    }

    /** x rounded to a 16-bit weight's type, as transformers feeds a bf16 product: the input cuBLAS reads. */
    CudaTensor rounded(CudaTensor in, DType type) {
        return roundInto(in, roundingBuffer(type, in.rows(), in.cols()));
    }

    /** out (a 16-bit tensor of in's size) = in rounded to out's type; out. */
    CudaTensor roundInto(CudaTensor in, CudaTensor out) {
        boolean vec = aligned(in.pointer, out.pointer);
        launchVector("to_half", in.numel(), 8, vec, in.pointer, out.pointer, in.numel(), vec ? 1 : 0, out.dtype() == DType.BF16 ? 1 : 0);
        return out;
    }

    /** o = in W^T (+ b) through cuBLAS, in already in the weight's type, accumulated in float32. */
    private void product(CudaTensor in, CudaTensor w, CudaTensor b, CudaTensor o) {
        product(in, w, b, o, false);
    }

    /** o (+)= in W^T (+ b): with {@code accumulate}, added to what o holds (no bias then). */
    private void product(CudaTensor in, CudaTensor w, CudaTensor b, CudaTensor o, boolean accumulate) {
        if (accumulate && b != null) {
            throw new IllegalArgumentException("an accumulating product takes no bias"); // (x W + b) + r would round otherwise
        }
        if (skinnyProducts(in, w)) {
            CudaSkinnyProducts.Launch l = skinny.launch(in, w, o, accumulate);
            launch(l.kernel(), l.tiles(), l.splits(), 128, 0, l.args());
        } else {
            Cublas cublas = cublas();
            long start = profiling ? begin() : 0;
            int type = cublasType(w.dtype());
            if (tunedProducts > 0 && in.rows() >= tunedProducts && w.dtype() != DType.F32 && issuingDirectly()) {
                tuned.linear(in, w, o, accumulate);
            } else if (!logged(accumulate ? "cublas linear add" : "cublas linear", in.rows(), in.cols(), w.rows(), type, in.pointer, w.pointer,
                    o.pointer)) {
                cublas.linear(in.pointer, w.pointer, o.pointer, in.rows(), in.cols(), w.rows(), type, accumulate);
            }
            if (profiling) {
                end("cublas " + w.dtype() + (in.rows() == 1 ? " 1 row" : " rows"), start);
            }
        }
        if (b != null) {
            launchRows("add_bias", o.rows(), o.pointer, b.pointer, b.typeCode(), o.cols());
        }
    }

    /**
     * A few rows by a 16-bit weight go to Flora's GEMV kernels: the weight streams once at memory
     * speed, where cuBLAS is slower at this shape.
     */
    private static boolean gemv(CudaTensor in, CudaTensor w) {
        return w.dtype() != DType.F32 && in.rows() >= 1 && in.rows() <= GEMV_MAX_ROWS && in.cols() % 8 == 0 && (in.pointer & 15) == 0;
    }

    /** Blocks of the GEMV kernels for a weight of {@code outs} rows: GEMV_ROWS rows each. */
    private static int gemvBlocks(int outs) {
        return (outs + GEMV_ROWS - 1) / GEMV_ROWS;
    }

    private void gemvInto(CudaTensor in, CudaTensor w, CudaTensor b, CudaTensor o, boolean accumulate) {
        launchOverlapped("gemv" + in.rows(), gemvBlocks(o.cols()), GEMV_THREADS, in.pointer, w.pointer, ptr(b), type(b), o.pointer,
                in.cols(), o.cols(), w.dtype() == DType.BF16 ? 1 : 0, accumulate ? 1 : 0);
    }

    private static void checkLinear(Tensor x, Tensor weight, Tensor out, String what) {
        if (weight.cols() != x.cols() || out.cols() != weight.rows() || out.rows() != x.rows()) {
            throw new IllegalArgumentException(what + ": x [" + x.rows() + ", " + x.cols() + "] W [" + weight.rows() + ", " + weight.cols()
                    + "] out [" + out.rows() + ", " + out.cols() + "]");
        }
    }

    /** q, k and v of a few rows in one GEMV launch (up to three weights of one type); otherwise one by one. */
    @Override
    public void linears(Tensor x, Tensor[] weights, Tensor[] biases, Tensor[] outs) {
        bind();
        if (!oneHalfType(x, weights, outs, "linears")) {
            Backend.super.linears(x, weights, biases, outs);
            return;
        }
        CudaTensor in = CudaTensor.of(x);
        if (weights.length > 3 || !gemv(in, CudaTensor.of(weights[0]))) {
            products(rounded(in, weights[0].dtype()), weights, biases, outs); // x rounded once for all of them
            return;
        }
        gemvMulti(in, null, null, weights, biases, outs);
    }

    /** The RMSNorm fused into the q/k/v GEMV (each block norms the input itself); with cuBLAS, the norm also writes the rounded input. */
    @Override
    public void normLinears(Tensor x, RmsNorm norm, Tensor normed, Tensor[] weights, Tensor[] biases, Tensor[] outs) {
        bind();
        normLinears(x, norm, normed, weights, biases, outs, true);
    }

    /**
     * normLinears; without {@code keepNormed} (nothing reads the normed rows after: no adapter on these
     * products) the cuBLAS path writes only their 16-bit copy, the products' input.
     */
    private void normLinears(Tensor x, RmsNorm norm, Tensor normed, Tensor[] weights, Tensor[] biases, Tensor[] outs, boolean keepNormed) {
        if (!oneHalfType(x, weights, outs, "normLinears")) {
            Backend.super.normLinears(x, norm, normed, weights, biases, outs);
            return;
        }
        CudaTensor in = CudaTensor.of(x);
        CudaTensor h = CudaTensor.of(normed);
        if (weights.length > 3 || !gemv(in, CudaTensor.of(weights[0])) || !gemv(h, CudaTensor.of(weights[0]))) {
            CudaTensor r = roundingBuffer(weights[0].dtype(), x.rows(), x.cols());
            rmsNorm(in, norm, keepNormed ? h : null, r);
            products(r, weights, biases, outs);
            return;
        }
        gemvMulti(in, norm, h, weights, biases, outs);
    }

    /**
     * normLinears then the LoRA terms, with -Dflora.cuda.loraFirst=true on the cuBLAS path as norm, shrink,
     * products, expand where every group goes token by token (no cuBLAS runs, no tiles, not lora_fused).
     */
    @Override
    public void normLinearsLora(Tensor x, RmsNorm norm, Tensor normed, Tensor[] weights, Tensor[] biases, Tensor[] outs, LoraTerms lora) {
        bind();
        CudaTensor in = CudaTensor.of(x);
        CudaTensor h = CudaTensor.of(normed);
        CudaTensor w0 = CudaTensor.of(weights[0]);
        if (!loraFirst || !oneHalfType(x, weights, outs, "normLinearsLora") || weights.length > 3 || gemv(in, w0) || gemv(h, w0)
                || !byTokenOnly(lora)) {
            Backend.super.normLinearsLora(x, norm, normed, weights, biases, outs, lora);
            return;
        }
        loraFirstCalls++;
        CudaTensor r = roundingBuffer(weights[0].dtype(), x.rows(), x.cols());
        rmsNorm(in, norm, h, r);
        LoraLayout layout = loraLayout(lora.rows(), lora.a(), lora.b(), lora.bias(), lora.scale(), lora.outs());
        LoraShrunk shrunk = loraShrink(normed, layout);
        products(r, weights, biases, outs);
        loraExpand(shrunk, layout);
    }

    /** Whether loraShrinkExpand would take every group of these terms token by token in two kernels (lora_shrink, lora_expand). */
    private boolean byTokenOnly(LoraTerms lora) {
        LoraRuns runs = loraRuns.of(lora.rows(), lora.a(), lora.b(), lora.bias(), lora.scale(), lora.outs());
        if (runs != null && runs.count() > 0 || tiledGroups(lora.rows(), lora.a()) != null) {
            return false;
        }
        int maxRank = 1;
        int total = 0;
        for (int g = 0; g < lora.rows().length; g++) {
            maxRank = Math.max(maxRank, lora.a()[g].rows());
            total += lora.rows()[g].length;
        }
        return total > 0 && !takesLoraFused(maxRank, total);
    }

    /** Whether a token-by-token LoRA call of this largest rank and this many tokens goes to lora_fused (-Dflora.cuda.loraFused). */
    private boolean takesLoraFused(int maxRank, int total) {
        return loraFused > 0 && maxRank <= LORA_FUSED_MAX_RANK && total <= LORA_FUSED_MAX_TOKENS;
    }

    /** One cublasGemmBatchedEx over the groups (float32 weights in pedantic float32; 16-bit ones with x rounded once). */
    @Override
    public void batchedLinear(Tensor x, Tensor[] weights, int rows, Tensor out) {
        bind();
        DType type = weights[0].dtype();
        for (Tensor w : weights) {
            if (w.dtype() != type || w.rows() != out.cols() || w.cols() != x.cols()) {
                throw new IllegalArgumentException("batchedLinear: weights of different shapes or types");
            }
        }
        if (x.rows() != weights.length * rows || out.rows() != x.rows() || rows == 0) {
            throw new IllegalArgumentException("batchedLinear: x [" + x.rows() + ", " + x.cols() + "] for " + weights.length + " groups of "
                    + rows + " rows, out [" + out.rows() + ", " + out.cols() + "]");
        }
        CudaTensor in = type == DType.F32 ? CudaTensor.of(x) : rounded(CudaTensor.of(x), type);
        CudaTensor o = CudaTensor.of(out);
        int g = weights.length;
        long[] xs = new long[g];
        long[] ws = new long[g];
        long[] os = new long[g];
        for (int i = 0; i < g; i++) {
            xs[i] = in.pointer + (long) i * rows * x.cols() * type.bytes();
            ws[i] = CudaTensor.of(weights[i]).pointer;
            os[i] = o.pointer + (long) i * rows * out.cols() * 4L;
        }
        long[] p = packed(out, xs, ws, os);
        int cublasType = cublasType(type);
        long start = profiling ? begin() : 0;
        if (!logged("cublas batched", g, rows, x.cols(), out.cols(), cublasType, p[0], p[1], p[2])) {
            cublas().batchedLinear(p[0], p[1], p[2], g, rows, x.cols(), out.cols(), cublasType);
        }
        if (profiling) {
            end("cublas batched", start);
        }
    }

    /** Whether x has rows and every weight is of one 16-bit type (the fused paths); checks the shapes. */
    private static boolean oneHalfType(Tensor x, Tensor[] weights, Tensor[] outs, String what) {
        DType type = weights[0].dtype();
        boolean one = x.rows() > 0 && type != DType.F32;
        for (int i = 0; i < weights.length; i++) {
            checkLinear(x, weights[i], outs[i], what);
            one &= weights[i].dtype() == type;
        }
        return one;
    }

    private void products(CudaTensor rounded, Tensor[] weights, Tensor[] biases, Tensor[] outs) {
        if (batchedProducts(rounded, weights, biases, outs)) {
            return;
        }
        for (int i = 0; i < weights.length; i++) {
            product(rounded, CudaTensor.of(weights[i]), orNull(biases[i]), CudaTensor.of(outs[i]));
        }
    }

    /**
     * Whether a product goes to the skinny kernels (-Dflora.cuda.skinnyProducts): rows, widths, type and
     * 16-byte rows as they need; their buffers are made at the first such product issued directly (not
     * in a recording, where an allocation may not happen).
     */
    private boolean skinnyProducts(CudaTensor in, CudaTensor w) {
        if (!skinnyProducts || in.dtype() != w.dtype() || !CudaSkinnyProducts.fits(in.rows(), in.cols(), w.rows(), w.dtype())
                || !aligned(in.pointer, w.pointer)) {
            return false;
        }
        if (skinny == null) {
            if (issue != Issue.RUN) {
                return false;
            }
            long partials = memory.permanent(CudaSkinnyProducts.PARTIAL_BYTES, this);
            long counters = memory.permanent(4L * CudaSkinnyProducts.MAX_TILES, this);
            driver.fill32(counters, 0, CudaSkinnyProducts.MAX_TILES, stream);
            skinny = new CudaSkinnyProducts(partials, counters, smCount);
        }
        return true;
    }

    /** Skinny products on or off, as -Dflora.cuda.skinnyProducts does (tests run both). */
    void useSkinnyProducts(boolean on) {
        skinnyProducts = on;
    }

    /** products() in one batched cuBLAS call where -Dflora.cuda.batchedProducts allows it (see there); false, with nothing done, otherwise. */
    private boolean batchedProducts(CudaTensor rounded, Tensor[] weights, Tensor[] biases, Tensor[] outs) {
        if (!batchedProducts || weights.length < 2 || rounded.rows() > BATCHED_PRODUCTS_MAX_ROWS) {
            return false;
        }
        for (int i = 0; i < weights.length; i++) {
            if (biases[i] != null || weights[i].dtype() != weights[0].dtype() || weights[i].rows() != weights[0].rows()
                    || weights[i].cols() != weights[0].cols()) {
                return false;
            }
        }
        int n = weights.length;
        long[] xs = new long[n];
        long[] ws = new long[n];
        long[] os = new long[n];
        for (int i = 0; i < n; i++) {
            xs[i] = rounded.pointer;
            ws[i] = CudaTensor.of(weights[i]).pointer;
            os[i] = CudaTensor.of(outs[i]).pointer;
        }
        batchedLinear(outs[0], xs, ws, os, rounded.rows(), rounded.cols(), weights[0].rows(), weights[0].dtype());
        return true;
    }

    /** outs[i] = xs[i] · ws[i]ᵀ in one cublasGemmBatchedEx: each x [rows, cols] of the weights' type, each w [outCols, cols], each out float32. */
    private void batchedLinear(Object owner, long[] xs, long[] ws, long[] os, int rows, int cols, int outCols, DType weightType) {
        long[] p = batchedPointers(owner, xs, ws, os);
        int type = cublasType(weightType);
        long start = profiling ? begin() : 0;
        if (!logged("cublas batched", xs.length, rows, cols, outCols, type, p[0], p[1], p[2])) {
            cublas().batchedLinear(p[0], p[1], p[2], xs.length, rows, cols, outCols, type);
        }
        if (profiling) {
            end("cublas batched products", start);
        }
    }

    /**
     * The device arrays of input, weight and output pointers of a batched product, uploaded once per
     * set of pointers into permanent memory: a step's tensors sit at the same addresses step after step,
     * and a recorded step (a CUDA graph) may not upload data of its own (GraphRecorder; on the H200 in
     * session 19 the per-call upload stopped every decode graph's recording). Past batchedPointerSetLimit
     * sets, as many as a long eager run of varied steps could make, an eager call uploads its own; a
     * recording's still adds its set (session 23, on the H200: after a long adapted run had filled the
     * sets, the next decode step recorded failed with "uploaded data of its own"); recordings are few,
     * and the recording arena gives them the same addresses.
     */
    private long[] batchedPointers(Object owner, long[] xs, long[] ws, long[] os) {
        int n = xs.length;
        long[] all = new long[3 * n];
        System.arraycopy(xs, 0, all, 0, n);
        System.arraycopy(ws, 0, all, n, n);
        System.arraycopy(os, 0, all, 2 * n, n);
        java.util.List<Long> key = java.util.Arrays.stream(all).boxed().toList();
        Long device = batchedPointerSets.get(key);
        if (device == null) {
            // A capture may not wait for another stream's copy (a recording's run before its capture
            // meets these pointers first, so this is a set the run did not see).
            if ((batchedPointerSets.size() >= batchedPointerSetLimit && !inRecordedWork()) || (issue == Issue.CAPTURE && issuingHere())) {
                return packed(owner, xs, ws, os);
            }
            device = permanentLongs(all, this);
            batchedPointerSets.put(key, device);
        }
        return new long[] {device, device + 8L * n, device + 16L * n};
    }

    /** Up to three weights in one gemv_multi launch; norm (with normed, its output) fused in front when not null. */
    private void gemvMulti(CudaTensor in, RmsNorm norm, CudaTensor normed, Tensor[] weights, Tensor[] biases, Tensor[] outs) {
        java.util.List<Object> args = new java.util.ArrayList<>();
        args.add(in.pointer);
        addNorm(args, norm, normed);
        args.add(in.cols());
        args.add(weights[0].dtype() == DType.BF16 ? 1 : 0);
        int blocks = 0;
        for (int i = 0; i < 3; i++) {
            boolean present = i < weights.length;
            CudaTensor b = present ? orNull(biases[i]) : null;
            args.add(present ? CudaTensor.of(weights[i]).pointer : null);
            args.add(ptr(b));
            args.add(type(b));
            args.add(present ? CudaTensor.of(outs[i]).pointer : null);
            args.add(present ? outs[i].cols() : 0);
            blocks += present ? gemvBlocks(outs[i].cols()) : 0;
        }
        launchOverlapped((norm == null ? "gemv_multi" : "gemv_multi_norm") + in.rows(), blocks, GEMV_THREADS, args.toArray());
    }

    /** A gated MLP of a few rows in one GEMV launch that also applies the activation. */
    @Override
    public void gatedLinear(Tensor x, Tensor gateWeight, Tensor gateBias, Tensor upWeight, Tensor upBias, Activation act, Tensor gate,
                            Tensor up) {
        bind();
        if (!gatedHalf(x, gateWeight, upWeight, gate, up)) {
            Backend.super.gatedLinear(x, gateWeight, gateBias, upWeight, upBias, act, gate, up);
            return;
        }
        CudaTensor in = CudaTensor.of(x);
        if (!gemv(in, CudaTensor.of(gateWeight))) {
            gatedProducts(rounded(in, gateWeight.dtype()), gateWeight, gateBias, upWeight, upBias, act, gate, up);
            return;
        }
        gemvGated(in, null, null, gateWeight, gateBias, upWeight, upBias, act, gate);
    }

    @Override
    public void normGatedLinear(Tensor x, RmsNorm norm, Tensor normed, Tensor gateWeight, Tensor gateBias, Tensor upWeight, Tensor upBias,
                                Activation act, Tensor gate, Tensor up) {
        bind();
        if (!gatedHalf(x, gateWeight, upWeight, gate, up)) {
            Backend.super.normGatedLinear(x, norm, normed, gateWeight, gateBias, upWeight, upBias, act, gate, up);
            return;
        }
        CudaTensor in = CudaTensor.of(x);
        CudaTensor h = CudaTensor.of(normed);
        if (!gemv(in, CudaTensor.of(gateWeight)) || !gemv(h, CudaTensor.of(gateWeight))) {
            CudaTensor r = roundingBuffer(gateWeight.dtype(), x.rows(), x.cols());
            rmsNorm(in, norm, h, r);
            gatedProducts(r, gateWeight, gateBias, upWeight, upBias, act, gate, up);
            return;
        }
        gemvGated(in, norm, h, gateWeight, gateBias, upWeight, upBias, act, gate);
    }

    /**
     * With -Dflora.cuda.mlpHalf, where the gated MLP runs through cuBLAS, the activation written straight in the down product's
     * 16-bit input (gated_activation_half: gated_activation then to_half in one pass, the same bits), so
     * its float32 rows are neither stored nor read back; the down product adds to the residual in its
     * epilogue. Otherwise (a few rows, the GEMV kernels; biases on down; mixed types) the two calls.
     */
    @Override
    public void normGatedLinearAdd(Tensor x, RmsNorm norm, Tensor normed, Tensor gateWeight, Tensor gateBias, Tensor upWeight,
                                   Tensor upBias, Activation act, Tensor downWeight, Tensor downBias, Tensor gate, Tensor up,
                                   Tensor scratch, Tensor residual) {
        bind();
        if (!mlpHalfApplies(x, normed, gateWeight, upWeight, downWeight, downBias, gate, up, residual)) {
            Backend.super.normGatedLinearAdd(x, norm, normed, gateWeight, gateBias, upWeight, upBias, act, downWeight, downBias, gate, up,
                    scratch, residual);
            return;
        }
        DType type = gateWeight.dtype();
        CudaTensor r = roundingBuffer(type, x.rows(), x.cols());
        rmsNorm(CudaTensor.of(x), norm, null, r); // normed is scratch here: only the rounded rows are read
        gateAndUp(r, gateWeight, gateBias, upWeight, upBias, gate, up);
        // The same step buffer as r may come back: the products above have read r by then (one stream).
        CudaTensor g = CudaTensor.of(gate);
        long u = CudaTensor.of(up).pointer;
        CudaTensor activated = roundingBuffer(type, g.rows(), g.cols());
        boolean vec = aligned(g.pointer, u, activated.pointer);
        launchVector("gated_activation_half", g.numel(), 8, vec, code(act), g.pointer, u, activated.pointer, g.numel(), vec ? 1 : 0,
                type == DType.BF16 ? 1 : 0);
        product(activated, CudaTensor.of(downWeight), null, CudaTensor.of(residual), true);
    }

    /** Whether normGatedLinearAdd takes its one-kernel activation: on, 16-bit weights of one type, no bias on down, cuBLAS throughout. */
    private boolean mlpHalfApplies(Tensor x, Tensor normed, Tensor gateWeight, Tensor upWeight, Tensor downWeight, Tensor downBias, Tensor gate,
                                   Tensor up, Tensor residual) {
        if (!mlpHalf || downBias != null || !gatedHalf(x, gateWeight, upWeight, gate, up) || downWeight.dtype() != gateWeight.dtype()) {
            return false;
        }
        checkLinear(gate, downWeight, residual, "normGatedLinearAdd");
        CudaTensor gw = CudaTensor.of(gateWeight);
        boolean gemvGateUp = gemv(CudaTensor.of(x), gw) && gemv(CudaTensor.of(normed), gw); // as normGatedLinear decides
        return !gemvGateUp && !gemv(CudaTensor.of(gate), CudaTensor.of(downWeight)); // as linearAdd decides
    }

    private static boolean gatedHalf(Tensor x, Tensor gateWeight, Tensor upWeight, Tensor gate, Tensor up) {
        checkLinear(x, gateWeight, gate, "gatedLinear");
        checkLinear(x, upWeight, up, "gatedLinear");
        return upWeight.dtype() == gateWeight.dtype() && gateWeight.dtype() != DType.F32 && x.rows() > 0;
    }

    /** The gated MLP through cuBLAS from the input already rounded to the weights' type. */
    private void gatedProducts(CudaTensor rounded, Tensor gateWeight, Tensor gateBias, Tensor upWeight, Tensor upBias, Activation act,
                               Tensor gate, Tensor up) {
        gateAndUp(rounded, gateWeight, gateBias, upWeight, upBias, gate, up);
        gatedActivation(act, gate, up, gate);
    }

    /** gate and up's products from the input already rounded to the weights' type: one batched call where it applies. */
    private void gateAndUp(CudaTensor rounded, Tensor gateWeight, Tensor gateBias, Tensor upWeight, Tensor upBias, Tensor gate, Tensor up) {
        if (!batchedProducts(rounded, new Tensor[] {gateWeight, upWeight}, new Tensor[] {gateBias, upBias}, new Tensor[] {gate, up})) {
            product(rounded, CudaTensor.of(gateWeight), orNull(gateBias), CudaTensor.of(gate));
            product(rounded, CudaTensor.of(upWeight), orNull(upBias), CudaTensor.of(up));
        }
    }

    /** The _norm GEMV kernels' arguments after x: the norm's weight, its type, eps, and where the normed rows go. */
    private static void addNorm(java.util.List<Object> args, RmsNorm norm, CudaTensor normed) {
        if (norm != null) {
            CudaTensor w = CudaTensor.of(norm.weight());
            args.addAll(java.util.List.of(w.pointer, w.typeCode(), norm.eps(), normed.pointer));
        }
    }

    private void gemvGated(CudaTensor in, RmsNorm norm, CudaTensor normed, Tensor gateWeight, Tensor gateBias, Tensor upWeight,
                           Tensor upBias, Activation act, Tensor gate) {
        CudaTensor bg = orNull(gateBias);
        CudaTensor bu = orNull(upBias);
        int outs = gate.cols();
        java.util.List<Object> args = new java.util.ArrayList<>();
        args.add(in.pointer);
        addNorm(args, norm, normed);
        args.addAll(java.util.Arrays.asList(in.cols(), gateWeight.dtype() == DType.BF16 ? 1 : 0, CudaTensor.of(gateWeight).pointer, ptr(bg),
                type(bg), CudaTensor.of(upWeight).pointer, ptr(bu), type(bu), CudaTensor.of(gate).pointer, outs, code(act)));
        launchOverlapped((norm == null ? "gemv_gated" : "gemv_gated_norm") + in.rows(), (outs + 1) / 2, GEMV_THREADS, args.toArray());
    }

    /** A few rows: the GEMV kernel adds its result to the residual as it writes it. */
    @Override
    public void linearAdd(Tensor x, Tensor weight, Tensor bias, Tensor scratch, Tensor residual) {
        bind();
        CudaTensor in = CudaTensor.of(x);
        checkLinear(x, weight, residual, "linearAdd");
        if (!gemv(in, CudaTensor.of(weight))) {
            if (bias != null) {
                Backend.super.linearAdd(x, weight, bias, scratch, residual); // (x W + b) + residual, as the CPU rounds it
                return;
            }
            if (in.rows() == 0) {
                return;
            }
            // residual += x W^T in the product's epilogue (cuBLAS's beta = 1): no scratch pass, no add kernel.
            CudaTensor w = CudaTensor.of(weight);
            product(inputFor(in, w), w, null, CudaTensor.of(residual), true);
            return;
        }
        gemvInto(in, CudaTensor.of(weight), orNull(bias), CudaTensor.of(residual), true);
    }

    /**
     * Gathered LoRA: the groups of many tokens (a prompt's) by tiles of one adapter's tokens, the rest
     * (decoding sequences') a token at a time, each set in one shrink and one expand launch.
     */
    @Override
    public void loraShrinkExpand(Tensor x, int[][] rows, Tensor[] a, Tensor[] b, Tensor[] bias, float[] scale, Tensor[] outs) {
        bind();
        LoraRuns runs = loraRuns.of(rows, a, b, bias, scale, outs);
        if (runs != null && runs.count() > 0) {
            loraRuns.apply(CudaTensor.of(x), runs, a, b, scale, outs);
            rows = runs.rest();
        }
        boolean[] tiled = tiledGroups(rows, a);
        if (tiled == null) {
            loraByToken(x, loraLayout(rows, a, b, bias, scale, outs));
            return;
        }
        int[] byTile = java.util.stream.IntStream.range(0, rows.length).filter(g -> tiled[g]).toArray();
        int[] byToken = java.util.stream.IntStream.range(0, rows.length).filter(g -> !tiled[g]).toArray();
        loraByTile(x, loraLayout(pick(rows, byTile), pick(a, byTile), pick(b, byTile), pick(bias, byTile), pick(scale, byTile), pick(outs, byTile)));
        if (byToken.length > 0) {
            loraByToken(x, loraLayout(pick(rows, byToken), pick(a, byToken), pick(b, byToken), pick(bias, byToken), pick(scale, byToken),
                    pick(outs, byToken)));
        }
    }

    static int cublasType(DType type) {
        return switch (type) {
            case F32 -> Cublas.R_32F;
            case BF16 -> Cublas.R_16BF;
            case F16 -> Cublas.R_16F;
            default -> throw new IllegalStateException("a product with " + type + " weights");
        };
    }

    /** fLoRA's runs with the demodulation in cuBLASLt's epilogue (tests set their flag through it). */
    CudaFloraRuns floraRuns() {
        return floraRuns;
    }

    /** Products from {@code rows} rows tuned, as -Dflora.cuda.tunedProducts does (0: off; tests run several); the number before. */
    int useTunedProducts(int rows) {
        int before = tunedProducts;
        tunedProducts = rows;
        return before;
    }

    /** The tuned products' shapes and choices so far (tests). */
    CudaTunedProducts tunedProducts() {
        return tuned;
    }

    /**
     * Step memory (outside a step, memory owned by the backend until it is collected) for {@code count}
     * floats: the tuned products' scratch output.
     */
    long scratchFloats(long count) {
        return memory.allocate(count * Float.BYTES, this);
    }

    /** Gathered LoRA's cuBLAS runs (tests set their flags through it). */
    CudaLoraRuns loraRuns() {
        return loraRuns;
    }

    /** Whether calls run now (not logged for a dry run, recorded or replayed as a graph). */
    boolean issuingDirectly() {
        return issue == Issue.RUN;
    }

    /** The fused decode LoRA kernel's blocks a token (0: off), as -Dflora.cuda.loraFused does (tests run several). */
    void useLoraFused(int blocksPerToken) {
        loraFused = blocksPerToken;
    }

    int loraFused() {
        return loraFused;
    }

    /** lora_expand's output columns a block, as -Dflora.cuda.loraExpandColumns sets them (tests run several); the number before. */
    int useLoraExpandColumns(int columns) {
        int before = loraExpandColumns;
        loraExpandColumns = columns;
        return before;
    }

    /** LoRA's shrink before the q/k/v products or after them, as -Dflora.cuda.loraFirst does (tests run both). */
    void useLoraFirst(boolean on) {
        loraFirst = on;
    }

    boolean loraFirst() {
        return loraFirst;
    }

    long loraFirstCalls() {
        return loraFirstCalls;
    }

    /** The small kernels between products launched overlapped or not, as -Dflora.cuda.overlapSmall does (tests run both). */
    void useOverlapSmall(boolean on) {
        overlapSmall = on;
    }

    boolean overlapSmall() {
        return overlapSmall;
    }

    /** The decode LoRA kernels launched overlapped or not, as -Dflora.cuda.loraOverlap does (tests run both). */
    void useLoraOverlap(boolean on) {
        loraOverlap = on;
    }

    boolean loraOverlap() {
        return loraOverlap;
    }

    /** The gated MLP's 16-bit activation on or off, as -Dflora.cuda.mlpHalf does (tests run both). */
    void useMlpHalf(boolean on) {
        mlpHalf = on;
    }

    boolean mlpHalf() {
        return mlpHalf;
    }

    /** Batched products on or off, as -Dflora.cuda.batchedProducts does (tests run both). */
    void useBatchedProducts(boolean on) {
        batchedProducts = on;
    }

    boolean batchedProducts() {
        return batchedProducts;
    }

    /** How many pointer sets of batched products eager steps may keep (tests fill it: 0); the limit before. */
    int limitBatchedPointerSets(int sets) {
        int before = batchedPointerSetLimit;
        batchedPointerSetLimit = sets;
        return before;
    }

    /** Turns the four-column fLoRA modulation and demodulation on or off, as -Dflora.cuda.floraVectors does (tests run both). */
    void useFloraVectors(boolean on) {
        floraVectors = on;
    }

    /**
     * Which groups of a gathered LoRA call take the tiled kernels (lora_shrink_tiled, lora_expand_tiled),
     * or null for none: those of LORA_TILED_MIN_GROUP tokens or more (a prompt's, where a tile's A and B
     * are read once for its tokens rather than once per token) with a rank from LORA_TILED_MIN_RANK to
     * LORA_TILE_RANKS, when they hold LORA_TILED_MIN_TOKENS tokens in all. Never while a graph is
     * recorded or replayed: their grids follow the groups' sizes, which a recorded decode step's
     * replays do not share.
     */
    boolean[] tiledGroups(int[][] rows, Tensor[] a) {
        if (!tiledLora || issue != Issue.RUN) {
            return null;
        }
        boolean[] tiled = new boolean[rows.length];
        int tokens = 0;
        for (int g = 0; g < rows.length; g++) {
            int rank = a[g].rows();
            tiled[g] = rows[g].length >= LORA_TILED_MIN_GROUP && rank >= LORA_TILED_MIN_RANK && rank <= LORA_TILE_RANKS;
            tokens += tiled[g] ? rows[g].length : 0;
        }
        return tokens >= LORA_TILED_MIN_TOKENS ? tiled : null;
    }

    private static <T> T[] pick(T[] all, int[] which) {
        T[] out = java.util.Arrays.copyOf(all, which.length);
        for (int i = 0; i < which.length; i++) {
            out[i] = all[which[i]];
        }
        return out;
    }

    private static float[] pick(float[] all, int[] which) {
        float[] out = new float[which.length];
        for (int i = 0; i < which.length; i++) {
            out[i] = all[which[i]];
        }
        return out;
    }

    /**
     * A gathered LoRA call's groups as the kernels read them: per token (group by group) its row and
     * group; per group its rank, A, B and bias pointers and types, scale and output. The arrays in
     * the kernels' order, for packed(); the groups' token counts beside them.
     */
    private record LoraLayout(int total, int maxRank, int maxOuts, int[] groupSizes, Tensor owner, Object[] arrays) {
    }

    private static LoraLayout loraLayout(int[][] rows, Tensor[] a, Tensor[] b, Tensor[] bias, float[] scale, Tensor[] outs) {
        int groups = rows.length;
        int total = 0;
        int maxRank = 1;
        int[] groupSizes = new int[groups];
        for (int g = 0; g < groups; g++) {
            groupSizes[g] = rows[g].length;
            total += rows[g].length;
            maxRank = Math.max(maxRank, a[g].rows());
        }
        int[] rowOf = new int[total];
        int[] groupOf = new int[total];
        for (int g = 0, k = 0; g < groups; g++) {
            for (int r : rows[g]) {
                rowOf[k] = r;
                groupOf[k++] = g;
            }
        }
        long[] aPtr = new long[groups];
        long[] bPtr = new long[groups];
        long[] biasPtr = new long[groups];
        int[] aType = new int[groups];
        int[] bType = new int[groups];
        int[] biasType = new int[groups];
        int[] rank = new int[groups];
        long[] outPtr = new long[groups];
        int[] outCols = new int[groups];
        int maxOuts = 1;
        for (int g = 0; g < groups; g++) {
            outPtr[g] = CudaTensor.of(outs[g]).pointer;
            outCols[g] = outs[g].cols();
            maxOuts = Math.max(maxOuts, outCols[g]);
            CudaTensor ag = CudaTensor.of(a[g]);
            CudaTensor bg = CudaTensor.of(b[g]);
            aPtr[g] = ag.pointer;
            aType[g] = ag.typeCode();
            bPtr[g] = bg.pointer;
            bType[g] = bg.typeCode();
            rank[g] = ag.rows();
            if (bias[g] != null) {
                CudaTensor c = CudaTensor.of(bias[g]);
                biasPtr[g] = c.pointer;
                biasType[g] = c.typeCode();
            }
        }
        return new LoraLayout(total, maxRank, maxOuts, groupSizes, groups == 0 ? null : outs[0],
                new Object[] {rowOf, groupOf, rank, aPtr, aType, bPtr, bType, biasPtr, biasType, scale, outPtr, outCols});
    }

    /**
     * Gathered LoRA a token at a time: lora_shrink's block per (token, 256-column span), lora_expand's
     * per (token, 1024 output columns); or, with -Dflora.cuda.loraFused and a call of few tokens,
     * lora_fused's block per token for both (x must not overlap the outputs: a block may write its row
     * while another still reads x; gathered LoRA's inputs and outputs are distinct tensors).
     */
    private void loraByToken(Tensor x, LoraLayout layout) {
        int total = layout.total();
        int maxRank = layout.maxRank();
        if (total == 0) {
            return;
        }
        int in = x.cols();
        if (takesLoraFused(maxRank, total)) {
            long[] p = packed(layout.owner(), layout.arrays());
            int columns = (layout.maxOuts() + loraFused - 1) / loraFused;
            launch("lora_fused", total, loraFused, LORA_FUSED_THREADS, 0, CudaTensor.of(x).pointer, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7],
                    p[8], p[9], p[10], p[11], in, columns);
            return;
        }
        loraExpand(loraShrink(x, layout), layout);
    }

    /** lora_shrink's partial sums (spans of LORA_SHRINK_SPAN input columns) and the layout's packed arrays, for loraExpand. */
    private record LoraShrunk(long partial, long[] packed, int spans) {
    }

    /** lora_shrink over a layout of at least one token: its partial sums, for loraExpand. */
    private LoraShrunk loraShrink(Tensor x, LoraLayout layout) {
        int in = x.cols();
        int maxRank = layout.maxRank();
        int spans = (in + LORA_SHRINK_SPAN - 1) / LORA_SHRINK_SPAN;
        long partial = memory.allocate((long) layout.total() * spans * maxRank * Double.BYTES, layout.owner());
        long[] p = packed(layout.owner(), layout.arrays());
        launchLora("lora_shrink", layout.total(), spans, 32 * Math.min(8, maxRank), 0, CudaTensor.of(x).pointer, p[0], p[1], p[3], p[4], p[2],
                partial, maxRank, in, LORA_SHRINK_SPAN);
        return new LoraShrunk(partial, p, spans);
    }

    /** lora_expand: the outputs += the layout's terms from the shrink's partial sums. */
    private void loraExpand(LoraShrunk shrunk, LoraLayout layout) {
        int maxRank = layout.maxRank();
        int spans = shrunk.spans();
        long partial = shrunk.partial();
        long[] p = shrunk.packed();
        int total = layout.total();
        // Blocks split the output columns too: a few tokens still make enough blocks to stream B. The
        // partials go through shared memory where they fit the default 48 KB (rank 64 up to 23k inputs).
        long staged = (long) maxRank * (spans + 1) * Double.BYTES;
        boolean stage = staged <= 48 * 1024;
        launchLora("lora_expand", total, (layout.maxOuts() + loraExpandColumns - 1) / loraExpandColumns, THREADS,
                stage ? (int) staged : maxRank * Double.BYTES, partial, p[0], p[1], p[5], p[6], p[7], p[8], p[2], p[9], p[10], p[11], maxRank,
                spans, loraExpandColumns, stage ? 1 : 0);
    }

    /** lora_shrink or lora_expand: overlapped unless -Dflora.cuda.loraOverlap=false (both wait for the kernel before them as they must). */
    private void launchLora(String kernel, int gridX, int gridY, int block, int shared, Object... args) {
        if (loraOverlap) {
            launchOverlapped(kernel, gridX, gridY, block, shared, args);
        } else {
            launch(kernel, gridX, gridY, block, shared, args);
        }
    }

    /** Gathered LoRA by tiles of LORA_TILE_TOKENS consecutive tokens of one group (the layout is group by group). */
    private void loraByTile(Tensor x, LoraLayout layout) {
        int[] count = layout.groupSizes();
        int groups = count.length;
        int tiles = 0;
        for (int n : count) {
            tiles += (n + LORA_TILE_TOKENS - 1) / LORA_TILE_TOKENS;
        }
        int[] tileFirst = new int[tiles];
        int[] tileCount = new int[tiles];
        for (int g = 0, k = 0, first = 0; g < groups; first += count[g], g++) {
            for (int i = 0; i < count[g]; i += LORA_TILE_TOKENS) {
                tileFirst[k] = first + i;
                tileCount[k++] = Math.min(LORA_TILE_TOKENS, count[g] - i);
            }
        }
        int in = x.cols();
        int maxRank = layout.maxRank();
        int spans = (in + LORA_TILE_SPAN - 1) / LORA_TILE_SPAN;
        long partial = memory.allocate((long) layout.total() * spans * maxRank * Double.BYTES, layout.owner());
        Object[] arrays = java.util.Arrays.copyOf(layout.arrays(), layout.arrays().length + 2);
        arrays[arrays.length - 2] = tileFirst;
        arrays[arrays.length - 1] = tileCount;
        long[] p = packed(layout.owner(), arrays);
        launch("lora_shrink_tiled", tiles, spans, THREADS, 0, CudaTensor.of(x).pointer, p[0], p[1], p[12], p[13], p[3], p[4], p[2], partial,
                maxRank, in);
        // Each block stages its tile's ranks once and walks every few column tiles: enough blocks to fill the GPU.
        int columnTiles = (layout.maxOuts() + LORA_TILE_TOKENS - 1) / LORA_TILE_TOKENS;
        int columnBlocks = Math.min(columnTiles, Math.max(8, (4 * smCount + tiles - 1) / tiles));
        launch("lora_expand_tiled", tiles, columnBlocks, THREADS, 0, partial, p[0], p[1], p[12], p[13], p[5], p[6], p[7], p[8], p[2], p[9],
                p[10], p[11], maxRank, spans);
    }

    /** Turns the tiled LoRA kernels on or off, as -Dflora.cuda.tiledLora does (tests run both). */
    void useTiledLora(boolean on) {
        tiledLora = on;
    }

    /**
     * Device copies of fLoRA's stacked-row layout (Backend#floraModulate) for one call, uploaded in
     * one copy: per group its A and Bᵀ pointers (either may be absent) and types, its base row, token
     * count and rank; per token its row, group and index in the group.
     */
    record FloraLayout(int tokens, int stacked, long aPtr, long btPtr, long aType, long btType, long base, long count, long rank,
                       long rowOf, long groupOf, long indexOf) {
        /** The kernels' arguments from rowOf to the factor's rank, for A (modulate) or Bᵀ (demodulate). */
        Object[] args(boolean a) {
            return new Object[] {rowOf, groupOf, indexOf, base, count, a ? aPtr : btPtr, a ? aType : btType, rank};
        }
    }

    FloraLayout floraLayout(int[][] rows, Tensor[] a, int in, Tensor[] bt, int outs, Object owner, String what) {
        int[] outsOf = new int[rows.length];
        java.util.Arrays.fill(outsOf, outs);
        return floraLayout(rows, a, in, bt, outsOf, owner, what);
    }

    /** The layout of groups whose Bᵀ may have different widths (layers of several outputs, floraLinears). */
    FloraLayout floraLayout(int[][] rows, Tensor[] a, int in, Tensor[] bt, int[] outsOf, Object owner, String what) {
        int groups = rows.length;
        int tokens = 0;
        for (int[] r : rows) {
            tokens += r.length;
        }
        long[] aPtr = new long[groups];
        long[] btPtr = new long[groups];
        int[] aType = new int[groups];
        int[] btType = new int[groups];
        int[] base = new int[groups];
        int[] count = new int[groups];
        int[] rank = new int[groups];
        int[] rowOf = new int[tokens];
        int[] groupOf = new int[tokens];
        int[] indexOf = new int[tokens];
        int stacked = 0;
        for (int g = 0, m = 0; g < groups; g++) {
            CudaTensor fa = a == null ? null : CudaTensor.of(a[g]);
            CudaTensor fb = bt == null ? null : CudaTensor.of(bt[g]);
            int r = fa != null ? fa.rows() : fb.rows();
            int outs = outsOf[g];
            checkFactors(what, fa, fb, in, outs);
            aPtr[g] = fa == null ? 0 : fa.pointer;
            btPtr[g] = fb == null ? 0 : fb.pointer;
            aType[g] = fa == null ? 0 : fa.typeCode();
            btType[g] = fb == null ? 0 : fb.typeCode();
            base[g] = stacked;
            count[g] = rows[g].length;
            rank[g] = r;
            stacked += r * rows[g].length;
            for (int i = 0; i < rows[g].length; i++, m++) {
                rowOf[m] = rows[g][i];
                groupOf[m] = g;
                indexOf[m] = i;
            }
        }
        long[] p = packed(owner, aPtr, btPtr, aType, btType, base, count, rank, rowOf, groupOf, indexOf);
        return new FloraLayout(tokens, stacked, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]);
    }

    /** A group's A [r, in] and Bᵀ [r, outs] (either may be absent) fit rows of in -> outs. */
    private static void checkFactors(String what, CudaTensor fa, CudaTensor fb, int in, int outs) {
        int r = fa != null ? fa.rows() : fb.rows();
        if (fa != null && fa.cols() != in || fb != null && fb.cols() != outs || fa != null && fb != null && fb.rows() != r) {
            throw new IllegalArgumentException(what + ": factors " + (fa == null ? "" : "A [" + fa.rows() + ", " + fa.cols() + "] ")
                    + (fb == null ? "" : "Bᵀ [" + fb.rows() + ", " + fb.cols() + "] ") + "for rows of " + in + " -> " + outs);
        }
    }

    @Override
    public void floraModulate(Tensor x, int[][] rows, Tensor[] a, Tensor stacked) {
        bind();
        FloraLayout l = floraLayout(rows, a, x.cols(), null, 0, stacked, "floraModulate");
        checkStacked("floraModulate", stacked, l, x.cols());
        modulate(CudaTensor.of(x), l, CudaTensor.of(stacked));
    }

    private static void checkStacked(String what, Tensor stacked, FloraLayout l, int width) {
        if (stacked.rows() != l.stacked() || stacked.cols() != width) {
            throw new IllegalArgumentException(what + ": stacked [" + stacked.rows() + ", " + stacked.cols() + "] for " + l.stacked()
                    + " rows of " + width);
        }
    }

    /** stacked = the modulated rows, in float32 or (a 16-bit tensor) already rounded for cuBLAS. */
    void modulate(CudaTensor x, FloraLayout l, CudaTensor stacked) {
        boolean half = stacked.dtype() != DType.F32;
        java.util.List<Object> args = new java.util.ArrayList<>(java.util.List.of(x.pointer));
        args.addAll(java.util.Arrays.asList(l.args(true)));
        args.addAll(java.util.Arrays.asList(half ? null : stacked.pointer, half ? stacked.pointer : null, stacked.dtype() == DType.BF16 ? 1 : 0,
                x.cols(), floraVectors ? 1 : 0));
        if (l.tokens() > 0) {
            launch("flora_modulate", l.tokens(), columnBlocks(x.cols()), THREADS, 0, args.toArray());
        }
    }

    @Override
    public void floraDemodulate(Tensor products, int[][] rows, Tensor[] bt, Tensor bias, Tensor out) {
        bind();
        FloraLayout l = floraLayout(rows, null, 0, bt, out.cols(), out, "floraDemodulate");
        checkStacked("floraDemodulate", products, l, out.cols());
        demodulate(CudaTensor.of(products), l, orNull(bias), CudaTensor.of(out));
    }

    private static int columnBlocks(int columns) {
        return (columns + FLORA_COLUMNS - 1) / FLORA_COLUMNS;
    }

    private void demodulate(CudaTensor products, FloraLayout l, CudaTensor bias, CudaTensor out) {
        java.util.List<Object> args = new java.util.ArrayList<>(java.util.List.of(products.pointer));
        args.addAll(java.util.Arrays.asList(l.args(false)));
        args.addAll(java.util.Arrays.asList(ptr(bias), type(bias), out.pointer, out.cols(), floraVectors ? 1 : 0));
        if (l.tokens() > 0) {
            launch("flora_demodulate", l.tokens(), columnBlocks(out.cols()), THREADS, 0, args.toArray());
        }
    }

    /**
     * fLoRA's q and k (any layers sharing the input) with ONE layout upload and ONE modulation into the
     * rounded input cuBLAS reads, then per layer its product and its demodulation (the kernels of
     * floraLinear; a layer's demodulation reads its token range of the joint layout). Where a layer
     * would take the GEMV or float32 path, layer by layer as floraLinear.
     */
    @Override
    public void floraLinears(Tensor x, java.util.List<FloraProjection> layers) {
        bind();
        DType type = layers.getFirst().weight().dtype();
        boolean joint = layers.size() > 1 && type != DType.F32;
        if (floraRuns.apply(CudaTensor.of(x), layers)) {
            return;
        }
        for (FloraProjection p : layers) {
            joint &= p.weight().dtype() == type && p.stackedRows() > GEMV_MAX_ROWS;
        }
        if (!joint) {
            Backend.super.floraLinears(x, layers);
            return;
        }
        java.util.List<int[]> rows = new java.util.ArrayList<>();
        java.util.List<Tensor> a = new java.util.ArrayList<>();
        java.util.List<Tensor> bt = new java.util.ArrayList<>();
        java.util.List<Integer> outs = new java.util.ArrayList<>();
        for (FloraProjection p : layers) {
            for (int g = 0; g < p.rows().length; g++) {
                rows.add(p.rows()[g]);
                a.add(p.a()[g]);
                bt.add(p.bt()[g]);
                outs.add(p.out().cols());
            }
        }
        FloraLayout l = floraLayout(rows.toArray(int[][]::new), a.toArray(Tensor[]::new), x.cols(), bt.toArray(Tensor[]::new),
                outs.stream().mapToInt(Integer::intValue).toArray(), layers.getFirst().out(), "floraLinears");
        CudaTensor half = roundingBuffer(type, l.stacked(), x.cols());
        modulate(CudaTensor.of(x), l, half);
        for (FloraProjection p : layers) {
            CudaTensor products = CudaTensor.of(p.products());
            int stacked = p.stackedRows();
            if (products.rows() < stacked || products.cols() != p.out().cols() || p.weight().cols() != x.cols()
                    || p.weight().rows() != p.out().cols()) {
                throw new IllegalArgumentException("floraLinears: products [" + products.rows() + ", " + products.cols() + "] for " + stacked
                        + " rows of W [" + p.weight().rows() + ", " + p.weight().cols() + "] on inputs of " + x.cols());
            }
        }
        long batched = floraProductsBatched(half, layers);
        int firstRow = 0;
        int firstToken = 0;
        for (FloraProjection p : layers) {
            int stacked = p.stackedRows();
            int tokens = 0;
            for (int[] r : p.rows()) {
                tokens += r.length;
            }
            CudaTensor products = CudaTensor.of(p.products());
            // The demodulation indexes products by the joint layout's stacked row: shift the pointer back by
            // this layer's first row (the batched buffer holds every layer's at their own rows), and its
            // token arrays forward to this layer's first token.
            long productsBase = batched;
            if (batched == 0) {
                CudaTensor input = new CudaTensor(half.pointer + (long) firstRow * x.cols() * type.bytes(), type, stacked, x.cols(), half);
                CudaTensor layerProducts = new CudaTensor(products.pointer, DType.F32, stacked, products.cols(), products);
                product(input, CudaTensor.of(p.weight()), null, layerProducts);
                productsBase = products.pointer - (long) firstRow * products.cols() * Float.BYTES;
            }
            long tokenShift = (long) firstToken * Integer.BYTES;
            CudaTensor out = CudaTensor.of(p.out());
            CudaTensor bias = orNull(p.bias());
            launch("flora_demodulate", tokens, columnBlocks(out.cols()), THREADS, 0, productsBase, l.rowOf() + tokenShift,
                    l.groupOf() + tokenShift, l.indexOf() + tokenShift, l.base(), l.count(), l.btPtr(), l.btType(), l.rank(), ptr(bias), type(bias),
                    out.pointer, out.cols(), floraVectors ? 1 : 0);
            firstRow += stacked;
            firstToken += tokens;
        }
    }

    /**
     * floraLinears' products in one batched cuBLAS call, where -Dflora.cuda.floraBatchedProducts and
     * batchedProducts allow it and every layer has the same stacked rows (at most
     * BATCHED_PRODUCTS_MAX_ROWS) and a weight of one shape: layer i's products from the modulated rows
     * [i·stacked, (i+1)·stacked) of half into the same rows of one step buffer (the layers' own products
     * buffers may be one: AdaptedLinear's step buffers go by width), which the demodulation reads as the
     * joint layout's stacked rows. 0, with nothing done, otherwise; else that buffer.
     */
    private long floraProductsBatched(CudaTensor half, java.util.List<FloraProjection> layers) {
        FloraProjection first = layers.getFirst();
        int stacked = first.stackedRows();
        if (!floraBatchedProducts || !batchedProducts || stacked > BATCHED_PRODUCTS_MAX_ROWS) {
            return 0;
        }
        for (FloraProjection p : layers) {
            if (p.stackedRows() != stacked || p.weight().rows() != first.weight().rows() || p.weight().cols() != first.weight().cols()) {
                return 0;
            }
        }
        int n = layers.size();
        int outCols = first.weight().rows();
        long products = memory.allocate((long) n * stacked * outCols * Float.BYTES, first.products());
        long[] xs = new long[n];
        long[] ws = new long[n];
        long[] os = new long[n];
        for (int i = 0; i < n; i++) {
            xs[i] = half.pointer + (long) i * stacked * half.cols() * half.dtype().bytes();
            ws[i] = CudaTensor.of(layers.get(i).weight()).pointer;
            os[i] = products + (long) i * stacked * outCols * Float.BYTES;
        }
        batchedLinear(first.products(), xs, ws, os, stacked, half.cols(), outCols, first.weight().dtype());
        return products;
    }

    /** fLoRA's joint layers' products batched or a call a layer, as -Dflora.cuda.floraBatchedProducts sets them (tests run both); the setting before. */
    boolean useFloraBatchedProducts(boolean on) {
        boolean before = floraBatchedProducts;
        floraBatchedProducts = on;
        return before;
    }

    /**
     * fLoRA's layer with one layout upload for both halves; where cuBLAS computes the product (a
     * 16-bit weight, more stacked rows than the GEMV takes) the modulation writes the rounded input
     * cuBLAS reads, so the layer costs the base product's launches plus the demodulation.
     */
    @Override
    public void floraLinear(Tensor x, int[][] rows, Tensor[] a, Tensor[] bt, Tensor weight, Tensor bias, Tensor stacked, Tensor products,
                            Tensor out) {
        bind();
        CudaTensor w = CudaTensor.of(weight);
        if (fuseFlora && floraGemv(CudaTensor.of(x), rows, a, bt, w, orNull(bias), CudaTensor.of(out))) {
            return;
        }
        FloraLayout l = floraLayout(rows, a, x.cols(), bt, out.cols(), out, "floraLinear");
        checkStacked("floraLinear", stacked, l, x.cols());
        checkStacked("floraLinear", products, l, out.cols());
        checkLinear(stacked, weight, products, "floraLinear");
        if (floraRuns.apply(CudaTensor.of(x), java.util.List.of(new FloraProjection(rows, a, bt, weight, bias, stacked, products, out)))) {
            return;
        }
        if (w.dtype() == DType.F32 || l.stacked() <= GEMV_MAX_ROWS) {
            modulate(CudaTensor.of(x), l, CudaTensor.of(stacked));
            linear(stacked, weight, null, products);
            demodulate(CudaTensor.of(products), l, orNull(bias), CudaTensor.of(out));
        } else {
            floraThroughCublas(CudaTensor.of(x), l, w, orNull(bias), CudaTensor.of(products), CudaTensor.of(out));
        }
    }

    /**
     * fLoRA's three steps where cuBLAS takes the product (a 16-bit weight): the modulation writes the
     * rounded input cuBLAS reads, the product goes to products' first l.stacked() rows, the
     * demodulation (with bias) to out.
     */
    void floraThroughCublas(CudaTensor x, FloraLayout l, CudaTensor w, CudaTensor bias, CudaTensor products, CudaTensor out) {
        CudaTensor half = roundingBuffer(w.dtype(), l.stacked(), x.cols());
        modulate(x, l, half);
        CudaTensor part = new CudaTensor(products.pointer, DType.F32, l.stacked(), out.cols(), products);
        product(half, w, null, part);
        demodulate(part, l, bias, out);
    }

    /**
     * floraLinear in one flora_gemv launch where its stacked rows are few (GEMV_MAX_ROWS) and the weight
     * 16-bit; false (nothing done) otherwise. Stacked row s: a token's row of x and one of its adapter's
     * A and Bᵀ rows, a token's r rows together, the first holding r (FLORA_META ints a row).
     */
    private boolean floraGemv(CudaTensor x, int[][] rows, Tensor[] a, Tensor[] bt, CudaTensor w, CudaTensor bias, CudaTensor out) {
        int stacked = 0;
        for (int g = 0; g < rows.length; g++) {
            stacked += rows[g].length * a[g].rows();
        }
        if (w.dtype() == DType.F32 || stacked < 1 || stacked > GEMV_MAX_ROWS || x.cols() % 8 != 0 || (x.pointer & 15) != 0
                || w.cols() != x.cols() || w.rows() != out.cols()) {
            return false;
        }
        long[] aRow = new long[stacked];
        long[] btRow = new long[stacked];
        int[] meta = new int[stacked * FLORA_META];
        int s = 0;
        for (int g = 0; g < rows.length; g++) {
            CudaTensor fa = CudaTensor.of(a[g]);
            CudaTensor fb = CudaTensor.of(bt[g]);
            checkFactors("floraLinear", fa, fb, x.cols(), out.cols());
            for (int row : rows[g]) {
                for (int j = 0; j < fa.rows(); j++, s++) {
                    aRow[s] = fa.pointer + (long) j * fa.cols() * fa.dtype().bytes();
                    btRow[s] = fb.pointer + (long) j * fb.cols() * fb.dtype().bytes();
                    int at = s * FLORA_META;
                    meta[at] = row; // x's row
                    meta[at + 1] = row; // out's row
                    meta[at + 2] = fa.typeCode();
                    meta[at + 3] = fb.typeCode();
                    meta[at + 4] = j == 0 ? fa.rows() : 0;
                }
            }
        }
        long[] p = packed(out, aRow, btRow, meta);
        launchOverlapped("flora_gemv" + stacked, gemvBlocks(out.cols()), GEMV_THREADS, x.pointer, p[0], p[1], p[2], w.pointer, ptr(bias),
                type(bias), out.pointer, x.cols(), out.cols(), w.dtype() == DType.BF16 ? 1 : 0);
        return true;
    }

    /** Turns the one-launch fLoRA GEMV on or off, as -Dflora.cuda.fuseFlora does (tests run both). */
    void useFusedFlora(boolean on) {
        fuseFlora = on;
    }

    @Override
    public void rotary(Tensor x, int headDim, Tensor invFreq, StepData step) {
        bind();
        CudaStep s = (CudaStep) step;
        launchRows("rotary", x.rows(), CudaTensor.of(x).pointer, x.cols(), headDim, CudaTensor.of(invFreq).pointer, s.positions());
    }

    /** Blocks per token of the rotary kernels: a decode step's few tokens still spread over the SMs (about 128 blocks). */
    private static int rotarySplit(int tokens) {
        return Math.max(1, Math.min(16, 128 / Math.max(1, tokens)));
    }

    @Override
    public void rotary(Tensor q, Tensor k, int headDim, Tensor invFreq, StepData step) {
        bind();
        CudaStep s = (CudaStep) step;
        if (q.rows() != k.rows()) {
            throw new IllegalArgumentException("rotary: q of " + q.rows() + " rows, k of " + k.rows());
        }
        if (headDim > 2 * ROTARY_MAX_HALF) {
            Backend.super.rotary(q, k, headDim, invFreq, step);
            return;
        }
        if (q.rows() == 0) {
            return;
        }
        launch("rotary_qk", q.rows(), rotarySplit(q.rows()), THREADS, 0, CudaTensor.of(q).pointer, q.cols(), CudaTensor.of(k).pointer, k.cols(),
                headDim, CudaTensor.of(invFreq).pointer, s.positions());
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, KvCache cache, int layer, AttentionShape shape, StepData step, Tensor out) {
        bind();
        CudaKvCache c = (CudaKvCache) cache;
        CudaStep s = (CudaStep) step;
        if (!attends(s, shape)) {
            return;
        }
        launchRows("write_kv", s.batch().numTokens(), CudaTensor.of(k).pointer, CudaTensor.of(v).pointer, c.keys()[layer], c.values()[layer],
                s.cacheSlots(), shape.kvWidth(), c.typeCode());
        attend(q, c, layer, shape, s, out);
    }

    /**
     * With one token of 16-bit weights (unless -Dflora.cuda.fuseRotation=false): the norm, q/k/v, RoPE and the
     * cache write in one GEMV launch (gemv_qkv_rope_norm1), then the attention; otherwise normLinears
     * and rotaryAttention.
     */
    @Override
    public void normProjectRotaryAttention(Tensor x, RmsNorm norm, Tensor normed, Tensor[] weights, Tensor[] biases, Tensor q, Tensor k,
                                           Tensor v, int headDim, Tensor invFreq, KvCache cache, int layer, AttentionShape shape,
                                           StepData step, Tensor out) {
        bind();
        CudaTensor in = CudaTensor.of(x);
        CudaTensor h = CudaTensor.of(normed);
        Tensor[] outs = {q, k, v};
        boolean fused = fuseRotation && weights.length == 3 && oneHalfType(x, weights, outs, "normProjectRotaryAttention") && x.rows() == 1
                && gemv(in, CudaTensor.of(weights[0])) && gemv(h, CudaTensor.of(weights[0])) && headDim % 4 == 0
                && headDim == shape.headDim() && q.cols() == shape.queryWidth() && k.cols() == shape.kvWidth() && v.cols() == k.cols()
                && invFreq.cols() == headDim / 2;
        if (!fused) {
            normLinears(x, norm, normed, weights, biases, outs, false); // normed is scratch here: no adapter on q, k, v
            rotaryAttention(q, k, v, headDim, invFreq, cache, layer, shape, step, out);
            return;
        }
        CudaKvCache c = (CudaKvCache) cache;
        CudaStep s = (CudaStep) step;
        if (!attends(s, shape)) {
            return;
        }
        java.util.List<Object> args = new java.util.ArrayList<>();
        args.add(in.pointer);
        addNorm(args, norm, h);
        args.add(in.cols());
        args.add(weights[0].dtype() == DType.BF16 ? 1 : 0);
        for (int i = 0; i < 3; i++) {
            CudaTensor b = orNull(biases[i]);
            args.addAll(java.util.Arrays.asList(CudaTensor.of(weights[i]).pointer, ptr(b), type(b), CudaTensor.of(outs[i]).pointer));
            if (i != 1) {
                args.add(outs[i].cols()); // q's width after q, the caches' after v
            }
        }
        args.addAll(java.util.Arrays.asList(headDim, CudaTensor.of(invFreq).pointer, s.positions(), s.cacheSlots(), c.keys()[layer],
                c.values()[layer], c.typeCode()));
        int blocks = q.cols() / GEMV_ROWS + k.cols() / GEMV_ROWS + gemvBlocks(v.cols());
        launchOverlapped("gemv_qkv_rope_norm1", blocks, GEMV_THREADS, args.toArray());
        attend(q, c, layer, shape, s, out);
    }

    /** RoPE of q and k and the cache write in one kernel (rotary_write_kv), then attention. */
    @Override
    public void rotaryAttention(Tensor q, Tensor k, Tensor v, int headDim, Tensor invFreq, KvCache cache, int layer, AttentionShape shape,
                                StepData step, Tensor out) {
        bind();
        CudaKvCache c = (CudaKvCache) cache;
        CudaStep s = (CudaStep) step;
        if (q.rows() != k.rows() || headDim > 2 * ROTARY_MAX_HALF || k.cols() != shape.kvWidth() || headDim != shape.headDim()) {
            Backend.super.rotaryAttention(q, k, v, headDim, invFreq, cache, layer, shape, step, out);
            return;
        }
        if (!attends(s, shape)) {
            return;
        }
        int tokens = s.batch().numTokens();
        launchAttention("rotary_write_kv", tokens, rotarySplit(tokens), THREADS, CudaTensor.of(q).pointer, q.cols(), CudaTensor.of(k).pointer,
                CudaTensor.of(v).pointer, shape.kvWidth(), headDim, CudaTensor.of(invFreq).pointer, s.positions(), c.keys()[layer],
                c.values()[layer], s.cacheSlots(), c.typeCode());
        attend(q, c, layer, shape, s, out);
    }

    /**
     * Launches the rotation or a decode attention kernel: both read earlier kernels' output only after
     * grid_wait(), so they may overlap the kernel before them (-Dflora.cuda.overlapAttention=false: they wait for it).
     */
    private void launchAttention(String kernel, int gridX, int gridY, int block, Object... args) {
        if (overlapAttention) {
            launchOverlapped(kernel, gridX, gridY, block, args);
        } else {
            launch(kernel, gridX, gridY, block, 0, args);
        }
    }

    /** Turns the fused rotation on or off, as -Dflora.cuda.fuseRotation does (tests run both). */
    void useFusedRotation(boolean on) {
        fuseRotation = on;
    }

    /** Whether the step has tokens to attend; refuses head sizes the kernels do not take. */
    private static boolean attends(CudaStep s, AttentionShape shape) {
        if (shape.headDim() > 256) {
            throw new FloraException("the CUDA attention kernel takes head dimensions up to 256, not " + shape.headDim());
        }
        return s.batch().numTokens() > 0;
    }

    /** Attention of the step's queries over the cache, which already holds this step's keys and values. */
    private void attend(Tensor q, CudaKvCache c, int layer, AttentionShape shape, CudaStep s, Tensor out) {
        TokenBatch batch = s.batch();
        int n = batch.numTokens();
        CudaTensor o = CudaTensor.of(out);
        long qp = CudaTensor.of(q).pointer;
        // Prompt chunks of a 16-bit cache go to the tensor-core kernel in tiles; the other tokens (and
        // every token of a recorded step, whose data changes between replays) to the per-token kernel.
        PrefillTiles tiles = fixedStep == null && c.dtype() != DType.F32 ? PrefillTiles.of(batch, shape.headDim()) : null;
        long tokenList = 0;
        int listed = n;
        if (tiles != null && tiles.count() > 0) {
            boolean pipelined = tileAttentionForm.equals("v2") && aligned(qp); // the second form reads q 16 bytes at a time
            String kernel = (pipelined ? "attention_tiles2_" : "attention_tiles_") + (c.dtype() == DType.BF16 ? "bf16_" : "f16_") + shape.headDim();
            launch(kernel, tiles.count(), shape.heads(), 128, 0, qp, c.keys()[layer], c.values()[layer], o.pointer,
                    ints(tiles.descriptors(), out), s.blockTables(), s.maxBlocks(), batch.blockSize(), shape.heads(), shape.kvHeads(),
                    shape.scale(), shape.slidingWindow());
            listed = tiles.others().length;
            if (listed == 0) {
                return;
            }
            tokenList = ints(tiles.others(), out);
        }
        int visible = shape.slidingWindow() > 0 ? Math.min(s.longestContext(), shape.slidingWindow()) : s.longestContext();
        // Few (token, head) pairs split their contexts, so that the GPU has enough blocks to keep
        // memory busy; each token's split length is worked out on the device from its own length.
        long listedPairs = (long) listed * shape.heads();
        int splits = (int) Math.max(1, Math.min(ATTENTION_MAX_SPLITS, ((long) attentionSplitBlocks * smCount + listedPairs - 1) / listedPairs));
        splits = Math.min(splits, (visible + attentionMinSplit - 1) / attentionMinSplit);
        long pairs = listedPairs * splits;
        long partOut = 0;
        long partMax = 0;
        long partSum = 0;
        if (splits > 1) {
            partOut = memory.allocate(pairs * shape.headDim() * 4, out);
            partMax = memory.allocate(pairs * 4, out);
            partSum = memory.allocate(pairs * 4, out);
        }
        String kernel = switch (c.dtype()) {
            case BF16 -> "attention_bf16";
            case F16 -> "attention_f16";
            default -> "attention";
        };
        if (!decodeAttentionForm.equals("v1") && c.dtype() != DType.F32 && (shape.headDim() == 64 || shape.headDim() == 128)) {
            String form = decodeAttentionForm.equals("auto") ? autoAttentionForm(pairs, smCount) : decodeAttentionForm;
            kernel = "attention_" + form + "_" + (c.dtype() == DType.BF16 ? "bf16_" : "f16_") + shape.headDim();
        }
        // The last split of each (token, head) joins them, counting on attentionCounters; a step of
        // more pairs than it holds joins them in attention_combine.
        boolean joinedHere = listedPairs <= ATTENTION_COUNTERS;
        launchAttention(kernel, listed * shape.heads(), splits, 128, qp, c.keys()[layer], c.values()[layer], o.pointer,
                partOut, partMax, partSum, s.positions(), s.seqOfToken(), s.blockTables(), s.maxBlocks(), batch.blockSize(), shape.heads(),
                shape.kvHeads(), shape.headDim(), shape.scale(), shape.slidingWindow(), attentionMinSplit, splits, tokenList,
                joinedHere ? attentionCounters : null);
        if (splits > 1 && !joinedHere) {
            launch("attention_combine", listed * shape.heads(), 1, 128, 0, partOut, partMax, partSum, o.pointer, s.positions(), shape.heads(),
                    shape.headDim(), shape.slidingWindow(), attentionMinSplit, splits, tokenList);
        }
    }

    private static int code(Activation act) {
        return switch (act) {
            case SILU -> 0;
            case GELU -> 1;
            case GELU_TANH -> 2;
            case RELU -> 3;
        };
    }

    @Override
    public void gatedActivation(Activation act, Tensor gate, Tensor up, Tensor out) {
        bind();
        long g = CudaTensor.of(gate).pointer;
        long u = CudaTensor.of(up).pointer;
        long o = CudaTensor.of(out).pointer;
        boolean vec = aligned(g, u, o);
        launchVector("gated_activation", gate.numel(), 4, vec, code(act), g, u, o, gate.numel(), vec ? 1 : 0);
    }

    @Override
    public void activation(Activation act, Tensor x) {
        bind();
        launchElements("activation", x.numel(), code(act), CudaTensor.of(x).pointer, x.numel());
    }

    @Override
    public void addInPlace(Tensor x, Tensor y) {
        bind();
        long a = CudaTensor.of(x).pointer;
        long b = CudaTensor.of(y).pointer;
        boolean vec = aligned(a, b);
        launchVector("add_in_place", x.numel(), 4, vec, a, b, x.numel(), vec ? 1 : 0);
    }

    /**
     * A recorder of its own for each caller (an engine): its recordings share their memory, so two
     * engines stepping in turn (bench decode --compare) must not share one. Null under a profile, which
     * times every operation (a replayed graph would hide them).
     */
    @Override
    public StepRecorder stepRecorder() {
        return profiling ? null : new GraphRecorder(this);
    }

    /**
     * Records what {@code work} gives the GPU as a CUDA graph instead of running it; replay it with
     * {@link Graph#replay()}. The work must use only memory that outlives the graph.
     */
    public Graph capture(Runnable work) {
        bind();
        driver.synchronize(stream);
        driver.beginCapture(stream);
        MemorySegment exec;
        try {
            work.run();
        } finally {
            exec = driver.endCapture(stream);
        }
        return new Graph(exec);
    }

    /** A captured sequence of GPU work. */
    public final class Graph implements AutoCloseable {
        private final MemorySegment exec;

        private Graph(MemorySegment exec) {
            this.exec = exec;
        }

        public void replay() {
            bind();
            driver.launchGraph(exec, stream);
        }

        @Override
        public void close() {
            bind();
            driver.synchronize(stream);
            driver.destroyGraph(exec);
        }
    }

    /**
     * This GPU's limits, measured now: copy bandwidth (bytes read + written per second by a
     * device-to-device copy of 2 GiB, best of 5) and the bf16 product rate (cuBLAS, 8192³, float32
     * accumulation, best of 5).
     */
    public dev.flora.bench.MachineLimits measureLimits() {
        bind();
        driver.synchronize(stream);
        long bytes = 2L << 30;
        Object lifetime = new Object();
        long a = memory.permanent(bytes, lifetime);
        long b = memory.permanent(bytes, lifetime);
        MemorySegment start = driver.createEvent();
        MemorySegment end = driver.createEvent();
        double bestCopy = Double.MAX_VALUE;
        for (int i = 0; i < 6; i++) {
            driver.record(start, stream);
            driver.copyOnDevice(b, a, bytes, stream);
            driver.record(end, stream);
            double ms = driver.elapsed(start, end);
            if (i > 0) {
                bestCopy = Math.min(bestCopy, ms);
            }
        }
        int n = 8192;
        Cublas cublas = cublas();
        double bestGemm = Double.MAX_VALUE;
        for (int i = 0; i < 6; i++) {
            driver.record(start, stream);
            cublas.linear(a, b, a + (long) n * n * 2, n, n, n, Cublas.R_16BF);
            driver.record(end, stream);
            double ms = driver.elapsed(start, end);
            if (i > 0) {
                bestGemm = Math.min(bestGemm, ms);
            }
        }
        java.lang.ref.Reference.reachabilityFence(lifetime);
        return new dev.flora.bench.MachineLimits(2.0 * bytes / (bestCopy / 1e3), 2.0 * n * n * (double) n / (bestGemm / 1e3), smCount, 0);
    }

    /**
     * The work queued behind a hold kernel that keeps the GPU busy for twice the host's last queueing
     * time (plus 0.2 ms), between two events: the GPU time of the work alone.
     */
    @Override
    public double deviceMicros(Runnable work) {
        bind();
        driver.synchronize(stream);
        if (timingEvents == null) {
            timingEvents = new MemorySegment[] {driver.createEvent(), driver.createEvent()};
        }
        launch("hold", 1, 1, 32, 0, Math.min(2 * queueNanos, 10_000_000L) + 200_000L); // work queued slower than that is the host's
        driver.record(timingEvents[0], stream);
        long start = System.nanoTime();
        work.run();
        queueNanos = System.nanoTime() - start;
        driver.record(timingEvents[1], stream);
        return driver.elapsed(timingEvents[0], timingEvents[1]) * 1e3;
    }

    /** Waits until the GPU has done all the work given so far. */
    @Override
    public void synchronize() {
        bind();
        driver.synchronize(stream);
    }

    /** Waits for the step stream and the weight stream, and says so; false while a capture is under way (no wait is possible). */
    private boolean waitForStreams() {
        if (driver.capturing(stream) || driver.capturing(weightStream)) {
            return false;
        }
        driver.synchronize(stream);
        driver.synchronize(weightStream);
        return true;
    }

    @Override
    public void close() {
        bind();
        if (profiling) {
            long total = profile.values().stream().mapToLong(t -> t[0]).sum();
            System.err.printf("flora.cuda.profile: %.1f ms in GPU operations (each waited for)%n", total / 1e6);
            profile.forEach((name, t) -> System.err.printf("  %-38s %8.1f ms %8d calls %8.1f us each%n", name, t[0] / 1e6, t[1],
                    t[0] / 1e3 / t[1]));
        }
        waitForStreams();
        if (staging != null) {
            driver.freeHost(staging);
            staging = null;
        }
        memory.close();
    }
}
