package dev.flora.backend;

import dev.flora.safetensors.TensorView;

/**
 * The tensor operations every model definition is written against. A backend owns its memory
 * and kernels (CPU: host memory; CUDA: device memory). Each operation is one explicit step of a
 * layer's forward pass; backward passes (training, Laplace-LoRA) add their own explicit
 * operations beside these rather than a general autograd.
 *
 * <p>All tensors are 2-D row-major with one row per token. Every operation is batch-invariant:
 * row t of an output depends only on row t of its inputs (and, for attention, on the cache of
 * row t's own sequence), computed in a fixed order, whatever the number of rows.
 */
public interface Backend extends AutoCloseable {
    String name();

    /** The kind of device ("cpu", "cuda"): what a measurement made on this backend is valid for. */
    default String device() {
        return "cpu";
    }

    /** A weight for this backend, from a checkpoint tensor viewed as [rows, cols]. */
    Tensor weight(TensorView source, int rows, int cols);

    /** A float32 weight made on the host (a merged adapter copy, say), for {@link #linear}. */
    Tensor weight(float[] values, int rows, int cols);

    /**
     * LoRA token by token, unpadded, for several adapters in one call (SGMV-like): for group g and
     * each row i of rows[g], v = A[g] x[i] (A [r_g, in]), then outs[g][i] += scale[g] · (B[g] v + bias[g])
     * (B [out_g, r_g]); each token's rank-r work stays its own, and ranks may differ between groups.
     * Groups may write different outputs (the q, k and v projections of one input, say: one call for
     * all three); groups writing one output must not share a row.
     */
    void loraShrinkExpand(Tensor x, int[][] rows, Tensor[] a, Tensor[] b, Tensor[] bias, float[] scale, Tensor[] outs);

    /**
     * {@link #normLinears}, then {@code lora}'s terms added to the outputs from the normed rows
     * ({@link #loraShrinkExpand} on {@code normed}): one call, so that a backend may shrink before the
     * products (the shrink reads only the normed rows) and expand after them.
     */
    default void normLinearsLora(Tensor x, RmsNorm norm, Tensor normed, Tensor[] weights, Tensor[] biases, Tensor[] outs, LoraTerms lora) {
        normLinears(x, norm, normed, weights, biases, outs);
        loraShrinkExpand(normed, lora.rows(), lora.a(), lora.b(), lora.bias(), lora.scale(), lora.outs());
    }

    /**
     * fLoRA's modulation for every group of a step in one call (DESIGN.md §2): group g, of rank
     * r_g = a[g].rows() and n_g = rows[g].length tokens, fills the stacked rows from base_g (base_0 = 0,
     * base_{g+1} = base_g + r_g n_g) with stacked[base_g + j n_g + i] = x[rows[g][i]] ∘ a[g][j] for
     * j &lt; r_g, i &lt; n_g: the input of ONE product with W0 for every fLoRA token of the step.
     */
    void floraModulate(Tensor x, int[][] rows, Tensor[] a, Tensor stacked);

    /**
     * fLoRA's demodulation for every group in one call, the inverse layout of {@link #floraModulate}:
     * out[rows[g][i]] = (1 / r_g) · Σ_j (products[base_g + j n_g + i] ∘ bt[g][j]) + bias, with
     * r_g = bt[g].rows(), the sum from zero over j in order and each product rounded first (the exact
     * strategy's arithmetic); bias [1, out] or null. Other rows of out are left as they are.
     */
    void floraDemodulate(Tensor products, int[][] rows, Tensor[] bt, Tensor bias, Tensor out);

    /**
     * {@link #floraLinear} for several layers sharing the input x (fLoRA's q and k projections, say),
     * layer by layer; where the backend fuses them, one modulation serves every layer. Layers may
     * share stacked and product buffers: each layer's demodulation reads its products before the next
     * layer's product writes them.
     */
    default void floraLinears(Tensor x, java.util.List<FloraProjection> layers) {
        for (FloraProjection l : layers) {
            floraLinear(x, l.rows(), l.a(), l.bt(), l.weight(), l.bias(), l.stacked(), l.products(), l.out());
        }
    }

