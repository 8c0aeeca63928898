package dev.flora.adapter;

import dev.flora.backend.Backend;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.model.Linear;

import java.util.ArrayList;
import java.util.List;

/**
 * Per-request adapters around one linear layer: the shared base product for every token, then
 * each adapter slot's tokens adapted by the strategy of {@link AdapterSlots#strategy()} (DESIGN.md
 * §2). The exact strategy gathers a slot's rows and applies the kind's definition (§1); the
 * others compute the same function at another cost. Every operation is row-independent, so with
 * a pinned strategy a token's result does not depend on what shares the step.
 */
public final class AdaptedLinear {
    private final Backend backend;
    private final AdapterSlots slots;
    private final int[] activeSlots;
    private final int[][] rowsBySlot;
    private final int[] seqOfToken;

    private AdaptedLinear(Backend backend, AdapterSlots slots, int[] activeSlots, int[][] rowsBySlot, int[] seqOfToken) {
        this.backend = backend;
        this.slots = slots;
        this.activeSlots = activeSlots;
        this.rowsBySlot = rowsBySlot;
        this.seqOfToken = seqOfToken;
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
        return new AdaptedLinear(backend, slots, active.stream().mapToInt(Integer::intValue).toArray(), rows, batch.seqOfToken());
    }

    /** out = the layer applied to x, for every token with its own adapter, by the strategy the slots ask for. */
    public void project(Linear linear, Tensor x, Tensor out) {
        AdapterStrategy strategy = slots.strategy();
        boolean auto = strategy == AdapterStrategy.AUTO;
        AdapterStrategy floraWay = auto ? chooseFor(AdapterKind.FLORA, linear) : strategy;
        AdapterStrategy loraWay = auto ? chooseFor(AdapterKind.LORA, linear) : strategy;
        baseProduct(linear, x, out, strategy);
        List<Group> fused = new ArrayList<>();
        List<Group> padded = new ArrayList<>();
        List<Group> gathered = new ArrayList<>();
        for (int slot : activeSlots) {
            AdapterModule module = slots.module(linear.module(), slot);
            if (module == null) {
                continue;
            }
            int[] rows = rowsBySlot[slot];
            if (strategy == AdapterStrategy.MERGED) {
                merged(slots.adapter(slot), module, linear, x, out, rows);
                continue;
            }
            switch (module) {
                case AdapterModule.Lora lora when loraWay == AdapterStrategy.GATHERED -> gathered.add(new Group(rows, lora));
                case AdapterModule.Lora lora when loraWay == AdapterStrategy.BMM -> bySequence(rows, lora, padded);
                case AdapterModule.Flora flora when floraWay == AdapterStrategy.FLORA -> fused.add(new Group(rows, flora));
                default -> apply(module, linear, x, out, rows);
            }
        }
        if (!gathered.isEmpty()) {
            loraGathered(gathered, x, out);
        }
        if (!fused.isEmpty()) {
            floraFused(fused, linear, x, out);
        }
        if (!padded.isEmpty()) {
            loraPadded(padded, linear, x, out);
        }
    }

    /**
     * AUTO: the measured-cheapest strategy for the adapters of one kind in this layer and step (by
     * their token count and largest rank), or the defaults without a calibration.
     */
    private AdapterStrategy chooseFor(AdapterKind kind, Linear linear) {
        CostModel costs = slots.costModel();
        int tokens = 0;
        int rank = 0;
        for (int slot : activeSlots) {
            AdapterModule m = slots.module(linear.module(), slot);
            if (m instanceof AdapterModule.Flora f && kind == AdapterKind.FLORA) {
                tokens += rowsBySlot[slot].length;
                rank = Math.max(rank, f.rank());
            } else if (m instanceof AdapterModule.Lora l && kind == AdapterKind.LORA) {
                tokens += rowsBySlot[slot].length;
                rank = Math.max(rank, l.rank());
            }
        }
        if (tokens == 0 || costs == null) {
            return kind == AdapterKind.FLORA ? AdapterStrategy.FLORA : AdapterStrategy.GATHERED;
        }
        return costs.choose(kind, tokens, rank);
    }

