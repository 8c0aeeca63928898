package dev.flora.server;

import dev.flora.adapter.AdapterRegistry;
import dev.flora.chat.ChatTemplate;
import dev.flora.engine.EngineLoop;
import dev.flora.model.PretrainedModel;
import dev.flora.tokenizer.TokenBytes;

/** What the API endpoints share: the model, its engine loop, adapters, chat template, token bytes and metrics. */
record Serving(PretrainedModel model, EngineLoop loop, AdapterRegistry adapters, String baseName, ServerMetrics metrics,
               ChatTemplate chatTemplate, TokenBytes tokenBytes) {
    int context() {
        return model.model().spec().maxContext();
    }
}
