package dev.flora.cuda;

import static dev.flora.cuda.SameBits.assertSameBits;

import dev.flora.backend.Activation;
import dev.flora.backend.AttentionShape;
import dev.flora.backend.Backend;
import dev.flora.backend.DType;
import dev.flora.backend.KvCache;
import dev.flora.backend.LoraTerms;
import dev.flora.backend.RmsNorm;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.safetensors.TensorView;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * On the GPU: every CUDA kernel against a float64 reference computed here, on fresh seeded random
 * inputs of odd sizes, with every output poisoned (NaN) before the kernel runs.
 */
@Tag("gpu")
class CudaKernelsTest {
    private static CudaBackend gpu;
    private final Random random = new Random(20261123);

    @BeforeAll
    static void open() {
        gpu = CudaBackend.open(0);
    }

    @AfterAll
    static void close() {
        gpu.close();
    }

    private float[] randoms(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) random.nextGaussian();
        }
        return v;
    }

    private static Tensor poisoned(int rows, int cols) {
        float[] nan = new float[rows * cols];
        Arrays.fill(nan, Float.NaN);
        return gpu.fromHost(nan, rows, cols);
    }

    /** |got - want| ≤ rel · scale + abs for every element, scale = the reference's magnitude terms. */
    private static void near(float[] got, double[] want, double[] scale, double rel, String what) {
        assertThat(got).as(what).hasSize(want.length);
        for (int i = 0; i < want.length; i++) {
            assertThat(Math.abs(got[i] - want[i])).as("%s element %d: %s vs %s", what, i, got[i], want[i])
                    .isLessThanOrEqualTo(rel * (scale == null ? Math.abs(want[i]) : scale[i]) + 1e-6);
        }
    }

    static float bf16(float f) {
        int b = Float.floatToRawIntBits(f);
        return Float.intBitsToFloat(((b + 0x7fff + ((b >> 16) & 1)) >>> 16) << 16);
    }

    static float f16(float f) {
        return Float.float16ToFloat(Float.floatToFloat16(f));
    }

    /** A weight of {@code type} holding exactly the (rounded) values returned. */
    static Tensor weightOf(DType type, float[] values, int rows, int cols) {
        if (type == DType.F32) {
            return gpu.weight(values, rows, cols);
        }
        MemorySegment data = Arena.ofAuto().allocate(values.length * 2L, 2);
        for (int i = 0; i < values.length; i++) {
            short h = type == DType.BF16 ? (short) (Float.floatToRawIntBits(bf16(values[i])) >>> 16) : Float.floatToFloat16(values[i]);
            data.setAtIndex(ValueLayout.JAVA_SHORT, i, h);
            values[i] = type == DType.BF16 ? bf16(values[i]) : f16(values[i]);
        }
        return gpu.weight(new TensorView("w", type, new long[] {rows, cols}, data, null), rows, cols);
    }

    /** Many rows go through cuBLAS; a few rows with in % 8 == 0 through the GEMV kernel. */
    @ParameterizedTest
    @CsvSource({"F32, 37, 129", "BF16, 37, 129", "F16, 37, 129", "BF16, 1, 264", "BF16, 2, 264", "BF16, 3, 520", "BF16, 4, 264",
            "F16, 1, 264", "F16, 4, 520", "BF16, 1, 129"})
    void linearWithBias(DType type, int t, int in) {
        int out = 67;
        float[] x = randoms(t * in);
        float[] w = randoms(out * in);
        float[] b = randoms(out);
        Tensor wt = weightOf(type, w, out, in);
        Tensor bias = gpu.weight(b, 1, out);
        Tensor y = poisoned(t, out);
        gpu.linear(gpu.fromHost(x, t, in), wt, bias, y);
        double[] want = new double[t * out];
        double[] scale = new double[t * out];
        for (int r = 0; r < t; r++) {
            for (int o = 0; o < out; o++) {
                double s = b[o];
                double m = Math.abs(b[o]);
                for (int i = 0; i < in; i++) {
                    float xv = type == DType.BF16 ? bf16(x[r * in + i]) : type == DType.F16 ? f16(x[r * in + i]) : x[r * in + i];
                    s += (double) xv * w[o * in + i];
                    m += Math.abs((double) xv * w[o * in + i]);
                }
                want[r * out + o] = s;
                scale[r * out + o] = m;
            }
        }
        near(gpu.toHost(y), want, scale, 1e-6, "linear " + type);
    }

    /**
     * Flora's skinny tensor-core products (-Dflora.cuda.skinnyProducts) against float64, within the
     * products' 1e-6 of the sums of magnitudes, as linearWithBias: rows 5 to 64 (one to eight tiles of 8,
     * partial ones), widths that are and are not whole tiles of 64 features, one split and many (the
     * splits' sums added by the last block), with a bias and added to a residual (linearAdd); twice, so
     * that the counters left at 0 by the first call serve the second.
     */
    @ParameterizedTest
    @CsvSource({"BF16, 5, 256, 200", "BF16, 8, 4096, 64", "F16, 13, 1024, 1000", "BF16, 64, 4096, 4096", "BF16, 40, 11008, 300",
            "F16, 64, 96, 70"})
    void skinnyProductsMatchFloat64(DType type, int t, int in, int out) {
        Products p = products(type, t, in, out);
        try {
            gpu.useSkinnyProducts(true);
            p.check("skinny", 2);
        } finally {
            gpu.useSkinnyProducts(false);
        }
    }

    /** A product's inputs on the GPU and its float64 references: with a bias, and added to a residual (linearAdd). */
    private record Products(DType type, int t, int out, Tensor xs, Tensor wt, Tensor bias, float[] residual, double[] withBias, double[] scale,
                            double[] added, double[] addedScale) {
        /** linear with the bias and linearAdd, {@code rounds} times, within the products' 1e-6 of the sums of magnitudes. */
        void check(String what, int rounds) {
            for (int round = 0; round < rounds; round++) {
                Tensor y = poisoned(t, out);
                gpu.linear(xs, wt, bias, y);
                near(gpu.toHost(y), withBias, scale, 1e-6, what + " linear " + type + ", round " + round);
                Tensor r = gpu.fromHost(residual, t, out);
                gpu.linearAdd(xs, wt, null, poisoned(t, out), r);
                near(gpu.toHost(r), added, addedScale, 1e-6, what + " linearAdd " + type + ", round " + round);
            }
        }
    }

    private Products products(DType type, int t, int in, int out) {
        float[] x = randoms(t * in);
        float[] w = randoms(out * in);
        float[] b = randoms(out);
        float[] residual = randoms(t * out);
        Tensor wt = weightOf(type, w, out, in);
        Tensor bias = gpu.weight(b, 1, out);
        Tensor xs = gpu.fromHost(x, t, in);
        double[] want = new double[t * out];
        double[] scale = new double[t * out];
        for (int r = 0; r < t; r++) {
            for (int o = 0; o < out; o++) {
                double sum = 0;
                double m = 0;
                for (int i = 0; i < in; i++) {
                    float xv = type == DType.BF16 ? bf16(x[r * in + i]) : f16(x[r * in + i]);
                    sum += (double) xv * w[o * in + i];
                    m += Math.abs((double) xv * w[o * in + i]);
                }
                want[r * out + o] = sum;
                scale[r * out + o] = m;
            }
        }
        double[] withBias = new double[t * out];
        double[] added = new double[t * out];
        double[] addedScale = new double[t * out];
        for (int i = 0; i < t * out; i++) {
            withBias[i] = want[i] + b[i % out];
            added[i] = want[i] + residual[i];
            addedScale[i] = scale[i] + Math.abs(residual[i]);
        }
        return new Products(type, t, out, xs, wt, bias, residual, withBias, scale, added, addedScale);
    }

    /**
     * Tuned products (-Dflora.cuda.tunedProducts: from 64 rows here), linear and linearAdd, against float64 as
     * skinnyProductsMatchFloat64: the first call of a shape times cublasGemmEx and cuBLASLt's candidates (into
     * the output itself, or into scratch where it adds: the residual must be added once), the calls after
     * take the choice kept: the fastest, or (forced) cuBLASLt's first candidate, or GemmEx. CUDA on the CPU
     * offers one candidate, run as its GemmEx is.
     */
    @ParameterizedTest
    @CsvSource({"BF16, 300, 264, 136, -1", "F16, 64, 512, 72, -1", "BF16, 256, 512, 256, -1", "BF16, 300, 264, 136, 1", "F16, 64, 512, 72, 1",
            "BF16, 300, 264, 136, 0"})
    void tunedProductsMatchFloat64(DType type, int t, int in, int out, int forced) {
        Products p = products(type, t, in, out);
        int before = gpu.useTunedProducts(64);
        gpu.tunedProducts().force(forced);
        try {
            p.check("tuned", 2);
            java.util.List<Integer> key = java.util.List.of(t, in, out, CudaBackend.cublasType(type));
            assertThat(gpu.tunedProducts().choices()).as("the shape tuned once, its choice kept").containsKey(key);
            if (forced >= 0) {
                assertThat(gpu.tunedProducts().choices().get(key).algorithm() != null).as("a cuBLASLt candidate chosen").isEqualTo(forced > 0);
            }
        } finally {
            gpu.useTunedProducts(before);
            gpu.tunedProducts().force(-1);
        }
    }

    /**
     * Batched products (-Dflora.cuda.batchedProducts): q, k and v of one shape, and gate and up, in one
     * batched cuBLAS call at a decode step's rows, against a product each (within 1e-5 of the largest
     * output: the batched kernel may sum in another order); with a bias, or beyond 256 rows, a product
     * each as before (bit for bit).
     */
    @ParameterizedTest
    @CsvSource({"BF16, 64, false", "F16, 40, false", "BF16, 64, true", "BF16, 300, false"})
    void batchedProductsMatchAProductEach(DType type, int t, boolean withBias) {
        int in = 264;
        int width = 72;
        int hidden = 96;
        Tensor x = gpu.fromHost(randoms(t * in), t, in);
        Tensor[] w = new Tensor[3];
        Tensor[] b = new Tensor[3];
        Tensor[] batched = new Tensor[3];
        for (int i = 0; i < 3; i++) {
            w[i] = weightOf(type, randoms(width * in), width, in);
            b[i] = withBias ? gpu.weight(randoms(width), 1, width) : null;
            batched[i] = poisoned(t, width);
        }
        Tensor gw = weightOf(type, randoms(hidden * in), hidden, in);
        Tensor uw = weightOf(type, randoms(hidden * in), hidden, in);
        Tensor gate = poisoned(t, hidden);
        try {
            gpu.useBatchedProducts(true);
            gpu.linears(x, w, b, batched);
            gpu.gatedLinear(x, gw, null, uw, null, Activation.SILU, gate, poisoned(t, hidden));
        } finally {
            gpu.useBatchedProducts(false);
        }
        boolean exact = withBias || t > CudaBackend.BATCHED_PRODUCTS_MAX_ROWS;
        for (int i = 0; i < 3; i++) {
            Tensor one = poisoned(t, width);
            gpu.linear(x, w[i], b[i], one);
            closeOrExact(gpu.toHost(batched[i]), gpu.toHost(one), exact, "linears, weight " + i);
        }
        Tensor g = poisoned(t, hidden);
        Tensor u = poisoned(t, hidden);
        gpu.linear(x, gw, null, g);
        gpu.linear(x, uw, null, u);
        gpu.gatedActivation(Activation.SILU, g, u, g);
        closeOrExact(gpu.toHost(gate), gpu.toHost(g), t > CudaBackend.BATCHED_PRODUCTS_MAX_ROWS, "gatedLinear");
    }

    /**
     * The gated MLP in one call (the activation written in 16 bits for the down product: one kernel,
     * gated_activation_half, the default; -Dflora.cuda.mlpHalf=false turns it off) gives bit for bit what it gives in float32 then
     * rounded by to_half, for every activation, both 16-bit types, with and without the batched
     * gate and up products, an odd width (the kernel's per-element tail) and the GEMV's few rows (where
     * the two calls run either way); and both again with the small kernels (the norm, the activation,
     * to_half) launched overlapped (the default) and plainly (-Dflora.cuda.overlapSmall=false).
     */
    @ParameterizedTest
    @CsvSource({"BF16, 64, 136, true", "F16, 40, 136, false", "BF16, 300, 136, true", "BF16, 9, 67, true", "F16, 3, 136, true"})
    void gatedMlpInSixteenBitsEqualsTheFloatActivationRounded(DType type, int t, int hidden, boolean batched) {
        int in = 264;
        Tensor x = gpu.fromHost(randoms(t * in), t, in);
        RmsNorm norm = new RmsNorm(weightOf(type, randoms(in), 1, in), 1e-5f);
        Tensor gw = weightOf(type, randoms(hidden * in), hidden, in);
        Tensor uw = weightOf(type, randoms(hidden * in), hidden, in);
        Tensor dw = weightOf(type, randoms(in * hidden), in, hidden);
        float[] residual = randoms(t * in);
        boolean batchedBefore = gpu.batchedProducts();
        boolean halfBefore = gpu.mlpHalf();
        boolean overlapBefore = gpu.overlapSmall();
        for (Activation act : Activation.values()) {
            // Runs 0-1: float32 activation then to_half, 16-bit activation; 2-3 the same with the small kernels overlapped.
            float[][] results = new float[4][];
            float[][] normedRows = new float[4][];
            for (int run = 0; run < 4; run++) {
                Tensor normed = poisoned(t, in);
                Tensor sum = gpu.fromHost(residual, t, in);
                try {
                    gpu.useBatchedProducts(batched);
                    gpu.useMlpHalf(run % 2 == 1);
                    gpu.useOverlapSmall(run >= 2);
                    gpu.normGatedLinearAdd(x, norm, normed, gw, null, uw, null, act, dw, null, poisoned(t, hidden), poisoned(t, hidden),
                            poisoned(t, in), sum);
                } finally {
                    gpu.useMlpHalf(halfBefore);
                    gpu.useBatchedProducts(batchedBefore);
                    gpu.useOverlapSmall(overlapBefore);
                }
                results[run] = gpu.toHost(sum);
                normedRows[run] = gpu.toHost(normed);
            }
            for (int run = 1; run < 4; run++) {
                assertSameBits(results[run], results[0], "normGatedLinearAdd " + act + ", run " + run);
            }
            // the float32 activation's runs write the normed rows (normGatedLinear's own); the 16-bit ones need not
            assertSameBits(normedRows[2], normedRows[0], "normGatedLinearAdd's normed rows " + act + ", the float32 activation");
            assertThat(results[1]).as("the MLP added something").isNotEqualTo(residual);
        }
    }

    private static void closeOrExact(float[] got, float[] want, boolean exact, String what) {
        if (exact) {
            assertSameBits(got, want, what);
            return;
        }
        double largest = 0;
        for (float v : want) {
            largest = Math.max(largest, Math.abs(v));
        }
        for (int i = 0; i < want.length; i++) {
            assertThat((double) Math.abs(got[i] - want[i])).as("%s element %d: %s vs %s", what, i, got[i], want[i]).isLessThanOrEqualTo(1e-5 * largest);
        }
    }

    /**
     * The fused products (q, k, v in one launch; gate and up with the activation; a product added
     * to the residual) give bit for bit what the operations they fuse give, at the GEMV's row counts
     * and beyond them (cuBLAS; a product added in cuBLAS's epilogue within 1e-5), for both 16-bit types, with and
     * without biases.
     */
    @ParameterizedTest
    @CsvSource({"BF16, 1, true", "BF16, 2, false", "BF16, 3, true", "BF16, 4, false", "F16, 1, false", "F16, 4, true", "BF16, 6, true",
            "BF16, 7, false", "F16, 40, false"})
    void fusedProductsEqualTheOperationsTheyFuse(DType type, int t, boolean withBias) {
        int in = 264;
        int[] outs = {67, 20, 20};
        Tensor x = gpu.fromHost(randoms(t * in), t, in);
        Tensor[] w = new Tensor[3];
        Tensor[] b = new Tensor[3];
        Tensor[] fused = new Tensor[3];
        for (int i = 0; i < 3; i++) {
            w[i] = weightOf(type, randoms(outs[i] * in), outs[i], in);
            b[i] = withBias ? gpu.weight(randoms(outs[i]), 1, outs[i]) : null;
            fused[i] = poisoned(t, outs[i]);
        }
        gpu.linears(x, w, b, fused);
        for (int i = 0; i < 3; i++) {
            Tensor one = poisoned(t, outs[i]);
            gpu.linear(x, w[i], b[i], one);
            assertSameBits(gpu.toHost(fused[i]), gpu.toHost(one), "linears, weight %d", i);
        }
        int hidden = 67;
        Tensor gw = weightOf(type, randoms(hidden * in), hidden, in);
        Tensor uw = weightOf(type, randoms(hidden * in), hidden, in);
        Tensor gb = withBias ? gpu.weight(randoms(hidden), 1, hidden) : null;
        Tensor ub = withBias ? gpu.weight(randoms(hidden), 1, hidden) : null;
        for (Activation act : Activation.values()) {
            Tensor gate = poisoned(t, hidden);
            gpu.gatedLinear(x, gw, gb, uw, ub, act, gate, poisoned(t, hidden));
            Tensor g = poisoned(t, hidden);
            Tensor u = poisoned(t, hidden);
            gpu.linear(x, gw, gb, g);
            gpu.linear(x, uw, ub, u);
            gpu.gatedActivation(act, g, u, g);
            assertSameBits(gpu.toHost(gate), gpu.toHost(g), "gatedLinear " + act);
        }
        // The RMSNorm fused in front: the same normed rows and the same products.
        RmsNorm norm = new RmsNorm(weightOf(type, randoms(in), 1, in), 1e-5f);
        Tensor normed = poisoned(t, in);
        gpu.rmsNorm(x, norm.weight(), norm.eps(), normed);
        Tensor fusedNormed = poisoned(t, in);
        for (int i = 0; i < 3; i++) {
            fused[i] = poisoned(t, outs[i]);
        }
        gpu.normLinears(x, norm, fusedNormed, w, b, fused);
        assertSameBits(gpu.toHost(fusedNormed), gpu.toHost(normed), "normLinears' normed rows");
        for (int i = 0; i < 3; i++) {
            Tensor one = poisoned(t, outs[i]);
            gpu.linear(normed, w[i], b[i], one);
            assertSameBits(gpu.toHost(fused[i]), gpu.toHost(one), "normLinears, weight %d", i);
        }
        Tensor normedGate = poisoned(t, hidden);
        Tensor gatedNormed = poisoned(t, in);
        gpu.normGatedLinear(x, norm, gatedNormed, gw, gb, uw, ub, Activation.SILU, normedGate, poisoned(t, hidden));
        Tensor g = poisoned(t, hidden);
        gpu.gatedLinear(normed, gw, gb, uw, ub, Activation.SILU, g, poisoned(t, hidden));
        assertSameBits(gpu.toHost(gatedNormed), gpu.toHost(normed), "normGatedLinear's normed rows");
        assertSameBits(gpu.toHost(normedGate), gpu.toHost(g), "normGatedLinear");
        float[] start = randoms(t * outs[0]);
        Tensor residual = gpu.fromHost(start, t, outs[0]);
        gpu.linearAdd(x, w[0], b[0], poisoned(t, outs[0]), residual);
        Tensor separate = gpu.fromHost(start, t, outs[0]);
        Tensor product = poisoned(t, outs[0]);
        gpu.linear(x, w[0], b[0], product);
        gpu.addInPlace(separate, product);
        if (t > 4 && !withBias) {
            // cuBLAS adds the residual in its epilogue (beta = 1): the same sum, though cuBLAS may pick another kernel for it
            double[] want = new double[t * outs[0]];
            float[] s = gpu.toHost(separate);
            for (int i = 0; i < want.length; i++) {
                want[i] = s[i];
            }
            near(gpu.toHost(residual), want, null, 1e-5, "linearAdd in cuBLAS's epilogue");
        } else {
            assertSameBits(gpu.toHost(residual), gpu.toHost(separate), "linearAdd");
        }
    }

    /** batchedLinear (cublasGemmBatchedEx) against the float64 product of each group with its own weight. */
    @ParameterizedTest
    @CsvSource({"F32, 5, 3", "BF16, 7, 2"})
    void batchedLinearIsEachGroupsProduct(DType type, int groups, int rows) {
        int in = 40, out = 24;
        float[] x = randoms(groups * rows * in);
        Tensor[] w = new Tensor[groups];
        float[][] values = new float[groups][];
        for (int g = 0; g < groups; g++) {
            values[g] = randoms(out * in);
            w[g] = weightOf(type, values[g], out, in);
        }
        Tensor y = poisoned(groups * rows, out);
        gpu.batchedLinear(gpu.fromHost(x, groups * rows, in), w, rows, y);
        double[] want = new double[groups * rows * out];
        double[] scale = new double[want.length];
        for (int g = 0; g < groups; g++) {
            for (int r = 0; r < rows; r++) {
                int row = g * rows + r;
                for (int o = 0; o < out; o++) {
                    for (int i = 0; i < in; i++) {
                        float xv = type == DType.BF16 ? bf16(x[row * in + i]) : x[row * in + i];
                        want[row * out + o] += (double) xv * values[g][o * in + i];
                        scale[row * out + o] += Math.abs((double) xv * values[g][o * in + i]);
                    }
                }
            }
        }
        near(gpu.toHost(y), want, scale, 1e-6, "batchedLinear " + type);
    }

    /** The logit summary made on the GPU: the host's argmax (first of tied maxima) and max exactly, its log-sum-exp within 1e-12. */
    @Test
    void logitSummaryEqualsTheHosts() {
        int rows = 5, vocab = 32003;
        float[] logits = randoms(rows * vocab);
        for (int i = 0; i < logits.length; i++) {
            logits[i] *= 4;
        }
        logits[1 * vocab + 7] = 40f;
        logits[1 * vocab + 9000] = 40f; // a tie: the first wins
        logits[2 * vocab + vocab - 1] = 50f; // the last element
        logits[3 * vocab] = 1e4f; // a huge one: the sum must not overflow
        java.util.Arrays.fill(logits, 4 * vocab, 5 * vocab, -3f); // all equal
        dev.flora.backend.LogitSummary want = dev.flora.backend.LogitSummary.ofHost(logits, rows, vocab);
        dev.flora.backend.LogitSummary got = gpu.summarizeLogits(gpu.fromHost(logits, rows, vocab), null);
        assertThat(got.argmax()).containsExactly(want.argmax());
        assertSameBits(got.max(), want.max());
        assertThat(got.argmax()[1]).isEqualTo(7);
        assertThat(got.argmax()[4]).isZero();
        for (int r = 0; r < rows; r++) {
            assertThat(got.logSumExp()[r]).as("row " + r).isCloseTo(want.logSumExp()[r], org.assertj.core.data.Offset.offset(1e-12 * Math.abs(want.logSumExp()[r]) + 1e-12));
        }
    }

    @Test
    void rmsNormAndLayerNorm() {
        int t = 5, d = 301;
        float[] x = randoms(t * d);
        float[] w = randoms(d);
        float[] b = randoms(d);
        Tensor wt = weightOf(DType.BF16, w, 1, d);
        Tensor out = poisoned(t, d);
        gpu.rmsNorm(gpu.fromHost(x, t, d), wt, 1e-6f, out);
        double[] want = new double[t * d];
        for (int r = 0; r < t; r++) {
            double ss = 0;
            for (int i = 0; i < d; i++) {
                ss += (double) x[r * d + i] * x[r * d + i];
            }
            double inv = 1 / Math.sqrt(ss / d + 1e-6);
            for (int i = 0; i < d; i++) {
                want[r * d + i] = x[r * d + i] * inv * w[i];
            }
        }
        near(gpu.toHost(out), want, null, 2e-6, "rmsNorm");
        Tensor ln = poisoned(t, d);
        gpu.layerNorm(gpu.fromHost(x, t, d), gpu.weight(w, 1, d), gpu.weight(b, 1, d), 1e-5f, ln);
        for (int r = 0; r < t; r++) {
            double mean = 0;
            for (int i = 0; i < d; i++) {
                mean += x[r * d + i];
            }
            mean /= d;
            double var = 0;
            for (int i = 0; i < d; i++) {
                var += (x[r * d + i] - mean) * (x[r * d + i] - mean);
            }
            double inv = 1 / Math.sqrt(var / d + 1e-5);
            for (int i = 0; i < d; i++) {
                want[r * d + i] = (x[r * d + i] - mean) * inv * w[i] + b[i];
            }
        }
        near(gpu.toHost(ln), want, null, 2e-6, "layerNorm");
    }

    @ParameterizedTest
    @EnumSource(Activation.class)
    void activations(Activation act) {
        int n = 1000;
        float[] g = randoms(n);
        float[] u = randoms(n);
        Tensor out = poisoned(4, n / 4);
        gpu.gatedActivation(act, gpu.fromHost(g, 4, n / 4), gpu.fromHost(u, 4, n / 4), out);
        double[] want = new double[n];
        double[] plain = new double[n];
        for (int i = 0; i < n; i++) {
            plain[i] = act(act, g[i]);
            want[i] = plain[i] * u[i];
        }
        near(gpu.toHost(out), want, null, 2e-6, "gated " + act);
        Tensor x = gpu.fromHost(g, 4, n / 4);
        gpu.activation(act, x);
        near(gpu.toHost(x), plain, null, 2e-6, "activation " + act);
    }

    static double act(Activation act, double x) {
        return switch (act) {
            case SILU -> x / (1 + Math.exp(-x));
            case GELU -> 0.5 * x * (1 + erf(x / Math.sqrt(2)));
            case GELU_TANH -> 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
            case RELU -> Math.max(0, x);
        };
    }

    static double erf(double x) {
        // erf by its Taylor series (|x| < 6 here): exact enough for a float reference.
        double sum = 0;
        double term = x;
        for (int n = 0; n < 200; n++) {
            sum += term / (2 * n + 1);
            term *= -x * x / (n + 1);
        }
        return 2 / Math.sqrt(Math.PI) * sum;
    }

    @Test
    void rowOperations() {
        int rows = 9, cols = 130;
        float[] x = randoms(rows * cols);
        Tensor xt = gpu.fromHost(x, rows, cols);
        int[] pick = {8, 0, 3, 3, 5};
        Tensor gathered = poisoned(pick.length, cols);
        gpu.gatherRows(xt, pick, gathered);
        double[] want = new double[pick.length * cols];
        for (int i = 0; i < pick.length; i++) {
            for (int c = 0; c < cols; c++) {
                want[i * cols + c] = x[pick[i] * cols + c];
            }
        }
        near(gpu.toHost(gathered), want, null, 0, "gatherRows");

        float[] dst = randoms(rows * cols);
        float[] src = randoms(3 * cols);
        float[] b = randoms(cols);
        int[] to = {7, 2, 4};
        for (boolean accumulate : new boolean[] {false, true}) {
            Tensor d = gpu.fromHost(dst, rows, cols);
            gpu.scatterRows(gpu.fromHost(src, 3, cols), to, 0.5f, gpu.weight(b, 1, cols), accumulate, d);
            double[] expect = new double[rows * cols];
            for (int i = 0; i < rows * cols; i++) {
                expect[i] = dst[i];
            }
            for (int i = 0; i < to.length; i++) {
                for (int c = 0; c < cols; c++) {
                    double v = 0.5 * src[i * cols + c] + b[c];
                    expect[to[i] * cols + c] = accumulate ? dst[to[i] * cols + c] + v : v;
                }
            }
            near(gpu.toHost(d), expect, null, 1e-6, "scatterRows accumulate=" + accumulate);
        }

        float[] vectors = randoms(3 * cols);
        Tensor m = gpu.fromHost(x, rows, cols);
        gpu.mulRows(m, new int[] {1, 6}, gpu.weight(vectors, 3, cols), 2);
        double[] expect = new double[rows * cols];
        for (int i = 0; i < rows * cols; i++) {
            int r = i / cols;
            expect[i] = r == 1 || r == 6 ? (double) x[i] * vectors[2 * cols + i % cols] : x[i];
        }
        near(gpu.toHost(m), expect, null, 1e-7, "mulRows");
        Tensor all = gpu.fromHost(x, rows, cols);
        gpu.mulRows(all, null, gpu.weight(vectors, 3, cols), 0);
        for (int i = 0; i < rows * cols; i++) {
            expect[i] = (double) x[i] * vectors[i % cols];
        }
        near(gpu.toHost(all), expect, null, 1e-7, "mulRows (every row)");
        // Grouped (IA3, a vector per adapter; one f32, one bf16): each group's rows as mulRows alone gives them, the rest untouched.
        Tensor[] groupVectors = {gpu.weight(java.util.Arrays.copyOfRange(vectors, 0, cols), 1, cols),
                weightOf(DType.BF16, java.util.Arrays.copyOfRange(vectors, cols, 2 * cols), 1, cols)};
        int[][] groupRows = {{0, 5}, {3}};
        Tensor grouped = gpu.fromHost(x, rows, cols);
        gpu.mulRowsGrouped(grouped, groupRows, groupVectors);
        Tensor oneByOne = gpu.fromHost(x, rows, cols);
        gpu.mulRows(oneByOne, groupRows[0], groupVectors[0], 0);
        gpu.mulRows(oneByOne, groupRows[1], groupVectors[1], 0);
        assertSameBits(gpu.toHost(grouped), gpu.toHost(oneByOne));
        assertThat(gpu.toHost(grouped)).isNotEqualTo(x);

        Tensor sum = gpu.fromHost(x, rows, cols);
        gpu.addInPlace(sum, gpu.fromHost(dst, rows, cols));
        for (int i = 0; i < rows * cols; i++) {
            expect[i] = (double) x[i] + dst[i];
        }
        near(gpu.toHost(sum), expect, null, 1e-7, "addInPlace");
        Tensor view = gpu.rows(gpu.fromHost(x, rows, cols), 2, 3);
        assertSameBits(gpu.toHost(view), Arrays.copyOfRange(x, 2 * cols, 5 * cols));
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void splitQkv(boolean perHead) {
        int t = 3, headDim = 8, heads = 4;
        int qw = heads * headDim;
        int kw = perHead ? qw : 2 * headDim;
        float[] f = randoms(t * (qw + 2 * kw));
        Tensor q = poisoned(t, qw);
        Tensor k = poisoned(t, kw);
        Tensor v = poisoned(t, kw);
        gpu.splitQkv(gpu.fromHost(f, t, qw + 2 * kw), headDim, perHead, q, k, v);
        var cpu = new dev.flora.cpu.CpuBackend();
        Tensor cq = cpu.allocate(t, qw);
        Tensor ck = cpu.allocate(t, kw);
        Tensor cv = cpu.allocate(t, kw);
        cpu.splitQkv(cpu.fromHost(f, t, qw + 2 * kw), headDim, perHead, cq, ck, cv);
        assertSameBits(gpu.toHost(q), cpu.toHost(cq));
        assertSameBits(gpu.toHost(k), cpu.toHost(ck));
        assertSameBits(gpu.toHost(v), cpu.toHost(cv));
    }

    /**
     * Mixed ranks, types and biases in one call. 97 inputs take the per-element shrink; 776 (8-aligned,
     * three full spans of 256 and a short one) the 8-column loads for 16-bit A, and rank 11 more
     * ranks than a block has warps; 150,000 (586 spans) more partial sums than the expand stages in
     * shared memory. The same through lora_fused (-Dflora.cuda.loraFused=N: N blocks a token, each its
     * shrink and a 1/N of the expand's columns; rank 11 takes two passes of 8 ranks; rank 8's 16-bit B
     * is read 8 ranks a load, ranks 1, 3 and 11 and float32 B a rank at a time; 3 blocks a token leave
     * the third block of the 53-wide output without columns in the call with an 1,100-wide one). The
     * two kernels launched overlapped (the default, their factors prefetched before they
     * wait) give the same bits as launched plainly, and so does lora_expand by blocks of 32 output columns
     * (-Dflora.cuda.loraExpandColumns; 512 by default).
     */
    @ParameterizedTest
    @CsvSource({"97, F32, BF16, 0", "776, BF16, F16, 0", "150000, BF16, BF16, 0", "97, F32, BF16, 1", "776, BF16, F16, 1",
            "150000, BF16, BF16, 1", "4096, BF16, BF16, 1", "776, BF16, F16, 3", "4096, BF16, BF16, 4"})
    void loraShrinkExpandMixedRanks(int in, DType first, DType second, int fused) {
        int before = gpu.loraFused();
        boolean overlapBefore = gpu.loraOverlap();
        gpu.useLoraFused(fused);
        try {
            gpu.useLoraOverlap(false);
            random.setSeed(in);
            float[] plain = loraShrinkExpandMixedRanks(in, first, second);
            if (fused == 0) {
                gpu.useLoraOverlap(true);
                random.setSeed(in);
                assertSameBits(loraShrinkExpandMixedRanks(in, first, second), plain, "lora_shrink and lora_expand overlapped");
                int columns = gpu.useLoraExpandColumns(32);
                try {
                    random.setSeed(in);
                    assertSameBits(loraShrinkExpandMixedRanks(in, first, second), plain, "lora_expand's blocks of 32 columns");
                } finally {
                    gpu.useLoraExpandColumns(columns);
                }
            }
        } finally {
            gpu.useLoraFused(before);
            gpu.useLoraOverlap(overlapBefore);
        }
    }

    /**
     * The norm, the q/k/v products and gathered LoRA in one call (normLinearsLora) give the same bits with
     * the shrink before the products (-Dflora.cuda.loraFirst=true) as after them (the default: normLinears
     * then loraShrinkExpand, each checked against float64 elsewhere): groups of mixed ranks and factor types
     * into three outputs, rows past the GEMV's (cuBLAS, batched products or not), and with a group of one row.
     */
    @ParameterizedTest
    @CsvSource({"11, BF16, true", "64, F16, false", "40, BF16, false"})
    void loraShrinkBeforeTheProductsGivesTheSameBits(int t, DType type, boolean batched) {
        int in = 264;
        int[] widths = {128, 64, 64};
        Tensor x = gpu.fromHost(randoms(t * in), t, in);
        RmsNorm norm = new RmsNorm(weightOf(type, randoms(in), 1, in), 1e-5f);
        Tensor[] weights = new Tensor[3];
        for (int i = 0; i < 3; i++) {
            weights[i] = weightOf(type, randoms(widths[i] * in), widths[i], in);
        }
        int[][] rows = {{0, 3, 7}, {1, 2}, {t - 1}, {0, 3, 7}, {4, 5, 6}};
        int[] ranks = {8, 1, 16, 8, 3};
        int[] target = {0, 0, 1, 2, 2};
        Tensor[] a = new Tensor[rows.length];
        Tensor[] b = new Tensor[rows.length];
        Tensor[] bias = new Tensor[rows.length];
        float[] scale = new float[rows.length];
        for (int g = 0; g < rows.length; g++) {
            DType factors = g % 2 == 0 ? DType.F32 : type;
            a[g] = weightOf(factors, randoms(ranks[g] * in), ranks[g], in);
            b[g] = weightOf(factors, randoms(widths[target[g]] * ranks[g]), widths[target[g]], ranks[g]);
            bias[g] = g == 4 ? gpu.weight(randoms(widths[target[g]]), 1, widths[target[g]]) : null;
            scale[g] = 0.5f + g;
        }
        boolean firstBefore = gpu.loraFirst();
        boolean batchedBefore = gpu.batchedProducts();
        long takenBefore = gpu.loraFirstCalls();
        float[][][] got = new float[2][][];
        try {
            gpu.useBatchedProducts(batched);
            for (int run = 0; run < 2; run++) {
                gpu.useLoraFirst(run == 1);
                Tensor normed = poisoned(t, in);
                Tensor[] outs = new Tensor[3];
                for (int i = 0; i < 3; i++) {
                    outs[i] = poisoned(t, widths[i]);
                }
                Tensor[] loraOuts = new Tensor[rows.length];
                for (int g = 0; g < rows.length; g++) {
                    loraOuts[g] = outs[target[g]];
                }
                gpu.normLinearsLora(x, norm, normed, weights, new Tensor[3], outs, new LoraTerms(rows, a, b, bias, scale, loraOuts));
                got[run] = new float[][] {gpu.toHost(outs[0]), gpu.toHost(outs[1]), gpu.toHost(outs[2]), gpu.toHost(normed)};
            }
        } finally {
            gpu.useLoraFirst(firstBefore);
            gpu.useBatchedProducts(batchedBefore);
        }
        assertThat(gpu.loraFirstCalls()).as("the second call took the shrink-first order").isEqualTo(takenBefore + 1);
        for (int i = 0; i < 4; i++) {
            assertSameBits(got[1][i], got[0][i], "normLinearsLora output " + i);
        }
    }

    /** The call's output (every group into one), after the checks. */
    private float[] loraShrinkExpandMixedRanks(int in, DType first, DType second) {
        int t = 11, out = 53;
        float[] x = randoms(t * in);
        float[] base = randoms(t * out);
        int[][] rows = {{0, 4, 9}, {2}, {5, 6, 7, 10}};
        int[] ranks = {1, 8, in > 100 ? 11 : 3};
        float[] scale = {0.5f, 2f, 1.25f};
        Tensor[] a = new Tensor[3];
        Tensor[] b = new Tensor[3];
        Tensor[] bias = new Tensor[3];
        float[][] av = new float[3][];
        float[][] bv = new float[3][];
        float[][] biasv = new float[3][];
        for (int g = 0; g < 3; g++) {
            av[g] = randoms(ranks[g] * in);
            bv[g] = randoms(out * ranks[g]);
            a[g] = weightOf(g == 1 ? second : first, av[g], ranks[g], in);
            b[g] = weightOf(g == 1 ? second : first, bv[g], out, ranks[g]);
            if (g != 0) {
                biasv[g] = randoms(out);
                bias[g] = gpu.weight(biasv[g], 1, out);
            }
        }
        Tensor o = gpu.fromHost(base, t, out);
        gpu.loraShrinkExpand(gpu.fromHost(x, t, in), rows, a, b, bias, scale, new Tensor[] {o, o, o});
        double[][] want = loraReference(x, base, in, out, rows, av, bv, biasv, scale);
        near(gpu.toHost(o), want[0], want[1], 2e-6, "loraShrinkExpand");
        // Groups into different outputs (a wider and a narrower one), in one call: a call per output's bits.
        int wide = 1100;
        Tensor[] wb = {weightOf(second, randoms(wide * ranks[0]), wide, ranks[0]), b[1], b[2]};
        float[] wideBase = randoms(t * wide);
        Tensor together = gpu.fromHost(wideBase, t, wide);
        Tensor narrow = gpu.fromHost(base, t, out);
        gpu.loraShrinkExpand(gpu.fromHost(x, t, in), rows, a, wb, bias, scale, new Tensor[] {together, narrow, narrow});
        Tensor apart = gpu.fromHost(wideBase, t, wide);
        gpu.loraShrinkExpand(gpu.fromHost(x, t, in), new int[][] {rows[0]}, new Tensor[] {a[0]}, new Tensor[] {wb[0]}, new Tensor[] {bias[0]},
                new float[] {scale[0]}, new Tensor[] {apart});
        assertSameBits(gpu.toHost(together), gpu.toHost(apart));
        float[] narrowGot = gpu.toHost(narrow);
        float[] all = gpu.toHost(o);
        for (int g = 1; g < 3; g++) {
            for (int r : rows[g]) {
                assertSameBits(java.util.Arrays.copyOfRange(narrowGot, r * out, (r + 1) * out),
                        java.util.Arrays.copyOfRange(all, r * out, (r + 1) * out), "row %d", r);
            }
        }
        return all;
    }

    /**
     * Gathered LoRA with prompt runs through cuBLAS (-Dflora.cuda.loraRuns, runs from 64 rows here) against float64: runs
     * of 16-bit factors (x and the shrunk v each rounded once to the factor's type, 2^-9 at most for
     * bf16: within 2^-8 of the sums of magnitudes, 6e-3 allowed), a run of float32 factors and every row
     * left to the kernels (a stretch one row short of a run, a group with a bias, a group into another
     * output) within the kernels' 2e-6, all in one call, with bf16 and f16 factors mixed; whole runs, and
     * runs in chunks of 50 rows batched by class (-Dflora.cuda.loraRunChunk), their shrink over the
     * width whole or in slices (-Dflora.cuda.loraChunkSplit: 4 of 1024 columns, 3 of 768; 776 has no
     * slices of whole 8 columns, so it stays whole); and whole runs stacked (-Dflora.cuda.loraStack: a
     * pass per 16-bit type pair, the float32 run on its own products; at 8 columns the rank-16 pass
     * does not fit, so none is stacked).
     */
    @ParameterizedTest
    @CsvSource({"776, 200, 70, 0, 1, 0", "97, 53, 1, 0, 1, 0", "2500, 64, 33, 0, 1, 0", "776, 200, 70, 50, 1, 0", "97, 53, 1, 50, 1, 0",
            "2500, 64, 33, 50, 1, 0", "1024, 200, 70, 50, 4, 0", "768, 64, 33, 50, 3, 0", "776, 200, 70, 50, 8, 0", "776, 200, 70, 0, 1, 512",
            "97, 53, 1, 0, 1, 64", "2500, 64, 33, 0, 1, 80", "776, 200, 70, 0, 1, 8"})
    void loraRunsMatchFloat64(int in, int out, int otherOut, int chunk, int split, int stack) {
        int t = 520;
        int[][] rows = {
                java.util.stream.IntStream.range(0, 150).toArray(),                                         // a run
                java.util.stream.IntStream.concat(java.util.stream.IntStream.range(150, 213),             // one row short
                        java.util.stream.IntStream.range(220, 320)).toArray(),                              // and a run
                java.util.stream.IntStream.range(320, 420).toArray(),                                       // a run with a bias
                java.util.stream.IntStream.range(213, 220).toArray(),                                       // into the other output
                java.util.stream.IntStream.range(420, 520).toArray()};                                      // a run of float32 factors
        int[] ranks = {16, 64, 8, 3, 5};
        DType[] aTypes = {DType.BF16, DType.F16, DType.BF16, DType.F16, DType.F32};
        DType[] bTypes = {DType.BF16, DType.F16, DType.F16, DType.BF16, DType.F32};
        float[] scale = {0.5f, 2f, 1.25f, -0.75f, 3f};
        int groups = rows.length;
        Tensor[] a = new Tensor[groups];
        Tensor[] b = new Tensor[groups];
        Tensor[] bias = new Tensor[groups];
        float[][] av = new float[groups][];
        float[][] bv = new float[groups][];
        float[][] biasv = new float[groups][];
        for (int g = 0; g < groups; g++) {
            int width = g == 3 ? otherOut : out;
            av[g] = randoms(ranks[g] * in);
            bv[g] = randoms(width * ranks[g]);
            a[g] = weightOf(aTypes[g], av[g], ranks[g], in);
            b[g] = weightOf(bTypes[g], bv[g], width, ranks[g]);
        }
        biasv[2] = randoms(out);
        bias[2] = gpu.weight(biasv[2], 1, out);
        float[] x = randoms(t * in);
        float[] base = randoms(t * out);
        float[] otherBase = randoms(t * otherOut);
        int[][] mine = {rows[0], rows[1], rows[2], rows[4]};
        double[][] want = loraReference(x, base, in, out, mine, new float[][] {av[0], av[1], av[2], av[4]},
                new float[][] {bv[0], bv[1], bv[2], bv[4]}, new float[][] {null, null, biasv[2], null}, new float[] {scale[0], scale[1], scale[2], scale[4]});
        double[][] otherWant = loraReference(x, otherBase, in, otherOut, new int[][] {rows[3]}, new float[][] {av[3]}, new float[][] {bv[3]},
                new float[][] {null}, new float[] {scale[3]});
        try {
            gpu.loraRuns().use(true, 64);
            gpu.loraRuns().useChunks(chunk);
            gpu.loraRuns().useSplit(split);
            if (stack > 0) {
                gpu.loraRuns().useStack(stack);
            }
            Tensor o = gpu.fromHost(base, t, out);
            Tensor other = gpu.fromHost(otherBase, t, otherOut);
            Tensor[] outs = {o, o, o, other, o};
            LoraRuns runs = gpu.loraRuns().of(rows, a, b, bias, scale, outs);
            assertThat(runs.chunked()).isEqualTo(chunk > 0);
            assertThat(runs.stack() != null).as("stacked").isEqualTo(stack >= 64);
            if (runs.stack() != null) {
                assertThat(runs.stack().passes()).as("bf16 and f16 factors: a pass each").hasSize(2);
                assertThat(runs.stack().whole()).as("the float32 run alone").containsExactly(2);
            }
            if (chunk == 0) {
                assertThat(runs.group()).containsExactly(0, 1, 4);
                assertThat(runs.length()).containsExactly(150, 100, 100);
            } else { // the same rows in chunks of 50, batched by class (rank 16 bf16, rank 64 f16, rank 5 float32)
                assertThat(runs.group()).containsExactly(0, 0, 0, 1, 1, 4, 4);
                assertThat(runs.length()).containsOnly(50);
            }
            gpu.loraShrinkExpand(gpu.fromHost(x, t, in), rows, a, b, bias, scale, outs);
            float[] got = gpu.toHost(o);
            int[] halfRows = java.util.stream.IntStream.concat(java.util.Arrays.stream(rows[0]), java.util.stream.IntStream.range(220, 320)).toArray();
            int[] exactRows = java.util.stream.IntStream.concat(java.util.stream.IntStream.concat(java.util.stream.IntStream.range(150, 213),
                    java.util.Arrays.stream(rows[2])), java.util.Arrays.stream(rows[4])).toArray();
            near(rowsOf(got, halfRows, out), rowsOf(want[0], halfRows, out), rowsOf(want[1], halfRows, out), 6e-3, "16-bit runs");
            near(rowsOf(got, exactRows, out), rowsOf(want[0], exactRows, out), rowsOf(want[1], exactRows, out), 2e-6,
                    "the kernels' rows and the float32 run");
            near(gpu.toHost(other), otherWant[0], otherWant[1], 2e-6, "the other output");
            gpu.loraRuns().use(true, 0);
            assertThat(gpu.loraRuns().of(rows, a, b, bias, scale, outs).count()).as("by rank (128 rows at rank 64, 256 at 8 to 31): no run long enough").isZero();
            gpu.loraRuns().use(false, 0);
            assertThat(gpu.loraRuns().of(rows, a, b, bias, scale, outs)).as("off: no runs").isNull();
        } finally {
            gpu.loraRuns().useDefaults();
        }
    }

    /**
     * Stacked runs (-Dflora.cuda.loraStack) as a fused q/k/v call makes them: four adapters of ranks 8,
     * 16, 4 and 64 on three outputs (200, 72 and 72 wide), every adapter's three groups on the same rows,
     * so each row keeps one group's columns of every class and the mask zeroes the rest; two segments
     * (rows 0–300 and 320–600) around decode-like rows that stay with the kernels; bf16 factors but one
     * adapter in f16 (a second pass); scales that differ by adapter. Against float64 as
     * loraRunsMatchFloat64's 16-bit runs (6e-3) and kernels' rows (2e-6).
     */
    @ParameterizedTest
    @CsvSource({"776", "97", "1024"})
    void stackedRunsOfManyAdaptersMatchFloat64(int in) {
        QkvCall c = qkvCall(in, new int[] {8, 16, 4, 64}, u -> u == 2 ? DType.F16 : DType.BF16);
        int t = QkvCall.TOKENS;
        try {
            gpu.loraRuns().use(true, 64);
            gpu.loraRuns().useStack(4096);
            LoraRuns runs = gpu.loraRuns().of(c.rows(), c.a(), c.b(), c.bias(), c.scale(), c.outs());
            assertThat(runs.stack()).as("stacked").isNotNull();
            assertThat(runs.stack().passes()).as("bf16 and f16: two passes").hasSize(2);
            assertThat(runs.stack().passes().get(0).columns()).as("bf16: ranks 8, 16 and 64 on three outputs").isEqualTo(3 * (8 + 16 + 64));
            assertThat(runs.stack().passes().get(0).segmentFrom()).containsExactly(0, 400);
            c.run();
            int[] decodeRows = {301, 305, 310, 315};
            int[] runRows = java.util.stream.IntStream.range(0, t).filter(r -> r < 300 || r >= 320 && r < 600).toArray();
            for (int m = 0; m < 3; m++) {
                double[][] want = c.reference(m);
                float[] got = gpu.toHost(c.outTensor()[m]);
                int w = QkvCall.WIDTHS[m];
                near(rowsOf(got, runRows, w), rowsOf(want[0], runRows, w), rowsOf(want[1], runRows, w), 6e-3, "output " + m + ", stacked rows");
                near(rowsOf(got, decodeRows, w), rowsOf(want[0], decodeRows, w), rowsOf(want[1], decodeRows, w), 2e-6, "output " + m + ", the kernels' rows");
                int[] untouched = java.util.stream.IntStream.range(300, 320).filter(r -> java.util.Arrays.binarySearch(decodeRows, r) < 0).toArray();
                near(rowsOf(got, untouched, w), rowsOf(want[0], untouched, w), null, 0, "output " + m + ", rows of no adapter: as they were");
            }
        } finally {
            gpu.loraRuns().useDefaults();
        }
    }

    /**
     * The chunks' float32 shrink by lora_shrink_chunks (-Dflora.cuda.loraChunkKernel) and their expand by
     * lora_expand_chunks (-Dflora.cuda.loraChunkExpand: ranks up to 32; rank 64 stays with cuBLAS), as a fused q/k/v call
     * makes it, against float64 and against cuBLAS's batched shrink (the same tolerance, 2e-6 of the sums
     * of magnitudes, as the float32 runs of loraRunsMatchFloat64): four adapters of float32 factors, ranks 8,
     * 8 (two adapters in one launch), 5 (not a multiple of 8) and 64 (3 x 64 ranks: more octets than a
     * block's 16 warps), on three outputs 200, 72 and 72 wide, chunks of 64 (a run's rest to the kernels),
     * widths 776, 97 (not a stage's multiple) and 1024.
     */
    @ParameterizedTest
    @CsvSource({"776, true, false", "97, true, false", "1024, true, false", "776, false, false", "776, false, true", "97, true, true",
            "1024, true, true"})
    void chunkShrinkKernelJoinsQkvOfFloat32Factors(int in, boolean kernel, boolean expandKernel) {
        QkvCall c = qkvCall(in, new int[] {8, 8, 5, 64}, u -> DType.F32);
        try {
            gpu.loraRuns().use(true, 64);
            gpu.loraRuns().useChunks(64);
            gpu.loraRuns().useChunkKernel(kernel);
            gpu.loraRuns().useChunkExpand(expandKernel);
            LoraRuns runs = gpu.loraRuns().of(c.rows(), c.a(), c.b(), c.bias(), c.scale(), c.outs());
            assertThat(runs.chunked()).isTrue();
            int launches = gpu.loraRuns().chunkKernelLaunches();
            int expands = gpu.loraRuns().chunkExpandLaunches();
            c.run();
            assertThat(gpu.loraRuns().chunkKernelLaunches() - launches).as("lora_shrink_chunks launches: one a rank (8, 5, 64), or none")
                    .isEqualTo(kernel ? 3 : 0);
            assertThat(gpu.loraRuns().chunkExpandLaunches() - expands).as("lora_expand_chunks launches: one a rank up to 32 (8, 5), or none")
                    .isEqualTo(expandKernel ? 2 : 0);
            for (int m = 0; m < 3; m++) {
                double[][] want = c.reference(m);
                near(gpu.toHost(c.outTensor()[m]), want[0], want[1], 2e-6, "output " + m);
            }
        } finally {
            gpu.loraRuns().useDefaults();
        }
    }

    /**
     * A gathered LoRA call as a fused q/k/v layer makes it: four adapters on three outputs (200, 72 and 72 wide),
     * each adapter's three groups on the same rows, two segments (rows 0-300 and 320-600) around decode-like rows
     * (301, 305, 310, 315) that stay with the kernels, scales that differ by adapter; ranks and factor types by
     * adapter as given.
     */
    private record QkvCall(int in, float[] x, int[][] adapterRows, float[] adapterScale, int[][] rows, Tensor[] a, Tensor[] b, Tensor[] bias,
                           float[] scale, float[][] av, float[][] bv, float[][] base, Tensor[] outTensor, Tensor[] outs) {
        static final int TOKENS = 600;
        static final int[] WIDTHS = {200, 72, 72};

        void run() {
            gpu.loraShrinkExpand(gpu.fromHost(x, TOKENS, in), rows, a, b, bias, scale, outs);
        }

        /** Output m's float64 reference and sums of magnitudes (loraReference). */
        double[][] reference(int m) {
            int n = adapterRows.length;
            float[][] am = new float[n][];
            float[][] bm = new float[n][];
            for (int u = 0; u < n; u++) {
                am[u] = av[u * 3 + m];
                bm[u] = bv[u * 3 + m];
            }
            return loraReference(x, base[m], in, WIDTHS[m], adapterRows, am, bm, new float[n][], adapterScale);
        }
    }

    private QkvCall qkvCall(int in, int[] ranks, java.util.function.IntFunction<DType> typeOf) {
        int t = QkvCall.TOKENS;
        int[][] adapterRows = {
                java.util.stream.IntStream.range(0, 150).toArray(),
                java.util.stream.IntStream.range(150, 300).toArray(),
                java.util.stream.IntStream.concat(java.util.stream.IntStream.range(320, 400), java.util.stream.IntStream.of(301, 305)).sorted().toArray(),
                java.util.stream.IntStream.concat(java.util.stream.IntStream.range(400, 600), java.util.stream.IntStream.of(310, 315)).sorted().toArray()};
        float[] adapterScale = {0.5f, 2f, 1.25f, -0.75f};
        int groups = adapterRows.length * 3;
        int[][] rows = new int[groups][];
        Tensor[] a = new Tensor[groups];
        Tensor[] b = new Tensor[groups];
        float[] scale = new float[groups];
        float[][] av = new float[groups][];
        float[][] bv = new float[groups][];
        float[] x = randoms(t * in);
        float[][] base = new float[3][];
        Tensor[] outTensor = new Tensor[3];
        for (int m = 0; m < 3; m++) {
            base[m] = randoms(t * QkvCall.WIDTHS[m]);
            outTensor[m] = gpu.fromHost(base[m], t, QkvCall.WIDTHS[m]);
        }
        Tensor[] outs = new Tensor[groups];
        for (int u = 0; u < adapterRows.length; u++) {
            DType type = typeOf.apply(u);
            for (int m = 0; m < 3; m++) {
                int g = u * 3 + m;
                rows[g] = adapterRows[u];
                scale[g] = adapterScale[u];
                av[g] = randoms(ranks[u] * in);
                bv[g] = randoms(QkvCall.WIDTHS[m] * ranks[u]);
                a[g] = weightOf(type, av[g], ranks[u], in);
                b[g] = weightOf(type, bv[g], QkvCall.WIDTHS[m], ranks[u]);
                outs[g] = outTensor[m];
            }
        }
        return new QkvCall(in, x, adapterRows, adapterScale, rows, a, b, new Tensor[groups], scale, av, bv, base, outTensor, outs);
    }

    private static float[] rowsOf(float[] all, int[] rows, int cols) {
        float[] out = new float[rows.length * cols];
        for (int i = 0; i < rows.length; i++) {
            System.arraycopy(all, rows[i] * cols, out, i * cols, cols);
        }
        return out;
    }

    private static double[] rowsOf(double[] all, int[] rows, int cols) {
        double[] out = new double[rows.length * cols];
        for (int i = 0; i < rows.length; i++) {
            System.arraycopy(all, rows[i] * cols, out, i * cols, cols);
        }
        return out;
    }

    /**
     * base + Σ_g scale_g (B_g (A_g x) + bias_g) over each group's rows in float64, and the same sums of
     * magnitudes (the tolerance's scale): {want, magnitude}. A_g [r, in], B_g [out, r], one output.
     */
    private static double[][] loraReference(float[] x, float[] base, int in, int out, int[][] rows, float[][] av, float[][] bv, float[][] biasv,
                                            float[] scale) {
        double[] want = new double[base.length];
        double[] mag = new double[base.length];
        for (int i = 0; i < want.length; i++) {
            want[i] = base[i];
            mag[i] = Math.abs(base[i]);
        }
        for (int g = 0; g < rows.length; g++) {
            int rank = av[g].length / in;
            for (int r : rows[g]) {
                double[] v = new double[rank];
                double[] vm = new double[rank];
                for (int j = 0; j < rank; j++) {
                    for (int i = 0; i < in; i++) {
                        v[j] += (double) av[g][j * in + i] * x[r * in + i];
                        vm[j] += Math.abs((double) av[g][j * in + i] * x[r * in + i]);
                    }
                }
                for (int c = 0; c < out; c++) {
                    double d = biasv[g] == null ? 0 : biasv[g][c];
                    double m = Math.abs(d);
                    for (int j = 0; j < rank; j++) {
                        d += bv[g][c * rank + j] * v[j];
                        m += Math.abs(bv[g][c * rank + j]) * vm[j];
                    }
                    want[r * out + c] += scale[g] * d;
                    mag[r * out + c] += Math.abs(scale[g]) * m;
                }
            }
        }
        return new double[][] {want, mag};
    }

    /**
     * A prompt step's gathered LoRA (many tokens an adapter) by the tiled kernels, against float64 and
     * against the per-token kernels (not their bits: the sums' order differs): three groups of
     * interleaved rows with full tiles and a short one by tiles, beside a group of 5 tokens a token at
     * a time in the same call; ranks 13 to 64 with biases and all three factor types, inputs of one
     * span and of several with a short last one (the partials summed over spans), and two outputs of
     * different widths, neither a whole number of column tiles.
     */
    @ParameterizedTest
    @CsvSource({"97, 53, 70", "776, 64, 33", "2500, 200, 1"})
    void tiledLoraMatchesFloat64AndThePerTokenKernels(int in, int out, int otherOut) {
        int t = 300;
        int[] ranks = {16, 64, 23, 13};
        DType[] types = {DType.F32, DType.BF16, DType.F16, DType.BF16};
        int[][] rows = new int[4][];
        for (int g = 0; g < 3; g++) {
            int group = g;
            rows[g] = java.util.stream.IntStream.range(0, t - 5).filter(i -> i % 3 == group).toArray();
        }
        rows[3] = java.util.stream.IntStream.range(t - 5, t).toArray();
        float[] scale = {0.5f, 2f, 1.25f, -0.75f};
        Tensor[] a = new Tensor[4];
        Tensor[] b = new Tensor[4];
        Tensor[] bias = new Tensor[4];
        float[][] av = new float[4][];
        float[][] bv = new float[4][];
        float[][] biasv = new float[4][];
        for (int g = 0; g < 4; g++) {
            int width = g == 3 ? otherOut : out;
            av[g] = randoms(ranks[g] * in);
            bv[g] = randoms(width * ranks[g]);
            a[g] = weightOf(types[g], av[g], ranks[g], in);
            b[g] = weightOf(types[(g + 1) % 4], bv[g], width, ranks[g]);
            if (g % 2 == 1) {
                biasv[g] = randoms(width);
                bias[g] = gpu.weight(biasv[g], 1, width);
            }
        }
        float[] x = randoms(t * in);
        float[] base = randoms(t * out);
        float[] otherBase = randoms(t * otherOut);
        double[][] want = loraReference(x, base, in, out, java.util.Arrays.copyOf(rows, 3), av, bv, biasv, scale);
        double[][] otherWant = loraReference(x, otherBase, in, otherOut, new int[][] {rows[3]}, new float[][] {av[3]}, new float[][] {bv[3]},
                new float[][] {biasv[3]}, new float[] {scale[3]});
        float[][] otherGot = new float[2][];
        try {
            for (int tiled = 0; tiled < 2; tiled++) {
                gpu.useTiledLora(tiled == 1);
                Tensor o = gpu.fromHost(base, t, out);
                Tensor other = gpu.fromHost(otherBase, t, otherOut);
                gpu.loraShrinkExpand(gpu.fromHost(x, t, in), rows, a, b, bias, scale, new Tensor[] {o, o, o, other});
                String what = tiled == 1 ? "tiled" : "per token";
                near(gpu.toHost(o), want[0], want[1], 2e-6, what);
                otherGot[tiled] = gpu.toHost(other);
                near(otherGot[tiled], otherWant[0], otherWant[1], 2e-6, what + ", the other output");
            }
        } finally {
            gpu.useTiledLora(true);
        }
        assertSameBits(otherGot[1], otherGot[0], "the 5-token group goes a token at a time either way: the same bits");
        assertThat(gpu.tiledGroups(rows, a)).as("the three large groups by tiles, the 5-token one a token at a time")
                .containsExactly(true, true, true, false);
        Tensor[] a65 = {weightOf(DType.BF16, randoms(65 * in), 65, in), a[1], a[2], a[3]};
        assertThat(gpu.tiledGroups(rows, a65)).as("rank 65 is not tiled").containsExactly(false, true, true, false);
        Tensor[] a8 = {weightOf(DType.BF16, randoms(8 * in), 8, in), a[1], weightOf(DType.BF16, randoms(8 * in), 8, in), a[3]};
        assertThat(gpu.tiledGroups(rows, a8)).as("nor rank 8 (the per-token kernels are faster), leaving too few tokens").isNull();
        int[][] decode = new int[64][];
        Tensor[] decodeA = new Tensor[64];
        for (int g = 0; g < 64; g++) {
            decode[g] = new int[] {g};
            decodeA[g] = a[1];
        }
        assertThat(gpu.tiledGroups(decode, decodeA)).as("a decode step's token an adapter").isNull();
    }

    /**
     * Short contexts fit one chunk; long ones take several chunks and, with few tokens, several
     * splits. 16-bit caches: prompt runs of 16 or more tokens go to the tensor-core tile kernel (head
     * sizes 64 and 128; 15 tokens do not, 65 take two tiles), the rest to the per-token kernel; the
     * reference reads the rounded keys and values, and the tolerance covers the rounded queries and
     * probabilities of the tile kernel. Many sequences ("NxL": N of L tokens) split the decode step's
     * contexts less.
     */
    @ParameterizedTest
    @CsvSource({"0, 24, 13 1 7, F32", "5, 24, 13 1 7, F32", "0, 128, 700 1 300, F32", "300, 128, 700 1 300, F32", "0, 18, 530 2, F32",
            "0, 64, 1100, F32", "0, 128, 700 1 300, BF16", "300, 128, 700 1 300, BF16", "0, 128, 16 15 64 65 3, BF16",
            "40, 64, 17 1100 5, F16", "0, 24, 13 1 70, BF16", "0, 128, 100x20 300, BF16", "7, 64, 90x30, F16"})
    void pagedAttentionOverTwoSteps(int window, int headDim, String lengthList, DType cacheType) {
        pagedAttentionByForm("v1", window, headDim, lengthList, cacheType);
    }

    /** The same with the decode attention's second form (attention_v2_*: 16-bit caches, head sizes 64 and 128; the default). */
    @ParameterizedTest
    @CsvSource({"0, 128, 700 1 300, BF16", "300, 128, 700 1 300, BF16", "0, 128, 16 15 64 65 3, BF16", "40, 64, 17 1100 5, F16",
            "0, 128, 100x20 300, BF16", "7, 64, 90x30, F16", "0, 64, 1 2 3 200 129 128 127, BF16"})
    void pagedAttentionOverTwoStepsByTheSecondForm(int window, int headDim, String lengthList, DType cacheType) {
        pagedAttentionByForm("v2", window, headDim, lengthList, cacheType);
    }

    /**
     * The norm, q/k/v, RoPE and the cache write in one launch (gemv_qkv_rope_norm1, one token) against
     * normLinears then rotaryAttention: the same normed rows, q, k, v and attention output, bit for bit,
     * over a cache with a context written before (grouped heads; with biases, both 16-bit types).
     */
    @ParameterizedTest
    @CsvSource({"BF16, 128, false, 5", "F16, 64, true, 0", "BF16, 64, true, 37"})
    void fusedRotationEqualsTheOperationsItFuses(DType type, int headDim, boolean withBias, int context) {
        int heads = 4, kvHeads = 2, d = 264, blockSize = 4;
        AttentionShape shape = new AttentionShape(heads, kvHeads, headDim, (float) (1 / Math.sqrt(headDim)), 0);
        int qw = shape.queryWidth(), kw = shape.kvWidth();
        int[] widths = {qw, kw, kw};
        Tensor[] w = new Tensor[3];
        Tensor[] b = new Tensor[3];
        for (int i = 0; i < 3; i++) {
            w[i] = weightOf(type, randoms(widths[i] * d), widths[i], d);
            b[i] = withBias ? gpu.weight(randoms(widths[i]), 1, widths[i]) : null;
        }
        RmsNorm norm = new RmsNorm(weightOf(type, randoms(d), 1, d), 1e-5f);
        float[] inv = new float[headDim / 2];
        for (int j = 0; j < inv.length; j++) {
            inv[j] = (float) Math.pow(10000, -2.0 * j / headDim);
        }
        Tensor invFreq = gpu.fromHost(inv, 1, inv.length);
        int[] lengths = {context};
        int[][] tables = {new int[context / blockSize + 1]};
        for (int j = 0; j < tables[0].length; j++) {
            tables[0][j] = tables[0].length - 1 - j; // blocks out of order
        }
        float[] promptQ = randoms(context * qw);
        float[] promptK = randoms(context * kw);
        float[] promptV = randoms(context * kw);
        float[] x = randoms(d);
        float[][][] got = new float[2][][];
        try {
            for (int run = 0; run < 2; run++) {
                KvCache cache = gpu.allocateKvCache(1, tables[0].length, blockSize, kw, type);
                if (context > 0) {
                    TokenBatch prompt = promptsThenDecode(lengths, tables, blockSize, 0);
                    gpu.attention(gpu.fromHost(promptQ, context, qw), gpu.fromHost(promptK, context, kw), gpu.fromHost(promptV, context, kw),
                            cache, 0, shape, gpu.prepare(prompt), poisoned(context, qw));
                }
                Backend.StepData data = gpu.prepare(promptsThenDecode(lengths, tables, blockSize, 1));
                Tensor h = poisoned(1, d);
                Tensor q = poisoned(1, qw);
                Tensor k = poisoned(1, kw);
                Tensor v = poisoned(1, kw);
                Tensor out = poisoned(1, qw);
                gpu.useFusedRotation(run == 1);
                gpu.normProjectRotaryAttention(gpu.fromHost(x, 1, d), norm, h, w, b, q, k, v, headDim, invFreq, cache, 0, shape, data, out);
                got[run] = new float[][] {gpu.toHost(h), gpu.toHost(q), gpu.toHost(k), gpu.toHost(v), gpu.toHost(out)};
            }
        } finally {
            gpu.useFusedRotation(false);
        }
        String[] names = {"normed rows", "rotated q", "rotated k", "v", "attention output"};
        for (int i = 0; i < names.length; i++) {
            assertSameBits(got[1][i], got[0][i], "fused: " + names[i]);
        }
        for (float value : got[0][4]) {
            assertThat(Float.isFinite(value)).as("a finite output").isTrue();
        }
    }

    /**
     * A buffer whose tensor is collected is retired, not freed: its kernels may still wait in the
     * stream (a calibration read another buffer's random values as adapter pointers when the cleaner
     * freed at once). Outside steps the next allocation frees the retired ones, after waiting.
     */
    @Test
    void collectedBuffersAreFreedOnlyAfterTheStreamsFinish() throws InterruptedException {
        CudaBackend fresh = CudaBackend.open(0); // never stepped: allocations outside a step
        try {
            DeviceMemory memory = fresh.memory();
            for (int attempt = 0; attempt < 100 && memory.retiredCount() == 0; attempt++) {
                fresh.fromHost(randoms(64 * 64), 64, 64); // dropped at once
                System.gc();
                Thread.sleep(10); // the cleaner runs on its own thread: give it a moment before looking
            }
            assertThat(memory.retiredCount()).as("collected buffers wait to be freed").isPositive();
            Tensor kept = fresh.fromHost(randoms(16), 4, 4);
            assertThat(memory.retiredCount()).as("freed by the next allocation outside a step").isZero();
            assertThat(fresh.toHost(kept)).hasSize(16);
        } finally {
            fresh.close();
        }
    }

    /**
     * The adapter timings of a calibration at a second token count, after steps have been opened:
     * its output tensor was step memory, which the next timing's layouts reused (the 6144-wide
     * calibration then read adapter pointers the demodulation had written over, and failed).
     */
    @Test
    @Tag("gpu-only") // 1024-wide layers timed at 512 tokens: hours on CUDA emulated on the CPU
    void adapterTimingsRunAtSeveralTokenCounts() {
        var setup = new dev.flora.bench.AdapterBench.Setup(1024, 1024, 16, new int[] {64, 512}, new int[] {1, 2, 4, 8}, 1, false, null,
                java.util.Set.of("flora", "gathered", "bmm"), true);
        var points = dev.flora.bench.AdapterBench.run(gpu, setup, done -> { });
        assertThat(points).isNotEmpty();
        for (var p : points) {
            assertThat(p.micros()).as("%s at %d tokens, rank %d", p.strategy(), p.tokens(), p.rank()).isFinite().isPositive();
        }
    }

    private void pagedAttentionByForm(String form, int window, int headDim, String lengthList, DType cacheType) {
        pagedAttention(6, 2, window, headDim, lengthList, cacheType, form, new String[] {form});
    }

    /**
     * The third decode attention form (attention_v3_*: the second with each chunk's keys and values
     * staged in shared memory) and auto's choice give the bits of the second, and match float64: one
     * chunk and several, split contexts, a window, both 16-bit caches and head sizes, grouped heads
     * and StarCoder's multi-query shape.
     */
    @ParameterizedTest
    @CsvSource({"6, 2, 0, 128, 700 1 300, BF16", "6, 2, 300, 128, 700 1 300, BF16", "6, 2, 40, 64, 17 1100 5, F16", "8, 1, 0, 128, 100x20 300, BF16",
            "6, 2, 7, 64, 90x30, F16", "6, 2, 0, 64, 1 2 3 200 129 128 127, BF16"})
    void stagedDecodeAttentionGivesTheBitsOfTheSecondForm(int heads, int kvHeads, int window, int headDim, String lengthList, DType cacheType) {
        pagedAttention(heads, kvHeads, window, headDim, lengthList, cacheType, "v3", new String[] {"v2", "v3", "auto"});
    }

    /**
     * The fourth decode attention form (attention_v4_*: each lane group its own positions and running
     * softmax) against float64, in the prompt step's per-token tokens and the decode step: split
     * contexts, a window, both 16-bit caches and head sizes, grouped heads, StarCoder's multi-query
     * shape, splits whose lane groups have no positions (contexts of 1-3), and, with splits of at least
     * 300 or 600 positions (-Dflora.cuda.attentionMinSplit), blocks whose split takes several batches
     * of 256 slots.
     */
    @ParameterizedTest
    @CsvSource({"6, 2, 0, 128, 700 1 300, BF16, 32", "6, 2, 300, 128, 700 1 300, BF16, 32", "6, 2, 40, 64, 17 1100 5, F16, 32",
            "8, 1, 0, 128, 100x20 300, BF16, 32", "6, 2, 7, 64, 90x30, F16, 32", "6, 2, 0, 64, 1 2 3 200 129 128 127, BF16, 32",
            "4, 4, 0, 128, 2000 1 257 256 255, F16, 300", "6, 2, 0, 64, 1100 700 5, BF16, 600"})
    void streamedDecodeAttentionMatchesFloat64(int heads, int kvHeads, int window, int headDim, String lengthList, DType cacheType, int minSplit) {
        int before = gpu.attentionMinSplit();
        gpu.useAttentionMinSplit(minSplit);
        try {
            pagedAttention(heads, kvHeads, window, headDim, lengthList, cacheType, "v4", new String[] {"v4"});
        } finally {
            gpu.useAttentionMinSplit(before);
        }
    }

    /**
     * The prefill attention's second tile kernel (attention_tiles2_*: the tile's slots looked up once,
     * cp.async copies overlapped with the tile before, V's fragments by ldmatrix) gives the bits of the
     * first in the prompt step: one tile and several (prompts of 16 to 1,100 tokens, and 15 and 3 that
     * go a token at a time), a window, both 16-bit caches and head sizes, grouped heads, StarCoder's
     * multi-query shape; the first is checked against float64.
     */
    @ParameterizedTest
    @CsvSource({"6, 2, 0, 128, 700 1 300, BF16", "6, 2, 300, 128, 700 1 300, BF16", "6, 2, 0, 128, 16 15 64 65 3, BF16",
            "6, 2, 40, 64, 17 1100 5, F16", "8, 1, 0, 128, 100x20 300, BF16", "6, 2, 7, 64, 90x30, F16", "4, 4, 0, 64, 129 128 127 200, BF16"})
    void pipelinedPrefillTilesGiveTheBitsOfTheFirst(int heads, int kvHeads, int window, int headDim, String lengthList, DType cacheType) {
        pagedAttention(heads, kvHeads, window, headDim, lengthList, cacheType, "v2", new String[] {"v2"}, new String[] {"v1", "v2"});
    }

    private void pagedAttention(int heads, int kvHeads, int window, int headDim, String lengthList, DType cacheType, String form,
                                String[] forms) {
        pagedAttention(heads, kvHeads, window, headDim, lengthList, cacheType, form, forms, new String[] {gpu.tileAttention()});
    }

    /**
     * Step 0 the prompts (decode attention form {@code form}), run once for each of the prefill tile
     * kernels {@code tileForms}, step 1 a decode token each, run once for each of {@code forms}: in
     * either step the outputs' bits equal, the first's checked against float64. The backend's forms are
     * restored after each step.
     */
    private void pagedAttention(int heads, int kvHeads, int window, int headDim, String lengthList, DType cacheType, String form,
                                String[] forms, String[] tileForms) {
        int blockSize = 4;
        AttentionShape shape = new AttentionShape(heads, kvHeads, headDim, (float) (1 / Math.sqrt(headDim)), window);
        // "NxL": N sequences of L tokens (enough decode tokens for the tile kernel's decode path)
        int[] lengths = java.util.Arrays.stream(lengthList.split(" "))
                .flatMapToInt(e -> e.contains("x")
                        ? java.util.stream.IntStream.generate(() -> Integer.parseInt(e.split("x")[1])).limit(Integer.parseInt(e.split("x")[0]))
                        : java.util.stream.IntStream.of(Integer.parseInt(e)))
                .toArray();
        int numSeqs = lengths.length;
        int[][] tables = new int[numSeqs][];
        int numBlocks = 0;
        for (int s = 0; s < numSeqs; s++) {
            tables[s] = new int[lengths[s] / blockSize + 1];
            numBlocks += tables[s].length;
        }
        java.util.List<Integer> free = new java.util.ArrayList<>();
        for (int b = 0; b < numBlocks; b++) {
            free.add(b);
        }
        java.util.Collections.shuffle(free, new java.util.Random(7));
        for (int s = 0, next = 0; s < numSeqs; s++) {
            for (int j = 0; j < tables[s].length; j++) {
                tables[s][j] = free.get(next++);
            }
        }
        KvCache cache = gpu.allocateKvCache(1, numBlocks, blockSize, shape.kvWidth(), cacheType);
        int kw = shape.kvWidth();
        int qw = shape.queryWidth();
        float[][] keys = new float[numSeqs][];
        float[][] values = new float[numSeqs][];
        for (int s = 0; s < numSeqs; s++) {
            keys[s] = randoms((lengths[s] + 1) * kw);
            values[s] = randoms((lengths[s] + 1) * kw);
        }
        java.util.function.UnaryOperator<float[]> stored = a -> {
            float[] r = a.clone();
            for (int i = 0; i < r.length; i++) {
                r[i] = cacheType == DType.BF16 ? bf16(r[i]) : cacheType == DType.F16 ? f16(r[i]) : r[i];
            }
            return r;
        };
        float[][] storedKeys = new float[numSeqs][];
        float[][] storedValues = new float[numSeqs][];
        for (int s = 0; s < numSeqs; s++) {
            storedKeys[s] = stored.apply(keys[s]);
            storedValues[s] = stored.apply(values[s]);
        }
        // Step 1: every sequence's prompt; step 2: one decode token each.
        for (int step = 0; step < 2; step++) {
            TokenBatch batch = promptsThenDecode(lengths, tables, blockSize, step);
            int n = batch.numTokens();
            int[] positions = batch.positions();
            int[] seqOf = batch.seqOfToken();
            float[] k = new float[n * kw];
            float[] v = new float[n * kw];
            for (int i = 0; i < n; i++) {
                System.arraycopy(keys[seqOf[i]], positions[i] * kw, k, i * kw, kw);
                System.arraycopy(values[seqOf[i]], positions[i] * kw, v, i * kw, kw);
            }
            Backend.StepData data = gpu.prepare(batch);
            float[] q = randoms(n * qw);
            String[] runs = step == 1 ? forms : tileForms;
            float[][] got = new float[runs.length][];
            String formBefore = gpu.decodeAttention();
            String tilesBefore = gpu.tileAttention();
            try {
                for (int i = 0; i < runs.length; i++) {
                    gpu.useDecodeAttention(step == 1 ? forms[i] : form);
                    gpu.useTileAttention(step == 1 ? tilesBefore : tileForms[i]);
                    Tensor out = poisoned(n, qw);
                    gpu.attention(gpu.fromHost(q, n, qw), gpu.fromHost(k, n, kw), gpu.fromHost(v, n, kw), cache, 0, shape, data, out);
                    got[i] = gpu.toHost(out);
                }
            } finally {
                gpu.useDecodeAttention(formBefore);
                gpu.useTileAttention(tilesBefore);
            }
            double[] want = new double[n * qw];
            for (int i = 0; i < n; i++) {
                int s = seqOf[i];
                int pos = positions[i];
                int first = window > 0 ? Math.max(0, pos - window + 1) : 0;
                for (int h = 0; h < heads; h++) {
                    int kvh = h / (heads / kvHeads);
                    double[] scores = new double[pos - first + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int p = first; p <= pos; p++) {
                        double dot = 0;
                        for (int d = 0; d < headDim; d++) {
                            dot += (double) q[i * qw + h * headDim + d] * storedKeys[s][p * kw + kvh * headDim + d];
                        }
                        scores[p - first] = dot * shape.scale();
                        max = Math.max(max, scores[p - first]);
                    }
                    double sum = 0;
                    for (int j = 0; j < scores.length; j++) {
                        scores[j] = Math.exp(scores[j] - max);
                        sum += scores[j];
                    }
                    for (int d = 0; d < headDim; d++) {
                        double acc = 0;
                        for (int p = first; p <= pos; p++) {
                            acc += scores[p - first] * storedValues[s][p * kw + kvh * headDim + d];
                        }
                        want[i * qw + h * headDim + d] = acc / sum;
                    }
                }
            }
            // Every run against float64 first, then the bits: a run that is wrong says so before one that
            // is right to the tolerance but rounds otherwise.
            // decode tokens: float64 sums over the stored keys and values, as the reference; prompt tiles of
            // 16-bit caches: within 2e-2 of 1
            boolean exact = cacheType == DType.F32 || step == 1;
            double[] ones = new double[want.length];
            java.util.Arrays.fill(ones, 1);
            for (int i = 0; i < runs.length; i++) {
                String what = "attention step " + step + " window " + window + " " + cacheType + " " + form + " heads " + heads + "/" + kvHeads
                        + " (" + runs[i] + ")";
                near(got[i], want, exact ? null : ones, exact ? 1e-5 : 2e-2, what);
            }
            for (int i = 1; i < runs.length; i++) {
                assertSameBits(got[i], got[0], "step %d, %s: the bits of %s", step, runs[i], runs[0]);
            }
        }
    }

    /** Step 0: every sequence's prompt of lengths[s] tokens; step 1: one decode token each (slots from the block tables). */
    private static TokenBatch promptsThenDecode(int[] lengths, int[][] tables, int blockSize, int step) {
        int n = 0;
        for (int len : lengths) {
            n += step == 0 ? len : 1;
        }
        int[] positions = new int[n];
        int[] seqOf = new int[n];
        int[] slots = new int[n];
        int[] context = new int[lengths.length];
        for (int s = 0, i = 0; s < lengths.length; s++) {
            int from = step == 0 ? 0 : lengths[s];
            int to = step == 0 ? lengths[s] : lengths[s] + 1;
            context[s] = to;
            for (int p = from; p < to; p++, i++) {
                positions[i] = p;
                seqOf[i] = s;
                slots[i] = tables[s][p / blockSize] * blockSize + p % blockSize;
            }
        }
        return new TokenBatch(new int[n], positions, seqOf, new int[n], slots, tables, context, blockSize, new int[0]);
    }

    /**
     * rotaryAttention (RoPE fused into the cache write) gives bit for bit what rotary then attention
     * give: the rotated q and k, the cache it leaves (read by a second, decode step) and the output.
     */
    @ParameterizedTest
    @CsvSource({"F32, 64", "BF16, 128", "F16, 64"})
    void rotaryAttentionEqualsRotaryThenAttention(DType cacheType, int headDim) {
        int heads = 4, kvHeads = 2, blockSize = 4;
        AttentionShape shape = new AttentionShape(heads, kvHeads, headDim, (float) (1 / Math.sqrt(headDim)), 0);
        int[] lengths = {70, 3, 200};
        int[][] tables = {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, {18}, new int[51]};
        for (int j = 0; j < 51; j++) {
            tables[2][j] = 19 + j;
        }
        float[] inv = new float[headDim / 2];
        for (int j = 0; j < inv.length; j++) {
            inv[j] = (float) Math.pow(10000, -2.0 * j / headDim);
        }
        Tensor invFreq = gpu.fromHost(inv, 1, inv.length);
        KvCache fusedCache = gpu.allocateKvCache(1, 70, blockSize, shape.kvWidth(), cacheType);
        KvCache separateCache = gpu.allocateKvCache(1, 70, blockSize, shape.kvWidth(), cacheType);
        for (int step = 0; step < 2; step++) {
            TokenBatch batch = promptsThenDecode(lengths, tables, blockSize, step);
            int n = batch.numTokens();
            Backend.StepData data = gpu.prepare(batch);
            float[] q = randoms(n * shape.queryWidth());
            float[] k = randoms(n * shape.kvWidth());
            float[] v = randoms(n * shape.kvWidth());
            Tensor q1 = gpu.fromHost(q, n, shape.queryWidth());
            Tensor k1 = gpu.fromHost(k, n, shape.kvWidth());
            Tensor out1 = poisoned(n, shape.queryWidth());
            gpu.rotaryAttention(q1, k1, gpu.fromHost(v, n, shape.kvWidth()), headDim, invFreq, fusedCache, 0, shape, data, out1);
            Tensor q2 = gpu.fromHost(q, n, shape.queryWidth());
            Tensor k2 = gpu.fromHost(k, n, shape.kvWidth());
            Tensor out2 = poisoned(n, shape.queryWidth());
            gpu.rotary(q2, k2, headDim, invFreq, data);
            gpu.attention(q2, k2, gpu.fromHost(v, n, shape.kvWidth()), separateCache, 0, shape, data, out2);
            assertSameBits(gpu.toHost(q1), gpu.toHost(q2), "rotated q, step %d", step);
            assertSameBits(gpu.toHost(k1), gpu.toHost(k2), "rotated k, step %d", step);
            assertSameBits(gpu.toHost(out1), gpu.toHost(out2), "attention, step %d", step);
        }
    }

    @Test
    void embeddingsAndRotary() {
        int vocab = 50, d = 64, headDim = 16;
        float[] table = randoms(vocab * d);
        int[] tokens = {3, 49, 0, 3, 17};
        int[] positions = {0, 1, 2, 300, 4097};
        TokenBatch batch = new TokenBatch(tokens, positions, new int[5], new int[] {-1, -1, -1, -1, -1}, new int[5], new int[][] {{0}},
                new int[] {1}, 16, new int[0]);
        Backend.StepData step = gpu.prepare(batch);
        Tensor tab = weightOf(DType.BF16, table, vocab, d);
        Tensor x = poisoned(5, d);
        gpu.embed(tab, step, x);
        float[] positionTable = randoms(4098 * d);
        gpu.addPositionEmbedding(weightOf(DType.BF16, positionTable, 4098, d), step, x);
        double[] want = new double[5 * d];
        for (int t = 0; t < 5; t++) {
            for (int i = 0; i < d; i++) {
                want[t * d + i] = table[tokens[t] * d + i] + positionTable[positions[t] * d + i];
            }
        }
        near(gpu.toHost(x), want, null, 1e-7, "embed + positions");
        float[] invFreq = new float[headDim / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) (1 / Math.pow(10000, 2.0 * i / headDim));
        }
        float[] v = randoms(5 * d);
        Tensor r = gpu.fromHost(v, 5, d);
        gpu.rotary(r, headDim, gpu.fromHost(invFreq, 1, invFreq.length), step);
        int half = headDim / 2;
        for (int t = 0; t < 5; t++) {
            for (int h = 0; h < d / headDim; h++) {
                for (int i = 0; i < half; i++) {
                    float angle = positions[t] * invFreq[i];
                    double c = Math.cos(angle);
                    double s = Math.sin(angle);
                    int at = t * d + h * headDim + i;
                    want[at] = v[at] * c - v[at + half] * s;
                    want[at + half] = v[at + half] * c + v[at] * s;
                }
            }
        }
        double[] mag = new double[5 * d];
        for (int i = 0; i < mag.length; i++) {
            mag[i] = 4; // |a|, |b| ≲ 4 and cos/sin of a float32 angle
        }
        near(gpu.toHost(r), want, mag, 1e-6, "rotary");
    }

    @Test
    void capturedGraphReplaysItsWork() {
        int n = 1000;
        float[] x = randoms(n);
        float[] y = randoms(n);
        Tensor xt = gpu.fromHost(x, 1, n);
        Tensor yt = gpu.fromHost(y, 1, n);
        try (CudaBackend.Graph graph = gpu.capture(() -> {
            gpu.addInPlace(xt, yt);
            gpu.activation(Activation.RELU, xt);
        })) {
            assertSameBits(gpu.toHost(xt), x, "capture records, it does not run");
            graph.replay();
            graph.replay();
            double[] want = new double[n];
            for (int i = 0; i < n; i++) {
                double once = Math.max(0, (double) x[i] + y[i]);
                want[i] = Math.max(0, once + y[i]);
            }
            near(gpu.toHost(xt), want, null, 1e-7, "graph replayed twice");
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void randomWeightsAreTheCpuBackendsBitForBit(DType type) {
        var cpu = new dev.flora.cpu.CpuBackend();
        for (int rows : new int[] {1, 37}) {
            TensorView random = TensorView.random("model.layers.3.mlp.up_proj.weight", type, rows, 129);
            assertSameBits(gpu.toHost(gpu.weight(random, rows, 129)), cpu.toHost(cpu.weight(random, rows, 129)), "%s, %d rows", type, rows);
        }
    }

    /**
     * flora_modulate and flora_demodulate against the CPU's bits, element at a time and (where the
     * widths are multiples of 4, -Dflora.cuda.floraVectors) four columns a thread: float32, bf16 or f16
     * factors and bias, over several column blocks of 1024 at 2056 and 1028; rows of 70 and 45 stay
     * element at a time either way.
     */
    @ParameterizedTest
    @CsvSource({"70, 45, F32", "72, 44, F32", "2056, 1028, BF16", "2056, 1028, F16"})
    void floraModulateAndDemodulateAreTheCpusBitForBit(int in, int out, DType factors) {
        var cpu = dev.flora.cpu.CpuBackend.withKernels("scalar");
        int t = 9;
        int[][] rows = {{1, 4}, {0}, {3, 5, 8}};
        int[] ranks = {1, 3, 2};
        float[] x = randoms(t * in);
        float[] base = randoms(t * out);
        float[] bias = randoms(out);
        Tensor[] aGpu = new Tensor[3];
        Tensor[] aCpu = new Tensor[3];
        Tensor[] bGpu = new Tensor[3];
        Tensor[] bCpu = new Tensor[3];
        int stacked = 0;
        for (int g = 0; g < 3; g++) {
            float[] a = randoms(ranks[g] * in);
            float[] b = randoms(ranks[g] * out);
            aGpu[g] = weightOf(factors, a, ranks[g], in); // 16-bit: a and b now hold the rounded values the CPU takes as float32
            aCpu[g] = cpu.weight(a, ranks[g], in);
            bGpu[g] = weightOf(factors, b, ranks[g], out);
            bCpu[g] = cpu.weight(b, ranks[g], out);
            stacked += ranks[g] * rows[g].length;
        }
        Tensor sc = cpu.allocate(stacked, in);
        cpu.floraModulate(cpu.fromHost(x, t, in), rows, aCpu, sc);
        float[] products = randoms(stacked * out);
        Tensor oc = cpu.fromHost(base, t, out);
        Tensor biasGpu = weightOf(factors, bias, 1, out); // the bias in the factors' type too (a 16-bit model's own)
        cpu.floraDemodulate(cpu.fromHost(products, stacked, out), rows, bCpu, cpu.weight(bias, 1, out), oc);
        try {
            for (boolean vectors : new boolean[] {false, true}) {
                gpu.useFloraVectors(vectors);
                Tensor sg = poisoned(stacked, in);
                gpu.floraModulate(gpu.fromHost(x, t, in), rows, aGpu, sg);
                assertSameBits(gpu.toHost(sg), cpu.toHost(sc), "modulated, vectors %s", vectors);
                Tensor og = gpu.fromHost(base, t, out);
                gpu.floraDemodulate(gpu.fromHost(products, stacked, out), rows, bGpu, biasGpu, og);
                assertSameBits(gpu.toHost(og), cpu.toHost(oc), "demodulated (other rows untouched), vectors %s", vectors);
            }
        } finally {
            gpu.useFloraVectors(true);
        }
    }

    /**
     * The one-launch fLoRA GEMV (-Dflora.cuda.fuseFlora=true) gives floraLinear's three-kernel bits for
     * 1 to 4 stacked rows: mixed ranks, factors in float32 or bf16, with a bias or without; the rows it
     * does not adapt keep their values.
     */
    @ParameterizedTest
    @CsvSource({"BF16, 1, F32", "BF16, 2, BF16", "F16, 3, F32", "BF16, 4, BF16", "F16, 4, F32"})
    void fusedFloraGemvGivesTheBitsOfItsThreeKernels(DType type, int stackedRows, DType factorType) {
        int t = 6, in = 264, out = 203;
        int[][] rows = switch (stackedRows) {
            case 1 -> new int[][] {{4}};
            case 2 -> new int[][] {{1}, {5}};
            case 3 -> new int[][] {{0}, {3}};
            default -> new int[][] {{2, 5}, {0}};
        };
        int[] ranks = switch (stackedRows) {
            case 1 -> new int[] {1};
            case 2 -> new int[] {1, 1};
            case 3 -> new int[] {2, 1};
            default -> new int[] {1, 2};
        };
        Tensor[] a = new Tensor[rows.length];
        Tensor[] bt = new Tensor[rows.length];
        for (int g = 0; g < rows.length; g++) {
            a[g] = weightOf(factorType, randoms(ranks[g] * in), ranks[g], in);
            bt[g] = weightOf(factorType, randoms(ranks[g] * out), ranks[g], out);
        }
        Tensor w = weightOf(type, randoms(out * in), out, in);
        Tensor bias = stackedRows % 2 == 0 ? weightOf(DType.BF16, randoms(out), 1, out) : null;
        float[] base = randoms(t * out);
        Tensor xs = gpu.fromHost(randoms(t * in), t, in);
        float[][] results = new float[2][];
        try {
            for (int fused = 0; fused < 2; fused++) {
                gpu.useFusedFlora(fused == 1);
                Tensor o = gpu.fromHost(base, t, out);
                gpu.floraLinear(xs, rows, a, bt, w, bias, poisoned(stackedRows, in), poisoned(stackedRows, out), o);
                results[fused] = gpu.toHost(o);
            }
        } finally {
            gpu.useFusedFlora(false);
        }
        assertSameBits(results[1], results[0], "one launch");
        java.util.Set<Integer> adapted = new java.util.HashSet<>();
        for (int[] group : rows) {
            for (int row : group) {
                adapted.add(row);
            }
        }
        for (int row = 0; row < t; row++) {
            float[] got = Arrays.copyOfRange(results[1], row * out, (row + 1) * out);
            float[] before = Arrays.copyOfRange(base, row * out, (row + 1) * out);
            if (adapted.contains(row)) {
                assertThat(got).as("adapted row %d written", row).isNotEqualTo(before);
            } else {
                assertSameBits(got, before, "row %d untouched", row);
            }
        }
    }

    /**
     * floraLinear (one layout upload; the modulation writes cuBLAS's rounded input) gives bit for bit
     * what modulate, product and demodulate give one by one, through cuBLAS (16-bit weights, many
     * stacked rows) and the GEMV (few rows); floraLinear's with the four-column kernels
     * (-Dflora.cuda.floraVectors; the rounded input written four values at a time), the steps' without.
     */
    @ParameterizedTest
    @CsvSource({"BF16, 9", "F16, 9", "BF16, 2", "F32, 9"})
    void floraLinearEqualsItsThreeSteps(DType type, int t) {
        int in = 72, out = 45;
        int[][] rows = t == 9 ? new int[][] {{1, 4}, {0}, {3, 5, 8}} : new int[][] {{1}, {0}};
        int[] ranks = {1, 3, 2};
        float[] x = randoms(t * in);
        Tensor[] a = new Tensor[rows.length];
        Tensor[] bt = new Tensor[rows.length];
        int stacked = 0;
        for (int g = 0; g < rows.length; g++) {
            int r = t == 9 ? ranks[g] : 1;
            a[g] = gpu.weight(randoms(r * in), r, in);
            bt[g] = gpu.weight(randoms(r * out), r, out);
            stacked += r * rows[g].length;
        }
        Tensor w = weightOf(type, randoms(out * in), out, in);
        Tensor bias = gpu.weight(randoms(out), 1, out);
        float[] base = randoms(t * out);
        Tensor xs = gpu.fromHost(x, t, in);
        Tensor fused = gpu.fromHost(base, t, out);
        try {
            gpu.useFloraVectors(true);
            gpu.floraLinear(xs, rows, a, bt, w, bias, poisoned(stacked, in), poisoned(stacked, out), fused);
        } finally {
            gpu.useFloraVectors(true);
        }
        Tensor separate = gpu.fromHost(base, t, out);
        Tensor s = poisoned(stacked, in);
        Tensor p = poisoned(stacked, out);
        gpu.floraModulate(xs, rows, a, s);
        gpu.linear(s, w, null, p);
        gpu.floraDemodulate(p, rows, bt, bias, separate);
        assertSameBits(gpu.toHost(fused), gpu.toHost(separate), "floraLinear " + type);
    }

    /**
     * fLoRA's runs with the demodulation in cuBLASLt's epilogue (-Dflora.cuda.floraRuns): runs of ranks
     * 1, 3 and 4 (bf16 and float32 factors), a run's group with decode-like rows beside it and a group
     * too short for a run (both by the three steps), against floraLinear's three steps: the same
     * rounded inputs, so only the products' order of summation and the epilogue's b_j / r differ
     * (within 1e-5 of the output's largest value). Where cuBLASLt has no per-output alpha for a shape
     * the layer falls back to the three steps and says so; the results must match either way.
     */
    @ParameterizedTest
    @CsvSource({"BF16, 256, 200", "F16, 264, 72", "BF16, 776, 45"})
    void floraRunsInTheEpilogueMatchTheThreeSteps(DType type, int in, int out) {
        int t = 520;
        int[][] rows = {
                java.util.stream.IntStream.range(0, 150).toArray(),
                java.util.stream.IntStream.concat(java.util.stream.IntStream.range(150, 300), java.util.stream.IntStream.of(305, 310)).toArray(),
                java.util.stream.IntStream.range(320, 330).toArray(),
                java.util.stream.IntStream.range(400, 520).toArray()};
        int[] ranks = {1, 3, 2, 4};
        DType[] factorTypes = {DType.BF16, DType.F32, DType.BF16, type};
        float[] x = randoms(t * in);
        Tensor[] a = new Tensor[rows.length];
        Tensor[] bt = new Tensor[rows.length];
        int stacked = 0;
        for (int g = 0; g < rows.length; g++) {
            a[g] = weightOf(factorTypes[g], randoms(ranks[g] * in), ranks[g], in);
            bt[g] = weightOf(factorTypes[g], randoms(ranks[g] * out), ranks[g], out);
            stacked += ranks[g] * rows[g].length;
        }
        Tensor w = weightOf(type, randoms(out * in), out, in);
        float[] base = randoms(t * out);
        Tensor xs = gpu.fromHost(x, t, in);
        Tensor threeSteps = gpu.fromHost(base, t, out);
        gpu.floraLinear(xs, rows, a, bt, w, null, poisoned(stacked, in), poisoned(stacked, out), threeSteps);
        Tensor inRuns = gpu.fromHost(base, t, out);
        try {
            gpu.floraRuns().use(64);
            gpu.floraLinear(xs, rows, a, bt, w, null, poisoned(stacked, in), poisoned(stacked, out), inRuns);
            System.out.printf("floraRuns %s %d -> %d: cuBLASLt's per-output alpha %s%n", type, in, out,
                    gpu.floraRuns().fellBack() ? "UNSUPPORTED (the three steps ran)" : "ran");
        } finally {
            gpu.floraRuns().use(0);
        }
        float[] want = gpu.toHost(threeSteps);
        float[] got = gpu.toHost(inRuns);
        double largest = 0;
        for (float v : want) {
            largest = Math.max(largest, Math.abs(v));
        }
        for (int r = 0; r < t; r++) {
            boolean written = r < 330 && (r < 300 || r == 305 || r == 310 || r >= 320) || r >= 400;
            for (int c = 0; c < out; c++) {
                int i = r * out + c;
                if (written) {
                    assertThat((double) Math.abs(got[i] - want[i])).as("row %d column %d: %s vs %s", r, c, got[i], want[i])
                            .isLessThanOrEqualTo(1e-5 * largest);
                } else {
                    assertThat(got[i]).as("row %d of no adapter: as it was", r).isEqualTo(base[i]);
                }
            }
        }
    }

    /**
     * fLoRA's runs in the epilogue for two layers of one input (floraLinears: q and k of different
     * widths, one modulation of their runs' rows, then each layer's products; decode-like rows by the
     * three steps after), against floraLinear's three steps per layer, as floraRunsInTheEpilogueMatchTheThreeSteps.
     */
    @Test
    void jointFloraRunsMatchTheThreeStepsPerLayer() {
        int t = 400;
        int in = 256;
        int[] outs = {200, 72};
        int[][][] rows = {
                {java.util.stream.IntStream.range(0, 150).toArray(),
                        java.util.stream.IntStream.concat(java.util.stream.IntStream.range(150, 300), java.util.stream.IntStream.of(310, 320)).toArray()},
                {java.util.stream.IntStream.range(0, 150).toArray(),
                        java.util.stream.IntStream.concat(java.util.stream.IntStream.range(150, 300), java.util.stream.IntStream.of(310, 320)).toArray()}};
        int[][] ranks = {{1, 2}, {3, 1}};
        float[] x = randoms(t * in);
        Tensor xs = gpu.fromHost(x, t, in);
        Tensor shared = poisoned(1200, in);
        Tensor sharedProducts = poisoned(1200, 256);
        java.util.List<dev.flora.backend.FloraProjection> layers = new java.util.ArrayList<>();
        float[][] base = new float[2][];
        Tensor[] want = new Tensor[2];
        // layer 0 stacks 150 + 2 * 152 = 454 rows, layer 1 3 * 150 + 152 = 602: within the shared buffers
        for (int l = 0; l < 2; l++) {
            Tensor[] a = new Tensor[2];
            Tensor[] bt = new Tensor[2];
            int stacked = 0;
            for (int g = 0; g < 2; g++) {
                a[g] = weightOf(DType.BF16, randoms(ranks[l][g] * in), ranks[l][g], in);
                bt[g] = weightOf(DType.BF16, randoms(ranks[l][g] * outs[l]), ranks[l][g], outs[l]);
                stacked += ranks[l][g] * rows[l][g].length;
            }
            Tensor w = weightOf(DType.BF16, randoms(outs[l] * in), outs[l], in);
            base[l] = randoms(t * outs[l]);
            want[l] = gpu.fromHost(base[l], t, outs[l]);
            gpu.floraLinear(xs, rows[l], a, bt, w, null, poisoned(stacked, in), poisoned(stacked, outs[l]), want[l]);
            layers.add(new dev.flora.backend.FloraProjection(rows[l], a, bt, w, null, gpu.rows(shared, 0, stacked),
                    viewOf(sharedProducts, stacked, outs[l]), gpu.fromHost(base[l], t, outs[l])));
        }
        try {
            gpu.floraRuns().use(64);
            gpu.floraLinears(xs, layers);
        } finally {
            gpu.floraRuns().use(0);
        }
        for (int l = 0; l < 2; l++) {
            closeOrExact(gpu.toHost(layers.get(l).out()), gpu.toHost(want[l]), false, "layer " + l + " (fell back: " + gpu.floraRuns().fellBack() + ")");
        }
    }

    /**
     * fLoRA's q and k (layers sharing the input) in one floraLinears call, one modulation for both where
     * each layer takes cuBLAS (more stacked rows than the GEMV), else layer by layer: bit for bit a
     * floraLinear call per layer, with the layers' buffers shared as AdaptedLinear shares them (one
     * products buffer for both where they are of one width). Layers of one shape with the same tokens and ranks (q and k without grouped KV heads, a decode step's
     * adapters on both) take their products in one batched cuBLAS call (-Dflora.cuda.floraBatchedProducts,
     * the default): within 1e-5 of the largest output then, as batchedProducts, since the batched kernel
     * may sum in another order; with it off, bit for bit again.
     */
    @ParameterizedTest
    @CsvSource({"BF16, 9, false, true", "F16, 9, false, true", "BF16, 3, false, true", "F32, 9, false, true", "BF16, 9, true, true",
        "F16, 9, true, true", "BF16, 9, true, false", "F32, 9, true, true"})
    void floraLinearsEqualsAFloraLinearPerLayer(DType type, int t, boolean oneShape, boolean batched) {
        int in = 72;
        int[] outs = oneShape ? new int[] {45, 45} : new int[] {45, 29};
        float[] x = randoms(t * in);
        Tensor xs = gpu.fromHost(x, t, in);
        int[][][] rows = oneShape ? new int[][][] {{{1, 4}, {0}, {3, 5, 8}}, {{1, 4}, {0}, {3, 5, 8}}}
                : t == 9 ? new int[][][] {{{1, 4}, {0}, {3, 5, 8}}, {{2, 6}, {7}}} : new int[][][] {{{1}, {0}}, {{2}}};
        java.util.List<dev.flora.backend.FloraProjection> layers = new java.util.ArrayList<>();
        float[][] base = new float[2][];
        Tensor[] apart = new Tensor[2];
        Tensor shared = poisoned(40, in);
        Tensor sharedProducts = poisoned(40, 64);
        for (int l = 0; l < 2; l++) {
            int groups = rows[l].length;
            Tensor[] a = new Tensor[groups];
            Tensor[] bt = new Tensor[groups];
            int stacked = 0;
            for (int g = 0; g < groups; g++) {
                int r = 1 + (g + (oneShape ? 0 : l)) % 3;
                a[g] = gpu.weight(randoms(r * in), r, in);
                bt[g] = gpu.weight(randoms(r * outs[l]), r, outs[l]);
                stacked += r * rows[l][g].length;
            }
            Tensor w = weightOf(type, randoms(outs[l] * in), outs[l], in);
            Tensor bias = l == 0 ? gpu.weight(randoms(outs[l]), 1, outs[l]) : null;
            base[l] = randoms(t * outs[l]);
            apart[l] = gpu.fromHost(base[l], t, outs[l]);
            gpu.floraLinear(xs, rows[l], a, bt, w, bias, poisoned(stacked, in), poisoned(stacked, outs[l]), apart[l]);
            layers.add(new dev.flora.backend.FloraProjection(rows[l], a, bt, w, bias, gpu.rows(shared, 0, stacked),
                    viewOf(sharedProducts, stacked, outs[l]), gpu.fromHost(base[l], t, outs[l])));
        }
        boolean before = gpu.useFloraBatchedProducts(batched);
        try {
            gpu.floraLinears(xs, layers);
        } finally {
            gpu.useFloraBatchedProducts(before);
        }
        boolean exact = !(oneShape && batched && type != DType.F32);
        for (int l = 0; l < 2; l++) {
            float[] got = gpu.toHost(layers.get(l).out());
            closeOrExact(got, gpu.toHost(apart[l]), exact, String.format("layer %d %s %d tokens", l, type, t));
            assertThat(got).isNotEqualTo(base[l]);
        }
    }

    /** A [rows, cols] float32 view at the start of a larger buffer (AdaptedLinear's step buffers hand out such views). */
    private static Tensor viewOf(Tensor buffer, int rows, int cols) {
        CudaTensor b = CudaTensor.of(buffer);
        return new CudaTensor(b.pointer, DType.F32, rows, cols, b);
    }

}
