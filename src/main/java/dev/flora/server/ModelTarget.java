package dev.flora.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.adapter.AdapterRegistry;

/**
 * What a request's "model" field names: the base model, or an adapter on it.
 *
 * @param name    the name as the request gave it (and as responses repeat it)
 * @param adapter null for the base model
 */
record ModelTarget(String name, String adapter) {
    static ModelTarget parse(JsonNode body, String baseName, AdapterRegistry adapters) {
        if (body == null || !body.isObject()) {
            throw ApiError.badRequest(null, "the request body must be a JSON object");
        }
        JsonNode modelNode = body.get("model");
        if (modelNode == null || !modelNode.isTextual()) {
            throw ApiError.badRequest("model", "\"model\" is required: the base model's id or an adapter's name (see GET /v1/models)");
        }
        String model = modelNode.asText();
        if (model.equals(baseName)) {
            return new ModelTarget(model, null);
        }
        if (!adapters.contains(model)) {
            throw ApiError.notFound("model", "The model `" + model + "` does not exist.");
        }
        return new ModelTarget(model, model);
    }
}
