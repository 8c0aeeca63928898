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
        String arch = dir.architecture();
        if (LlamaConfig.ARCHITECTURES.contains(arch)) {
            LlamaConfig config = LlamaConfig.read(dir.config(), arch);
            return new LlamaModel(config, Checkpoint.open(dir.path()), backend);
        }
        if (arch.equals(GptBigCodeConfig.ARCHITECTURE)) {
            return new GptBigCodeModel(GptBigCodeConfig.read(dir.config()), Checkpoint.open(dir.path()), backend);
        }
        throw dir.config().error("architecture '" + arch + "' is not supported (supported: " + String.join(", ", SUPPORTED) + ")");
    }
}
