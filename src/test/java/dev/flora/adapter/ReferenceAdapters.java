package dev.flora.adapter;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.model.ReferenceLlama;
import dev.flora.safetensors.SafetensorsFile;
import dev.flora.safetensors.TensorView;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A float64 reference for adapters, written from DESIGN.md §1 and the files alone (independent of
 * Flora's loader): plain LoRA (scale lora_alpha / r, no patterns), IA3 (output or input side by
 * the shape of ia3_l) and fLoRA (W0 ∘ (B A) / r). Applied token by token through
 * {@link ReferenceLlama.LinearHook}, choosing each token's adapter from its position.
 */
final class ReferenceAdapters implements ReferenceLlama.LinearHook {
    private record Module(String kind, double[][] a, double[][] b, double[] l, double scale, int r) {
    }

    private final Map<String, Map<String, Module>> adapters = new HashMap<>();
    private final List<AdapterRange> ranges;

    ReferenceAdapters(Map<String, Path> dirs, List<AdapterRange> ranges) {
        this.ranges = ranges;
        for (var e : dirs.entrySet()) {
            adapters.put(e.getKey(), read(e.getValue()));
        }
    }

    private static Map<String, Module> read(Path dir) {
        JsonNode config;
        try {
            config = new ObjectMapper().readTree(dir.resolve("adapter_config.json").toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        String type = config.get("peft_type").asText();
        SafetensorsFile file = SafetensorsFile.open(dir.resolve("adapter_model.safetensors"));
        Map<String, Module> modules = new HashMap<>();
        for (String key : file.names()) {
            String rest = key.substring("base_model.model.".length());
            switch (type) {
                case "LORA" -> {
                    if (rest.endsWith(".lora_A.weight")) {
                        String m = rest.substring(0, rest.length() - ".lora_A.weight".length());
                        double[][] a = matrix(file.get(key));
                        double[][] b = matrix(file.get(key.replace("lora_A", "lora_B")));
                        modules.put(m, new Module("lora", a, b, null, config.get("lora_alpha").asDouble() / a.length, a.length));
                    }
                }
                case "IA3" -> {
                    TensorView l = file.get(key);
                    String m = rest.substring(0, rest.length() - ".ia3_l".length());
                    double[] v = new double[(int) l.numel()];
                    for (int i = 0; i < v.length; i++) {
                        v[i] = l.getFloat(i);
                    }
                    modules.put(m, new Module(l.shape()[0] == 1 ? "ia3-in" : "ia3-out", null, null, v, 1, 0));
                }
                case "FLORA" -> {
                    if (rest.endsWith(".flora_A.weight")) {
                        String m = rest.substring(0, rest.length() - ".flora_A.weight".length());
                        double[][] a = matrix(file.get(key));
                        double[][] b = matrix(file.get(key.replace("flora_A", "flora_B")));
                        modules.put(m, new Module("flora", a, b, null, 1, a.length));
                    }
                }
                default -> throw new IllegalArgumentException(type);
            }
        }
        return modules;
    }

    private static double[][] matrix(TensorView t) {
        int rows = (int) t.shape()[0];
        int cols = (int) t.shape()[1];
        double[][] m = new double[rows][cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                m[r][c] = t.getFloat((long) r * cols + c);
            }
        }
        return m;
    }

    private String adapterAt(int position) {
        String name = null;
        for (AdapterRange r : ranges) {
            if (r.from() <= position) {
                name = r.name();
            }
        }
        return name;
    }

    @Override
    public double[] apply(String module, int position, double[] x, double[][] w, double[] bias, double[] base) {
        String name = adapterAt(position);
        Module m = name == null ? null : adapters.get(name).get(module);
        if (m == null) {
            return base;
        }
        int out = w.length;
        int in = x.length;
        double[] y = base.clone();
        switch (m.kind) {
            case "lora" -> {
                double[] v = new double[m.r];
                for (int j = 0; j < m.r; j++) {
                    for (int i = 0; i < in; i++) {
                        v[j] += m.a[j][i] * x[i];
                    }
                }
                for (int o = 0; o < out; o++) {
                    double d = 0;
                    for (int j = 0; j < m.r; j++) {
                        d += m.b[o][j] * v[j];
                    }
                    y[o] += m.scale * d;
                }
            }
            case "ia3-out" -> {
                for (int o = 0; o < out; o++) {
                    y[o] = base[o] * m.l[o];
                }
            }
            case "ia3-in" -> {
                for (int o = 0; o < out; o++) {
                    double s = bias == null ? 0 : bias[o];
                    for (int i = 0; i < in; i++) {
                        s += w[o][i] * m.l[i] * x[i];
                    }
                    y[o] = s;
                }
            }
            case "flora" -> {
                for (int o = 0; o < out; o++) {
                    double s = bias == null ? 0 : bias[o];
                    for (int i = 0; i < in; i++) {
                        double ba = 0;
                        for (int j = 0; j < m.r; j++) {
                            ba += m.b[o][j] * m.a[j][i];
                        }
                        s += w[o][i] * ba / m.r * x[i];
                    }
                    y[o] = s;
                }
            }
            default -> throw new IllegalStateException(m.kind);
        }
        return y;
    }
}
