package dev.flora.adapter;

import dev.flora.backend.Backend;
import dev.flora.backend.Tensor;
import dev.flora.model.Linear;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * LoRA as the fLoRA paper's baseline ran it (torch.bmm in vLLM 0.1.3): every sequence's tokens
 * padded to the longest sequence of the step and every adapter's A and B zero-padded to the
 * largest rank, then the same batched products for each (padding costs work and changes nothing:
 * zero rows and ranks). The padded copies are made once per adapter module and rank and kept while
 * the adapter lives (weakly), as a bmm implementation keeps its stacked weights: only the padding
 * work itself is measured, not rebuilding it.
 */
final class PaddedLora {
    private static final Map<AdapterModule.Lora, Map<Integer, Tensor[]>> PADDED = Collections.synchronizedMap(new WeakHashMap<>());

    private PaddedLora() {
    }

    /** out[rows] += scale · (B (A x) + bias) for every sequence's rows with its own adapter. */
    static void project(Backend backend, List<int[]> sequences, List<AdapterModule.Lora> adapters, Linear linear, Tensor x, Tensor out) {
        int longest = 0;
        int rank = 0;
        for (int g = 0; g < sequences.size(); g++) {
            longest = Math.max(longest, sequences.get(g).length);
            rank = Math.max(rank, adapters.get(g).rank());
        }
        int in = linear.inFeatures();
        int outs = linear.outFeatures();
        for (int g = 0; g < sequences.size(); g++) {
            int[] rows = sequences.get(g);
            AdapterModule.Lora lora = adapters.get(g);
            Tensor[] ab = padded(backend, lora, rank, in, outs);
            Tensor xp = backend.allocate(longest, in);
            backend.gatherRows(x, rows, backend.rows(xp, 0, rows.length));
            Tensor v = backend.allocate(longest, rank);
            backend.linear(xp, ab[0], null, v);
            Tensor d = backend.allocate(longest, outs);
            backend.linear(v, ab[1], lora.bias(), d);
            backend.scatterRows(backend.rows(d, 0, rows.length), rows, lora.scale(), null, true, out);
        }
    }

    /** {A padded to [rank, in], B padded to [out, rank]}, made once per module and rank. */
    private static Tensor[] padded(Backend backend, AdapterModule.Lora lora, int rank, int in, int outs) {
        return PADDED.computeIfAbsent(lora, l -> new ConcurrentHashMap<>()).computeIfAbsent(rank, r -> {
            float[] a = backend.toHost(lora.a());
            float[] b = backend.toHost(lora.b());
            int own = lora.rank();
            float[] pb = new float[outs * r];
            for (int o = 0; o < outs; o++) {
                System.arraycopy(b, o * own, pb, o * r, own);
            }
            return new Tensor[] {backend.weight(Arrays.copyOf(a, r * in), r, in), backend.weight(pb, outs, r)};
        });
    }
}
