package dev.flora.adapter;

import dev.flora.FloraException;
import dev.flora.backend.Backend;
import dev.flora.backend.DeviceMemoryFull;
import dev.flora.backend.Tensor;
import dev.flora.model.Linear;
import dev.flora.safetensors.SafetensorsFile;
import dev.flora.safetensors.TensorView;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Reads an adapter directory as PEFT writes it (adapter_config.json + adapter_model.safetensors)
 * and checks every tensor against the base model: the module must exist and the shapes must fit.
 * The adapted modules and their ranks come from the tensor keys and shapes; scales from the config.
 */
public final class AdapterLoader {
    private static final String PREFIX = "base_model.model.";

    private AdapterLoader() {
    }

    public static Adapter load(String name, Path dir, Map<String, Linear> baseModules, Backend backend) {
        if (!Files.isDirectory(dir)) {
            throw new FloraException(dir + ": adapter '" + name + "' is not a directory");
        }
        byte[] configBytes = AdapterConfig.bytes(dir);
        AdapterConfig config = AdapterConfig.parse(dir, configBytes);
        Path weights = dir.resolve("adapter_model.safetensors");
        if (!Files.isRegularFile(weights)) {
            if (Files.exists(dir.resolve("adapter_model.bin"))) {
                throw new FloraException(dir + ": only a pickled adapter_model.bin; Flora reads safetensors. Convert with: "
                        + "python -c \"from peft import PeftModel; ...; model.save_pretrained(DIR, safe_serialization=True)\"");
            }
            throw new FloraException(dir + ": no adapter_model.safetensors");
        }
        SafetensorsFile file = SafetensorsFile.open(weights);
        Map<String, Map<String, TensorView>> byModule = new TreeMap<>();
        for (String key : file.names()) {
            if (!key.startsWith(PREFIX)) {
                throw new FloraException(weights + ": tensor '" + key + "' is not a PEFT adapter key (expected " + PREFIX + "...)");
            }
            String rest = key.substring(PREFIX.length());
            String part = partOf(config.kind(), rest, weights, key);
            String module = rest.substring(0, rest.length() - part.length() - 1);
            byModule.computeIfAbsent(module, m -> new LinkedHashMap<>()).put(part, file.get(key));
        }
        if (byModule.isEmpty()) {
            throw new FloraException(weights + ": holds no adapter tensors");
        }
        Map<String, AdapterModule> modules = new LinkedHashMap<>();
        try {
            for (var e : byModule.entrySet()) {
                String module = e.getKey();
                Linear base = baseModules.get(module);
                if (base == null) {
                    throw new FloraException(weights + ": module '" + module + "' does not exist in the base model"
                            + (module.endsWith("embed_tokens") || module.endsWith("lm_head") ? " as an adaptable linear layer (embedding LoRA is not supported)" : ""));
                }
                modules.put(module, switch (config.kind()) {
                    case LORA -> lora(config, weights, module, e.getValue(), base, backend);
                    case IA3 -> ia3(weights, module, e.getValue(), base, backend);
                    case FLORA -> flora(config, weights, module, e.getValue(), base, backend);
                });
            }
        } catch (DeviceMemoryFull e) {
            throw doesNotFit(name, dir, weights, e);
        }
        return new Adapter(name, config.kind(), dir, config, modules, contentHash(configBytes, file));
    }

    /**
     * A device full while the adapter's factors go up: on the GPU every loaded adapter stays in the
     * device's memory (its host tier is GPU memory, README), so what to lower is how many are held.
     */
    private static FloraException doesNotFit(String name, Path dir, Path weights, DeviceMemoryFull e) {
        long bytes;
        try {
            bytes = Files.size(weights);
        } catch (java.io.IOException io) {
            bytes = -1;
        }
        String size = bytes < 0 ? "" : String.format(java.util.Locale.ROOT, " (%.1f MB of factors)", bytes / 1e6);
        return new FloraException(dir + ": adapter '" + name + "'" + size + " does not fit in the device's memory, where every loaded "
                + "adapter stays: hold fewer at once (--max-cpu-adapters), or give the KV cache less (--kv-cache-memory) ("
                + e.getMessage() + ")", e);
    }

