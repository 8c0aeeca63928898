package dev.flora.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.FloraException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The weights of a model directory: {@code model.safetensors}, or the shards named by
 * {@code model.safetensors.index.json}, as transformers saves them.
 */
public final class Checkpoint implements Weights {
    public static final String SINGLE = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";

    private final Path dir;
    private final Map<String, TensorView> tensors;

    private Checkpoint(Path dir, Map<String, TensorView> tensors) {
        this.dir = dir;
        this.tensors = tensors;
    }

    public static Checkpoint open(Path dir) {
        Path index = dir.resolve(INDEX);
        Path single = dir.resolve(SINGLE);
        if (Files.isRegularFile(index)) {
            return openSharded(dir, index);
        }
        if (Files.isRegularFile(single)) {
            SafetensorsFile file = SafetensorsFile.open(single);
            Map<String, TensorView> all = new LinkedHashMap<>();
            file.names().forEach(n -> all.put(n, file.get(n)));
            return new Checkpoint(dir, all);
        }
        if (Files.exists(dir.resolve("pytorch_model.bin")) || Files.exists(dir.resolve("pytorch_model.bin.index.json"))) {
            throw new FloraException(dir + ": only pickled PyTorch weights (pytorch_model.bin) found; Flora reads safetensors only."
                    + " Convert with: python -c \"from transformers import AutoModelForCausalLM as M; M.from_pretrained('DIR').save_pretrained('DIR', safe_serialization=True)\"");
        }
        throw new FloraException(dir + ": no " + SINGLE + " or " + INDEX + " found");
    }

    private static Checkpoint openSharded(Path dir, Path index) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(index.toFile());
        } catch (IOException e) {
            throw new FloraException(index + ": not valid JSON (" + e.getMessage().lines().findFirst().orElse("") + ")");
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new FloraException(index + ": no \"weight_map\" object");
        }
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        Map<String, TensorView> all = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            String shardName = e.getValue().asText();
            Path shardPath = dir.resolve(shardName).normalize();
            if (!shardPath.startsWith(dir.normalize()) || shardName.isEmpty()) {
                throw new FloraException(index + ": shard '" + shardName + "' for '" + e.getKey() + "' is outside the model directory");
            }
            SafetensorsFile shard = shards.computeIfAbsent(shardName, s -> SafetensorsFile.open(shardPath));
            TensorView t = shard.find(e.getKey()).orElseThrow(() -> new FloraException(
                    shardPath + ": missing tensor '" + e.getKey() + "' that " + INDEX + " places there"));
            all.put(e.getKey(), t);
        }
        return new Checkpoint(dir, all);
    }

    @Override
    public Optional<TensorView> find(String name) {
        return Optional.ofNullable(tensors.get(name));
    }

    @Override
    public Set<String> names() {
        return tensors.keySet();
    }

    @Override
    public String describe() {
        return dir.toString();
    }

    /** Whether a directory holds weights Flora can read. */
    public static boolean present(Path dir) {
        return Files.isRegularFile(dir.resolve(SINGLE)) || Files.isRegularFile(dir.resolve(INDEX));
    }
}
