package dev.flora.model;

import dev.flora.backend.Tensor;

/**
 * One nn.Linear of a checkpoint: W [out, in] and an optional bias [1, out]. Its module name
 * (e.g. {@code model.layers.0.self_attn.q_proj}) is what adapters target.
 */
public record Linear(String module, Tensor weight, Tensor bias) {
    public int outFeatures() {
        return weight.rows();
    }

    public int inFeatures() {
        return weight.cols();
    }

    /** Bytes of the weight matrix as stored. */
    public long weightBytes() {
        return weight.numel() * weight.dtype().bytes();
    }
}