    /**
     * fLoRA's whole layer for the step's fLoRA groups: {@link #floraModulate} into stacked, ONE
     * product with weight into products, {@link #floraDemodulate} (with bias) into out; one call where
     * the backend fuses them.
     */
    default void floraLinear(Tensor x, int[][] rows, Tensor[] a, Tensor[] bt, Tensor weight, Tensor bias, Tensor stacked, Tensor products,
                             Tensor out) {
        floraModulate(x, rows, a, stacked);
        linear(stacked, weight, null, products);
        floraDemodulate(products, rows, bt, bias, out);
    }

    /**
     * A zero-filled float32 tensor. Once a step is open ({@link #prepare}) a backend may give step
     * memory, valid until the next prepare() (the CUDA backend does); a tensor that must outlive the
     * step comes from {@link #fromHost}.
     */
    Tensor allocate(int rows, int cols);

    /** A float32 tensor holding these values. */
    Tensor fromHost(float[] values, int rows, int cols);

    /** Rows [from, from + count) of a tensor, as a view sharing its memory. */
    Tensor rows(Tensor t, int from, int count);

    float[] toHost(Tensor t);

    /** A paged KV cache whose keys and values are stored as {@code type}, as {@link #kvCacheType} chose it. */
    KvCache allocateKvCache(int layers, int numBlocks, int blockSize, int kvWidth, DType type);

    /**
     * The type this backend keeps the KV cache in for a model whose weights are {@code weights}:
     * float32 by default (exact); a GPU backend keeps a 16-bit model's cache in the weights' type,
     * as transformers does, halving what attention reads.
     */
    default DType kvCacheType(DType weights) {
        return DType.F32;
    }

    /** Per-step data (positions, block tables, slots) in the backend's own memory. */
    StepData prepare(TokenBatch batch);

    /** out[t] = table[tokens[t]]. */
    void embed(Tensor table, StepData step, Tensor out);

    /** x[t] += table[positions[t]]: learned absolute position embeddings. */
    void addPositionEmbedding(Tensor table, StepData step, Tensor x);

    /**
     * Splits a fused attention projection into q [T, heads * headDim], k and v [T, kvHeads * headDim].
     * Row layout of {@code fused}: [q | k | v], or with {@code perHead} (GPT-BigCode without
     * multi-query) [q_0 k_0 v_0 | q_1 k_1 v_1 | ...], one triple per head.
     */
    void splitQkv(Tensor fused, int headDim, boolean perHead, Tensor q, Tensor k, Tensor v);

    /** out[i] = x[rows[i]]. */
    void gatherRows(Tensor x, int[] rows, Tensor out);

    /** out = x / sqrt(mean(x^2) + eps) * weight, per row. */
    void rmsNorm(Tensor x, Tensor weight, float eps, Tensor out);

    /**
     * dst[rows[i]] = (accumulate ? dst[rows[i]] : 0) + scale * src[i] (+ bias): writes adapted
     * rows back into a layer's output.
     */
    void scatterRows(Tensor src, int[] rows, float scale, Tensor bias, boolean accumulate, Tensor dst);

    /** x[r] ∘= vectors[vectorRow] for the given rows (null: every row), in place. */
    void mulRows(Tensor x, int[] rows, Tensor vectors, int vectorRow);

    /**
     * {@link #mulRows} for several groups in one call (IA3's scales, one per adapter): x[rows[g][i]] ∘=
     * vectors[g] (a [1, cols] vector), in place; no row in two groups.
     */
    default void mulRowsGrouped(Tensor x, int[][] rows, Tensor[] vectors) {
        for (int g = 0; g < rows.length; g++) {
            if (rows[g].length > 0) {
                mulRows(x, rows[g], vectors[g], 0);
            }
        }
    }

    /** out = (x - mean) / sqrt(var + eps) * weight + bias, per row. */
    void layerNorm(Tensor x, Tensor weight, Tensor bias, float eps, Tensor out);

