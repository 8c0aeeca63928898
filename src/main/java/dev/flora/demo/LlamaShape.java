package dev.flora.demo;

import dev.flora.FloraException;

import java.util.Arrays;
import java.util.stream.Collectors;

/**
 * Llama-family shapes for random-weight models (benchmarks need the shape, not trained weights).
 *
 * @param vocab 0: the size of the tokenizer the model ships with
 */
public record LlamaShape(String name, int hidden, int intermediate, int layers, int heads, int kvHeads, int headDim,
                         int vocab, int maxPositions) {
    public static final LlamaShape DEMO = new LlamaShape("demo-100m", 768, 2048, 16, 12, 4, 64, 0, 2048);
    public static final LlamaShape[] KNOWN = {
            DEMO,
            new LlamaShape("tinyllama-1.1b", 2048, 5632, 22, 32, 4, 64, 32000, 2048),
            new LlamaShape("llama2-7b", 4096, 11008, 32, 32, 32, 128, 32000, 4096),
    };

    public static LlamaShape named(String name) {
        return Arrays.stream(KNOWN).filter(s -> s.name.equals(name)).findFirst().orElseThrow(() -> new FloraException(
                "unknown shape '" + name + "' (known: " + Arrays.stream(KNOWN).map(LlamaShape::name).collect(Collectors.joining(", ")) + ")"));
    }
}
