package dev.flora.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.FloraException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;

/**
 * A Hugging Face model directory as {@code save_pretrained} writes it: config.json,
 * generation_config.json (optional), tokenizer.json and safetensors weights.
 */
public record ModelDirectory(Path path, ConfigReader config, JsonNode generationConfig) {

    public static ModelDirectory open(Path path) {
        if (!Files.isDirectory(path)) {
            throw new FloraException(path + ": not a model directory (it does not exist or is not a directory)");
        }
        ConfigReader config = new ConfigReader(readJson(path.resolve("config.json"), true), path.resolve("config.json"));
        if (!config.root().isObject()) {
            throw config.error("not a JSON object");
        }
        JsonNode generation = readJson(path.resolve("generation_config.json"), false);
        return new ModelDirectory(path, config, generation);
    }

    static JsonNode readJson(Path file, boolean required) {
        if (!Files.isRegularFile(file)) {
            if (required) {
                throw new FloraException(file + ": missing");
            }
            return null;
        }
        try {
            return new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            String reason = e.getMessage() == null ? e.toString() : e.getMessage().lines().findFirst().orElse("");
            throw new FloraException(file + ": not valid JSON (" + reason + ")");
        }
    }

    /** The architecture named by config.json's "architectures" (or its model_type). */
    public String architecture() {
        JsonNode archs = config.node("architectures");
        if (archs != null && archs.isArray() && !archs.isEmpty()) {
            return archs.get(0).asText();
        }
        String type = config.stringOr("model_type", null);
        if (type == null) {
            throw config.error("names no architecture (no \"architectures\" or \"model_type\")");
        }
        return switch (type) {
            case "llama" -> "LlamaForCausalLM";
            case "mistral" -> "MistralForCausalLM";
            case "qwen2" -> "Qwen2ForCausalLM";
            case "gpt_bigcode" -> "GPTBigCodeForCausalLM";
            default -> type;
        };
    }

    public Path tokenizerFile() {
        return path.resolve("tokenizer.json");
    }

    /** Token ids that end generation: generation_config.json's eos_token_id, else config.json's. */
    public Set<Integer> eosTokenIds() {
        Set<Integer> ids = new LinkedHashSet<>();
        JsonNode source = generationConfig != null && generationConfig.has("eos_token_id") ? generationConfig.get("eos_token_id") : config.node("eos_token_id");
        if (source != null) {
            if (source.isArray()) {
                source.forEach(n -> ids.add(n.asInt()));
            } else if (source.isIntegralNumber()) {
                ids.add(source.asInt());
            }
        }
        return ids;
    }

}