    /** out = x W^T (+ bias): x [T, in], W [out, in], bias [1, out] or null. */
    void linear(Tensor x, Tensor weight, Tensor bias, Tensor out);

    /**
     * outs[i] = x W_i^T (+ b_i) for several weights that read the same input (a layer's q, k and v),
     * in one call where the backend can fuse them; biases[i] may be null.
     */
    default void linears(Tensor x, Tensor[] weights, Tensor[] biases, Tensor[] outs) {
        for (int i = 0; i < weights.length; i++) {
            linear(x, weights[i], biases[i], outs[i]);
        }
    }

    /**
     * A gated MLP's two products and its activation: gate = act(x Wg^T + bg) * (x Wu^T + bu), with
     * {@code up} as scratch (its contents afterwards unspecified); the same values as the three
     * operations one after the other.
     */
    default void gatedLinear(Tensor x, Tensor gateWeight, Tensor gateBias, Tensor upWeight, Tensor upBias, Activation act, Tensor gate,
                             Tensor up) {
        linear(x, gateWeight, gateBias, gate);
        linear(x, upWeight, upBias, up);
        gatedActivation(act, gate, up, gate);
    }

    /**
     * Group g's rows [g·rows, (g+1)·rows) of out = the same rows of x times weights[g]ᵀ, for every
     * group at once (a batched product, as torch.bmm): x [groups·rows, in], weights[g] [o, in] all of
     * one shape and type, out [groups·rows, o].
     */
    default void batchedLinear(Tensor x, Tensor[] weights, int rows, Tensor out) {
        for (int g = 0; g < weights.length; g++) {
            linear(rows(x, g * rows, rows), weights[g], null, rows(out, g * rows, rows));
        }
    }

    /**
     * normed = the RMSNorm of x, then {@link #linears} of normed: one call where the backend fuses
     * the norm into the products. normed is written either way (adapters read it).
     */
    default void normLinears(Tensor x, RmsNorm norm, Tensor normed, Tensor[] weights, Tensor[] biases, Tensor[] outs) {
        rmsNorm(x, norm.weight(), norm.eps(), normed);
        linears(normed, weights, biases, outs);
    }

    /** normed = the RMSNorm of x, then {@link #gatedLinear} of normed, in one call where the backend fuses them. */
    default void normGatedLinear(Tensor x, RmsNorm norm, Tensor normed, Tensor gateWeight, Tensor gateBias, Tensor upWeight, Tensor upBias,
                                 Activation act, Tensor gate, Tensor up) {
        rmsNorm(x, norm.weight(), norm.eps(), normed);
        gatedLinear(normed, gateWeight, gateBias, upWeight, upBias, act, gate, up);
    }

    /**
     * A gated MLP added to the residual: residual += (act(normed Wg^T + bg) * (normed Wu^T + bu)) Wd^T
     * (+ bd), normed = the RMSNorm of x; normed, gate, up and scratch are scratch (their contents
     * afterwards unspecified: no adapter touches these layers, so nothing reads the normed rows after, and a
     * backend whose products take them rounded need not write them). One call where the backend fuses more of it
     * (a GPU can write the activation straight in the down product's input type); the same values as
     * {@link #normGatedLinear} then {@link #linearAdd}.
     */
    default void normGatedLinearAdd(Tensor x, RmsNorm norm, Tensor normed, Tensor gateWeight, Tensor gateBias, Tensor upWeight,
                                    Tensor upBias, Activation act, Tensor downWeight, Tensor downBias, Tensor gate, Tensor up,
                                    Tensor scratch, Tensor residual) {
        normGatedLinear(x, norm, normed, gateWeight, gateBias, upWeight, upBias, act, gate, up);
        linearAdd(gate, downWeight, downBias, scratch, residual);
    }

    /**
     * residual += x W^T (+ bias), with {@code scratch} [rows, out] for the product where the backend
     * needs one: the same values as {@link #linear} then {@link #addInPlace}.
     */
    default void linearAdd(Tensor x, Tensor weight, Tensor bias, Tensor scratch, Tensor residual) {
        linear(x, weight, bias, scratch);
        addInPlace(residual, scratch);
    }

