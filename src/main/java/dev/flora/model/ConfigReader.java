package dev.flora.model;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.FloraException;
import dev.flora.backend.Activation;

import java.nio.file.Path;

/** Typed, checked access to config.json values, with errors naming the file and the key. */
public record ConfigReader(JsonNode root, Path file) {

    public boolean has(String key) {
        JsonNode n = root.get(key);
        return n != null && !n.isNull();
    }

    public JsonNode node(String key) {
        return root.get(key);
    }

    public int requireInt(String key) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) {
            throw new FloraException(file + ": missing required key \"" + key + "\"");
        }
        return asPositiveInt(key, n);
    }

    public int intOr(String key, int fallback) {
        JsonNode n = root.get(key);
        return n == null || n.isNull() ? fallback : asPositiveInt(key, n);
    }

    private int asPositiveInt(String key, JsonNode n) {
        if (!n.isIntegralNumber() || n.asLong() <= 0 || n.asLong() > Integer.MAX_VALUE) {
            throw new FloraException(file + ": \"" + key + "\" must be a positive integer, got " + n);
        }
        return n.asInt();
    }

    public double doubleOr(String key, double fallback) {
        return doubleOr(root, key, fallback);
    }

    public double doubleOr(JsonNode obj, String key, double fallback) {
        JsonNode n = obj.get(key);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isNumber()) {
            throw new FloraException(file + ": \"" + key + "\" must be a number, got " + n);
        }
        return n.asDouble();
    }

    public boolean boolOr(String key, boolean fallback) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isBoolean()) {
            throw new FloraException(file + ": \"" + key + "\" must be true or false, got " + n);
        }
        return n.asBoolean();
    }

    public String stringOr(String key, String fallback) {
        JsonNode n = root.get(key);
        return n == null || n.isNull() ? fallback : n.asText();
    }

    /** An activation named by transformers' ACT2FN names. */
    public Activation activationOr(String key, String fallback) {
        try {
            return Activation.fromConfig(stringOr(key, fallback));
        } catch (FloraException e) {
            throw error("\"" + key + "\": " + e.getMessage());
        }
    }

    public FloraException error(String message) {
        return new FloraException(file + ": " + message);
    }
}
