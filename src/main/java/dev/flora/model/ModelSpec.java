package dev.flora.model;

/**
 * What the engine needs to know of a model.
 *
 * @param maxContext      most positions a sequence may hold (prompt and generated tokens)
 * @param kvWidth         keys (and values) per token per layer
 * @param matmulWeights   weights of the matrix products one token goes through (lm_head included)
 * @param matmulBytes     bytes of those weights as stored: what a decode step must read at least once
 * @param weightType      the type the matrix weights are stored in (the first one's; checkpoints use one)
 */
public record ModelSpec(String architecture, int vocabSize, int hiddenSize, int layers, int kvWidth, int maxContext,
                        long matmulWeights, long matmulBytes, dev.flora.backend.DType weightType) {

    /** A spec whose weight counts are those of the given matrix products. */
    public static ModelSpec of(String architecture, int vocabSize, int hiddenSize, int layers, int kvWidth, int maxContext,
                               dev.flora.backend.Tensor lmHead, java.util.List<Linear> linears) {
        long weights = lmHead.numel();
        long bytes = lmHead.numel() * lmHead.dtype().bytes();
        for (Linear l : linears) {
            weights += l.weight().numel();
            bytes += l.weightBytes();
        }
        dev.flora.backend.DType type = linears.isEmpty() ? lmHead.dtype() : linears.getFirst().weight().dtype();
        return new ModelSpec(architecture, vocabSize, hiddenSize, layers, kvWidth, maxContext, weights, bytes, type);
    }
}
