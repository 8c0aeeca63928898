package dev.flora.model;

import dev.flora.backend.Activation;
import dev.flora.model.llama.LlamaConfig;
import dev.flora.safetensors.Checkpoint;
import dev.flora.safetensors.TensorView;

import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import java.util.TreeSet;

/**
 * A plain float64 forward pass of transformers' LlamaForCausalLM / MistralForCausalLM /
 * Qwen2ForCausalLM for ONE sequence: no cache, no batching, no tricks. Every step is written the
 * way the transformers code reads, so that it is obviously right; only the weights (stored as
 * float32/16) and the RoPE inverse frequencies and angles (float32 in transformers) are not float64.
 */
public final class ReferenceLlama {

    /**
     * @param logprobs log p(token i | tokens before i); index 0 is NaN
     * @param argmax   argmax of the logits at each position (the greedy next token after it)
     * @param margin   the top-1 minus top-2 logit at each position
     */
    public record Output(double[] logprobs, int[] argmax, double[] margin) {
        /** The greedy token after the last position. */
        public int nextToken() {
            return argmax[argmax.length - 1];
        }

        public double nextMargin() {
            return margin[margin.length - 1];
        }
    }

    private record Layer(double[] inputNorm, double[][] q, double[] qBias, double[][] k, double[] kBias,
                         double[][] v, double[] vBias, double[][] o, double[] oBias, double[] postNorm,
                         double[][] gate, double[] gateBias, double[][] up, double[] upBias,
                         double[][] down, double[] downBias, int window) {
    }

    private final LlamaConfig config;
    private final double[][] embed;
    private final Layer[] layers;
    private final double[] finalNorm;
    private final double[][] lmHead;
    private final float[] invFreq;

    private ReferenceLlama(LlamaConfig config, double[][] embed, Layer[] layers, double[] finalNorm, double[][] lmHead, float[] invFreq) {
        this.config = config;
        this.embed = embed;
        this.layers = layers;
        this.finalNorm = finalNorm;
        this.lmHead = lmHead;
        this.invFreq = invFreq;
    }

    /** Loads a model directory, checking that every tensor of the checkpoint is used. */
    public static ReferenceLlama load(Path dir) {
        ModelDirectory md = ModelDirectory.open(dir);
        LlamaConfig c = LlamaConfig.read(md.config(), md.architecture());
        return load(dir, c, c.slidingWindow());
    }

    /** As {@link #load(Path)}, with these per-layer sliding windows instead of the config's (0: none). */
    public static ReferenceLlama load(Path dir, LlamaConfig c, int[] windows) {
        Checkpoint ckpt = Checkpoint.open(dir);
        Set<String> used = new HashSet<>();
        Loader in = new Loader(ckpt, used);
        int d = c.hiddenSize();
        double[][] embed = in.matrix("model.embed_tokens.weight", c.vocabSize(), d);
        Layer[] layers = new Layer[c.layers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".";
            String a = p + "self_attn.";
            String m = p + "mlp.";
            layers[i] = new Layer(
                    in.vector(p + "input_layernorm.weight", d),
                    in.matrix(a + "q_proj.weight", c.qWidth(), d), c.qkvBias() ? in.vector(a + "q_proj.bias", c.qWidth()) : null,
                    in.matrix(a + "k_proj.weight", c.kvWidth(), d), c.qkvBias() ? in.vector(a + "k_proj.bias", c.kvWidth()) : null,
                    in.matrix(a + "v_proj.weight", c.kvWidth(), d), c.qkvBias() ? in.vector(a + "v_proj.bias", c.kvWidth()) : null,
                    in.matrix(a + "o_proj.weight", d, c.qWidth()), c.outputBias() ? in.vector(a + "o_proj.bias", d) : null,
                    in.vector(p + "post_attention_layernorm.weight", d),
                    in.matrix(m + "gate_proj.weight", c.intermediateSize(), d), c.mlpBias() ? in.vector(m + "gate_proj.bias", c.intermediateSize()) : null,
                    in.matrix(m + "up_proj.weight", c.intermediateSize(), d), c.mlpBias() ? in.vector(m + "up_proj.bias", c.intermediateSize()) : null,
                    in.matrix(m + "down_proj.weight", d, c.intermediateSize()), c.mlpBias() ? in.vector(m + "down_proj.bias", d) : null,
                    windows[i]);
        }
        double[] finalNorm = in.vector("model.norm.weight", d);
        double[][] lmHead = c.tieEmbeddings() ? embed : in.matrix("lm_head.weight", c.vocabSize(), d);
        Set<String> unused = new TreeSet<>(ckpt.names());
        unused.removeAll(used);
        if (!unused.isEmpty()) {
            throw new IllegalStateException(dir + ": tensors the model does not use: " + unused);
        }
        return new ReferenceLlama(c, embed, layers, finalNorm, lmHead, c.rope().inverseFrequencies(c.headDim()));
    }

