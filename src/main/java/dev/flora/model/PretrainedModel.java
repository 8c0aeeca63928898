package dev.flora.model;

import dev.flora.backend.Backend;
import dev.flora.tokenizer.Tokenizer;

import java.nio.file.Path;
import java.util.Set;

/** A model directory loaded for use: its network on a backend, its tokenizer and its stop tokens. */
public record PretrainedModel(ModelDirectory directory, CausalLM model, Tokenizer tokenizer, Set<Integer> eosTokenIds)
        implements AutoCloseable {

    public static PretrainedModel load(Path dir, Backend backend) {
        return load(dir, backend, false);
    }

    /** With {@code randomWeights}, the directory may hold config.json and tokenizer.json alone (weights made by the backend). */
    public static PretrainedModel load(Path dir, Backend backend, boolean randomWeights) {
        ModelDirectory directory = ModelDirectory.open(dir);
        CausalLM model = Models.load(directory, backend, randomWeights);
        Tokenizer tokenizer = Tokenizer.load(directory.tokenizerFile());
        return new PretrainedModel(directory, model, tokenizer, directory.eosTokenIds());
    }

    @Override
    public void close() {
        tokenizer.close();
        model.backend().close();
    }
}
