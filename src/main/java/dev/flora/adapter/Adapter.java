package dev.flora.adapter;

import java.nio.file.Path;
import java.util.Map;
import java.util.TreeSet;

/**
 * A loaded adapter: its kind and, for every linear layer it adapts (by module name, e.g.
 * {@code model.layers.0.self_attn.q_proj}), its tensors on the backend.
 *
 * @param contentHash SHA-256 (hex) of adapter_config.json and adapter_model.safetensors as they were read,
 *                    or null for an adapter made in memory: what a reload from disk must find again
 */
public record Adapter(String name, AdapterKind kind, Path dir, AdapterConfig config, Map<String, AdapterModule> modules,
                      String contentHash) {

    /** An adapter made in memory (no files to read it again from). */
    public Adapter(String name, AdapterKind kind, Path dir, AdapterConfig config, Map<String, AdapterModule> modules) {
        this(name, kind, dir, config, modules, null);
    }

    public long parameters() {
        return modules.values().stream().mapToLong(AdapterModule::parameters).sum();
    }

    /** The distinct module suffixes adapted (q_proj, v_proj, ...). */
    public TreeSet<String> targets() {
        TreeSet<String> out = new TreeSet<>();
        for (String m : modules.keySet()) {
            out.add(m.substring(m.lastIndexOf('.') + 1));
        }
        return out;
    }
}
