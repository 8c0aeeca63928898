package dev.flora.adapter;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.FloraException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * adapter_config.json as PEFT writes it (and Flora's FLORA type). Options that change what an
 * adapter computes and that Flora does not implement are refused by name, never ignored.
 *
 * @param alpha        lora_alpha (LoRA)
 * @param rankPattern  module-name regex → rank, in the file's order (PEFT takes the first match)
 * @param alphaPattern module-name regex → alpha, in the file's order
 */
public record AdapterConfig(AdapterKind kind, int r, double alpha, boolean rslora, Map<String, Integer> rankPattern,
                            Map<String, Double> alphaPattern, boolean loraBias, List<String> warnings) {

    /** Options that change the computation and are not implemented, with what the user can do. */
    private static final Map<String, String> REFUSED = Map.ofEntries(
            Map.entry("use_dora", "DoRA"),
            Map.entry("modules_to_save", "modules_to_save (fully fine-tuned modules)"),
            Map.entry("target_parameters", "target_parameters (LoRA on raw parameters)"),
            Map.entry("trainable_token_indices", "trainable_token_indices"),
            Map.entry("layer_replication", "layer_replication"),
            Map.entry("arrow_config", "Arrow routing (arrow_config)"),
            Map.entry("use_bdlora", "BD-LoRA (use_bdlora)"),
            Map.entry("alora_invocation_tokens", "aLoRA (alora_invocation_tokens)"),
            Map.entry("velora_config", "VeLoRA (velora_config)"),
            Map.entry("monteclora_config", "MonteCLoRA (monteclora_config)"),
            Map.entry("kasa_config", "KaSA (kasa_config)"),
            Map.entry("use_qalora", "QA-LoRA (use_qalora)"),
            Map.entry("megatron_config", "Megatron-parallel LoRA (megatron_config)"));

    public static AdapterConfig read(Path dir) {
        return parse(dir, bytes(dir));
    }

    /** The bytes of a directory's adapter_config.json (to parse them, and to hash exactly what was parsed). */
    public static byte[] bytes(Path dir) {
        Path file = dir.resolve("adapter_config.json");
        if (!Files.isRegularFile(file)) {
            throw new FloraException(dir + ": not an adapter directory (no adapter_config.json)");
        }
        try {
            return Files.readAllBytes(file);
        } catch (IOException e) {
            throw new FloraException(file + ": cannot read (" + firstLine(e.getMessage()) + ")");
        }
    }

    /** Parses the bytes of {@code dir}/adapter_config.json. */
    public static AdapterConfig parse(Path dir, byte[] json) {
        Path file = dir.resolve("adapter_config.json");
        JsonNode c;
        try {
            c = new ObjectMapper().readTree(json);
        } catch (IOException e) {
            throw new FloraException(file + ": not valid JSON (" + firstLine(e.getMessage()) + ")");
        }
        if (c == null || !c.isObject()) {
            throw new FloraException(file + ": not a JSON object");
        }
        String type = c.path("peft_type").asText("");
        AdapterKind kind = switch (type) {
            case "LORA" -> AdapterKind.LORA;
            case "IA3" -> AdapterKind.IA3;
            case "FLORA" -> AdapterKind.FLORA;
            case "" -> throw new FloraException(file + ": no \"peft_type\"");
            default -> throw new FloraException(file + ": peft_type '" + type + "' is not supported (supported: LORA, IA3, FLORA)");
        };
        for (Map.Entry<String, String> refused : REFUSED.entrySet()) {
            JsonNode v = c.get(refused.getKey());
            if (isSet(v)) {
                throw new FloraException(file + ": " + refused.getValue() + " is not supported; Flora serves plain LoRA, IA3 and fLoRA adapters");
            }
        }
        if (c.has("bias") && !c.get("bias").asText("none").equals("none")) {
            throw new FloraException(file + ": \"bias\": \"" + c.get("bias").asText() + "\" (trained base biases) is not supported; train with bias=\"none\"");
        }
        if (isSet(c.get("loftq_config"))) {
            throw new FloraException(file + ": LoftQ (loftq_config) changes the base weights and is not supported");
        }
        if (c.has("layers_to_transform") && isSet(c.get("layers_to_transform")) && c.path("target_modules").isTextual()) {
            throw new FloraException(file + ": layers_to_transform with a regex target_modules is rejected by PEFT; list the target modules instead");
        }
        List<String> warnings = new ArrayList<>();
        if (c.path("fan_in_fan_out").asBoolean(false)) {
            warnings.add("fan_in_fan_out is ignored: PEFT forces it off for nn.Linear targets, which all supported models use");
        }
        int r = kind == AdapterKind.IA3 ? 0 : positiveInt(c, "r", file);
        double alpha = kind == AdapterKind.LORA ? c.path("lora_alpha").asDouble(8) : 1;
        Map<String, Integer> ranks = new LinkedHashMap<>();
        c.path("rank_pattern").properties().forEach(e -> ranks.put(checkRegex(e.getKey(), file), e.getValue().asInt()));
        Map<String, Double> alphas = new LinkedHashMap<>();
        c.path("alpha_pattern").properties().forEach(e -> alphas.put(checkRegex(e.getKey(), file), e.getValue().asDouble()));
        return new AdapterConfig(kind, r, alpha, c.path("use_rslora").asBoolean(false), ranks, alphas,
                c.path("lora_bias").asBoolean(false), List.copyOf(warnings));
    }

    private static boolean isSet(JsonNode v) {
        if (v == null || v.isNull() || v.isMissingNode()) {
            return false;
        }
        if (v.isBoolean()) {
            return v.asBoolean();
        }
        if (v.isContainerNode()) {
            return !v.isEmpty();
        }
        return !(v.isTextual() && v.asText().isEmpty());
    }

    private static int positiveInt(JsonNode c, String key, Path file) {
        JsonNode v = c.get(key);
        if (v == null || !v.isIntegralNumber() || v.asInt() <= 0) {
            throw new FloraException(file + ": \"" + key + "\" must be a positive integer, got " + v);
        }
        return v.asInt();
    }

    private static String checkRegex(String key, Path file) {
        try {
            Pattern.compile(key);
            return key;
        } catch (PatternSyntaxException e) {
            throw new FloraException(file + ": pattern '" + key + "' is not a regular expression Flora can read (" + e.getDescription() + ")");
        }
    }

    private static String firstLine(String s) {
        return s == null ? "no detail" : s.lines().findFirst().orElse("");
    }

    /** The first pattern key (in the file's order) matching a module name as PEFT matches it: (.*\.)?(key)$. */
    static String matchingKey(Iterable<String> keys, String module) {
        for (String key : keys) {
            if (Pattern.compile("(.*\\.)?(" + key + ")").matcher(module).matches()) {
                return key;
            }
        }
        return null;
    }

    /** LoRA's scale for a module: alpha / r, or alpha / sqrt(r) with rsLoRA; alpha from alpha_pattern. */
    public double scaleFor(String module, int rank) {
        String key = matchingKey(alphaPattern.keySet(), module);
        double a = key != null ? alphaPattern.get(key) : alpha;
        return rslora ? a / Math.sqrt(rank) : a / rank;
    }

    /** The rank config says a module has (rank_pattern, else r). */
    int expectedRank(String module) {
        String key = matchingKey(rankPattern.keySet(), module);
        return key != null ? rankPattern.get(key) : r;
    }
}
