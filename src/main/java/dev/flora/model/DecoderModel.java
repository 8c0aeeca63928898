package dev.flora.model;

import dev.flora.backend.Backend;
import dev.flora.backend.Tensor;
import dev.flora.safetensors.Weights;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What every decoder-only architecture shares: its backend, weight loading, the adaptable linear
 * layers by module name, the spec, and the logits head. Each architecture's own forward pass
 * stays in its own class.
 */
public abstract class DecoderModel implements CausalLM {
    protected final Backend backend;
    private ModelSpec spec;
    private Tensor lmHead;
    private Map<String, Linear> linears;

    protected DecoderModel(Backend backend) {
        this.backend = backend;
    }

    /** A 1-D checkpoint tensor (norm weight, bias) of length n. */
    protected final Tensor vector(Weights weights, String name, int n) {
        return backend.weight(weights.get(name, n), 1, n);
    }

    /** The nn.Linear {@code module}: weight [out, in] and, if it has one, bias [out]. */
    protected final Linear linear(Weights weights, String module, int out, int in, boolean bias) {
        Tensor w = backend.weight(weights.get(module + ".weight", out, in), out, in);
        return new Linear(module, w, bias ? vector(weights, module + ".bias", out) : null);
    }

    /** Records what the engine needs once the weights are loaded. */
    protected final void describe(String architecture, int vocab, int hidden, int layers, int kvWidth, int maxContext, Tensor head,
                                  List<Linear> adaptable) {
        this.lmHead = head;
        this.spec = ModelSpec.of(architecture, vocab, hidden, layers, kvWidth, maxContext, head, adaptable);
        Map<String, Linear> byName = new LinkedHashMap<>();
        adaptable.forEach(l -> byName.put(l.module(), l));
        this.linears = Collections.unmodifiableMap(byName);
    }

    /** The rows of x the step returns: x itself when that is every row in order (a decode step: nothing copied or uploaded). */
    protected final Tensor logitRowsOf(Tensor x, dev.flora.backend.TokenBatch batch) {
        int[] rows = batch.logitRows();
        boolean all = rows.length == x.rows();
        for (int i = 0; all && i < rows.length; i++) {
            all = rows[i] == i;
        }
        if (all) {
            return x;
        }
        Tensor selected = backend.allocate(rows.length, x.cols());
        backend.gatherRows(x, rows, selected);
        return selected;
    }

    @Override
    public final Backend backend() {
        return backend;
    }

    @Override
    public final ModelSpec spec() {
        return spec;
    }

    @Override
    public final Map<String, Linear> linears() {
        return linears;
    }

    @Override
    public final Tensor logits(Tensor hidden) {
        Tensor out = backend.allocate(hidden.rows(), spec.vocabSize());
        backend.linear(hidden, lmHead, null, out);
        return out;
    }
}
