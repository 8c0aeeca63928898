package dev.flora.cpu;

import dev.flora.backend.Activation;
import dev.flora.backend.AttentionShape;
import dev.flora.backend.Backend;
import dev.flora.backend.DType;
import dev.flora.backend.KvCache;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.model.ReferenceLlama;
import dev.flora.safetensors.SafetensorsFile;
import dev.flora.safetensors.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;
import static org.assertj.core.api.Assertions.within;

/**
 * Every CPU backend operation against a float64 reference on seeded random inputs of odd sizes,
 * with each kernel set (plain Java and Vector API).
 */
@ParameterizedClass
@ValueSource(strings = {"scalar", "vector"})
class KernelsTest {
    private static final double REL = 1e-5;
    private static final int[] ROWS = {1, 3, 7};
    private static final int[] COLS = {5, 33, 130};

    private final Backend backend;

    KernelsTest(String kernels) {
        this.backend = CpuBackend.withKernels(kernels);
    }

    @TempDir
    Path tmp;

    private int files;

    // ---------------------------------------------------------------- helpers

    private static float[] gaussian(SplittableRandom r, int n, double scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            // Box-Muller; plain enough for test data.
            double u = r.nextDouble();
            double w = r.nextDouble();
            v[i] = (float) (Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * w) * scale);
        }
        return v;
    }

    private static float[] nans(int n) {
        float[] v = new float[n];
        Arrays.fill(v, Float.NaN);
        return v;
    }

    /** An activation tensor full of NaN, so that any element an operation fails to write shows. */
    private Tensor poisoned(int rows, int cols) {
        return backend.fromHost(nans(rows * cols), rows, cols);
    }

    /** A weight written to a safetensors file in this dtype and loaded back through the backend. */
    private Tensor weight(float[] values, int rows, int cols, DType dtype) throws IOException {
        Path file = tmp.resolve("w" + files++ + ".safetensors");
        long[] shape = rows == 1 ? new long[] {cols} : new long[] {rows, cols};
        new SafetensorsWriter().add("w", dtype, shape, values).write(file);
        return backend.weight(SafetensorsFile.open(file).get("w"), rows, cols);
    }

    /** The value a float takes in this dtype, found without the writer's rounding code. */
    static double rounded(float v, DType dtype) {
        return switch (dtype) {
            case F32 -> v;
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(v));
            case BF16 -> nearestBf16(v);
            default -> throw new IllegalArgumentException(dtype.toString());
        };
    }

    /** Round to nearest bfloat16 (ties to even) by comparing the two neighbours in double. */
    private static double nearestBf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        int down = bits & 0xffff0000;
        int up = down + 0x10000;
        double lo = Float.intBitsToFloat(down);
        double hi = Float.intBitsToFloat(up);
        double dLo = Math.abs(v - lo);
        double dHi = Math.abs(hi - v);
        if (dLo < dHi) {
            return lo;
        }
        if (dHi < dLo) {
            return hi;
        }
        return ((down >>> 16) & 1) == 0 ? lo : hi;
    }

    private static void assertClose(float[] actual, double[] expected, String what) {
        assertThat(actual).as(what).hasSize(expected.length);
        for (int i = 0; i < expected.length; i++) {
            double a = actual[i];
            double b = expected[i];
            if (!(Math.abs(a - b) <= REL * (1 + Math.abs(b)))) {
                fail("%s: element %d is %s, expected %s (diff %.3e)", what, i, a, b, Math.abs(a - b));
            }
        }
    }

    private static TokenBatch positionsOnly(int[] positions) {
        int n = positions.length;
        return new TokenBatch(new int[n], positions, new int[n], filled(n, -1), new int[n], new int[][] {{0}}, new int[] {1}, 4, new int[0]);
    }

    private static int[] filled(int n, int v) {
        int[] a = new int[n];
        Arrays.fill(a, v);
        return a;
    }

    // ---------------------------------------------------------------- linear

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "F16", "BF16"})
    void linearMatchesFloat64WithAndWithoutBias(DType dtype) throws IOException {
        SplittableRandom r = new SplittableRandom(100 + dtype.ordinal());
        int[] outs = {1, 17, 40};
        for (int rows : ROWS) {
            for (int in : COLS) {
                for (int outFeatures : outs) {
                    float[] x = gaussian(r, rows * in, 1);
                    float[] w = gaussian(r, outFeatures * in, 1 / Math.sqrt(in));
                    float[] b = gaussian(r, outFeatures, 0.5);
                    Tensor wt = weight(w, outFeatures, in, dtype);
                    Tensor bt = weight(b, 1, outFeatures, dtype);
                    // The backend holds exactly the dtype's values.
                    float[] held = backend.toHost(wt);
                    for (int i = 0; i < w.length; i++) {
                        assertThat((double) held[i]).isEqualTo(rounded(w[i], dtype));
                    }
                    for (boolean bias : new boolean[] {false, true}) {
                        Tensor out = poisoned(rows, outFeatures);
                        backend.linear(backend.fromHost(x, rows, in), wt, bias ? bt : null, out);
                        double[] expected = new double[rows * outFeatures];
                        for (int t = 0; t < rows; t++) {
                            for (int o = 0; o < outFeatures; o++) {
                                double s = bias ? rounded(b[o], dtype) : 0;
                                for (int i = 0; i < in; i++) {
                                    s += x[t * in + i] * rounded(w[o * in + i], dtype);
                                }
                                expected[t * outFeatures + o] = s;
                            }
                        }
                        assertClose(backend.toHost(out), expected,
                                "linear " + dtype + " x[" + rows + "," + in + "] W[" + outFeatures + "," + in + "] bias " + bias);
                    }
                }
            }
        }
    }

    /** Large enough to run in parallel; every row is bitwise what it is when computed alone. */
    @Test
    void linearRowsAreBatchInvariantAndViewsWriteOnlyTheirRows() throws IOException {
        SplittableRandom r = new SplittableRandom(7);
        int rows = 9;
        int in = 130;
        int outs = 301;
        float[] x = gaussian(r, rows * in, 1);
        Tensor w = weight(gaussian(r, outs * in, 1 / Math.sqrt(in)), outs, in, DType.F32);
        Tensor b = weight(gaussian(r, outs, 1), 1, outs, DType.F32);
        Tensor all = poisoned(rows, outs);
        backend.linear(backend.fromHost(x, rows, in), w, b, all);
        float[] batched = backend.toHost(all);
        for (int t = 0; t < rows; t++) {
            Tensor one = poisoned(1, outs);
            backend.linear(backend.fromHost(Arrays.copyOfRange(x, t * in, (t + 1) * in), 1, in), w, b, one);
            assertThat(backend.toHost(one)).as("row %d", t).isEqualTo(Arrays.copyOfRange(batched, t * outs, (t + 1) * outs));
        }
        // Rows 2..4 of x into rows 5..7 of a poisoned output: only those rows change.
        Tensor target = poisoned(rows, outs);
        backend.linear(backend.rows(backend.fromHost(x, rows, in), 2, 3), w, b, backend.rows(target, 5, 3));
        float[] got = backend.toHost(target);
        for (int t = 0; t < rows; t++) {
            float[] row = Arrays.copyOfRange(got, t * outs, (t + 1) * outs);
            if (t >= 5 && t < 8) {
                assertThat(row).isEqualTo(Arrays.copyOfRange(batched, (t - 3) * outs, (t - 2) * outs));
            } else {
                assertThat(row).as("row %d outside the view", t).containsOnly(Float.NaN);
            }
        }
    }

    // ---------------------------------------------------------------- norms

    @Test
    void rmsNormMatchesFloat64() throws IOException {
        SplittableRandom r = new SplittableRandom(2);
        for (float eps : new float[] {1e-6f, 1e-5f}) {
            for (int rows : new int[] {1, 3, 7, 40}) {
                for (int cols : rows == 40 ? new int[] {3301} : COLS) {
                    float[] x = gaussian(r, rows * cols, 1);
                    // One row so small that eps matters.
                    for (int i = 0; i < cols; i++) {
                        x[i] *= 1e-3f;
                    }
                    float[] w = gaussian(r, cols, 0.3);
                    for (int i = 0; i < cols; i++) {
                        w[i] += 1;
                    }
                    Tensor out = poisoned(rows, cols);
                    backend.rmsNorm(backend.fromHost(x, rows, cols), weight(w, 1, cols, DType.F32), eps, out);
                    double[] expected = new double[rows * cols];
                    for (int t = 0; t < rows; t++) {
                        double sq = 0;
                        for (int i = 0; i < cols; i++) {
                            sq += (double) x[t * cols + i] * x[t * cols + i];
                        }
                        double inv = 1 / Math.sqrt(sq / cols + eps);
                        for (int i = 0; i < cols; i++) {
                            expected[t * cols + i] = w[i] * x[t * cols + i] * inv;
                        }
                    }
                    assertClose(backend.toHost(out), expected, "rmsNorm [" + rows + "," + cols + "] eps " + eps);
                }
            }
        }
    }

    @Test
    void layerNormMatchesFloat64() throws IOException {
        SplittableRandom r = new SplittableRandom(3);
        float eps = 1e-5f;
        for (int rows : ROWS) {
            for (int cols : COLS) {
                float[] x = gaussian(r, rows * cols, 2);
                // Rows with a large mean: the variance must be taken about the mean.
                for (int i = 0; i < rows * cols; i++) {
                    x[i] += (i / cols) % 2 == 0 ? 50 : -3;
                }
                float[] w = gaussian(r, cols, 1);
                float[] b = gaussian(r, cols, 1);
                Tensor out = poisoned(rows, cols);
                backend.layerNorm(backend.fromHost(x, rows, cols), weight(w, 1, cols, DType.F32), weight(b, 1, cols, DType.F32), eps, out);
                double[] expected = new double[rows * cols];
                for (int t = 0; t < rows; t++) {
                    double mean = 0;
                    for (int i = 0; i < cols; i++) {
                        mean += x[t * cols + i];
                    }
                    mean /= cols;
                    double var = 0;
                    for (int i = 0; i < cols; i++) {
                        var += (x[t * cols + i] - mean) * (x[t * cols + i] - mean);
                    }
                    var /= cols;
                    for (int i = 0; i < cols; i++) {
                        expected[t * cols + i] = (x[t * cols + i] - mean) / Math.sqrt(var + eps) * w[i] + b[i];
                    }
                }
                assertClose(backend.toHost(out), expected, "layerNorm [" + rows + "," + cols + "]");
            }
        }
    }

    // ---------------------------------------------------------------- rotary

    @ParameterizedTest
    @CsvSource({"6, 3", "16, 2", "16, 1"})
    void rotaryMatchesRotateHalfInFloat64(int headDim, int heads) {
        SplittableRandom r = new SplittableRandom(4 + headDim);
        int[] positions = {0, 5, 3, 17, 1000, 2, 31};
        int rows = positions.length;
        int width = heads * headDim;
        int half = headDim / 2;
        float[] inv = new float[half];
        for (int i = 0; i < half; i++) {
            inv[i] = (float) (1 / Math.pow(10000, 2.0 * i / headDim) * (0.5 + r.nextDouble()));
        }
        float[] x = gaussian(r, rows * width, 1);
        Tensor t = backend.fromHost(x, rows, width);
        backend.rotary(t, headDim, backend.fromHost(inv, 1, half), backend.prepare(positionsOnly(positions)));
        double[] expected = new double[rows * width];
        for (int row = 0; row < rows; row++) {
            for (int h = 0; h < heads; h++) {
                int base = row * width + h * headDim;
                for (int i = 0; i < half; i++) {
                    // transformers: freqs = inv_freq.float() @ position_ids.float(), a float32 product.
                    double angle = (float) positions[row] * inv[i];
                    double a = x[base + i];
                    double b = x[base + i + half];
                    expected[base + i] = a * Math.cos(angle) - b * Math.sin(angle);
                    expected[base + i + half] = b * Math.cos(angle) + a * Math.sin(angle);
                }
            }
        }
        assertClose(backend.toHost(t), expected, "rotary head dim " + headDim);
        // Position 0 is the identity.
        float[] got = backend.toHost(t);
        assertThat(Arrays.copyOfRange(got, 0, width)).isEqualTo(Arrays.copyOfRange(x, 0, width));
    }

    // ---------------------------------------------------------------- activations

    private static float[] activationInputs(SplittableRandom r, int n) {
        float[] x = gaussian(r, n, 3);
        float[] special = {0f, -0f, 1e-8f, -1e-8f, 2.5f, -2.5f, 6.5f, -6.5f, 30f, -30f, 100f, -100f, 1000f, -1000f};
        System.arraycopy(special, 0, x, 0, Math.min(special.length, n));
        return x;
    }

    @ParameterizedTest
    @EnumSource(Activation.class)
    void activationMatchesFloat64(Activation act) {
        SplittableRandom r = new SplittableRandom(5 + act.ordinal());
        for (int rows : ROWS) {
            for (int cols : COLS) {
                float[] x = activationInputs(r, rows * cols);
                Tensor t = backend.fromHost(x, rows, cols);
                backend.activation(act, t);
                double[] expected = new double[x.length];
                for (int i = 0; i < x.length; i++) {
                    expected[i] = ReferenceLlama.act(act, x[i]);
                }
                assertClose(backend.toHost(t), expected, act + " [" + rows + "," + cols + "]");
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Activation.class)
    void gatedActivationMatchesFloat64(Activation act) {
        SplittableRandom r = new SplittableRandom(6 + act.ordinal());
        for (int rows : ROWS) {
            for (int cols : COLS) {
                float[] g = activationInputs(r, rows * cols);
                float[] u = gaussian(r, rows * cols, 2);
                double[] expected = new double[g.length];
                for (int i = 0; i < g.length; i++) {
                    expected[i] = ReferenceLlama.act(act, g[i]) * u[i];
                }
                Tensor up = backend.fromHost(u, rows, cols);
                Tensor out = poisoned(rows, cols);
                backend.gatedActivation(act, backend.fromHost(g, rows, cols), up, out);
                assertClose(backend.toHost(out), expected, "gated " + act + " [" + rows + "," + cols + "]");
                // In place over the gate, as the Llama MLP calls it.
                Tensor gate = backend.fromHost(g, rows, cols);
                backend.gatedActivation(act, gate, up, gate);
                assertThat(backend.toHost(gate)).isEqualTo(backend.toHost(out));
            }
        }
    }

    @Test
    void geluIsExactNotTanh() {
        Tensor exact = backend.fromHost(new float[] {1f, -1f, 2f}, 1, 3);
        backend.activation(Activation.GELU, exact);
        // x * Phi(x) with Phi the normal CDF.
        assertThat(backend.toHost(exact)).containsExactly(
                new float[] {0.8413447460685429f, -0.15865525393145707f, 1.9544997361036416f}, within(1e-6f));
    }

    @Test
    void erfMatchesKnownValues() {
        assertThat(Erf.erf(0.5)).isCloseTo(0.5204998778130465, within(1e-12));
        assertThat(Erf.erf(1)).isCloseTo(0.8427007929497149, within(1e-12));
        assertThat(Erf.erf(2)).isCloseTo(0.9953222650189527, within(1e-12));
        assertThat(Erf.erf(3)).isCloseTo(0.9999779095030014, within(1e-12));
        assertThat(Erf.erf(-1.5)).isCloseTo(-0.9661051464753108, within(1e-12));
        assertThat(Erf.erf(0)).isEqualTo(0.0);
        // The float64 reference used for GELU agrees too.
        assertThat(ReferenceLlama.erf(0.5)).isCloseTo(0.5204998778130465, within(1e-15));
        assertThat(ReferenceLlama.erf(3)).isCloseTo(0.9999779095030014, within(1e-15));
        assertThat(ReferenceLlama.erf(-1.5)).isCloseTo(-0.9661051464753108, within(1e-15));
    }

    /** Both branches (series below 2.5, continued fraction above) and the cut-off at 6.5, on a dense grid. */
    @Test
    void erfMatchesHighPrecisionSeriesEverywhere() {
        double worst = 0;
        List<Double> xs = new ArrayList<>();
        for (double x = -7; x <= 7; x += 0.0137) {
            xs.add(x);
        }
        xs.addAll(List.of(2.5, Math.nextDown(2.5), Math.nextUp(2.5), -2.5, 6.5, Math.nextDown(6.5), 1e-300, -1e-10));
        for (double x : xs) {
            double expected = ReferenceLlama.erf(x);
            double diff = Math.abs(Erf.erf(x) - expected);
            worst = Math.max(worst, diff);
            assertThat(Erf.erf(x)).as("erf(%s)", x).isCloseTo(expected, within(1e-13));
            assertThat(Erf.erf(-x)).isEqualTo(-Erf.erf(x));
        }
        assertThat(worst).isLessThan(1e-13);
    }

    // ---------------------------------------------------------------- element-wise and copies

    @Test
    void addInPlaceIsExactFloatAddition() {
        SplittableRandom r = new SplittableRandom(8);
        for (int rows : ROWS) {
            for (int cols : COLS) {
                float[] x = gaussian(r, rows * cols, 10);
                float[] y = gaussian(r, rows * cols, 1e-3);
                Tensor xt = backend.fromHost(x, rows, cols);
                backend.addInPlace(xt, backend.fromHost(y, rows, cols));
                float[] got = backend.toHost(xt);
                for (int i = 0; i < x.length; i++) {
                    assertThat(got[i]).isEqualTo((float) ((double) x[i] + y[i]));
                }
            }
        }
        // On views: only the view's rows change.
        float[] x = gaussian(r, 5 * 3, 1);
        float[] y = gaussian(r, 2 * 3, 1);
        Tensor xt = backend.fromHost(x, 5, 3);
        backend.addInPlace(backend.rows(xt, 2, 2), backend.fromHost(y, 2, 3));
        float[] got = backend.toHost(xt);
        for (int i = 0; i < 15; i++) {
            float expected = i >= 6 && i < 12 ? x[i] + y[i - 6] : x[i];
            assertThat(got[i]).isEqualTo(expected);
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "F16", "BF16"})
    void embedCopiesTableRows(DType dtype) throws IOException {
        SplittableRandom r = new SplittableRandom(9);
        int vocab = 11;
        for (int cols : COLS) {
            float[] table = gaussian(r, vocab * cols, 1);
            Tensor tt = weight(table, vocab, cols, dtype);
            int[] tokens = {3, 0, 10, 3, 7};
            int n = tokens.length;
            TokenBatch batch = new TokenBatch(tokens, new int[n], new int[n], filled(n, -1), new int[n], new int[][] {{0}},
                    new int[] {1}, 4, new int[0]);
            Tensor out = poisoned(n, cols);
            backend.embed(tt, backend.prepare(batch), out);
            float[] got = backend.toHost(out);
            for (int t = 0; t < n; t++) {
                for (int i = 0; i < cols; i++) {
                    assertThat((double) got[t * cols + i]).isEqualTo(rounded(table[tokens[t] * cols + i], dtype));
                }
            }
        }
    }

    @Test
    void gatherRowsCopiesRowsInOrder() {
        SplittableRandom r = new SplittableRandom(10);
        for (int cols : COLS) {
            float[] x = gaussian(r, 6 * cols, 1);
            int[] rows = {2, 0, 5, 2};
            Tensor out = poisoned(rows.length, cols);
            backend.gatherRows(backend.fromHost(x, 6, cols), rows, out);
            float[] got = backend.toHost(out);
            for (int i = 0; i < rows.length; i++) {
                assertThat(Arrays.copyOfRange(got, i * cols, (i + 1) * cols))
                        .isEqualTo(Arrays.copyOfRange(x, rows[i] * cols, (rows[i] + 1) * cols));
            }
        }
    }

    // ---------------------------------------------------------------- adapter kernels (one call over every group)

    /** Groups of rows out of order, of different sizes (one over a LoRA run of 8) and ranks. */
    private static final int[][] GROUPS = {{4, 1}, {0}, {6, 2, 5}, {3, 7, 8, 9, 10, 11, 12, 13, 14, 15}};
    private static final int[] RANKS = {2, 1, 3, 4};
    private static final int TOKENS = 17; // row 16 belongs to no group

    private static int stackedRows() {
        int n = 0;
        for (int g = 0; g < GROUPS.length; g++) {
            n += GROUPS[g].length * RANKS[g];
        }
        return n;
    }

    @Test
    void floraModulateStacksEveryGroupsModulatedCopiesInOnePass() {
        SplittableRandom r = new SplittableRandom(31);
        for (int cols : COLS) {
            float[] x = gaussian(r, TOKENS * cols, 1);
            float[][] a = new float[GROUPS.length][];
            Tensor[] at = new Tensor[GROUPS.length];
            for (int g = 0; g < GROUPS.length; g++) {
                a[g] = gaussian(r, RANKS[g] * cols, 1);
                // Adapter tensors come both ways: host activations (fLoRA loader) and weights.
                at[g] = g % 2 == 0 ? backend.fromHost(a[g], RANKS[g], cols) : backend.weight(a[g], RANKS[g], cols);
            }
            Tensor stacked = poisoned(stackedRows(), cols);
            backend.floraModulate(backend.fromHost(x, TOKENS, cols), GROUPS, at, stacked);
            float[] got = backend.toHost(stacked);
            int row = 0;
            for (int g = 0; g < GROUPS.length; g++) {
                for (int j = 0; j < RANKS[g]; j++) {
                    for (int i = 0; i < GROUPS[g].length; i++, row++) {
                        for (int c = 0; c < cols; c++) {
                            assertThat(got[row * cols + c]).isEqualTo(x[GROUPS[g][i] * cols + c] * a[g][j * cols + c]);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void floraDemodulateIsTheSeparateOperationsBitForBitAndMatchesFloat64(boolean withBias) {
        SplittableRandom r = new SplittableRandom(32);
        for (int cols : COLS) {
            float[] products = gaussian(r, stackedRows() * cols, 1);
            float[][] bt = new float[GROUPS.length][];
            Tensor[] btt = new Tensor[GROUPS.length];
            for (int g = 0; g < GROUPS.length; g++) {
                bt[g] = gaussian(r, RANKS[g] * cols, 1);
                btt[g] = g % 2 == 0 ? backend.fromHost(bt[g], RANKS[g], cols) : backend.weight(bt[g], RANKS[g], cols);
            }
            float[] bias = gaussian(r, cols, 1);
            Tensor biasT = withBias ? backend.weight(bias, 1, cols) : null;
            float[] before = gaussian(r, TOKENS * cols, 1);
            Tensor p = backend.fromHost(products, stackedRows(), cols);
            Tensor fused = backend.fromHost(before, TOKENS, cols);
            backend.floraDemodulate(p, GROUPS, btt, biasT, fused);
            // The exact strategy's operations, one group and one copy at a time.
            Tensor separate = backend.fromHost(before, TOKENS, cols);
            int base = 0;
            for (int g = 0; g < GROUPS.length; g++) {
                int n = GROUPS[g].length;
                Tensor sum = backend.allocate(n, cols);
                for (int j = 0; j < RANKS[g]; j++) {
                    Tensor y = backend.fromHost(backend.toHost(backend.rows(p, base + j * n, n)), n, cols);
                    backend.mulRows(y, null, btt[g], j);
                    backend.addInPlace(sum, y);
                }
                backend.scatterRows(sum, GROUPS[g], 1f / RANKS[g], biasT, false, separate);
                base += RANKS[g] * n;
            }
            float[] got = backend.toHost(fused);
            assertThat(got).isEqualTo(backend.toHost(separate));
            double[] expected = new double[TOKENS * cols];
            for (int i = 0; i < expected.length; i++) {
                expected[i] = before[i];
            }
            base = 0;
            for (int g = 0; g < GROUPS.length; g++) {
                int n = GROUPS[g].length;
                for (int i = 0; i < n; i++) {
                    for (int c = 0; c < cols; c++) {
                        double s = 0;
                        for (int j = 0; j < RANKS[g]; j++) {
                            s += (double) products[(base + j * n + i) * cols + c] * bt[g][j * cols + c];
                        }
                        expected[GROUPS[g][i] * cols + c] = s / RANKS[g] + (withBias ? bias[c] : 0);
                    }
                }
                base += RANKS[g] * n;
            }
            assertClose(got, expected, "floraDemodulate");
        }
    }

    @Test
    void loraShrinkExpandMatchesFloat64AndEachTokenAlone() {
        SplittableRandom r = new SplittableRandom(33);
        for (int in : COLS) {
            int outs = in + 3;
            float[] x = gaussian(r, TOKENS * in, 1);
            Tensor[] a = new Tensor[GROUPS.length];
            Tensor[] b = new Tensor[GROUPS.length];
            Tensor[] bias = new Tensor[GROUPS.length];
            float[][] av = new float[GROUPS.length][];
            float[][] bv = new float[GROUPS.length][];
            float[][] biasv = new float[GROUPS.length][];
            float[] scale = new float[GROUPS.length];
            for (int g = 0; g < GROUPS.length; g++) {
                av[g] = gaussian(r, RANKS[g] * in, 1);
                bv[g] = gaussian(r, outs * RANKS[g], 1);
                a[g] = backend.weight(av[g], RANKS[g], in);
                b[g] = backend.weight(bv[g], outs, RANKS[g]);
                if (g % 2 == 1) {
                    biasv[g] = gaussian(r, outs, 1);
                    bias[g] = backend.weight(biasv[g], 1, outs);
                }
                scale[g] = 0.5f + g;
            }
            float[] before = gaussian(r, TOKENS * outs, 1);
            Tensor xt = backend.fromHost(x, TOKENS, in);
            Tensor out = backend.fromHost(before, TOKENS, outs);
            Tensor[] outputs = new Tensor[GROUPS.length];
            Arrays.fill(outputs, out);
            backend.loraShrinkExpand(xt, GROUPS, a, b, bias, scale, outputs);
            float[] got = backend.toHost(out);
            double[] expected = new double[TOKENS * outs];
            for (int i = 0; i < expected.length; i++) {
                expected[i] = before[i];
            }
            for (int g = 0; g < GROUPS.length; g++) {
                for (int row : GROUPS[g]) {
                    double[] v = new double[RANKS[g]];
                    for (int j = 0; j < RANKS[g]; j++) {
                        for (int i = 0; i < in; i++) {
                            v[j] += (double) x[row * in + i] * av[g][j * in + i];
                        }
                    }
                    for (int o = 0; o < outs; o++) {
                        double d = biasv[g] == null ? 0 : biasv[g][o];
                        for (int j = 0; j < RANKS[g]; j++) {
                            d += bv[g][o * RANKS[g] + j] * v[j];
                        }
                        expected[row * outs + o] += scale[g] * d;
                    }
                }
            }
            assertClose(got, expected, "loraShrinkExpand");
            // Batch invariance: each token alone gives the same bits as in the full call.
            for (int g = 0; g < GROUPS.length; g++) {
                for (int row : GROUPS[g]) {
                    Tensor alone = backend.fromHost(before, TOKENS, outs);
                    backend.loraShrinkExpand(xt, new int[][] {{row}}, new Tensor[] {a[g]}, new Tensor[] {b[g]}, new Tensor[] {bias[g]},
                            new float[] {scale[g]}, new Tensor[] {alone});
                    assertThat(Arrays.copyOfRange(backend.toHost(alone), row * outs, (row + 1) * outs))
                            .isEqualTo(Arrays.copyOfRange(got, row * outs, (row + 1) * outs));
                }
            }
        }
    }

    /** Groups writing different outputs (q, k, v of one input) in one call: the same bits as a call per output. */
    @Test
    void loraShrinkExpandIntoSeveralOutputsMatchesOneCallEach() {
        SplittableRandom r = new SplittableRandom(34);
        int in = 40;
        int[] widths = {40, 24};
        int[][] rows = {{0, 3}, {1}, {0, 2, 3}};
        int[] target = {0, 0, 1};
        int[] ranks = {2, 5, 3};
        Tensor xt = backend.fromHost(gaussian(r, 4 * in, 1), 4, in);
        Tensor[] a = new Tensor[3];
        Tensor[] b = new Tensor[3];
        float[] scale = {0.5f, 1f, 2f};
        for (int g = 0; g < 3; g++) {
            a[g] = backend.weight(gaussian(r, ranks[g] * in, 1), ranks[g], in);
            b[g] = backend.weight(gaussian(r, widths[target[g]] * ranks[g], 1), widths[target[g]], ranks[g]);
        }
        float[][] before = {gaussian(r, 4 * widths[0], 1), gaussian(r, 4 * widths[1], 1)};
        Tensor[] together = {backend.fromHost(before[0], 4, widths[0]), backend.fromHost(before[1], 4, widths[1])};
        backend.loraShrinkExpand(xt, rows, a, b, new Tensor[3], scale, new Tensor[] {together[0], together[0], together[1]});
        Tensor[] apart = {backend.fromHost(before[0], 4, widths[0]), backend.fromHost(before[1], 4, widths[1])};
        backend.loraShrinkExpand(xt, new int[][] {rows[0], rows[1]}, new Tensor[] {a[0], a[1]}, new Tensor[] {b[0], b[1]}, new Tensor[2],
                new float[] {scale[0], scale[1]}, new Tensor[] {apart[0], apart[0]});
        backend.loraShrinkExpand(xt, new int[][] {rows[2]}, new Tensor[] {a[2]}, new Tensor[] {b[2]}, new Tensor[1], new float[] {scale[2]},
                new Tensor[] {apart[1]});
        for (int t = 0; t < 2; t++) {
            assertThat(backend.toHost(together[t])).isEqualTo(backend.toHost(apart[t])).isNotEqualTo(before[t]);
        }
    }

    // ---------------------------------------------------------------- attention through the paged cache

    private static final int BLOCK = 4;
    private static final int NUM_BLOCKS = 40;
    private static final int LAYER = 1;

    /** One sequence's queries, keys and values at every position, and its block table. */
    private record Seq(float[][] q, float[][] k, float[][] v, int[] table) {
        int length() {
            return q.length;
        }
    }

    /** A part of one step: positions [start, start + count) of a sequence. */
    private record Part(Seq seq, int start, int count) {
    }

    /** Sequences of these lengths with distinct, shuffled, non-contiguous blocks. */
    private static List<Seq> sequences(SplittableRandom r, AttentionShape shape, int... lengths) {
        int[] ids = shuffledBlockIds(r);
        int next = 0;
        List<Seq> seqs = new ArrayList<>();
        for (int len : lengths) {
            int blocks = (len + BLOCK - 1) / BLOCK;
            int[] table = Arrays.copyOfRange(ids, next, next + blocks);
            next += blocks;
            float[][] q = new float[len][];
            float[][] k = new float[len][];
            float[][] v = new float[len][];
            for (int p = 0; p < len; p++) {
                q[p] = gaussian(r, shape.queryWidth(), 1);
                k[p] = gaussian(r, shape.kvWidth(), 1);
                v[p] = gaussian(r, shape.kvWidth(), 1);
            }
            seqs.add(new Seq(q, k, v, table));
        }
        return seqs;
    }

    private static int[] shuffledBlockIds(SplittableRandom r) {
        int[] ids = new int[NUM_BLOCKS];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = i;
        }
        for (int i = ids.length - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = ids[i];
            ids[i] = ids[j];
            ids[j] = t;
        }
        return ids;
    }

    /** A cache whose every slot of every layer is NaN: reading a slot nobody wrote poisons the output. */
    private CpuKvCache poisonedCache(AttentionShape shape) {
        CpuKvCache cache = (CpuKvCache) backend.allocateKvCache(2, NUM_BLOCKS, BLOCK, shape.kvWidth(), DType.F32);
        for (int l = 0; l < 2; l++) {
            Arrays.fill(cache.keys[l], Float.NaN);
            Arrays.fill(cache.values[l], Float.NaN);
        }
        return cache;
    }

    /** Runs one attention step over these parts; returns the output rows, in part order. */
    private float[] step(KvCache cache, AttentionShape shape, List<Part> parts) {
        int n = parts.stream().mapToInt(Part::count).sum();
        int[] tokens = new int[n];
        int[] positions = new int[n];
        int[] seqOf = new int[n];
        int[] slots = new int[n];
        int[][] tables = new int[parts.size()][];
        int[] contexts = new int[parts.size()];
        float[] q = new float[n * shape.queryWidth()];
        float[] k = new float[n * shape.kvWidth()];
        float[] v = new float[n * shape.kvWidth()];
        int t = 0;
        for (int s = 0; s < parts.size(); s++) {
            Part part = parts.get(s);
            tables[s] = part.seq().table();
            contexts[s] = part.start() + part.count();
            for (int i = 0; i < part.count(); i++, t++) {
                int p = part.start() + i;
                positions[t] = p;
                seqOf[t] = s;
                slots[t] = part.seq().table()[p / BLOCK] * BLOCK + p % BLOCK;
                System.arraycopy(part.seq().q()[p], 0, q, t * shape.queryWidth(), shape.queryWidth());
                System.arraycopy(part.seq().k()[p], 0, k, t * shape.kvWidth(), shape.kvWidth());
                System.arraycopy(part.seq().v()[p], 0, v, t * shape.kvWidth(), shape.kvWidth());
            }
        }
        TokenBatch batch = new TokenBatch(tokens, positions, seqOf, filled(n, -1), slots, tables, contexts, BLOCK, new int[0]);
        Tensor out = poisoned(n, shape.queryWidth());
        backend.attention(backend.fromHost(q, n, shape.queryWidth()), backend.fromHost(k, n, shape.kvWidth()),
                backend.fromHost(v, n, shape.kvWidth()), cache, LAYER, shape, backend.prepare(batch), out);
        return backend.toHost(out);
    }

    /** Direct float64 attention of the query at position p over the sequence's keys. */
    private static double[] reference(Seq seq, int p, AttentionShape shape) {
        int hd = shape.headDim();
        int group = shape.heads() / shape.kvHeads();
        double[] out = new double[shape.queryWidth()];
        for (int h = 0; h < shape.heads(); h++) {
            int kvh = h / group;
            int first = shape.slidingWindow() > 0 ? Math.max(0, p - shape.slidingWindow() + 1) : 0;
            double[] scores = new double[p + 1];
            double max = Double.NEGATIVE_INFINITY;
            for (int j = first; j <= p; j++) {
                double dot = 0;
                for (int i = 0; i < hd; i++) {
                    dot += (double) seq.q()[p][h * hd + i] * seq.k()[j][kvh * hd + i];
                }
                scores[j] = dot * shape.scale();
                max = Math.max(max, scores[j]);
            }
            double sum = 0;
            for (int j = first; j <= p; j++) {
                scores[j] = Math.exp(scores[j] - max);
                sum += scores[j];
            }
            for (int j = first; j <= p; j++) {
                for (int i = 0; i < hd; i++) {
                    out[h * hd + i] += scores[j] / sum * seq.v()[j][kvh * hd + i];
                }
            }
        }
        return out;
    }

    private static float[] rowsOf(float[] out, int width, int from, int count) {
        return Arrays.copyOfRange(out, from * width, (from + count) * width);
    }

    static List<Part> whole(List<Seq> seqs) {
        List<Part> parts = new ArrayList<>();
        for (Seq s : seqs) {
            parts.add(new Part(s, 0, s.length()));
        }
        return parts;
    }

    @ParameterizedTest(name = "heads {0}, kv heads {1}, head dim {2}, window {3}")
    @CsvSource({
            "4, 2, 16, 0",
            "4, 1, 6, 0",
            "3, 3, 8, 0",
            "4, 2, 16, 3",
            "2, 1, 6, 5",
            "6, 3, 6, 1",
    })
    void attentionMatchesFloat64ThroughShuffledBlocks(int heads, int kvHeads, int headDim, int window) {
        SplittableRandom r = new SplittableRandom(heads * 1000L + kvHeads * 100L + headDim * 10L + window);
        AttentionShape shape = new AttentionShape(heads, kvHeads, headDim, (float) (1 / Math.sqrt(headDim)) * 0.9f, window);
        List<Seq> seqs = sequences(r, shape, 7, 13, 2);
        CpuKvCache cache = poisonedCache(shape);
        float[] out = step(cache, shape, whole(seqs));
        int row = 0;
        for (Seq seq : seqs) {
            for (int p = 0; p < seq.length(); p++, row++) {
                assertClose(rowsOf(out, shape.queryWidth(), row, 1), reference(seq, p, shape),
                        "attention " + shape + " position " + p + " of a sequence of " + seq.length());
            }
        }
        // The step's keys and values sit in their slots of this layer; the other layer is untouched.
        int w = shape.kvWidth();
        for (Seq seq : seqs) {
            for (int p = 0; p < seq.length(); p++) {
                int slot = seq.table()[p / BLOCK] * BLOCK + p % BLOCK;
                assertThat(Arrays.copyOfRange(cache.keys[LAYER], slot * w, (slot + 1) * w)).isEqualTo(seq.k()[p]);
                assertThat(Arrays.copyOfRange(cache.values[LAYER], slot * w, (slot + 1) * w)).isEqualTo(seq.v()[p]);
            }
        }
        assertThat(cache.keys[0]).containsOnly(Float.NaN);
        assertThat(cache.values[0]).containsOnly(Float.NaN);
    }

    @Test
    void slidingWindowHidesOlderKeys() {
        SplittableRandom r = new SplittableRandom(12);
        AttentionShape windowed = new AttentionShape(2, 1, 8, 0.35f, 3);
        Seq seq = sequences(r, windowed, 9).getFirst();
        // Keys and values outside the window of the last query may be anything: make them huge.
        for (int p = 0; p < 9 - 3; p++) {
            Arrays.fill(seq.k()[p], 1e4f);
            Arrays.fill(seq.v()[p], 1e4f);
        }
        float[] out = step(poisonedCache(windowed), windowed, List.of(new Part(seq, 0, 9)));
        float[] last = rowsOf(out, windowed.queryWidth(), 8, 1);
        assertClose(last, reference(seq, 8, windowed), "last query with window 3");
        for (float f : last) {
            assertThat(Math.abs(f)).isLessThan(10f);
        }
    }

    /** Large enough (90 tokens) to run the attention in parallel; alone each sequence runs serially. */
    @Test
    void attentionIsBitwiseBatchInvariant() {
        SplittableRandom r = new SplittableRandom(13);
        AttentionShape shape = new AttentionShape(4, 2, 16, 0.25f, 0);
        List<Seq> seqs = sequences(r, shape, 3, 37, 50);
        float[] batched = step(poisonedCache(shape), shape, whole(seqs));
        int width = shape.queryWidth();
        int row = 0;
        for (Seq seq : seqs) {
            // Alone, in a fresh cache, through other blocks.
            int[] otherTable = Arrays.copyOfRange(shuffledBlockIds(r), 0, seq.table().length);
            Seq moved = new Seq(seq.q(), seq.k(), seq.v(), otherTable);
            float[] alone = step(poisonedCache(shape), shape, List.of(new Part(moved, 0, seq.length())));
            assertThat(alone).as("sequence of %d alone vs batched", seq.length())
                    .isEqualTo(rowsOf(batched, width, row, seq.length()));
            row += seq.length();
        }
        row = 0;
        for (Seq seq : seqs) {
            for (int p = 0; p < seq.length(); p++, row++) {
                assertClose(rowsOf(batched, width, row, 1), reference(seq, p, shape), "batched attention");
            }
        }
    }

    /**
     * A prompt split in two steps (0..k-1, then k..n-1 over the cache), the second batched with
     * another sequence's first chunk, gives bitwise the one-step result; so does decoding token by token.
     */
    @ParameterizedTest(name = "window {0}")
    @CsvSource({"0", "4"})
    void chunkedPrefillAndDecodeAreBitwiseTheOneStepResult(int window) {
        SplittableRandom r = new SplittableRandom(14 + window);
        AttentionShape shape = new AttentionShape(4, 2, 6, (float) (1 / Math.sqrt(6)), window);
        List<Seq> seqs = sequences(r, shape, 11, 17);
        Seq a = seqs.get(0);
        Seq b = seqs.get(1);
        int width = shape.queryWidth();
        float[] oneStepA = step(poisonedCache(shape), shape, List.of(new Part(a, 0, a.length())));
        float[] oneStepB = step(poisonedCache(shape), shape, List.of(new Part(b, 0, b.length())));
        for (int k = 1; k < a.length(); k++) {
            KvCache cache = poisonedCache(shape);
            float[] first = step(cache, shape, List.of(new Part(a, 0, k)));
            float[] second = step(cache, shape, List.of(new Part(a, k, a.length() - k), new Part(b, 0, 5)));
            assertThat(first).as("first chunk, k = %d", k).isEqualTo(rowsOf(oneStepA, width, 0, k));
            assertThat(rowsOf(second, width, 0, a.length() - k)).as("second chunk, k = %d", k)
                    .isEqualTo(rowsOf(oneStepA, width, k, a.length() - k));
            assertThat(rowsOf(second, width, a.length() - k, 5)).isEqualTo(rowsOf(oneStepB, width, 0, 5));
        }
        // Decoding: one token per step for both sequences together.
        KvCache cache = poisonedCache(shape);
        step(cache, shape, List.of(new Part(a, 0, 1), new Part(b, 0, 6)));
        for (int p = 1; p < a.length(); p++) {
            float[] out = step(cache, shape, List.of(new Part(b, p + 5, 1), new Part(a, p, 1)));
            assertThat(rowsOf(out, width, 1, 1)).as("decode position %d", p).isEqualTo(rowsOf(oneStepA, width, p, 1));
            assertThat(rowsOf(out, width, 0, 1)).isEqualTo(rowsOf(oneStepB, width, p + 5, 1));
        }
        for (int p = 0; p < a.length(); p++) {
            assertClose(rowsOf(oneStepA, width, p, 1), reference(a, p, shape), "one-step attention");
        }
    }
}
