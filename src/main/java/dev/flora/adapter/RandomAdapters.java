package dev.flora.adapter;

import dev.flora.FloraException;
import dev.flora.backend.Backend;
import dev.flora.backend.DeviceMemoryFull;
import dev.flora.model.CausalLM;
import dev.flora.model.Linear;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/** Seeded random adapters on a model's layers, for benchmarks (speed needs shapes, not trained values). */
public final class RandomAdapters {
    private RandomAdapters() {
    }

    /**
     * Adapter n draws its values from the n-th split of the seed's generator, layer by layer, so the
     * host values of several adapters are drawn at once on the machine's cores (200 rank-64 adapters on
     * StarCoder-15B's c_attn are 6.4 billion values: half a minute on one core) and uploaded in order.
     *
     * @param targets module suffixes to adapt (q_proj, v_proj, c_attn, ...)
     */
    public static List<Adapter> create(CausalLM model, AdapterKind kind, int rank, Set<String> targets, int count, long seed) {
        Backend backend = model.backend();
        List<Map.Entry<String, Linear>> layers = new ArrayList<>();
        for (Map.Entry<String, Linear> e : model.linears().entrySet()) {
            if (targets.contains(e.getKey().substring(e.getKey().lastIndexOf('.') + 1))) {
                layers.add(e);
            }
        }
        if (layers.isEmpty() && count > 0) {
            throw new FloraException("no layer of the model matches the targets " + new java.util.TreeSet<>(targets) + " (its layers: "
                    + String.join(", ", new java.util.TreeSet<>(model.linears().keySet().stream()
                    .map(k -> k.substring(k.lastIndexOf('.') + 1)).toList())) + ")");
        }
        SplittableRandom root = new SplittableRandom(seed);
        SplittableRandom[] randoms = new SplittableRandom[count];
        for (int n = 0; n < count; n++) {
            randoms[n] = root.split();
        }
        int window = Math.max(1, Runtime.getRuntime().availableProcessors());
        List<Adapter> out = new ArrayList<>();
        for (int from = 0; from < count; from += window) {
            List<float[][][]> drawn = IntStream.range(from, Math.min(count, from + window)).parallel()
                    .mapToObj(n -> draw(kind, rank, layers, randoms[n])).toList();
            for (int i = 0; i < drawn.size(); i++) {
                Map<String, AdapterModule> modules = new LinkedHashMap<>();
                try {
                    for (int l = 0; l < layers.size(); l++) {
                        modules.put(layers.get(l).getKey(), module(backend, kind, rank, layers.get(l).getValue(), drawn.get(i)[l]));
                    }
                } catch (DeviceMemoryFull e) {
                    throw tooMany(kind, rank, targets, count, from + i, bytes(kind, rank, layers), e);
                }
                out.add(new Adapter("random-" + kind.name().toLowerCase(java.util.Locale.ROOT) + "-" + (from + i), kind, null, null, modules));
            }
        }
        return out;
    }

    /** Device bytes of one adapter: float32 factors or scales, as PEFT saves them and module() uploads them. */
    private static long bytes(AdapterKind kind, int rank, List<Map.Entry<String, Linear>> layers) {
        long floats = 0;
        for (Map.Entry<String, Linear> e : layers) {
            int in = e.getValue().inFeatures();
            int outs = e.getValue().outFeatures();
            floats += kind == AdapterKind.IA3 ? outs : (long) rank * (in + outs);
        }
        return 4 * floats;
    }

    /** The device's full before every adapter is up: what they all need, where it stopped, and what to lower. */
    private static FloraException tooMany(AdapterKind kind, int rank, Set<String> targets, int count, int made, long each, DeviceMemoryFull e) {
        return new FloraException(String.format(java.util.Locale.ROOT,
                "%d random %s adapters of rank %d on %s need %.1f GB of device memory (%.1f MB each, float32) and the device filled "
                        + "at adapter %d: lower --requests or the rank, or give the KV cache less (--kv-cache-memory) (%s)",
                count, kind.name().toLowerCase(java.util.Locale.ROOT), rank, String.join(",", new java.util.TreeSet<>(targets)),
                count * (double) each / 1e9, each / 1e6, made + 1, e.getMessage()), e);
    }

    /** One adapter's host values, per layer: LoRA {A, B}, fLoRA {A, Bᵀ}, IA3 {scales}. */
    private static float[][][] draw(AdapterKind kind, int rank, List<Map.Entry<String, Linear>> layers, SplittableRandom random) {
        float[][][] values = new float[layers.size()][][];
        for (int l = 0; l < layers.size(); l++) {
            int in = layers.get(l).getValue().inFeatures();
            int outs = layers.get(l).getValue().outFeatures();
            values[l] = switch (kind) {
                case LORA -> new float[][] {values(rank * in, 0, 0.02, random), values(outs * rank, 0, 0.02, random)};
                case FLORA -> new float[][] {values(rank * in, 1, 0.1, random), values(rank * outs, 1, 0.1, random)};
                case IA3 -> new float[][] {values(outs, 1, 0.1, random)};
            };
        }
        return values;
    }

    private static AdapterModule module(Backend backend, AdapterKind kind, int rank, Linear linear, float[][] v) {
        int in = linear.inFeatures();
        int outs = linear.outFeatures();
        return switch (kind) {
            case LORA -> new AdapterModule.Lora(backend.weight(v[0], rank, in), backend.weight(v[1], outs, rank), null, 2f, rank);
            case FLORA -> new AdapterModule.Flora(backend.fromHost(v[0], rank, in), backend.fromHost(v[1], rank, outs), rank);
            case IA3 -> new AdapterModule.Ia3(backend.fromHost(v[0], 1, outs), false);
        };
    }

    private static float[] values(int n, double center, double spread, SplittableRandom random) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (center + spread * random.nextDouble(-1, 1));
        }
        return v;
    }
}
