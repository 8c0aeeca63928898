package dev.flora.model;

import dev.flora.FloraException;
import dev.flora.backend.Backend;
import dev.flora.model.bigcode.GptBigCodeConfig;
import dev.flora.model.bigcode.GptBigCodeModel;
import dev.flora.model.llama.LlamaConfig;
import dev.flora.model.llama.LlamaModel;
import dev.flora.safetensors.Checkpoint;

import java.util.List;

/** Builds the model a directory's config.json names. */
public final class Models {
    public static final List<String> SUPPORTED = java.util.stream.Stream.concat(
            LlamaConfig.ARCHITECTURES.stream(), java.util.stream.Stream.of(GptBigCodeConfig.ARCHITECTURE)).toList();

    private Models() {
    }

    public static CausalLM load(ModelDirectory dir, Backend backend) {
        return load(dir, backend, false);
    }

    /** With {@code randomWeights}, the directory needs only config.json (see {@link RandomWeights}). */
    public static CausalLM load(ModelDirectory dir, Backend backend, boolean randomWeights) {
        String arch = dir.architecture();
        boolean known = LlamaConfig.ARCHITECTURES.contains(arch) || arch.equals(GptBigCodeConfig.ARCHITECTURE);
        if (!known) {
            throw dir.config().error("architecture '" + arch + "' is not supported (supported: " + String.join(", ", SUPPORTED) + ")");
        }
        // config.json first: a bad config is reported before any weight file is looked for
        if (LlamaConfig.ARCHITECTURES.contains(arch)) {
            LlamaConfig config = LlamaConfig.read(dir.config(), arch);
            return new LlamaModel(config, weights(dir, randomWeights), backend);
        }
        GptBigCodeConfig config = GptBigCodeConfig.read(dir.config());
        return new GptBigCodeModel(config, weights(dir, randomWeights), backend);
    }

    private static dev.flora.safetensors.Weights weights(ModelDirectory dir, boolean random) {
        return random ? RandomWeights.forConfig(dir.config()) : Checkpoint.open(dir.path());
    }
}
