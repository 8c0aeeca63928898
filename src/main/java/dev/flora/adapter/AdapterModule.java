package dev.flora.adapter;

import dev.flora.backend.Tensor;

/** One adapted linear layer of one adapter, its tensors on the backend. */
public sealed interface AdapterModule {
    /** Adapter parameters in this module. */
    long parameters();

    /** y += scale · (B (A x) + bias): A [r, in], B [out, r], bias [1, out] or null (lora_bias). */
    record Lora(Tensor a, Tensor b, Tensor bias, float scale, int rank) implements AdapterModule {
        @Override
        public long parameters() {
            return a.numel() + b.numel() + (bias == null ? 0 : bias.numel());
        }
    }

    /**
     * IA3: y = l ∘ (W0 x + b0) on the output side, or y = W0 (l ∘ x) + b0 for feed-forward modules.
     *
     * @param scale [1, out] or, with {@code inputSide}, [1, in]
     */
    record Ia3(Tensor scale, boolean inputSide) implements AdapterModule {
        @Override
        public long parameters() {
            return scale.numel();
        }
    }

    /**
     * fLoRA: y = (W0 ∘ (B A) / r) x + b0 = (1/r) Σ_j B[:, j] ∘ (W0 (A[j, :] ∘ x)) + b0.
     *
     * @param a  A [r, in]: row j modulates the input
     * @param bt B transposed [r, out]: row j demodulates the output
     */
    record Flora(Tensor a, Tensor bt, int rank) implements AdapterModule {
        @Override
        public long parameters() {
            return a.numel() + bt.numel();
        }
    }
}