    /**
     * Rotary position embedding in the rotate-half layout of Hugging Face checkpoints, in place,
     * on every head of x [T, heads * headDim]; invFreq [1, headDim / 2].
     */
    void rotary(Tensor x, int headDim, Tensor invFreq, StepData step);

    /** {@link #rotary} of q and of k, in one call where the backend can. */
    default void rotary(Tensor q, Tensor k, int headDim, Tensor invFreq, StepData step) {
        rotary(q, headDim, invFreq, step);
        rotary(k, headDim, invFreq, step);
    }

    /**
     * Writes this step's keys and values to the cache slots of its tokens, then computes causal
     * attention of each query over its sequence's cached keys and values. A token whose slot is
     * negative (padding of a recorded step, {@link StepRecorder}) writes nothing.
     */
    void attention(Tensor q, Tensor k, Tensor v, KvCache cache, int layer, AttentionShape shape, StepData step, Tensor out);

    /**
     * {@link #rotary} of q and k, then {@link #attention}: one call where the backend rotates k as it
     * writes it to the cache.
     */
    default void rotaryAttention(Tensor q, Tensor k, Tensor v, int headDim, Tensor invFreq, KvCache cache, int layer, AttentionShape shape,
                                 StepData step, Tensor out) {
        rotary(q, k, headDim, invFreq, step);
        attention(q, k, v, cache, layer, shape, step, out);
    }

    /**
     * {@link #normLinears} of q, k and v (weights and biases in that order), then {@link #rotaryAttention}:
     * one call where the backend rotates q and k and writes k and v to the cache as the products end
     * (a GPU decoding one token). The default runs the two. For layers no adapter touches: normed is
     * scratch here (its contents afterwards unspecified; a backend need not write it).
     */
    default void normProjectRotaryAttention(Tensor x, RmsNorm norm, Tensor normed, Tensor[] weights, Tensor[] biases, Tensor q, Tensor k,
                                            Tensor v, int headDim, Tensor invFreq, KvCache cache, int layer, AttentionShape shape,
                                            StepData step, Tensor out) {
        normLinears(x, norm, normed, weights, biases, new Tensor[] {q, k, v});
        rotaryAttention(q, k, v, headDim, invFreq, cache, layer, shape, step, out);
    }

    /** out = act(gate) * up. */
    void gatedActivation(Activation act, Tensor gate, Tensor up, Tensor out);

    /** x = act(x), in place. */
    void activation(Activation act, Tensor x);

    /** x += y, in place. */
    void addInPlace(Tensor x, Tensor y);

    /**
     * Per row of logits [rows, vocab]: the argmax, its value and the log-sum-exp
     * ({@link LogitSummary}). By default computed on the host, from {@code onHost} when the caller
     * has the rows there already (else {@link #toHost}); a GPU backend computes it where the logits
     * are, always, and copies back only the summary.
     */
    default LogitSummary summarizeLogits(Tensor logits, float[] onHost) {
        return LogitSummary.ofHost(onHost != null ? onHost : toHost(logits), logits.rows(), logits.cols());
    }

    /**
     * A recorder of steps for replay (CUDA graphs), one per caller: one engine's recordings may share
     * their memory, as one engine replays one step at a time. Null where each step is simply run as it comes.
     */
    default StepRecorder stepRecorder() {
        return null;
    }

    @Override
    void close();

    /** Marker for the backend's own per-step data. */
    interface StepData {
        TokenBatch batch();
    }

    /**
     * Microseconds the device spends on {@code work}, for benchmarks: on a GPU measured on the GPU
     * itself with the work queued behind a wait, so that the host's time to queue it does not count
     * (as torch's CUDA-event timings); on the CPU the wall time of the call.
     */
    default double deviceMicros(Runnable work) {
        long start = System.nanoTime();
        work.run();
        return (System.nanoTime() - start) / 1e3;
    }

    /** Waits until the device has done everything asked of it so far (for timing; the CPU computes as it is asked). */
    default void synchronize() {
    }
}
