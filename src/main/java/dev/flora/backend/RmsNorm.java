package dev.flora.backend;

/** An RMSNorm layer: x / sqrt(mean(x²) + eps) ∘ weight, per row. */
public record RmsNorm(Tensor weight, float eps) {
}
