package dev.flora.adapter;

import dev.flora.backend.Backend;
import dev.flora.backend.FloraProjection;
import dev.flora.backend.LoraTerms;
import dev.flora.backend.RmsNorm;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.model.Linear;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

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
    /** The step's tokens of each sequence: a sequence of one is decoding (or a one-token prompt chunk). */
    private final int[] tokensOfSequence;
    private final StepBuffers buffers;
    /** Stacked fLoRA elements (rows × the wider of input and output) one backend call may hold. */
    private final long stackedElements;

    /** {@link #stackedElements} by default: 2^28, a GB of float32 products a call. */
    static final long STACKED_ELEMENTS = 1L << 28;

    private AdaptedLinear(Backend backend, AdapterSlots slots, int[] activeSlots, int[][] rowsBySlot, int[] seqOfToken, long stackedElements) {
        this.backend = backend;
        this.stackedElements = stackedElements;
        this.slots = slots;
        this.activeSlots = activeSlots;
        this.rowsBySlot = rowsBySlot;
        this.seqOfToken = seqOfToken;
        this.tokensOfSequence = new int[java.util.Arrays.stream(seqOfToken).max().orElse(-1) + 1];
        for (int seq : seqOfToken) {
            tokensOfSequence[seq]++;
        }
        this.buffers = new StepBuffers(backend);
    }

    /** Groups the step's tokens by adapter slot, once per step. */
    public static AdaptedLinear forStep(Backend backend, AdapterSlots slots, TokenBatch batch) {
        return forStep(backend, slots, batch, STACKED_ELEMENTS);
    }

    /** As {@link #forStep(Backend, AdapterSlots, TokenBatch)}, fLoRA's calls split to hold at most {@code stackedElements}. */
    static AdaptedLinear forStep(Backend backend, AdapterSlots slots, TokenBatch batch, long stackedElements) {
        int[] tokenSlots = batch.adapterSlots();
        int max = -1;
        for (int s : tokenSlots) {
            max = Math.max(max, s);
        }
        int[] counts = new int[max + 1];
        int active = 0;
        for (int s : tokenSlots) {
            if (s >= 0 && counts[s]++ == 0) {
                active++;
            }
        }
        int[] activeSlots = new int[active];
        int[][] rows = new int[max + 1][];
        for (int s = 0, k = 0; s <= max; s++) {
            if (counts[s] > 0) {
                activeSlots[k++] = s;
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
        return new AdaptedLinear(backend, slots, activeSlots, rows, batch.seqOfToken(), stackedElements);
    }

    /** This layer's adapter modules, one per active slot (null where the slot's adapter leaves the layer alone), found once per call. */
    private AdapterModule[] modules(Linear linear) {
        AdapterModule[] modules = new AdapterModule[activeSlots.length];
        for (int k = 0; k < activeSlots.length; k++) {
            modules[k] = slots.module(linear.module(), activeSlots[k]);
        }
        return modules;
    }

    /** Whether some token of the step has an adapter on this layer. */
    public boolean adapts(Linear linear) {
        for (int slot : activeSlots) {
            if (slots.module(linear.module(), slot) != null) {
                return true;
            }
        }
        return false;
    }

    /** outs[i] = layer i applied to x (q, k, v): one backend call when no token adapts any of them. */
    public void projectAll(Linear[] linears, Tensor x, Tensor[] outs) {
        if (adaptsAny(linears) && !additive(linears)) {
            projectEach(linears, x, outs);
            return;
        }
        backend.linears(x, weights(linears), biases(linears), outs);
        addAdapters(linears, x, outs);
    }

    /** normed = the RMSNorm of x, then {@link #projectAll} of normed: one backend call for the base products where no adapter replaces them. */
    public void normProjectAll(Tensor x, RmsNorm norm, Tensor normed, Linear[] linears, Tensor[] outs) {
        if (adaptsAny(linears) && !additive(linears)) {
            // The layers no adapter replaces (v beside fLoRA's q and k, say) still run fused with the norm,
            // which also writes the normed rows the others project from.
            List<Linear> plain = new ArrayList<>();
            List<Tensor> plainOuts = new ArrayList<>();
            List<Linear> replaced = new ArrayList<>();
            List<Tensor> replacedOuts = new ArrayList<>();
            for (int i = 0; i < linears.length; i++) {
                boolean fusable = additive(new Linear[] {linears[i]});
                (fusable ? plain : replaced).add(linears[i]);
                (fusable ? plainOuts : replacedOuts).add(outs[i]);
            }
            if (plain.isEmpty()) {
                backend.rmsNorm(x, norm.weight(), norm.eps(), normed);
            } else {
                Linear[] fused = plain.toArray(Linear[]::new);
                Tensor[] fusedOuts = plainOuts.toArray(Tensor[]::new);
                backend.normLinears(x, norm, normed, weights(fused), biases(fused), fusedOuts);
                addAdapters(fused, normed, fusedOuts);
            }
            projectEach(replaced.toArray(Linear[]::new), normed, replacedOuts.toArray(Tensor[]::new));
            return;
        }
        List<Group> gathered = onlyGathered(linears, outs);
        if (gathered != null) {
            backend.normLinearsLora(x, norm, normed, weights(linears), biases(linears), outs, loraTerms(gathered));
            return;
        }
        backend.normLinears(x, norm, normed, weights(linears), biases(linears), outs);
        addAdapters(linears, normed, outs);
    }

    /**
     * The step's adapters of these layers as gathered LoRA groups (those addAdapters would make, in its
     * order), where they are all LoRA taken gathered; else null (none, or some other way), and the
     * layers go the general way.
     */
    private List<Group> onlyGathered(Linear[] linears, Tensor[] outs) {
        AdapterStrategy strategy = slots.strategy();
        if (strategy != AdapterStrategy.GATHERED && strategy != AdapterStrategy.AUTO) {
            return null;
        }
        List<Group> groups = new ArrayList<>();
        for (int i = 0; i < linears.length; i++) {
            AdapterModule[] modules = modules(linears[i]);
            boolean any = false;
            for (AdapterModule m : modules) {
                if (m != null && !(m instanceof AdapterModule.Lora)) {
                    return null;
                }
                any |= m != null;
            }
            if (!any) {
                continue;
            }
            if (strategy == AdapterStrategy.AUTO) {
                CostModel.LoraWays ways = chooseLora(linears[i], modules);
                if (ways.prompts() != AdapterStrategy.GATHERED || ways.decodes() != AdapterStrategy.GATHERED) {
                    return null;
                }
            }
            for (int k = 0; k < modules.length; k++) {
                if (modules[k] instanceof AdapterModule.Lora lora) {
                    groups.add(new Group(rowsBySlot[activeSlots[k]], lora, outs[i]));
                }
            }
        }
        return groups.isEmpty() ? null : groups;
    }

    /** normed = the RMSNorm of x, then {@link #projectGated} of normed. */
    public void normProjectGated(Tensor x, RmsNorm norm, Tensor normed, Linear gateLayer, Linear upLayer, dev.flora.backend.Activation act,
                                 Tensor gate, Tensor up) {
        Linear[] both = {gateLayer, upLayer};
        if (!adaptsAny(both)) {
            backend.normGatedLinear(x, norm, normed, gateLayer.weight(), gateLayer.bias(), upLayer.weight(), upLayer.bias(), act, gate, up);
        } else if (additive(both)) {
            Tensor[] outs = {gate, up};
            backend.normLinears(x, norm, normed, weights(both), biases(both), outs);
            addAdapters(both, normed, outs);
            backend.gatedActivation(act, gate, up, gate);
        } else {
            backend.rmsNorm(x, norm.weight(), norm.eps(), normed);
            projectGated(gateLayer, upLayer, act, normed, gate, up);
        }
    }

    /**
     * residual += the gated MLP of the RMSNorm of x (normed written): one backend call where no adapter
     * of this step touches gate, up or down, else {@link #normProjectGated} then {@link #projectAdd}.
     */
    public void normGatedProjectAdd(Tensor x, RmsNorm norm, Tensor normed, Linear gateLayer, Linear upLayer,
                                    dev.flora.backend.Activation act, Linear downLayer, Tensor gate, Tensor up, Tensor scratch,
                                    Tensor residual) {
        if (adaptsAny(new Linear[] {gateLayer, upLayer, downLayer})) {
            normProjectGated(x, norm, normed, gateLayer, upLayer, act, gate, up);
            projectAdd(downLayer, gate, scratch, residual);
        } else {
            backend.normGatedLinearAdd(x, norm, normed, gateLayer.weight(), gateLayer.bias(), upLayer.weight(), upLayer.bias(), act,
                    downLayer.weight(), downLayer.bias(), gate, up, scratch, residual);
        }
    }

    /**
     * Whether every adapter of these layers in this step adds to (or scales) the base product rather
     * than replacing rows of it: then the base products can run fused, the adapters after them.
     */
    private boolean additive(Linear[] linears) {
        for (Linear l : linears) {
            AdapterModule[] modules = modules(l);
            for (AdapterModule m : modules) {
                if (m != null && replaces(m, slots.strategy())) {
                    return false;
                }
            }
        }
        return true;
    }

    /** The adapters of layers sharing the input x: LoRA's gathered tokens of every layer in one backend call. */
    private void addAdapters(Linear[] linears, Tensor x, Tensor[] outs) {
        addAdapters(linears, modules(linears), x, outs);
    }

    /** Each layer's modules by active slot (null where a slot has none). */
    private AdapterModule[][] modules(Linear[] linears) {
        AdapterModule[][] modules = new AdapterModule[linears.length][];
        for (int i = 0; i < linears.length; i++) {
            modules[i] = modules(linears[i]);
        }
        return modules;
    }

    /** addAdapters with each layer's modules given (by active slot; null where none). */
    private void addAdapters(Linear[] linears, AdapterModule[][] modules, Tensor x, Tensor[] outs) {
        List<Group> gathered = new ArrayList<>();
        List<FloraLayer> floras = new ArrayList<>();
        for (int i = 0; i < linears.length; i++) {
            if (java.util.Arrays.stream(modules[i]).anyMatch(java.util.Objects::nonNull)) {
                addAdapters(linears[i], x, outs[i], modules[i], gathered, floras);
            }
        }
        if (!floras.isEmpty()) {
            floraLinears(x, floras);
        }
        if (!gathered.isEmpty()) {
            loraGathered(gathered, x);
        }
    }

    private boolean adaptsAny(Linear[] linears) {
        for (Linear l : linears) {
            if (adapts(l)) {
                return true;
            }
        }
        return false;
    }

    private static Tensor[] weights(Linear[] linears) {
        return java.util.Arrays.stream(linears).map(Linear::weight).toArray(Tensor[]::new);
    }

    private static Tensor[] biases(Linear[] linears) {
        return java.util.Arrays.stream(linears).map(Linear::bias).toArray(Tensor[]::new);
    }

    /** gate = act(gate layer (x)) * up layer (x), {@code up} as scratch: one backend call when no token adapts either. */
    public void projectGated(Linear gateLayer, Linear upLayer, dev.flora.backend.Activation act, Tensor x, Tensor gate, Tensor up) {
        if (adapts(gateLayer) || adapts(upLayer)) {
            projectEach(new Linear[] {gateLayer, upLayer}, x, new Tensor[] {gate, up});
            backend.gatedActivation(act, gate, up, gate);
        } else {
            backend.gatedLinear(x, gateLayer.weight(), gateLayer.bias(), upLayer.weight(), upLayer.bias(), act, gate, up);
        }
    }

    /**
     * residual += the layer applied to x ({@code scratch} for its output): one backend call when no token
     * adapts it. LoRA, which adds to the base product, adds to the residual after it (the rest of the
     * layer, other adapters included, through {@code scratch} first where the step has them), so a row's
     * sums do not depend on the other rows' adapters, and a step of LoRA alone never stores the layer's
     * output to add it back.
     */
    public void projectAdd(Linear linear, Tensor x, Tensor scratch, Tensor residual) {
        if (!adapts(linear)) {
            backend.linearAdd(x, linear.weight(), linear.bias(), scratch, residual);
            return;
        }
        if (slots.strategy() == AdapterStrategy.MERGED) {
            project(linear, x, scratch);
            backend.addInPlace(residual, scratch);
            return;
        }
        AdapterModule[] modules = modules(linear);
        AdapterModule[] loras = new AdapterModule[modules.length];
        AdapterModule[] others = new AdapterModule[modules.length];
        boolean anyOther = false;
        for (int k = 0; k < modules.length; k++) {
            if (modules[k] instanceof AdapterModule.Lora) {
                loras[k] = modules[k];
            } else {
                others[k] = modules[k];
                anyOther |= modules[k] != null;
            }
        }
        if (anyOther) {
            projectEach(new Linear[] {linear}, new AdapterModule[][] {others}, x, new Tensor[] {scratch});
            backend.addInPlace(residual, scratch);
        } else {
            backend.linearAdd(x, linear.weight(), linear.bias(), scratch, residual);
        }
        addAdapters(new Linear[] {linear}, new AdapterModule[][] {loras}, x, new Tensor[] {residual});
    }

    /** out = the layer applied to x, for every token with its own adapter, by the strategy the slots ask for. */
    public void project(Linear linear, Tensor x, Tensor out) {
        projectEach(new Linear[] {linear}, x, new Tensor[] {out});
    }

    /**
     * outs[i] = layer i applied to x, for every token with its own adapter: the base products, then the
     * adapters, LoRA's gathered tokens of every layer in one backend call and fLoRA's in one more
     * (one modulation for all of them where the backend fuses it).
     */
    private void projectEach(Linear[] linears, Tensor x, Tensor[] outs) {
        projectEach(linears, modules(linears), x, outs);
    }

    /** projectEach with each layer's modules given (by active slot; null where none). */
    private void projectEach(Linear[] linears, AdapterModule[][] modules, Tensor x, Tensor[] outs) {
        List<Group> gathered = new ArrayList<>();
        List<FloraLayer> floras = new ArrayList<>();
        for (int i = 0; i < linears.length; i++) {
            baseProduct(linears[i], x, outs[i], modules[i], slots.strategy());
            addAdapters(linears[i], x, outs[i], modules[i], gathered, floras);
        }
        if (!floras.isEmpty()) {
            floraLinears(x, floras);
        }
        if (!gathered.isEmpty()) {
            loraGathered(gathered, x);
        }
    }

    /**
     * The adapters' part of {@link #project}, on out holding the base product of every row not
     * replaced; LoRA's gathered groups are left in {@code gathered} and fLoRA's fused ones in
     * {@code floras}, each for one call with other layers'.
     */
    private void addAdapters(Linear linear, Tensor x, Tensor out, AdapterModule[] modules, List<Group> gathered,
                             List<FloraLayer> floras) {
        AdapterStrategy strategy = slots.strategy();
        boolean auto = strategy == AdapterStrategy.AUTO;
        AdapterStrategy floraWay = auto ? chooseFlora(linear, modules) : strategy;
        CostModel.LoraWays loraWays = auto ? chooseLora(linear, modules) : new CostModel.LoraWays(strategy, strategy);
        List<Group> fused = new ArrayList<>();
        List<Group> padded = new ArrayList<>();
        List<Group> scaledOutputs = new ArrayList<>();
        List<Group> scaledInputs = new ArrayList<>();
        for (int k = 0; k < activeSlots.length; k++) {
            AdapterModule module = modules[k];
            if (module == null) {
                continue;
            }
            int slot = activeSlots[k];
            int[] rows = rowsBySlot[slot];
            if (strategy == AdapterStrategy.MERGED) {
                MergedWeights.project(backend, slots.adapter(slot), module, linear, x, out, rows);
                continue;
            }
            switch (module) {
                case AdapterModule.Lora lora -> addLora(lora, rows, loraWays, linear, x, out, gathered, padded);
                case AdapterModule.Flora flora when floraWay == AdapterStrategy.FLORA -> fused.add(new Group(rows, flora, out));
                case AdapterModule.Ia3 ia3 when ia3.inputSide() -> scaledInputs.add(new Group(rows, ia3, out));
                case AdapterModule.Ia3 ia3 -> scaledOutputs.add(new Group(rows, ia3, out));
                default -> apply(module, linear, x, out, rows);
            }
        }
        if (!fused.isEmpty()) {
            floras.add(floraFused(fused, linear, out));
        }
        if (!scaledOutputs.isEmpty()) {
            backend.mulRowsGrouped(out, rowsOf(scaledOutputs), scalesOf(scaledOutputs));
        }
        if (!scaledInputs.isEmpty()) {
            ia3Inputs(scaledInputs, linear, x, out);
        }
        if (!padded.isEmpty()) {
            loraPadded(padded, linear, x, out);
        }
    }

    /**
     * One LoRA module's rows by the step's ways: prompt rows (of sequences with several tokens in the
     * step) one way and decode rows (of one-token sequences) the other, where the two differ.
     */
    private void addLora(AdapterModule.Lora lora, int[] rows, CostModel.LoraWays ways, Linear linear, Tensor x, Tensor out,
                         List<Group> gathered, List<Group> padded) {
        if (ways.prompts() == ways.decodes()) {
            addLora(lora, rows, ways.prompts(), linear, x, out, gathered, padded);
            return;
        }
        int decodes = 0;
        for (int r : rows) {
            decodes += tokensOfSequence[seqOfToken[r]] == 1 ? 1 : 0;
        }
        int[] promptRows = new int[rows.length - decodes];
        int[] decodeRows = new int[decodes];
        int p = 0;
        int d = 0;
        for (int r : rows) {
            if (tokensOfSequence[seqOfToken[r]] == 1) {
                decodeRows[d++] = r;
            } else {
                promptRows[p++] = r;
            }
        }
        if (promptRows.length > 0) {
            addLora(lora, promptRows, ways.prompts(), linear, x, out, gathered, padded);
        }
        if (decodeRows.length > 0) {
            addLora(lora, decodeRows, ways.decodes(), linear, x, out, gathered, padded);
        }
    }

    private void addLora(AdapterModule.Lora lora, int[] rows, AdapterStrategy way, Linear linear, Tensor x, Tensor out,
                         List<Group> gathered, List<Group> padded) {
        switch (way) {
            case GATHERED -> gathered.add(new Group(rows, lora, out));
            case BMM -> bySequence(rows, lora, out, padded);
            default -> apply(lora, linear, x, out, rows);
        }
    }

    /**
     * LoRA-bmm over one layer's sequences: those of one token in one call and the longer ones in
     * another, so that a prompt chunk does not pad every decoding sequence of the step to its length.
     */
    private void loraPadded(List<Group> padded, Linear linear, Tensor x, Tensor out) {
        List<Group> single = padded.stream().filter(g -> g.rows.length == 1).toList();
        List<Group> longer = padded.stream().filter(g -> g.rows.length > 1).toList();
        for (List<Group> part : List.of(longer, single)) {
            if (!part.isEmpty()) {
                PaddedLora.project(backend, buffers, part.stream().map(Group::rows).toList(),
                        part.stream().map(g -> (AdapterModule.Lora) g.module).toList(), linear, x, out);
            }
        }
    }

    /**
     * AUTO for fLoRA: the measured-cheapest strategy for this layer's fLoRA tokens (by the layer's
     * shape, their count and largest rank), or the default without a calibration.
     */
    private AdapterStrategy chooseFlora(Linear linear, AdapterModule[] modules) {
        int tokens = 0;
        int rank = 0;
        for (int k = 0; k < modules.length; k++) {
            if (modules[k] instanceof AdapterModule.Flora f) {
                tokens += rowsBySlot[activeSlots[k]].length;
                rank = Math.max(rank, f.rank());
            }
        }
        CostModel costs = slots.costModel();
        if (tokens == 0 || costs == null) {
            return CostModel.defaultFor(AdapterKind.FLORA);
        }
        return costs.choose(AdapterKind.FLORA, linear.inFeatures(), linear.outFeatures(), tokens, rank);
    }

    /**
     * AUTO's ways for this layer's LoRA tokens, from the shape of the step's LoRA work: its prompt
     * tokens (their sequences and the longest, LoRA-bmm's padded shape) and its one-token sequences.
     */
    private CostModel.LoraWays chooseLora(Linear linear, AdapterModule[] modules) {
        int[] rowsOfSequence = new int[tokensOfSequence.length];
        int promptTokens = 0;
        int promptSequences = 0;
        int promptLongest = 0;
        int decodes = 0;
        int rank = 0;
        for (int k = 0; k < modules.length; k++) {
            if (modules[k] instanceof AdapterModule.Lora l) {
                rank = Math.max(rank, l.rank());
                for (int r : rowsBySlot[activeSlots[k]]) {
                    int seq = seqOfToken[r];
                    if (tokensOfSequence[seq] == 1) {
                        decodes++;
                        continue;
                    }
                    promptTokens++;
                    int n = ++rowsOfSequence[seq];
                    promptSequences += n == 1 ? 1 : 0;
                    promptLongest = Math.max(promptLongest, n);
                }
            }
        }
        CostModel costs = slots.costModel();
        if (promptTokens + decodes == 0 || costs == null) {
            AdapterStrategy way = CostModel.defaultFor(AdapterKind.LORA);
            return new CostModel.LoraWays(way, way);
        }
        return costs.chooseLora(linear.inFeatures(), linear.outFeatures(), promptTokens, promptSequences, promptLongest, decodes, rank);
    }

    /** Whether this strategy replaces a module's output rows outright (so their base product would be wasted). */
    private static boolean replaces(AdapterModule module, AdapterStrategy strategy) {
        return strategy == AdapterStrategy.MERGED
                || module instanceof AdapterModule.Ia3 ia3 && ia3.inputSide()
                || module instanceof AdapterModule.Flora;
    }

    /** The shared base product, for every row whose output the adapters do not replace outright. */
    private void baseProduct(Linear linear, Tensor x, Tensor out, AdapterModule[] modules, AdapterStrategy strategy) {
        int replaced = 0;
        boolean[] skip = null;
        for (int k = 0; k < modules.length; k++) {
            if (modules[k] != null && replaces(modules[k], strategy)) {
                if (skip == null) {
                    skip = new boolean[x.rows()];
                }
                for (int r : rowsBySlot[activeSlots[k]]) {
                    skip[r] = true;
                }
                replaced += rowsBySlot[activeSlots[k]].length;
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
            Tensor xs = buffers.get(StepBuffers.Use.KEPT_INPUT, keep.length, x.cols());
            backend.gatherRows(x, keep, xs);
            Tensor y = buffers.get(StepBuffers.Use.KEPT_OUTPUT, keep.length, linear.outFeatures());
            backend.linear(xs, linear.weight(), linear.bias(), y);
            backend.scatterRows(y, keep, 1f, null, false, out);
        }
    }

    /** Tokens of one adapter slot, or of one sequence and slot (LoRA-bmm), and the layer output they go to. */
    private record Group(int[] rows, AdapterModule module, Tensor out) {
    }

    /**
     * LoRA gathered: every LoRA-adapted token of the step in one shrink/expand call, each with its own
     * adapter and rank, for one layer or several sharing the input.
     */
    private void loraGathered(List<Group> groups, Tensor x) {
        LoraTerms t = loraTerms(groups);
        backend.loraShrinkExpand(x, t.rows(), t.a(), t.b(), t.bias(), t.scale(), t.outs());
    }

    /** The groups' terms as the backend takes them. */
    private static LoraTerms loraTerms(List<Group> groups) {
        int n = groups.size();
        int[][] rows = new int[n][];
        Tensor[] a = new Tensor[n];
        Tensor[] b = new Tensor[n];
        Tensor[] bias = new Tensor[n];
        float[] scale = new float[n];
        Tensor[] outs = new Tensor[n];
        for (int g = 0; g < n; g++) {
            AdapterModule.Lora lora = (AdapterModule.Lora) groups.get(g).module;
            rows[g] = groups.get(g).rows;
            a[g] = lora.a();
            b[g] = lora.b();
            bias[g] = lora.bias();
            scale[g] = lora.scale();
            outs[g] = groups.get(g).out;
        }
        return new LoraTerms(rows, a, b, bias, scale, outs);
    }

    /**
     * fLoRA, fused: every fLoRA token's r modulated copies x ∘ A[j] stacked into one matrix, ONE
     * product with W0 for all of them, then a demodulation by B[:, j] that sums over j in order, scales
     * by 1/r, adds the bias and writes the rows: the exact strategy's arithmetic, however many adapters
     * share the step. Returned as this layer's part of one {@link Backend#floraLinears} call.
     */
    private static FloraLayer floraFused(List<Group> groups, Linear linear, Tensor out) {
        int n = groups.size();
        int[][] rows = new int[n][];
        Tensor[] a = new Tensor[n];
        Tensor[] bt = new Tensor[n];
        for (int g = 0; g < n; g++) {
            AdapterModule.Flora f = (AdapterModule.Flora) groups.get(g).module;
            rows[g] = groups.get(g).rows;
            a[g] = f.a();
            bt[g] = f.bt();
        }
        return new FloraLayer(rows, a, bt, linear, out);
    }

    /** One layer's fLoRA groups (token rows, A and Bᵀ each), before its stacked buffers are given. */
    private record FloraLayer(int[][] rows, Tensor[] a, Tensor[] bt, Linear linear, Tensor out) {
        long stackedRows() {
            long n = 0;
            for (int g = 0; g < rows.length; g++) {
                n += (long) rows[g].length * a[g].rows();
            }
            return n;
        }

        int width() {
            return Math.max(linear.inFeatures(), linear.outFeatures());
        }
    }

    /**
     * The layers' fLoRA in one backend call where their stacked rows fit {@link #stackedElements};
     * else each layer in pieces of its tokens that do (a prompt chunk of 8,192 tokens at rank 64
     * would stack half a million rows: tens of GB). Rows are independent: the same values either way.
     */
    private void floraLinears(Tensor x, List<FloraLayer> layers) {
        boolean fits = true;
        for (FloraLayer l : layers) {
            fits &= l.stackedRows() * l.width() <= stackedElements;
        }
        if (fits) {
            backend.floraLinears(x, layers.stream().map(this::projection).toList());
            return;
        }
        for (FloraLayer l : layers) {
            long most = Math.max(1, stackedElements / l.width());
            List<int[]> piece = new ArrayList<>();
            List<Integer> groups = new ArrayList<>();
            long stacked = 0;
            for (int g = 0; g < l.rows().length; g++) {
                int rank = l.a()[g].rows();
                int[] rows = l.rows()[g];
                for (int from = 0; from < rows.length; ) {
                    long room = (most - stacked) / rank;
                    if (room == 0 && stacked > 0) {
                        floraPiece(x, l, piece, groups);
                        piece.clear();
                        groups.clear();
                        stacked = 0;
                        continue;
                    }
                    int take = (int) Math.min(rows.length - from, Math.max(1, room));
                    piece.add(java.util.Arrays.copyOfRange(rows, from, from + take));
                    groups.add(g);
                    stacked += (long) take * rank;
                    from += take;
                }
            }
            if (!piece.isEmpty()) {
                floraPiece(x, l, piece, groups);
            }
        }
    }

    private void floraPiece(Tensor x, FloraLayer l, List<int[]> rows, List<Integer> groups) {
        Tensor[] a = groups.stream().map(g -> l.a()[g]).toArray(Tensor[]::new);
        Tensor[] bt = groups.stream().map(g -> l.bt()[g]).toArray(Tensor[]::new);
        FloraLayer piece = new FloraLayer(rows.toArray(int[][]::new), a, bt, l.linear(), l.out());
        backend.floraLinears(x, List.of(projection(piece)));
    }

    /** The layer's projection, with stacked buffers of the step (one per width, reused layer after layer). */
    private FloraProjection projection(FloraLayer l) {
        int total = Math.toIntExact(l.stackedRows());
        Tensor stacked = buffers.get(StepBuffers.Use.STACKED_INPUT, total, l.linear().inFeatures());
        Tensor products = buffers.get(StepBuffers.Use.STACKED_OUTPUT, total, l.linear().outFeatures());
        return new FloraProjection(l.rows(), l.a(), l.bt(), l.linear().weight(), l.linear().bias(), stacked, products, l.out());
    }

    private static int[][] rowsOf(List<Group> groups) {
        return groups.stream().map(Group::rows).toArray(int[][]::new);
    }

    private static Tensor[] scalesOf(List<Group> groups) {
        return groups.stream().map(g -> ((AdapterModule.Ia3) g.module).scale()).toArray(Tensor[]::new);
    }

    /**
     * IA3 on the input side (the feed-forward's down projection), every adapter at once: the tokens'
     * rows gathered, each scaled by its adapter's vector in one call, ONE product with the layer's
     * weight, the rows written back (their base product was skipped: these rows are replaced).
     */
    private void ia3Inputs(List<Group> groups, Linear linear, Tensor x, Tensor out) {
        int[][] rows = rowsOf(groups);
        int total = 0;
        for (int[] r : rows) {
            total += r.length;
        }
        int[] all = new int[total];
        int[][] local = new int[rows.length][];
        for (int g = 0, k = 0; g < rows.length; g++) {
            local[g] = new int[rows[g].length];
            for (int i = 0; i < rows[g].length; i++, k++) {
                all[k] = rows[g][i];
                local[g][i] = k;
            }
        }
        Tensor xs = buffers.get(StepBuffers.Use.KEPT_INPUT, total, x.cols());
        backend.gatherRows(x, all, xs);
        backend.mulRowsGrouped(xs, local, scalesOf(groups));
        Tensor y = buffers.get(StepBuffers.Use.KEPT_OUTPUT, total, linear.outFeatures());
        backend.linear(xs, linear.weight(), linear.bias(), y);
        backend.scatterRows(y, all, 1f, null, false, out);
    }

    /** LoRA-bmm pads per sequence: a slot's rows split by the sequence they belong to. */
    private void bySequence(int[] rows, AdapterModule.Lora lora, Tensor out, List<Group> padded) {
        Map<Integer, List<Integer>> bySeq = new LinkedHashMap<>();
        for (int r : rows) {
            bySeq.computeIfAbsent(seqOfToken[r], k -> new ArrayList<>()).add(r);
        }
        for (List<Integer> seqRows : bySeq.values()) {
            padded.add(new Group(seqRows.stream().mapToInt(Integer::intValue).toArray(), lora, out));
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
            case AdapterModule.Ia3 ia3 -> throw new IllegalStateException("IA3 is applied by group"); // addAdapters
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
