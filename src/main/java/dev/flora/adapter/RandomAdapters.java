package dev.flora.adapter;

import dev.flora.FloraException;
import dev.flora.backend.Backend;
import dev.flora.model.CausalLM;
import dev.flora.model.Linear;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/** Seeded random adapters on a model's layers, for benchmarks (speed needs shapes, not trained values). */
public final class RandomAdapters {
    private RandomAdapters() {
    }

    /**
     * @param targets module suffixes to adapt (q_proj, v_proj, c_attn, ...)
     */
    public static List<Adapter> create(CausalLM model, AdapterKind kind, int rank, Set<String> targets, int count, long seed) {
        Backend backend = model.backend();
        SplittableRandom random = new SplittableRandom(seed);
        List<Adapter> out = new ArrayList<>();
        for (int n = 0; n < count; n++) {
            Map<String, AdapterModule> modules = new LinkedHashMap<>();
            for (Map.Entry<String, Linear> e : model.linears().entrySet()) {
                String suffix = e.getKey().substring(e.getKey().lastIndexOf('.') + 1);
                if (!targets.contains(suffix)) {
                    continue;
                }
                int in = e.getValue().inFeatures();
                int outs = e.getValue().outFeatures();
                modules.put(e.getKey(), switch (kind) {
                    case LORA -> new AdapterModule.Lora(backend.weight(values(rank * in, 0, 0.02, random), rank, in),
                            backend.weight(values(outs * rank, 0, 0.02, random), outs, rank), null, 2f, rank);
                    case FLORA -> new AdapterModule.Flora(backend.fromHost(values(rank * in, 1, 0.1, random), rank, in),
                            backend.fromHost(values(rank * outs, 1, 0.1, random), rank, outs), rank);
                    case IA3 -> new AdapterModule.Ia3(backend.fromHost(values(outs, 1, 0.1, random), 1, outs), false);
                });
            }
            if (modules.isEmpty()) {
                throw new FloraException("no layer of the model matches the targets " + new java.util.TreeSet<>(targets) + " (its layers: "
                        + String.join(", ", new java.util.TreeSet<>(model.linears().keySet().stream()
                        .map(k -> k.substring(k.lastIndexOf('.') + 1)).toList())) + ")");
            }
            out.add(new Adapter("random-" + kind.name().toLowerCase(java.util.Locale.ROOT) + "-" + n, kind, null, null, modules));
        }
        return out;
    }

    private static float[] values(int n, double center, double spread, SplittableRandom random) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (center + spread * random.nextDouble(-1, 1));
        }
        return v;
    }
}