    /** SHA-256 of the config's bytes and of the weights file as mapped: what the adapter was read from. */
    private static String contentHash(byte[] config, SafetensorsFile weights) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(java.nio.ByteBuffer.allocate(Long.BYTES).putLong(config.length).flip()); // no config/weights boundary ambiguity
            sha.update(config);
            weights.digest(sha);
            return HexFormat.of().formatHex(sha.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime has SHA-256", e);
        }
    }

    /** The tensor's role (lora_A.weight, lora_B.weight, lora_B.bias, ia3_l, flora_A.weight, flora_B.weight). */
    private static String partOf(AdapterKind kind, String rest, Path file, String key) {
        String[] parts = switch (kind) {
            case LORA -> new String[] {"lora_A.weight", "lora_B.weight", "lora_B.bias"};
            case IA3 -> new String[] {"ia3_l"};
            case FLORA -> new String[] {"flora_A.weight", "flora_B.weight"};
        };
        for (String p : parts) {
            if (rest.endsWith("." + p)) {
                return p;
            }
        }
        if (rest.contains("lora_embedding") || rest.contains("lora_magnitude")) {
            throw new FloraException(file + ": tensor '" + key + "' needs " + (rest.contains("magnitude") ? "DoRA" : "embedding LoRA") + ", which is not supported");
        }
        throw new FloraException(file + ": tensor '" + key + "' is not a " + kind + " tensor (expected " + String.join(", ", parts) + ")");
    }

    private static TensorView need(Map<String, TensorView> parts, String part, Path file, String module) {
        TensorView t = parts.get(part);
        if (t == null) {
            throw new FloraException(file + ": module '" + module + "' has no " + part);
        }
        if (!t.dtype().isFloating()) {
            throw new FloraException(file + ": " + t.name() + " is " + t.dtype() + ", expected a floating type");
        }
        return t;
    }

    private static FloraException shape(Path file, TensorView t, String expected, Linear base) {
        return new FloraException(file + ": " + t.name() + " has shape " + t.shapeString() + ", but " + expected
                + " for the base layer " + base.module() + " [" + base.outFeatures() + ", " + base.inFeatures() + "]");
    }

    private static AdapterModule.Lora lora(AdapterConfig config, Path file, String module, Map<String, TensorView> parts, Linear base, Backend backend) {
        TensorView a = need(parts, "lora_A.weight", file, module);
        TensorView b = need(parts, "lora_B.weight", file, module);
        if (a.rank() != 2 || a.shape()[1] != base.inFeatures() || a.shape()[0] < 1) {
            throw shape(file, a, "lora_A must be [r, " + base.inFeatures() + "]", base);
        }
        int r = (int) a.shape()[0];
        if (b.rank() != 2 || b.shape()[0] != base.outFeatures() || b.shape()[1] != r) {
            throw shape(file, b, "lora_B must be [" + base.outFeatures() + ", " + r + "] (r from lora_A)", base);
        }
        int expected = config.expectedRank(module);
        if (expected != r) {
            throw new FloraException(file + ": module '" + module + "' has rank " + r + " but adapter_config.json gives it rank " + expected);
        }
        Tensor bias = null;
        TensorView bv = parts.get("lora_B.bias");
        if (bv != null) {
            if (bv.rank() != 1 || bv.shape()[0] != base.outFeatures()) {
                throw shape(file, bv, "lora_B.bias must be [" + base.outFeatures() + "]", base);
            }
            bias = backend.weight(bv, 1, base.outFeatures());
        } else if (config.loraBias()) {
            throw new FloraException(file + ": lora_bias is set but module '" + module + "' has no lora_B.bias");
        }
        return new AdapterModule.Lora(backend.weight(a, r, base.inFeatures()), backend.weight(b, base.outFeatures(), r), bias,
                (float) config.scaleFor(module, r), r);
    }

    private static AdapterModule.Ia3 ia3(Path file, String module, Map<String, TensorView> parts, Linear base, Backend backend) {
        TensorView l = need(parts, "ia3_l", file, module);
        long[] s = l.shape();
        if (s.length == 2 && s[0] == base.outFeatures() && s[1] == 1) {
            return new AdapterModule.Ia3(backend.fromHost(l.toFloatArray(), 1, base.outFeatures()), false);
        }
        if (s.length == 2 && s[0] == 1 && s[1] == base.inFeatures()) {
            return new AdapterModule.Ia3(backend.fromHost(l.toFloatArray(), 1, base.inFeatures()), true);
        }
        throw shape(file, l, "ia3_l must be [" + base.outFeatures() + ", 1] or, for a feed-forward module, [1, " + base.inFeatures() + "]", base);
    }

    private static AdapterModule.Flora flora(AdapterConfig config, Path file, String module, Map<String, TensorView> parts, Linear base, Backend backend) {
        TensorView a = need(parts, "flora_A.weight", file, module);
        TensorView b = need(parts, "flora_B.weight", file, module);
        int r = config.r();
        if (a.rank() != 2 || a.shape()[0] != r || a.shape()[1] != base.inFeatures()) {
            throw shape(file, a, "flora_A must be [" + r + ", " + base.inFeatures() + "] (r from adapter_config.json)", base);
        }
        if (b.rank() != 2 || b.shape()[0] != base.outFeatures() || b.shape()[1] != r) {
            throw shape(file, b, "flora_B must be [" + base.outFeatures() + ", " + r + "]", base);
        }
        float[] bv = b.toFloatArray();
        int out = base.outFeatures();
        float[] bt = new float[r * out];
        for (int o = 0; o < out; o++) {
            for (int j = 0; j < r; j++) {
                bt[j * out + o] = bv[o * r + j];
            }
        }
        return new AdapterModule.Flora(backend.fromHost(a.toFloatArray(), r, base.inFeatures()), backend.fromHost(bt, r, out), r);
    }

}
