package dev.flora.model;

import dev.flora.FloraException;
import dev.flora.backend.Backend;
import dev.flora.model.llama.LlamaConfig;
import dev.flora.model.llama.LlamaModel;
import dev.flora.safetensors.Checkpoint;

import java.util.List;

/** Builds the model a directory's config.json names. */
public final class Models {
    public static final List<String> SUPPORTED = LlamaConfig.ARCHITECTURES;

    private Models() {
    }

    public static CausalLM load(ModelDirectory dir, Backend backend) {
        String arch = dir.architecture();
        if (LlamaConfig.ARCHITECTURES.contains(arch)) {
            LlamaConfig config = LlamaConfig.read(dir.config(), arch);
            return new LlamaModel(config, Checkpoint.open(dir.path()), backend);
        }
        throw dir.config().error("architecture '" + arch + "' is not supported (supported: " + String.join(", ", SUPPORTED) + ")");
    }
}
