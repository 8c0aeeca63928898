package dev.flora.cli;

import dev.flora.FloraException;
import dev.flora.adapter.Adapter;
import dev.flora.adapter.AdapterLoader;
import dev.flora.adapter.AdapterReader;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.model.CausalLM;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Map;

/** Loads the adapters given as {@code --adapter NAME=DIR} into a registry, checked against the model. */
final class AdapterOptions {
    private AdapterOptions() {
    }

    /** Every adapter stays in host memory. */
    static AdapterRegistry load(CausalLM model, Map<String, Path> adapters, int maxResident) {
        return load(model, adapters, maxResident, null, null);
    }

    /**
     * @param maxInHost {@code --max-cpu-adapters}: adapters kept in host memory at most (null: all); the
     *                  others are read from their directories again when a request needs them
     * @param err       where a progress bar goes while many adapters load (null: none)
     */
    static AdapterRegistry load(CausalLM model, Map<String, Path> adapters, int maxResident, Integer maxInHost, PrintWriter err) {
        var linears = model.linears();
        AdapterReader reader = (name, dir) -> AdapterLoader.load(name, dir, linears, model.backend());
        AdapterRegistry registry = new AdapterRegistry(maxResident, maxInHost == null ? AdapterRegistry.UNLIMITED : maxInHost, reader);
        registry.useCosts(dev.flora.adapter.CostModel.loadIfPresent(dev.flora.adapter.CostModel.defaultFile(model.backend())));
        try (Progress progress = err == null ? null : new Progress(err, "loading adapters", adapters.size())) {
            for (var e : adapters.entrySet()) {
                String name = e.getKey();
                if (name.isBlank()) {
                    throw new FloraException("--adapter needs NAME=DIR, with a non-empty name");
                }
                // Read and checked in full now, so a bad adapter fails at start; the host tier may drop its weights later.
                Adapter adapter = reader.read(name, e.getValue());
                for (String warning : adapter.config().warnings()) {
                    System.err.println("warning: adapter '" + name + "': " + warning);
                }
                registry.register(adapter);
                if (progress != null) {
                    progress.advance(1);
                }
            }
        }
        return registry;
    }

    /** {@code --max-adapters}, or by default every adapter given (at least 1) within {@code --max-cpu-adapters}. */
    static int maxResident(Integer maxAdapters, int given, Integer maxInHost) {
        if (maxInHost != null && maxInHost < 1) {
            throw new FloraException("--max-cpu-adapters must be at least 1, got " + maxInHost);
        }
        if (maxAdapters != null) {
            return maxAdapters;
        }
        return Math.max(1, maxInHost == null ? given : Math.min(given, maxInHost));
    }
}
