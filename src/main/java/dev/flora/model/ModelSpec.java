package dev.flora.model;

/**
 * What the engine needs to know of a model.
 *
 * @param maxContext most positions a sequence may hold (prompt and generated tokens)
 * @param kvWidth    keys (and values) per token per layer
 */
public record ModelSpec(String architecture, int vocabSize, int hiddenSize, int layers, int kvWidth, int maxContext) {
}
