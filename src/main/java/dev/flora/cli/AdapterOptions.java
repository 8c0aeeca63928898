package dev.flora.cli;

import dev.flora.FloraException;
import dev.flora.adapter.Adapter;
import dev.flora.adapter.AdapterLoader;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.model.CausalLM;

import java.nio.file.Path;
import java.util.Map;

/** Loads the adapters given as {@code --adapter NAME=DIR} into a registry, checked against the model. */
final class AdapterOptions {
    private AdapterOptions() {
    }

    static AdapterRegistry load(CausalLM model, Map<String, Path> adapters, int maxResident) {
        AdapterRegistry registry = new AdapterRegistry(maxResident);
        registry.useCosts(dev.flora.adapter.CostModel.loadIfPresent(dev.flora.adapter.CostModel.defaultFile()));
        var linears = model.linears();
        for (var e : adapters.entrySet()) {
            String name = e.getKey();
            if (name.isBlank()) {
                throw new FloraException("--adapter needs NAME=DIR, with a non-empty name");
            }
            Adapter adapter = AdapterLoader.load(name, e.getValue(), linears, model.backend());
            for (String warning : adapter.config().warnings()) {
                System.err.println("warning: adapter '" + name + "': " + warning);
            }
            registry.register(adapter);
        }
        return registry;
    }
}