    /** Whether this strategy replaces a module's output rows outright (so their base product would be wasted). */
    private static boolean replaces(AdapterModule module, AdapterStrategy strategy) {
        return strategy == AdapterStrategy.MERGED
                || module instanceof AdapterModule.Ia3 ia3 && ia3.inputSide()
                || module instanceof AdapterModule.Flora;
    }

    /** The shared base product, for every row whose output the adapters do not replace outright. */
    private void baseProduct(Linear linear, Tensor x, Tensor out, AdapterStrategy strategy) {
        int replaced = 0;
        boolean[] skip = null;
        for (int slot : activeSlots) {
            AdapterModule module = slots.module(linear.module(), slot);
            if (module != null && replaces(module, strategy)) {
                if (skip == null) {
                    skip = new boolean[x.rows()];
                }
                for (int r : rowsBySlot[slot]) {
                    skip[r] = true;
                }
                replaced += rowsBySlot[slot].length;
            }
        }
        if (replaced == 0) {
            backend.linear(x, linear.weight(), linear.bias(), out);
        } else if (replaced < x.rows()) {
            int[] keep = new int[x.rows() - replaced];
            for (int r = 0, k = 0; r < x.rows(); r++) {
                if (!skip[r]) {
                    keep[k++] = r;
                }
            }
            Tensor y = backend.allocate(keep.length, linear.outFeatures());
            backend.linear(gather(x, keep), linear.weight(), linear.bias(), y);
            backend.scatterRows(y, keep, 1f, null, false, out);
        }
    }

    /** Tokens of one adapter slot (fLoRA), or of one sequence and slot (LoRA-bmm). */
    private record Group(int[] rows, AdapterModule module) {
    }

    /** LoRA gathered: every LoRA-adapted token of the step in one shrink/expand call, each with its own adapter and rank. */
    private void loraGathered(List<Group> groups, Tensor x, Tensor out) {
        int n = groups.size();
        int[][] rows = new int[n][];
        Tensor[] a = new Tensor[n];
        Tensor[] b = new Tensor[n];
        Tensor[] bias = new Tensor[n];
        float[] scale = new float[n];
        for (int g = 0; g < n; g++) {
            AdapterModule.Lora lora = (AdapterModule.Lora) groups.get(g).module;
            rows[g] = groups.get(g).rows;
            a[g] = lora.a();
            b[g] = lora.b();
            bias[g] = lora.bias();
            scale[g] = lora.scale();
        }
        backend.loraShrinkExpand(x, rows, a, b, bias, scale, out);
    }

    /**
     * fLoRA, fused: every fLoRA token's r modulated copies x ∘ A[j] stacked into one matrix, ONE
     * product with W0 for all of them, then demodulated by B[:, j], summed over j in order, scaled
     * by 1/r: the arithmetic of the exact strategy, in one large product instead of r per slot.
     */
    private void floraFused(List<Group> groups, Linear linear, Tensor x, Tensor out) {
        int total = 0;
        for (Group g : groups) {
            total += g.rows.length * ((AdapterModule.Flora) g.module).rank();
        }
        Tensor stacked = backend.allocate(total, linear.inFeatures());
        int at = 0;
        for (Group g : groups) {
            AdapterModule.Flora f = (AdapterModule.Flora) g.module;
            for (int j = 0; j < f.rank(); j++, at += g.rows.length) {
                Tensor view = backend.rows(stacked, at, g.rows.length);
                backend.gatherRows(x, g.rows, view);
                backend.mulRows(view, null, f.a(), j);
            }
        }
        Tensor products = backend.allocate(total, linear.outFeatures());
        backend.linear(stacked, linear.weight(), null, products);
        at = 0;
        for (Group g : groups) {
            AdapterModule.Flora f = (AdapterModule.Flora) g.module;
            Tensor sum = backend.allocate(g.rows.length, linear.outFeatures());
            for (int j = 0; j < f.rank(); j++, at += g.rows.length) {
                Tensor view = backend.rows(products, at, g.rows.length);
                backend.mulRows(view, null, f.bt(), j);
                backend.addInPlace(sum, view);
            }
            backend.scatterRows(sum, g.rows, 1f / f.rank(), linear.bias(), false, out);
        }
    }

