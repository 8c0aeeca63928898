package dev.flora.adapter;

import dev.flora.backend.Backend;
import dev.flora.backend.Tensor;
import dev.flora.backend.WeakDeviceCaches;
import dev.flora.model.Linear;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The MERGED strategy: a slot's rows through a separate copy of W (and b) with the adapter folded
 * in, made on first use and kept while the adapter lives (weakly, by adapter); never merged in place.
 */
final class MergedWeights {
    private static final Map<Adapter, Map<String, Tensor[]>> COPIES = WeakDeviceCaches.create();

    private MergedWeights() {
    }

    static void project(Backend backend, Adapter adapter, AdapterModule module, Linear linear, Tensor x, Tensor out, int[] rows) {
        Tensor[] wb = COPIES.computeIfAbsent(adapter, a -> new ConcurrentHashMap<>())
                .computeIfAbsent(linear.module(), m -> Merging.merge(backend, linear, module));
        Tensor xs = backend.allocate(rows.length, x.cols());
        backend.gatherRows(x, rows, xs);
        Tensor y = backend.allocate(rows.length, linear.outFeatures());
        backend.linear(xs, wb[0], wb[1], y);
        backend.scatterRows(y, rows, 1f, null, false, out);
    }
}
