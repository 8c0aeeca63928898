package dev.flora.cuda;

import dev.flora.backend.DType;
import dev.flora.backend.Tensor;

/**
 * A {@link LoraStack}'s passes on the GPU: the stacked factors (lora_stack_rows, lora_stack_columns),
 * the two dense cuBLAS products and the mask between them (lora_stack_mask). x and v are rounded to
 * the factors' types as a run's own products round them (CudaLoraRuns.apply), except that v is scaled
 * before its rounding (LoraStack says why).
 */
final class CudaLoraStack {
    private static final long ALIGN = 256;
    private final CudaBackend gpu;
    /**
     * One buffer for the stacked factors, v and its kept copy, shared by every call (the stream runs
     * them in order, as the shared rounding buffer), grown when a call needs more: step memory would
     * hold a copy per call until the step ends (64 calls of a Llama-2-7B prefill step, up to about
     * 250 MB each at 8,192 rows and 4,096 columns).
     */
    private long scratch;
    private long scratchBytes;
    private Object scratchOwner;

    CudaLoraStack(CudaBackend gpu) {
        this.gpu = gpu;
    }

    /** The shared buffer of at least {@code bytes} (a larger one replaces it; the old is freed once its work is done). */
    private long scratch(long bytes) {
        if (bytes > scratchBytes) {
            scratchOwner = new Object();
            scratch = gpu.memory().permanent(bytes, scratchOwner);
            scratchBytes = bytes;
        }
        return scratch;
    }

    private static long aligned(long bytes) {
        return (bytes + ALIGN - 1) / ALIGN * ALIGN;
    }

    void apply(CudaTensor x, LoraStack stack, Tensor[] a, Tensor[] b, Tensor[] outs) {
        int in = x.cols();
        Cublas cublas = gpu.cublas();
        for (LoraStack.Pass p : stack.passes()) {
            int columns = p.columns();
            int rows = p.rows();
            DType aType = p.aType();
            DType bType = p.bType();
            long[] aRow = new long[columns]; // column k's row of its group's A
            for (int k = 0; k < columns; k++) {
                int g = p.columnGroup()[k];
                aRow[k] = CudaTensor.of(a[g]).pointer + (long) (k - p.groupColumn()[g]) * in * aType.bytes();
            }
            long[] d = gpu.packed(x, aRow, p.rowOf(), p.columnClass(), p.columnGroup(), p.columnScale(), p.classRuns(), p.runFirst(), p.runEnd(),
                    p.runGroup());
            int widest = 0;
            for (Tensor o : outs) {
                widest = Math.max(widest, o.cols());
            }
            // The shared buffer: stacked A (columns × in), v (rows × columns, float32), kept (rows × columns), one class's B.
            long aBytes = aligned((long) columns * in * aType.bytes());
            long vBytes = aligned((long) rows * columns * Float.BYTES);
            long keptBytes = aligned((long) rows * columns * bType.bytes());
            long base = scratch(aBytes + vBytes + keptBytes + (long) widest * columns * bType.bytes());
            long aStacked = base;
            long v = base + aBytes;
            long kept = v + vBytes;
            long bStacked = kept + keptBytes;
            gpu.launchRows("lora_stack_rows", columns, d[0], aStacked, in);
            CudaTensor input = gpu.rounded(x, aType);
            long start = gpu.profiling ? gpu.begin() : 0;
            for (int s = 0, at = 0; s < p.segmentFrom().length; s++) { // v = x[segment] A_s^T, segment after segment
                int from = p.segmentFrom()[s];
                int n = p.segmentTo()[s] - from;
                cublas.linearStrided(input.pointer + (long) from * in * aType.bytes(), in, aStacked, v + (long) at * columns * Float.BYTES,
                        columns, n, in, columns, CudaBackend.cublasType(aType), 1f, false);
                at += n;
            }
            if (gpu.profiling) {
                gpu.end("cublas lora stack shrink", start);
            }
            gpu.launchRows("lora_stack_mask", rows, v, kept, columns, d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8],
                    p.classes().length, bType == DType.BF16 ? 1 : 0);
            for (LoraStack.OutputClass c : p.classes()) {
                int width = c.to() - c.from();
                CudaTensor o = CudaTensor.of(outs[c.group()]);
                long[] bColumn = new long[width]; // column k of the class's B_c: column (k - its group's first) of its group's B
                int[] stride = new int[width];
                for (int k = c.from(); k < c.to(); k++) {
                    int g = p.columnGroup()[k];
                    bColumn[k - c.from()] = CudaTensor.of(b[g]).pointer + (long) (k - p.groupColumn()[g]) * bType.bytes();
                    stride[k - c.from()] = a[g].rows();
                }
                long[] e = gpu.packed(x, bColumn, stride);
                gpu.launchRows("lora_stack_columns", o.cols(), e[0], e[1], bStacked, o.cols(), width);
                start = gpu.profiling ? gpu.begin() : 0;
                for (int s = 0, at = 0; s < p.segmentFrom().length; s++) { // out[segment] += (scale · v)[:, class] B_c^T
                    int from = p.segmentFrom()[s];
                    int n = p.segmentTo()[s] - from;
                    cublas.linearStrided(kept + ((long) at * columns + c.from()) * bType.bytes(), columns, bStacked,
                            o.pointer + (long) from * o.cols() * Float.BYTES, o.cols(), n, width, o.cols(), CudaBackend.cublasType(bType), 1f, true);
                    at += n;
                }
                if (gpu.profiling) {
                    gpu.end("cublas lora stack expand", start);
                }
            }
        }
    }
}