    private void bySequence(int[] rows, AdapterModule.Lora lora, List<Group> padded) {
        java.util.Map<Integer, List<Integer>> bySeq = new java.util.LinkedHashMap<>();
        for (int r : rows) {
            bySeq.computeIfAbsent(seqOfToken[r], k -> new ArrayList<>()).add(r);
        }
        for (List<Integer> seqRows : bySeq.values()) {
            padded.add(new Group(seqRows.stream().mapToInt(Integer::intValue).toArray(), lora));
        }
    }

    /**
     * LoRA as the fLoRA paper's baseline ran it: every sequence's tokens padded to the longest
     * sequence of the step and every adapter's A and B zero-padded to the largest rank, then the
     * same batched products for each (padding costs work and changes nothing: zero rows and ranks).
     */
    private void loraPadded(List<Group> groups, Linear linear, Tensor x, Tensor out) {
        int longest = 0;
        int rank = 0;
        for (Group g : groups) {
            longest = Math.max(longest, g.rows.length);
            rank = Math.max(rank, ((AdapterModule.Lora) g.module).rank());
        }
        int in = linear.inFeatures();
        int outs = linear.outFeatures();
        for (Group g : groups) {
            AdapterModule.Lora lora = (AdapterModule.Lora) g.module;
            Tensor xp = backend.allocate(longest, in);
            backend.gatherRows(x, g.rows, backend.rows(xp, 0, g.rows.length));
            Tensor v = backend.allocate(longest, rank);
            backend.linear(xp, paddedA(lora, rank, in), null, v);
            Tensor d = backend.allocate(longest, outs);
            backend.linear(v, paddedB(lora, rank, outs), lora.bias(), d);
            backend.scatterRows(backend.rows(d, 0, g.rows.length), g.rows, lora.scale(), null, true, out);
        }
    }

    private Tensor paddedA(AdapterModule.Lora lora, int rank, int in) {
        float[] a = backend.toHost(lora.a());
        return backend.weight(java.util.Arrays.copyOf(a, rank * in), rank, in);
    }

    private Tensor paddedB(AdapterModule.Lora lora, int rank, int outs) {
        float[] b = backend.toHost(lora.b());
        int r = lora.rank();
        float[] p = new float[outs * rank];
        for (int o = 0; o < outs; o++) {
            System.arraycopy(b, o * r, p, o * rank, r);
        }
        return backend.weight(p, outs, rank);
    }

    /** Merged copies by adapter and module, made on first use and kept (never merged in place). */
    private static final java.util.Map<Adapter, java.util.Map<String, Tensor[]>> MERGED = java.util.Collections.synchronizedMap(new java.util.WeakHashMap<>());

    private void merged(Adapter adapter, AdapterModule module, Linear linear, Tensor x, Tensor out, int[] rows) {
        Tensor[] wb = MERGED.computeIfAbsent(adapter, a -> new java.util.concurrent.ConcurrentHashMap<>())
                .computeIfAbsent(linear.module(), m -> Merging.merge(backend, linear, module));
        Tensor xs = gather(x, rows);
        Tensor y = backend.allocate(rows.length, linear.outFeatures());
        backend.linear(xs, wb[0], wb[1], y);
        backend.scatterRows(y, rows, 1f, null, false, out);
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
