package dev.flora.model.bigcode;

import dev.flora.adapter.AdaptedLinear;
import dev.flora.adapter.AdapterSlots;
import dev.flora.backend.AttentionShape;
import dev.flora.backend.Backend;
import dev.flora.backend.KvCache;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.model.DecoderModel;
import dev.flora.model.Linear;
import dev.flora.safetensors.Weights;

import java.util.List;

/**
 * GPT-BigCode (StarCoder): learned positions, LayerNorm, multi-query attention through a fused
 * c_attn projection, a GELU MLP, biases everywhere, tied embeddings. One definition for every backend.
 */
public final class GptBigCodeModel extends DecoderModel {
    private record Layer(Tensor ln1Weight, Tensor ln1Bias, Linear qkv, Linear out, Tensor ln2Weight, Tensor ln2Bias,
                         Linear fc, Linear proj) {
        List<Linear> linears() {
            return List.of(qkv, out, fc, proj);
        }
    }

    private final GptBigCodeConfig config;
    private final Tensor tokenEmbedding;
    private final Tensor positionEmbedding;
    private final Layer[] layers;
    private final Tensor finalWeight;
    private final Tensor finalBias;
    private final AttentionShape attention;

    public GptBigCodeModel(GptBigCodeConfig config, Weights weights, Backend backend) {
        super(backend);
        this.config = config;
        int d = config.hiddenSize();
        int v = config.vocabSize();
        this.tokenEmbedding = backend.weight(weights.get("transformer.wte.weight", v, d), v, d);
        this.positionEmbedding = backend.weight(weights.get("transformer.wpe.weight", config.maxPositions(), d), config.maxPositions(), d);
        this.layers = new Layer[config.layers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "transformer.h." + i + ".";
            layers[i] = new Layer(
                    vector(weights, p + "ln_1.weight", d), vector(weights, p + "ln_1.bias", d),
                    linear(weights, p + "attn.c_attn", d + 2 * config.kvWidth(), d, true),
                    linear(weights, p + "attn.c_proj", d, d, true),
                    vector(weights, p + "ln_2.weight", d), vector(weights, p + "ln_2.bias", d),
                    linear(weights, p + "mlp.c_fc", config.innerSize(), d, true),
                    linear(weights, p + "mlp.c_proj", d, config.innerSize(), true));
        }
        this.finalWeight = vector(weights, "transformer.ln_f.weight", d);
        this.finalBias = vector(weights, "transformer.ln_f.bias", d);
        Tensor lmHead = config.tieEmbeddings() ? tokenEmbedding : backend.weight(weights.get("lm_head.weight", v, d), v, d);
        float scale = config.scaleAttention() ? (float) (1.0 / Math.sqrt(config.headDim())) : 1f;
        this.attention = new AttentionShape(config.heads(), config.kvHeads(), config.headDim(), scale, 0);
        describe(GptBigCodeConfig.ARCHITECTURE, v, d, config.layers(), config.kvWidth(), config.maxPositions(), lmHead,
                java.util.Arrays.stream(layers).flatMap(l -> l.linears().stream()).toList());
    }

    public GptBigCodeConfig config() {
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
        Tensor fused = backend.allocate(n, d + 2 * config.kvWidth());
        Tensor q = backend.allocate(n, d);
        Tensor k = backend.allocate(n, config.kvWidth());
        Tensor v = backend.allocate(n, config.kvWidth());
        Tensor attn = backend.allocate(n, d);
        Tensor proj = backend.allocate(n, d);
        Tensor inner = backend.allocate(n, config.innerSize());
        backend.embed(tokenEmbedding, step, x);
        backend.addPositionEmbedding(positionEmbedding, step, x);
        for (int i = 0; i < layers.length; i++) {
            Layer layer = layers[i];
            backend.layerNorm(x, layer.ln1Weight, layer.ln1Bias, config.layerNormEps(), h);
            adapted.project(layer.qkv, h, fused);
            backend.splitQkv(fused, config.headDim(), !config.multiQuery(), q, k, v);
            backend.attention(q, k, v, cache, i, attention, step, attn);
            adapted.projectAdd(layer.out, attn, proj, x);
            backend.layerNorm(x, layer.ln2Weight, layer.ln2Bias, config.layerNormEps(), h);
            adapted.project(layer.fc, h, inner);
            backend.activation(config.activation(), inner);
            adapted.projectAdd(layer.proj, inner, proj, x);
        }
        Tensor selected = logitRowsOf(x, batch);
        Tensor out = backend.allocate(selected.rows(), d);
        backend.layerNorm(selected, finalWeight, finalBias, config.layerNormEps(), out);
        return out;
    }

}
