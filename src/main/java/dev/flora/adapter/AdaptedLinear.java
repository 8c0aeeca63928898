package dev.flora.adapter;

import dev.flora.backend.Backend;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.model.Linear;

import java.util.ArrayList;
import java.util.List;

/**
 * The exact strategy for per-request adapters: after the base product of a linear layer, for each
 * adapter slot present in the step, the rows of that slot's tokens are gathered and adapted as
 * DESIGN.md §1 defines each kind, then written back. Every operation is row-independent, so a
 * token's result does not depend on which other tokens or adapters share the step.
 */
public final class AdaptedLinear {
    private final Backend backend;
    private final AdapterSlots slots;
    private final int[] activeSlots;
    private final int[][] rowsBySlot;

    private AdaptedLinear(Backend backend, AdapterSlots slots, int[] activeSlots, int[][] rowsBySlot) {
        this.backend = backend;
        this.slots = slots;
        this.activeSlots = activeSlots;
        this.rowsBySlot = rowsBySlot;
    }

    /** Groups the step's tokens by adapter slot, once per step. */
    public static AdaptedLinear forStep(Backend backend, AdapterSlots slots, TokenBatch batch) {
        int[] tokenSlots = batch.adapterSlots();
        int max = -1;
        for (int s : tokenSlots) {
            max = Math.max(max, s);
        }
        int[] counts = new int[max + 1];
        for (int s : tokenSlots) {
            if (s >= 0) {
                counts[s]++;
            }
        }
        List<Integer> active = new ArrayList<>();
        int[][] rows = new int[max + 1][];
        for (int s = 0; s <= max; s++) {
            if (counts[s] > 0) {
                active.add(s);
                rows[s] = new int[counts[s]];
                counts[s] = 0;
            }
        }
        for (int t = 0; t < tokenSlots.length; t++) {
            int s = tokenSlots[t];
            if (s >= 0) {
                rows[s][counts[s]++] = t;
            }
        }
        return new AdaptedLinear(backend, slots, active.stream().mapToInt(Integer::intValue).toArray(), rows);
    }

    /** out = the layer applied to x, for every token with its own adapter (the base product already in out). */
    public void project(Linear linear, Tensor x, Tensor out) {
        backend.linear(x, linear.weight(), linear.bias(), out);
        for (int slot : activeSlots) {
            AdapterModule module = slots.module(linear.module(), slot);
            if (module != null) {
                apply(module, linear, x, out, rowsBySlot[slot]);
            }
        }
    }

    private void apply(AdapterModule module, Linear linear, Tensor x, Tensor out, int[] rows) {
        int n = rows.length;
        switch (module) {
            case AdapterModule.Lora lora -> {
                Tensor xs = gather(x, rows);
                Tensor v = backend.allocate(n, lora.rank());
                backend.linear(xs, lora.a(), null, v);
                Tensor d = backend.allocate(n, linear.outFeatures());
                backend.linear(v, lora.b(), lora.bias(), d);
                backend.scatterRows(d, rows, lora.scale(), null, true, out);
            }
            case AdapterModule.Ia3 ia3 when !ia3.inputSide() -> backend.mulRows(out, rows, ia3.scale(), 0);
            case AdapterModule.Ia3 ia3 -> {
                Tensor xs = gather(x, rows);
                backend.mulRows(xs, null, ia3.scale(), 0);
                Tensor y = backend.allocate(n, linear.outFeatures());
                backend.linear(xs, linear.weight(), linear.bias(), y);
                backend.scatterRows(y, rows, 1f, null, false, out);
            }
            case AdapterModule.Flora flora -> {
                Tensor sum = backend.allocate(n, linear.outFeatures());
                Tensor xs = backend.allocate(n, linear.inFeatures());
                Tensor y = backend.allocate(n, linear.outFeatures());
                for (int j = 0; j < flora.rank(); j++) {
                    backend.gatherRows(x, rows, xs);
                    backend.mulRows(xs, null, flora.a(), j);
                    backend.linear(xs, linear.weight(), null, y);
                    backend.mulRows(y, null, flora.bt(), j);
                    backend.addInPlace(sum, y);
                }
                backend.scatterRows(sum, rows, 1f / flora.rank(), linear.bias(), false, out);
            }
        }
    }

    private Tensor gather(Tensor x, int[] rows) {
        Tensor xs = backend.allocate(rows.length, x.cols());
        backend.gatherRows(x, rows, xs);
        return xs;
    }
}
