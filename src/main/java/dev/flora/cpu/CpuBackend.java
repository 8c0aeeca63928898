package dev.flora.cpu;

import dev.flora.backend.Activation;
import dev.flora.backend.AttentionShape;
import dev.flora.backend.Backend;
import dev.flora.backend.DType;
import dev.flora.backend.KvCache;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.safetensors.TensorView;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * The CPU backend: float32 compute in host memory. Weight matrices in F32, BF16 or F16 are read in
 * place from the memory-mapped checkpoint and widened in registers; vectors (norms, biases) and
 * other types are widened once. The matrix kernels come from {@link KernelProvider}.
 */
public final class CpuBackend implements Backend {
    private record CpuStep(TokenBatch batch) implements StepData {
    }

    private final Kernels kernels;

    public CpuBackend() {
        this(KernelProvider.get());
    }

    CpuBackend(Kernels kernels) {
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new IllegalStateException("the CPU backend reads little-endian checkpoints in place and needs a little-endian machine");
        }
        this.kernels = kernels;
    }

    /** A backend with the named kernels ("scalar" or "vector"), for tests and benchmarks. */
    public static CpuBackend withKernels(String name) {
        return new CpuBackend(KernelProvider.byName(name));
    }

    @Override
    public String name() {
        return "cpu (" + kernels.name() + ")";
    }

    @Override
    public Tensor weight(TensorView source, int rows, int cols) {
        if ((long) rows * cols != source.numel()) {
            throw new IllegalArgumentException(source + " viewed as [" + rows + ", " + cols + "]");
        }
        if (source.isRandom()) {
            source = new TensorView(source.name(), source.dtype(), source.shape(), RowOps.randomValues(source, rows),
                    java.nio.file.Path.of("random-weights"));
        }
        DType type = source.dtype();
        boolean inPlace = type == DType.F32 || (rows > 1 && (type == DType.BF16 || type == DType.F16));
        if (inPlace) {
            return CpuTensor.weight(source.data(), type, rows, cols);
        }
        MemorySegment widened = Arena.ofAuto().allocate((long) rows * cols * Float.BYTES, 64);
        for (long i = 0, n = source.numel(); i < n; i++) {
            widened.setAtIndex(RowOps.F32, i, source.getFloat(i));
        }
        return CpuTensor.weight(widened, DType.F32, rows, cols);
    }

    @Override
    public Tensor weight(float[] values, int rows, int cols) {
        if (values.length != (long) rows * cols) {
            throw new IllegalArgumentException(values.length + " values for [" + rows + ", " + cols + "]");
        }
        MemorySegment segment = Arena.ofAuto().allocate((long) values.length * Float.BYTES, 64);
        MemorySegment.copy(values, 0, segment, RowOps.F32, 0, values.length);
        return CpuTensor.weight(segment, DType.F32, rows, cols);
    }

    /** Tokens of one adapter taken together by the LoRA kernel: its A and B rows are read once per run, not per token. */
    private static final int LORA_RUN = 8;
    /** The LoRA kernel's per-thread work arrays {v, d}, reused (fresh memory per run costs more than the run). */
    private static final ThreadLocal<float[][]> LORA_WORK = ThreadLocal.withInitial(() -> new float[2][0]);

    private static float[] atLeast(float[] a, int n) {
        return a.length >= n ? a : new float[Math.max(n, 2 * a.length)];
    }

    @Override
    public void loraShrinkExpand(Tensor x, int[][] rows, Tensor[] a, Tensor[] b, Tensor[] bias, float[] scale, Tensor[] outputs) {
        CpuTensor xt = CpuTensor.act(x);
        int in = xt.cols();
        int maxOuts = 0;
        for (Tensor out : outputs) {
            maxOuts = Math.max(maxOuts, out.cols());
        }
        float[][] av = new float[rows.length][];
        float[][] bt = new float[rows.length][];
        float[][] biasv = new float[rows.length][];
        int maxRank = 0;
        for (int g = 0; g < rows.length; g++) {
            av[g] = CpuTensor.of(a[g]).hostCopies()[0];   // A [r, in]
            bt[g] = CpuTensor.of(b[g]).hostCopies()[1];   // B^T [r, out]
            biasv[g] = bias[g] == null ? null : CpuTensor.of(bias[g]).hostCopies()[0];
            maxRank = Math.max(maxRank, a[g].rows());
        }
        // Runs of up to LORA_RUN tokens of one adapter (Punica's segments), all in one parallel loop:
        // one dispatch per layer, not per adapter.
        Runs runs = Runs.of(rows, LORA_RUN);
        long tokensPerRun = Math.ceilDiv(runs.tokens(), Math.max(1, runs.count()));
        RowOps.forEach(runs.count(), tokensPerRun * maxRank * (in + maxOuts), k -> {
            int g = runs.group[k];
            CpuTensor o = CpuTensor.act(outputs[g]);
            int outs = o.cols();
            int from = runs.from[k];
            int n = runs.length[k];
            int r = a[g].rows();
            float[][] work = LORA_WORK.get();
            float[] v = work[0] = atLeast(work[0], n * r);
            float[] d = work[1] = atLeast(work[1], n * outs);
            java.util.Arrays.fill(d, 0, n * outs, 0f);
            for (int j = 0; j < r; j++) {
                for (int t = 0; t < n; t++) {
                    v[t * r + j] = kernels.dot(xt.array, xt.offset + rows[g][from + t] * in, av[g], j * in, in);
                }
            }
            for (int j = 0; j < r; j++) {
                for (int t = 0; t < n; t++) {
                    kernels.axpy(v[t * r + j], bt[g], j * outs, d, t * outs, outs);
                }
            }
            for (int t = 0; t < n; t++) {
                int oo = o.offset + rows[g][from + t] * outs;
                for (int c = 0; c < outs; c++) {
                    float dc = d[t * outs + c];
                    o.array[oo + c] += scale[g] * (biasv[g] == null ? dc : dc + biasv[g][c]);
                }
            }
        });
    }

    @Override
    public void floraModulate(Tensor x, int[][] rows, Tensor[] a, Tensor stacked) {
        CpuTensor xt = CpuTensor.act(x);
        CpuTensor st = CpuTensor.act(stacked);
        int in = xt.cols();
        FloraLayout layout = FloraLayout.of(rows, a);
        if (st.rows() != layout.stackedRows() || st.cols() != in) {
            throw new IllegalArgumentException("floraModulate: stacked [" + st.rows() + ", " + st.cols() + "] for "
                    + layout.stackedRows() + " rows of " + in);
        }
        float[][] av = new float[rows.length][];
        for (int g = 0; g < rows.length; g++) {
            if (a[g].cols() != in) {
                throw new IllegalArgumentException("floraModulate: A [" + a[g].rows() + ", " + a[g].cols() + "] for inputs of " + in);
            }
            av[g] = CpuTensor.of(a[g]).hostCopies()[0];
        }
        RowOps.forEach(layout.tokens(), (long) layout.maxRank() * in, m -> {
            int g = layout.group[m];
            int i = layout.index[m];
            int n = rows[g].length;
            int src = xt.offset + rows[g][i] * in;
            for (int j = 0, r = a[g].rows(); j < r; j++) {
                kernels.mul(xt.array, src, av[g], j * in, st.array, st.offset + (layout.base[g] + j * n + i) * in, in);
            }
        });
    }

    @Override
    public void floraDemodulate(Tensor products, int[][] rows, Tensor[] bt, Tensor bias, Tensor out) {
        CpuTensor p = CpuTensor.act(products);
        CpuTensor o = CpuTensor.act(out);
        int outs = o.cols();
        FloraLayout layout = FloraLayout.of(rows, bt);
        if (p.rows() != layout.stackedRows() || p.cols() != outs) {
            throw new IllegalArgumentException("floraDemodulate: products [" + p.rows() + ", " + p.cols() + "] for "
                    + layout.stackedRows() + " rows of " + outs);
        }
        float[][] bv = new float[rows.length][];
        for (int g = 0; g < rows.length; g++) {
            if (bt[g].cols() != outs) {
                throw new IllegalArgumentException("floraDemodulate: B^T [" + bt[g].rows() + ", " + bt[g].cols() + "] for outputs of " + outs);
            }
            bv[g] = CpuTensor.of(bt[g]).hostCopies()[0];
        }
        float[] biasv = bias == null ? null : CpuTensor.of(bias).hostCopies()[0];
        RowOps.forEach(layout.tokens(), (long) layout.maxRank() * outs, m -> {
            int g = layout.group[m];
            int i = layout.index[m];
            int n = rows[g].length;
            int r = bt[g].rows();
            kernels.demodulate(p.array, p.offset + (layout.base[g] + i) * outs, n * outs, bv[g], 0, outs, r, 1f / r,
                    biasv, o.array, o.offset + rows[g][i] * outs, outs);
        });
    }

    @Override
    public Tensor allocate(int rows, int cols) {
        return CpuTensor.activation(new float[Math.multiplyExact(rows, cols)], 0, rows, cols);
    }

    @Override
    public Tensor fromHost(float[] values, int rows, int cols) {
        if (values.length != (long) rows * cols) {
            throw new IllegalArgumentException(values.length + " values for [" + rows + ", " + cols + "]");
        }
        return CpuTensor.activation(values.clone(), 0, rows, cols);
    }

    @Override
    public Tensor rows(Tensor t, int from, int count) {
        CpuTensor c = CpuTensor.act(t);
        if (from < 0 || count < 0 || from + count > c.rows()) {
            throw new IndexOutOfBoundsException("rows [" + from + ", " + (from + count) + ") of " + c.rows());
        }
        return CpuTensor.activation(c.array, c.offset + from * c.cols(), count, c.cols());
    }

    @Override
    public float[] toHost(Tensor t) {
        CpuTensor c = CpuTensor.of(t);
        float[] out = new float[Math.toIntExact(c.numel())];
        if (c.isWeight()) {
            for (int i = 0; i < out.length; i++) {
                out[i] = c.weightAt(i);
            }
        } else {
            System.arraycopy(c.array, c.offset, out, 0, out.length);
        }
        return out;
    }

    @Override
    public KvCache allocateKvCache(int layers, int numBlocks, int blockSize, int kvWidth, DType type) {
        if (type != DType.F32) {
            throw new IllegalArgumentException("the CPU backend keeps its KV cache in float32, not " + type);
        }
        return new CpuKvCache(layers, numBlocks, blockSize, kvWidth);
    }

    @Override
    public StepData prepare(TokenBatch batch) {
        return new CpuStep(batch);
    }

    @Override
    public void embed(Tensor table, StepData step, Tensor out) {
        CpuTensor tab = CpuTensor.of(table);
        CpuTensor o = CpuTensor.act(out);
        int cols = table.cols();
        int[] tokens = step.batch().tokens();
        for (int t = 0; t < tokens.length; t++) {
            long row = (long) tokens[t] * cols;
            for (int i = 0; i < cols; i++) {
                o.array[o.offset + t * cols + i] = tab.weightAt(row + i);
            }
        }
    }

    @Override
    public void addPositionEmbedding(Tensor table, StepData step, Tensor x) {
        CpuTensor tab = CpuTensor.of(table);
        CpuTensor o = CpuTensor.act(x);
        int cols = table.cols();
        int[] positions = step.batch().positions();
        for (int t = 0; t < positions.length; t++) {
            long row = (long) positions[t] * cols;
            int out = o.offset + t * cols;
            for (int i = 0; i < cols; i++) {
                o.array[out + i] += tab.weightAt(row + i);
            }
        }
    }

    @Override
    public void splitQkv(Tensor fused, int headDim, boolean perHead, Tensor q, Tensor k, Tensor v) {
        CpuTensor f = CpuTensor.act(fused);
        CpuTensor cq = CpuTensor.act(q);
        CpuTensor ck = CpuTensor.act(k);
        CpuTensor cv = CpuTensor.act(v);
        int qw = q.cols();
        int kw = k.cols();
        if (f.cols() != qw + 2 * kw || (perHead && qw != kw)) {
            throw new IllegalArgumentException("splitQkv: fused width " + f.cols() + " for q " + qw + ", k/v " + kw);
        }
        for (int t = 0; t < f.rows(); t++) {
            int src = f.offset + t * f.cols();
            if (perHead) {
                for (int h = 0; h < qw / headDim; h++) {
                    int base = src + h * 3 * headDim;
                    System.arraycopy(f.array, base, cq.array, cq.offset + t * qw + h * headDim, headDim);
                    System.arraycopy(f.array, base + headDim, ck.array, ck.offset + t * kw + h * headDim, headDim);
                    System.arraycopy(f.array, base + 2 * headDim, cv.array, cv.offset + t * kw + h * headDim, headDim);
                }
            } else {
                System.arraycopy(f.array, src, cq.array, cq.offset + t * qw, qw);
                System.arraycopy(f.array, src + qw, ck.array, ck.offset + t * kw, kw);
                System.arraycopy(f.array, src + qw + kw, cv.array, cv.offset + t * kw, kw);
            }
        }
    }

    @Override
    public void scatterRows(Tensor src, int[] rows, float scale, Tensor bias, boolean accumulate, Tensor dst) {
        CpuTensor s = CpuTensor.act(src);
        CpuTensor d = CpuTensor.act(dst);
        CpuTensor b = bias == null ? null : CpuTensor.of(bias);
        int cols = d.cols();
        for (int i = 0; i < rows.length; i++) {
            int from = s.offset + i * cols;
            int to = d.offset + rows[i] * cols;
            for (int c = 0; c < cols; c++) {
                float v = scale * s.array[from + c];
                if (b != null) {
                    v += b.isWeight() ? b.weightAt(c) : b.array[b.offset + c];
                }
                d.array[to + c] = accumulate ? d.array[to + c] + v : v;
            }
        }
    }

    @Override
    public void mulRows(Tensor x, int[] rows, Tensor vectors, int vectorRow) {
        CpuTensor t = CpuTensor.act(x);
        CpuTensor v = CpuTensor.of(vectors);
        int cols = t.cols();
        int n = rows == null ? t.rows() : rows.length;
        for (int i = 0; i < n; i++) {
            int at = t.offset + (rows == null ? i : rows[i]) * cols;
            for (int c = 0; c < cols; c++) {
                long k = (long) vectorRow * cols + c;
                t.array[at + c] *= v.isWeight() ? v.weightAt(k) : v.array[v.offset + (int) k];
            }
        }
    }

    @Override
    public void gatherRows(Tensor x, int[] rows, Tensor out) {
        CpuTensor src = CpuTensor.act(x);
        CpuTensor dst = CpuTensor.act(out);
        int cols = src.cols();
        for (int i = 0; i < rows.length; i++) {
            System.arraycopy(src.array, src.offset + rows[i] * cols, dst.array, dst.offset + i * cols, cols);
        }
    }

    @Override
    public void rmsNorm(Tensor x, Tensor weight, float eps, Tensor out) {
        CpuTensor in = CpuTensor.act(x);
        CpuTensor o = CpuTensor.act(out);
        RowOps.rmsNorm(in.array, in.offset, CpuTensor.w(weight), eps, o.array, o.offset, in.rows(), in.cols());
    }

    @Override
    public void layerNorm(Tensor x, Tensor weight, Tensor bias, float eps, Tensor out) {
        CpuTensor in = CpuTensor.act(x);
        CpuTensor o = CpuTensor.act(out);
        RowOps.layerNorm(in.array, in.offset, CpuTensor.w(weight), CpuTensor.w(bias), eps, o.array, o.offset, in.rows(), in.cols());
    }

    @Override
    public void linear(Tensor x, Tensor weight, Tensor bias, Tensor out) {
        CpuTensor in = CpuTensor.act(x);
        CpuTensor o = CpuTensor.act(out);
        if (weight.cols() != in.cols() || o.cols() != weight.rows() || o.rows() != in.rows()) {
            throw new IllegalArgumentException("linear: x [" + in.rows() + ", " + in.cols() + "] W [" + weight.rows() + ", "
                    + weight.cols() + "] out [" + o.rows() + ", " + o.cols() + "]");
        }
        kernels.linear(in, CpuTensor.of(weight), bias == null ? null : CpuTensor.of(bias), o);
    }

    @Override
    public void rotary(Tensor x, int headDim, Tensor invFreq, StepData step) {
        CpuTensor t = CpuTensor.act(x);
        RowOps.rotary(t.array, t.offset, t.rows(), t.cols(), headDim, CpuTensor.of(invFreq).hostCopies()[0], step.batch().positions());
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, KvCache cache, int layer, AttentionShape shape, StepData step, Tensor out) {
        CpuKvCache c = (CpuKvCache) cache;
        TokenBatch batch = step.batch();
        AttentionKernel.writeCache(CpuTensor.act(k), CpuTensor.act(v), c.keys[layer], c.values[layer], batch.cacheSlots(), shape.kvWidth());
        AttentionKernel.attend(kernels, CpuTensor.act(q), c.keys[layer], c.values[layer], shape, batch, CpuTensor.act(out));
    }

    @Override
    public void gatedActivation(Activation act, Tensor gate, Tensor up, Tensor out) {
        CpuTensor g = CpuTensor.act(gate);
        CpuTensor u = CpuTensor.act(up);
        CpuTensor o = CpuTensor.act(out);
        if (act == Activation.SILU) {
            int cols = gate.cols();
            // Row by row: every element's arithmetic depends only on its column, never on the batch.
            RowOps.forEach(gate.rows(), cols, r -> kernels.siluMul(g.array, g.offset + r * cols, u.array, u.offset + r * cols,
                    o.array, o.offset + r * cols, cols));
            return;
        }
        for (int i = 0, n = Math.toIntExact(gate.numel()); i < n; i++) {
            o.array[o.offset + i] = RowOps.activate(act, g.array[g.offset + i]) * u.array[u.offset + i];
        }
    }

    @Override
    public void activation(Activation act, Tensor x) {
        CpuTensor s = CpuTensor.act(x);
        for (int i = 0, n = Math.toIntExact(x.numel()); i < n; i++) {
            s.array[s.offset + i] = RowOps.activate(act, s.array[s.offset + i]);
        }
    }

    @Override
    public void addInPlace(Tensor x, Tensor y) {
        CpuTensor a = CpuTensor.act(x);
        CpuTensor b = CpuTensor.act(y);
        for (int i = 0, n = Math.toIntExact(x.numel()); i < n; i++) {
            a.array[a.offset + i] += b.array[b.offset + i];
        }
    }

    @Override
    public void close() {
        // Host memory is reclaimed by the garbage collector and the automatic arenas.
    }
}
