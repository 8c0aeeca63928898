package dev.flora.adapter;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.backend.DType;
import dev.flora.model.Linear;
import dev.flora.safetensors.SafetensorsWriter;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;

/**
 * Writes seeded random adapters as PEFT directories (adapter_config.json + adapter_model.safetensors),
 * for benchmarks of many adapters on disk: the values are noise, the shapes fit the model.
 */
public final class RandomAdapterFiles {
    private static final ObjectMapper JSON = new ObjectMapper();

    private RandomAdapterFiles() {
    }

    /**
     * @param linears the model's adaptable layers by module name
     * @return the directories written, {@code out/<kind>-r<rank>-<n>}
     */
    public static List<Path> write(Map<String, Linear> linears, AdapterKind kind, int rank, Set<String> targets, int count, long seed,
                                   DType dtype, Path out) {
        if (count < 1 || rank < 1) {
            throw new FloraException("--count and --rank must be at least 1");
        }
        SplittableRandom random = new SplittableRandom(seed);
        String prefix = kind.name().toLowerCase(Locale.ROOT) + (kind == AdapterKind.IA3 ? "" : "-r" + rank) + "-";
        int digits = Math.max(4, Integer.toString(count - 1).length());
        List<Path> dirs = new ArrayList<>();
        for (int n = 0; n < count; n++) {
            Path dir = out.resolve(prefix + String.format(Locale.ROOT, "%0" + digits + "d", n));
            writeOne(linears, kind, rank, targets, random, dtype, dir);
            dirs.add(dir);
        }
        return dirs;
    }

    private static void writeOne(Map<String, Linear> linears, AdapterKind kind, int rank, Set<String> targets, SplittableRandom random,
                                 DType dtype, Path dir) {
        SafetensorsWriter weights = new SafetensorsWriter();
        TreeSet<String> adapted = new TreeSet<>();
        for (Map.Entry<String, Linear> e : linears.entrySet()) {
            String suffix = e.getKey().substring(e.getKey().lastIndexOf('.') + 1);
            if (!targets.contains(suffix)) {
                continue;
            }
            adapted.add(suffix);
            String key = "base_model.model." + e.getKey();
            long in = e.getValue().inFeatures();
            long outs = e.getValue().outFeatures();
            switch (kind) {
                case LORA -> {
                    weights.add(key + ".lora_A.weight", dtype, new long[] {rank, in}, values(rank * in, 0, 0.02, random));
                    weights.add(key + ".lora_B.weight", dtype, new long[] {outs, rank}, values(outs * rank, 0, 0.02, random));
                }
                case FLORA -> {
                    weights.add(key + ".flora_A.weight", dtype, new long[] {rank, in}, values(rank * in, 1, 0.1, random));
                    weights.add(key + ".flora_B.weight", dtype, new long[] {outs, rank}, values(outs * rank, 1, 0.1, random));
                }
                case IA3 -> weights.add(key + ".ia3_l", dtype, new long[] {outs, 1}, values(outs, 1, 0.1, random));
            }
        }
        if (adapted.isEmpty()) {
            throw new FloraException("no layer of the model matches the targets " + targets);
        }
        ObjectNode config = JSON.createObjectNode().put("peft_type", kind.name());
        config.putArray("target_modules").addAll(adapted.stream().map(JSON.getNodeFactory()::textNode).toList());
        switch (kind) {
            case LORA -> config.put("r", rank).put("lora_alpha", 2 * rank);
            case FLORA -> config.put("r", rank);
            case IA3 -> config.putArray("feedforward_modules");
        }
        try {
            Files.createDirectories(dir);
            Files.writeString(dir.resolve("adapter_config.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(config));
            weights.write(dir.resolve("adapter_model.safetensors"));
        } catch (IOException e) {
            throw new FloraException(dir + ": cannot write (" + e.getMessage() + ")", e);
        }
    }

    private static float[] values(long n, double center, double spread, SplittableRandom random) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (center + spread * random.nextDouble(-1, 1));
        }
        return v;
    }
}
