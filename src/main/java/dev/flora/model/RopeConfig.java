package dev.flora.model;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.List;

/**
 * Rotary position embedding parameters, read from either config.json layout: transformers 5's
 * {@code rope_parameters} {rope_theta, rope_type, factor, ...} or the older {@code rope_theta} plus
 * {@code rope_scaling} {type | rope_type, factor, ...}.
 */
public record RopeConfig(String type, double theta, double factor, double lowFreqFactor, double highFreqFactor,
                         int originalMaxPositions) {

    public static final List<String> SUPPORTED = List.of("default", "linear", "llama3");

    public static RopeConfig read(ConfigReader config, double defaultTheta) {
        JsonNode params = config.node("rope_parameters");
        JsonNode scaling = config.node("rope_scaling");
        double theta = config.doubleOr("rope_theta", defaultTheta);
        JsonNode source = null;
        if (params != null && !params.isNull()) {
            if (!params.isObject()) {
                throw config.error("\"rope_parameters\" must be an object");
            }
            if (!params.has("rope_theta") && !params.has("rope_type") && params.size() > 0) {
                throw config.error("\"rope_parameters\" per layer type (" + params.fieldNames().next()
                        + ", ...) is not supported for this architecture");
            }
            theta = config.doubleOr(params, "rope_theta", theta);
            source = params;
        } else if (scaling != null && !scaling.isNull()) {
            if (!scaling.isObject()) {
                throw config.error("\"rope_scaling\" must be an object");
            }
            source = scaling;
        }
        String type = "default";
        if (source != null) {
            JsonNode t = source.has("rope_type") ? source.get("rope_type") : source.get("type");
            if (t != null && !t.isNull()) {
                type = t.asText();
            }
        }
        if (!SUPPORTED.contains(type)) {
            throw config.error("rope type '" + type + "' is not supported (supported: " + String.join(", ", SUPPORTED) + ")");
        }
        if (source != null && source.has("partial_rotary_factor") && config.doubleOr(source, "partial_rotary_factor", 1.0) != 1.0) {
            throw config.error("partial_rotary_factor other than 1.0 is not supported");
        }
        double factor = 1.0;
        double low = 0;
        double high = 0;
        int original = 0;
        if (!type.equals("default")) {
            if (!source.hasNonNull("factor")) {
                throw config.error("rope type '" + type + "' needs a \"factor\"");
            }
            factor = config.doubleOr(source, "factor", 1.0);
            if (factor <= 0) {
                throw config.error("rope \"factor\" must be positive, got " + factor);
            }
        }
        if (type.equals("llama3")) {
            for (String key : List.of("low_freq_factor", "high_freq_factor", "original_max_position_embeddings")) {
                if (!source.hasNonNull(key)) {
                    throw config.error("rope type 'llama3' needs \"" + key + "\"");
                }
            }
            low = config.doubleOr(source, "low_freq_factor", 1);
            high = config.doubleOr(source, "high_freq_factor", 4);
            JsonNode originalNode = source.get("original_max_position_embeddings");
            if (!originalNode.isIntegralNumber() || originalNode.asInt() <= 0) {
                throw config.error("rope 'llama3' needs a positive integer original_max_position_embeddings, got " + originalNode);
            }
            original = originalNode.asInt();
            if (high <= low) {
                throw config.error("rope 'llama3' needs high_freq_factor > low_freq_factor");
            }
        }
        if (theta <= 0) {
            throw config.error("rope theta must be positive, got " + theta);
        }
        return new RopeConfig(type, theta, factor, low, high, original);
    }

    /** Inverse frequencies for a head of this size, computed in float32 as transformers does. */
    public float[] inverseFrequencies(int headDim) {
        int half = headDim / 2;
        float[] inv = new float[half];
        for (int i = 0; i < half; i++) {
            float exponent = (float) (2 * i) / headDim;
            float power = (float) StrictMath.pow(theta, exponent);
            inv[i] = 1.0f / power;
        }
        switch (type) {
            case "linear" -> {
                for (int i = 0; i < half; i++) {
                    inv[i] = inv[i] / (float) factor;
                }
            }
            case "llama3" -> llama3(inv);
            default -> {
            }
        }
        return inv;
    }

    private void llama3(float[] inv) {
        float fac = (float) factor;
        float lowWavelen = (float) (originalMaxPositions / lowFreqFactor);
        float highWavelen = (float) (originalMaxPositions / highFreqFactor);
        for (int i = 0; i < inv.length; i++) {
            float wavelen = (float) (2 * Math.PI) / inv[i];
            float scaled = wavelen > lowWavelen ? inv[i] / fac : inv[i];
            boolean medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
            if (medium) {
                float smooth = ((float) originalMaxPositions / wavelen - (float) lowFreqFactor) / (float) (highFreqFactor - lowFreqFactor);
                scaled = (1 - smooth) * scaled / fac + smooth * scaled;
            }
            inv[i] = scaled;
        }
    }
}
