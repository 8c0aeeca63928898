package dev.flora.backend;

import dev.flora.FloraException;

import java.util.Locale;

/** Element-wise activations, named as transformers' ACT2FN names them. */
public enum Activation {
    SILU, GELU, GELU_TANH, RELU;

    public static Activation fromConfig(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "silu", "swish" -> SILU;
            case "gelu" -> GELU;
            case "gelu_pytorch_tanh", "gelu_new", "gelu_fast" -> GELU_TANH;
            case "relu" -> RELU;
            default -> throw new FloraException("activation '" + name
                    + "' is not supported (supported: silu, gelu, gelu_pytorch_tanh, gelu_new, relu)");
        };
    }
}