    private record Loader(Checkpoint ckpt, Set<String> used) {
        double[][] matrix(String name, int rows, int cols) {
            TensorView t = ckpt.get(name, rows, cols);
            used.add(name);
            double[][] w = new double[rows][cols];
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    w[r][c] = t.getFloat((long) r * cols + c);
                }
            }
            return w;
        }

        double[] vector(String name, int n) {
            TensorView t = ckpt.get(name, n);
            used.add(name);
            double[] v = new double[n];
            for (int i = 0; i < n; i++) {
                v[i] = t.getFloat(i);
            }
            return v;
        }
    }

    public LlamaConfig config() {
        return config;
    }

    /**
     * Changes a linear layer's output for one token, as an adapter would: given the module name
     * (e.g. model.layers.0.self_attn.q_proj), the token's position, the layer input, its weight
     * [out][in] and bias, and the base output W x + b.
     */
    public interface LinearHook {
        LinearHook NONE = (module, position, x, w, bias, base) -> base;

        double[] apply(String module, int position, double[] x, double[][] w, double[] bias, double[] base);
    }

    /** Runs the whole sequence and scores every token given the ones before it. */
    public Output forward(int[] tokens) {
        return forward(tokens, LinearHook.NONE);
    }

    /** As {@link #forward(int[])}, with every linear layer's output passed through a hook, token by token. */
    public Output forward(int[] tokens, LinearHook hook) {
        int n = tokens.length;
        int d = config.hiddenSize();
        double eps = config.rmsNormEps();
        double[][] x = new double[n][];
        for (int t = 0; t < n; t++) {
            x[t] = embed[tokens[t]].clone();
        }
        for (int li = 0; li < layers.length; li++) {
            Layer layer = layers[li];
            String p = "model.layers." + li + ".";
            // Self-attention block.
            double[][] q = new double[n][];
            double[][] k = new double[n][];
            double[][] v = new double[n][];
            for (int t = 0; t < n; t++) {
                double[] h = rmsNorm(x[t], layer.inputNorm, eps);
                q[t] = rope(hooked(hook, p + "self_attn.q_proj", t, h, layer.q, layer.qBias), t, config.heads());
                k[t] = rope(hooked(hook, p + "self_attn.k_proj", t, h, layer.k, layer.kBias), t, config.kvHeads());
                v[t] = hooked(hook, p + "self_attn.v_proj", t, h, layer.v, layer.vBias);
            }
            for (int t = 0; t < n; t++) {
                double[] attn = attend(q, k, v, t, layer.window);
                double[] o = hooked(hook, p + "self_attn.o_proj", t, attn, layer.o, layer.oBias);
                for (int i = 0; i < d; i++) {
                    x[t][i] += o[i];
                }
            }
            // MLP block: down(act(gate(h)) * up(h)).
            for (int t = 0; t < n; t++) {
                double[] h = rmsNorm(x[t], layer.postNorm, eps);
                double[] g = hooked(hook, p + "mlp.gate_proj", t, h, layer.gate, layer.gateBias);
                double[] u = hooked(hook, p + "mlp.up_proj", t, h, layer.up, layer.upBias);
                double[] m = new double[g.length];
                for (int i = 0; i < m.length; i++) {
                    m[i] = act(config.activation(), g[i]) * u[i];
                }
                double[] down = hooked(hook, p + "mlp.down_proj", t, m, layer.down, layer.downBias);
                for (int i = 0; i < d; i++) {
                    x[t][i] += down[i];
                }
            }
        }
        double[] logprobs = new double[n];
        logprobs[0] = Double.NaN;
        int[] argmax = new int[n];
        double[] margin = new double[n];
        for (int t = 0; t < n; t++) {
            double[] logits = linear(rmsNorm(x[t], finalNorm, eps), lmHead, null);
            double max = Double.NEGATIVE_INFINITY;
            double second = Double.NEGATIVE_INFINITY;
            int best = -1;
            for (int i = 0; i < logits.length; i++) {
                if (logits[i] > max) {
                    second = max;
                    max = logits[i];
                    best = i;
                } else if (logits[i] > second) {
                    second = logits[i];
                }
            }
            double sum = 0;
            for (double l : logits) {
                sum += Math.exp(l - max);
            }
            double logZ = max + Math.log(sum);
            argmax[t] = best;
            margin[t] = max - second;
            if (t + 1 < n) {
                logprobs[t + 1] = logits[tokens[t + 1]] - logZ;
            }
        }
        return new Output(logprobs, argmax, margin);
    }

    private static double[] hooked(LinearHook hook, String module, int t, double[] x, double[][] w, double[] bias) {
        return hook.apply(module, t, x, w, bias, linear(x, w, bias));
    }

    /** y = w * (x / sqrt(mean(x^2) + eps)). */
    static double[] rmsNorm(double[] x, double[] w, double eps) {
        double sq = 0;
        for (double v : x) {
            sq += v * v;
        }
        double inv = 1.0 / Math.sqrt(sq / x.length + eps);
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = w[i] * (x[i] * inv);
        }
        return y;
    }

    /** y = W x (+ b), W [out][in]. */
    static double[] linear(double[] x, double[][] w, double[] bias) {
        double[] y = new double[w.length];
        for (int o = 0; o < w.length; o++) {
            double s = 0;
            for (int i = 0; i < x.length; i++) {
                s += w[o][i] * x[i];
            }
            y[o] = bias == null ? s : s + bias[o];
        }
        return y;
    }

    /** Rotate-half RoPE of every head at position pos; the angle pos * inv_freq is float32 in transformers. */
    private double[] rope(double[] x, int pos, int heads) {
        int hd = config.headDim();
        int half = hd / 2;
        double[] y = new double[x.length];
        for (int h = 0; h < heads; h++) {
            int b = h * hd;
            for (int i = 0; i < half; i++) {
                double angle = (float) pos * invFreq[i];
                double cos = Math.cos(angle);
                double sin = Math.sin(angle);
                y[b + i] = x[b + i] * cos - x[b + i + half] * sin;
                y[b + i + half] = x[b + i + half] * cos + x[b + i] * sin;
            }
        }
        return y;
    }

    /** Causal attention of query t over keys s <= t (and s > t - window when window > 0), GQA by h / group. */
    private double[] attend(double[][] q, double[][] k, double[][] v, int t, int window) {
        int heads = config.heads();
        int hd = config.headDim();
        int group = heads / config.kvHeads();
        double scale = 1.0 / Math.sqrt(hd);
        double[] out = new double[heads * hd];
        for (int h = 0; h < heads; h++) {
            int kvh = h / group;
            double[] scores = new double[t + 1];
            double max = Double.NEGATIVE_INFINITY;
            for (int s = 0; s <= t; s++) {
                if (window > 0 && s <= t - window) {
                    scores[s] = Double.NEGATIVE_INFINITY;
                    continue;
                }
                double dot = 0;
                for (int i = 0; i < hd; i++) {
                    dot += q[t][h * hd + i] * k[s][kvh * hd + i];
                }
                scores[s] = dot * scale;
                max = Math.max(max, scores[s]);
            }
            double sum = 0;
            for (int s = 0; s <= t; s++) {
                scores[s] = Math.exp(scores[s] - max);
                sum += scores[s];
            }
            for (int s = 0; s <= t; s++) {
                double p = scores[s] / sum;
                for (int i = 0; i < hd; i++) {
                    out[h * hd + i] += p * v[s][kvh * hd + i];
                }
            }
        }
        return out;
    }

    /** transformers' ACT2FN, in float64. */
    public static double act(Activation a, double x) {
        return switch (a) {
            case SILU -> x / (1 + Math.exp(-x));
            case GELU -> 0.5 * x * (1 + erf(x / Math.sqrt(2)));
            case GELU_TANH -> 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
            case RELU -> Math.max(0, x);
        };
    }

    private static final MathContext MC = new MathContext(64);
    private static final BigDecimal TWO_OVER_SQRT_PI = BigDecimal.TWO.divide(
            new BigDecimal("3.14159265358979323846264338327950288419716939937510582097494459230781640628620899863").sqrt(MC), MC);

    /**
     * erf(x) from its Maclaurin series summed in 64-digit decimal arithmetic, so no cancellation
     * matters: 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1)). |x| >= 6 rounds to +-1 in double.
     */
    public static double erf(double x) {
        if (Math.abs(x) >= 6) {
            return Math.copySign(1.0, x);
        }
        BigDecimal bx = new BigDecimal(x);
        BigDecimal x2 = bx.multiply(bx, MC).negate();
        BigDecimal power = bx; // (-1)^n x^(2n+1) / n!
        BigDecimal sum = BigDecimal.ZERO;
        BigDecimal tiny = new BigDecimal("1e-40");
        for (int n = 0; ; n++) {
            if (n > 0) {
                power = power.multiply(x2, MC).divide(BigDecimal.valueOf(n), MC);
            }
            BigDecimal term = power.divide(BigDecimal.valueOf(2L * n + 1), MC);
            sum = sum.add(term, MC);
            if (n > 2 && term.abs().compareTo(tiny) < 0) {
                break;
            }
        }
        return sum.multiply(TWO_OVER_SQRT_PI, MC).doubleValue();
    }
}
