package dev.flora.model.llama;

import dev.flora.adapter.AdaptedLinear;
import dev.flora.adapter.AdapterSlots;
import dev.flora.backend.AttentionShape;
import dev.flora.backend.Backend;
import dev.flora.backend.KvCache;
import dev.flora.backend.RmsNorm;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.model.DecoderModel;
import dev.flora.model.Linear;
import dev.flora.safetensors.Weights;

import java.util.List;

/**
 * The Llama family (Llama, Mistral, Qwen2): RMSNorm, rotary attention with grouped-query heads,
 * a gated MLP. One definition for every backend.
 */
public final class LlamaModel extends DecoderModel {
    private record Layer(RmsNorm inputNorm, Linear q, Linear k, Linear v, Linear o, RmsNorm postNorm,
                         Linear gate, Linear up, Linear down, AttentionShape attention) {
        List<Linear> linears() {
            return List.of(q, k, v, o, gate, up, down);
        }

        /** The three projections that read the normed input, in the order of the step's q, k, v. */
        Linear[] qkv() {
            return new Linear[] {q, k, v};
        }

        Tensor[] qkvWeights() {
            return new Tensor[] {q.weight(), k.weight(), v.weight()};
        }

        Tensor[] qkvBiases() {
            return new Tensor[] {q.bias(), k.bias(), v.bias()};
        }
    }

    private final LlamaConfig config;
    private final Tensor embedding;
    private final Layer[] layers;
    private final Tensor finalNorm;
    private final Tensor invFreq;

    public LlamaModel(LlamaConfig config, Weights weights, Backend backend) {
        super(backend);
        this.config = config;
        int d = config.hiddenSize();
        int v = config.vocabSize();
        this.embedding = backend.weight(weights.get("model.embed_tokens.weight", v, d), v, d);
        this.layers = new Layer[config.layers()];
        float scale = (float) (1.0 / Math.sqrt(config.headDim()));
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".";
            layers[i] = new Layer(
                    new RmsNorm(vector(weights, p + "input_layernorm.weight", d), config.rmsNormEps()),
                    linear(weights, p + "self_attn.q_proj", config.qWidth(), d, config.qkvBias()),
                    linear(weights, p + "self_attn.k_proj", config.kvWidth(), d, config.qkvBias()),
                    linear(weights, p + "self_attn.v_proj", config.kvWidth(), d, config.qkvBias()),
                    linear(weights, p + "self_attn.o_proj", d, config.qWidth(), config.outputBias()),
                    new RmsNorm(vector(weights, p + "post_attention_layernorm.weight", d), config.rmsNormEps()),
                    linear(weights, p + "mlp.gate_proj", config.intermediateSize(), d, config.mlpBias()),
                    linear(weights, p + "mlp.up_proj", config.intermediateSize(), d, config.mlpBias()),
                    linear(weights, p + "mlp.down_proj", d, config.intermediateSize(), config.mlpBias()),
                    new AttentionShape(config.heads(), config.kvHeads(), config.headDim(), scale, config.slidingWindow()[i]));
        }
        this.finalNorm = vector(weights, "model.norm.weight", d);
        Tensor lmHead = config.tieEmbeddings() ? embedding : backend.weight(weights.get("lm_head.weight", v, d), v, d);
        float[] inv = config.rope().inverseFrequencies(config.headDim());
        this.invFreq = backend.fromHost(inv, 1, inv.length);
        describe(config.architecture(), v, d, config.layers(), config.kvWidth(), config.maxPositions(), lmHead,
                java.util.Arrays.stream(layers).flatMap(l -> l.linears().stream()).toList());
    }

    public LlamaConfig config() {
        return config;
    }

    @Override
    public Tensor forward(TokenBatch batch, KvCache cache, AdapterSlots adapters) {
        Backend.StepData step = backend.prepare(batch);
        AdaptedLinear adapted = AdaptedLinear.forStep(backend, adapters, batch);
        int n = batch.numTokens();
        int d = config.hiddenSize();
        Tensor x = backend.allocate(n, d);
        Tensor h = backend.allocate(n, d);
        Tensor q = backend.allocate(n, config.qWidth());
        Tensor k = backend.allocate(n, config.kvWidth());
        Tensor v = backend.allocate(n, config.kvWidth());
        Tensor[] qkv = {q, k, v};
        Tensor attn = backend.allocate(n, config.qWidth());
        Tensor proj = backend.allocate(n, d);
        Tensor gate = backend.allocate(n, config.intermediateSize());
        Tensor up = backend.allocate(n, config.intermediateSize());
        backend.embed(embedding, step, x);
        for (int i = 0; i < layers.length; i++) {
            Layer layer = layers[i];
            if (adapted.adapts(layer.q) || adapted.adapts(layer.k) || adapted.adapts(layer.v)) {
                adapted.normProjectAll(x, layer.inputNorm, h, layer.qkv(), qkv);
                backend.rotaryAttention(q, k, v, config.headDim(), invFreq, cache, i, layer.attention, step, attn);
            } else {
                backend.normProjectRotaryAttention(x, layer.inputNorm, h, layer.qkvWeights(), layer.qkvBiases(), q, k, v, config.headDim(),
                        invFreq, cache, i, layer.attention, step, attn);
            }
            adapted.projectAdd(layer.o, attn, proj, x);
            adapted.normGatedProjectAdd(x, layer.postNorm, h, layer.gate, layer.up, config.activation(), layer.down, gate, up, proj, x);
        }
        Tensor selected = logitRowsOf(x, batch);
        Tensor out = backend.allocate(selected.rows(), d);
        backend.rmsNorm(selected, finalNorm, config.rmsNormEps(), out);
        return out;
    }

}
