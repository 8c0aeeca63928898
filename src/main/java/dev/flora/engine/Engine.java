package dev.flora.engine;

import dev.flora.FloraException;
import dev.flora.adapter.AdapterRange;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.backend.DType;
import dev.flora.backend.KvCache;
import dev.flora.backend.LogitSummary;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.model.CausalLM;
import dev.flora.model.ModelSpec;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Runs requests to completion in steps: each step the scheduler picks tokens from every running
 * sequence (prefill chunks and decode tokens together), the model computes them as ONE flattened
 * batch through the paged KV cache, and the engine scores, samples and retires sequences.
 */
public final class Engine {
    /** Receives tokens as they are generated and sequences as they finish. */
    public interface Listener {
        default void onToken(String requestId, int token, double logprob) {
        }

        /** A generated token with its log-probability and, when asked for, the most likely tokens at its step. */
        default void onToken(String requestId, int token, double logprob, TopLogprobs top) {
            onToken(requestId, token, logprob);
        }

        default void onFinish(Result result) {
        }

        /** The request could not run (it was refused once queued, or a step failed). */
        default void onError(String requestId, RuntimeException error) {
        }
    }

    /** Logit rows computed at once: bounds the [rows, vocab] buffer when a whole prompt is scored. */
    private static final int LOGIT_ROWS_PER_PASS = 64;

    private final CausalLM model;
    private final AdapterRegistry adapters;
    private final ModelSpec spec;
    private final Set<Integer> eosTokens;
    private final BlockManager blocks;
    private final Scheduler scheduler;
    private final KvCache cache;
    private final DecodeGraphs graphs; // null: every step runs as it comes
    private final int maxSequences;
    private long forwardNanos; // forwardNanos()
    private final Map<String, Sequence> active = new HashMap<>();
    private long steps;
    private long replayedSteps;
    private int lastStepTokens;

    public Engine(CausalLM model, EngineConfig config, Set<Integer> eosTokens) {
        this(model, config, eosTokens, new AdapterRegistry(1));
    }

    public Engine(CausalLM model, EngineConfig config, Set<Integer> eosTokens, AdapterRegistry adapters) {
        this.model = model;
        this.adapters = adapters;
        this.spec = model.spec();
        this.eosTokens = Set.copyOf(eosTokens);
        DType kvType = model.backend().kvCacheType(spec.weightType());
        long perBlock = KvCache.bytesPerBlock(spec.layers(), config.blockSize(), spec.kvWidth(), kvType);
        long affordable = config.kvCacheBytes() / perBlock;
        long useful = (long) config.maxSequences() * ((spec.maxContext() + config.blockSize() - 1) / config.blockSize());
        int numBlocks = (int) Math.min(Math.min(affordable, useful), Integer.MAX_VALUE);
        if (numBlocks < 1) {
            throw new FloraException("the KV cache memory (" + config.kvCacheBytes() + " bytes) holds no block of "
                    + config.blockSize() + " positions (" + perBlock + " bytes)");
        }
        this.blocks = new BlockManager(numBlocks, config.blockSize());
        this.scheduler = new Scheduler(blocks, adapters, config.maxBatchedTokens(), config.maxSequences(), spec.maxContext(),
                config.separatePrefillDecode());
        this.cache = model.backend().allocateKvCache(spec.layers(), numBlocks, config.blockSize(), spec.kvWidth(), kvType);
        int maxBlocksPerSequence = (spec.maxContext() + config.blockSize() - 1) / config.blockSize();
        this.graphs = DecodeGraphs.of(model, cache, adapters, maxBlocksPerSequence, config.stepGraphs());
        this.maxSequences = config.maxSequences();
    }

    public ModelSpec spec() {
        return spec;
    }

    public int freeBlocks() {
        return blocks.freeBlocks();
    }

    public int totalBlocks() {
        return blocks.numBlocks();
    }

    /**
     * Host time spent in steps' forward passes so far, in ns. On a GPU that is the time to queue them
     * (the wait for their results comes after, when the logits are read): near a run's whole time, the
     * host and not the GPU set its pace. On the CPU it is the computation itself.
     */
    public long forwardNanos() {
        return forwardNanos;
    }

    public long steps() {
        return steps;
    }

    /**
     * Records the decode steps of every size up to the engine's sequences now, so that no recording
     * falls inside a timed run (vLLM captures its graphs at start-up); returns how many were recorded,
     * none where the backend records nothing or step graphs are off.
     */
    public int recordDecodeSteps() {
        return graphs == null ? 0 : graphs.recordUpTo(maxSequences);
    }

    /** Steps replayed from recordings (CUDA graphs) so far. */
    public long replayedSteps() {
        return replayedSteps;
    }

    /** Tokens computed in the last step. */
    public int lastStepTokens() {
        return lastStepTokens;
    }

    /** Queues a request; refuses what could never run. */
    public void submit(Request request) {
        check(request);
        if (active.containsKey(request.id())) {
            throw new FloraException("request id '" + request.id() + "' is already in use");
        }
        Sequence seq = new Sequence(request);
        active.put(request.id(), seq);
        scheduler.waiting.add(seq);
    }

    /** Refuses what could never run (empty or too long prompts, unknown tokens or adapters, too many blocks); safe from any thread. */
    public void check(Request request) {
        int[] prompt = request.prompt();
        if (prompt.length == 0) {
            throw new FloraException("request " + request.id() + ": the prompt has no tokens");
        }
        if (prompt.length > spec.maxContext()) {
            throw new FloraException("request " + request.id() + ": the prompt has " + prompt.length
                    + " tokens, more than the model's context of " + spec.maxContext());
        }
        for (int t : prompt) {
            if (t < 0 || t >= spec.vocabSize()) {
                throw new FloraException("request " + request.id() + ": token id " + t + " is outside the vocabulary (0.." + (spec.vocabSize() - 1) + ")");
            }
        }
        checkAdapters(request);
        int need = blocks.blocksFor(scheduler.reservation(request));
        if (need > blocks.numBlocks()) {
            throw new FloraException("request " + request.id() + " needs " + need + " KV-cache blocks but the cache has "
                    + blocks.numBlocks() + "; give the KV cache more memory");
        }
    }

    /** Sequences preempted so far (their blocks freed, to be recomputed). */
    public long preemptions() {
        return scheduler.preemptions;
    }

    /** Fraction of KV-cache blocks in use. */
    public double kvCacheUsage() {
        return 1.0 - (double) blocks.freeBlocks() / blocks.numBlocks();
    }

    /** Names of the adapters the running (or waiting) sequences use. */
    public java.util.Set<String> adapterNames(boolean runningSequences) {
        java.util.Set<String> names = new java.util.TreeSet<>();
        for (Sequence seq : runningSequences ? scheduler.running : scheduler.waiting) {
            for (AdapterRange r : seq.request.adapters()) {
                if (r.name() != null) {
                    names.add(r.name());
                }
            }
        }
        return names;
    }

    public int runningCount() {
        return scheduler.running.size();
    }

    public int waitingCount() {
        return scheduler.waiting.size();
    }

    private void checkAdapters(Request request) {
        int previous = -1;
        for (AdapterRange range : request.adapters()) {
            if (range.from() <= previous || (previous < 0 && range.from() != 0)) {
                throw new FloraException("request " + request.id() + ": adapter ranges must start at 0 and increase, got from "
                        + range.from() + (previous >= 0 ? " after " + previous : ""));
            }
            if (range.from() >= request.prompt().length) {
                throw new FloraException("request " + request.id() + ": adapter range from " + range.from()
                        + " starts past the prompt's " + request.prompt().length + " tokens");
            }
            if (range.name() != null && !adapters.contains(range.name())) {
                throw new FloraException("request " + request.id() + ": unknown adapter '" + range.name() + "'");
            }
            previous = range.from();
        }
        long distinct = request.adapters().stream().map(AdapterRange::name).filter(java.util.Objects::nonNull).distinct().count();
        if (distinct > adapters.capacity()) {
            throw new FloraException("request " + request.id() + " uses " + distinct + " adapters but only " + adapters.capacity()
                    + " can be resident at once; raise --max-adapters");
        }
    }

    public AdapterRegistry adapters() {
        return adapters;
    }

    public boolean hasWork() {
        return scheduler.hasWork();
    }

    /** Runs requests together until all finish; results in the order given. */
    public List<Result> run(List<Request> requests, Listener listener) {
        for (Request r : requests) {
            submit(r);
        }
        Map<String, Result> done = new LinkedHashMap<>();
        while (hasWork()) {
            long loadsSeen = adapters.loadEvents();
            for (Result r : step(listener)) {
                done.put(r.id(), r);
            }
            if (waitingForAdapters()) {
                awaitAdapterLoad(loadsSeen);
            }
        }
        List<Result> ordered = new ArrayList<>();
        for (Request r : requests) {
            ordered.add(done.get(r.id()));
        }
        return ordered;
    }

    /**
     * Whether the last step computed nothing because every sequence that could start waits for its
     * adapter to be read from disk (see {@link AdapterRegistry#awaitLoadEvent}).
     */
    public boolean waitingForAdapters() {
        return lastStepTokens == 0 && scheduler.awaitingAdapters;
    }

    private void awaitAdapterLoad(long loadsSeen) {
        try {
            adapters.awaitLoadEvent(loadsSeen, 100);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new FloraException("interrupted while an adapter was read from disk");
        }
    }

    /** One forward step; returns the sequences that finished in it. */
    public List<Result> step(Listener listener) {
        List<Scheduler.Chunk> chunks = scheduler.schedule();
        for (Scheduler.Refusal r : scheduler.refused) {
            active.remove(r.seq().request.id());
            listener.onError(r.seq().request.id(), r.reason());
        }
        boolean refusedSome = !scheduler.refused.isEmpty();
        scheduler.refused.clear();
        if (chunks.isEmpty() && (refusedSome || !hasWork() || scheduler.awaitingAdapters)) {
            lastStepTokens = 0;
            return List.of(); // nothing to compute now; with waiting adapters, until the background loader reads one
        }
        if (chunks.isEmpty()) {
            throw new IllegalStateException("scheduler found no work while " + scheduler.waiting.size() + " requests wait");
        }
        steps++;
        TokenBatch batch = buildBatch(chunks);
        lastStepTokens = batch.numTokens();
        long issuing = System.nanoTime();
        Tensor replayed = graphs == null ? null : graphs.logits(batch);
        Tensor hidden = replayed == null ? model.forward(batch, cache, adapters) : null;
        forwardNanos += System.nanoTime() - issuing;
        replayedSteps += replayed == null ? 0 : 1;
        consumeLogits(chunks, batch, hidden, replayed, listener);
        List<Result> finished = new ArrayList<>();
        for (Scheduler.Chunk c : chunks) {
            Sequence seq = c.seq();
            seq.computed = c.start() + c.count();
            if (seq.finishReason == null && !seq.inPrefill() && seq.generatedCount() >= seq.request.sampling().maxTokens()) {
                seq.finishReason = FinishReason.LENGTH; // nothing (more) to generate, e.g. scoring only
            }
            if (seq.finishReason != null) {
                scheduler.finish(seq);
                active.remove(seq.request.id());
                Result r = seq.result();
                listener.onFinish(r);
                finished.add(r);
            }
        }
        return finished;
    }

    private TokenBatch buildBatch(List<Scheduler.Chunk> chunks) {
        int total = 0;
        for (Scheduler.Chunk c : chunks) {
            total += c.count();
        }
        int[] tokens = new int[total];
        int[] positions = new int[total];
        int[] seqOf = new int[total];
        int[] slots = new int[total];
        int[] adapterSlots = new int[total];
        int[][] tables = new int[chunks.size()][];
        int[] contexts = new int[chunks.size()];
        List<Integer> logitRows = new ArrayList<>();
        int t = 0;
        for (int s = 0; s < chunks.size(); s++) {
            Scheduler.Chunk c = chunks.get(s);
            Sequence seq = c.seq();
            tables[s] = seq.blockTable;
            contexts[s] = c.start() + c.count();
            for (int i = 0; i < c.count(); i++, t++) {
                int p = c.start() + i;
                tokens[t] = seq.token(p);
                positions[t] = p;
                seqOf[t] = s;
                slots[t] = blocks.slot(seq, p);
                adapterSlots[t] = seq.slotAt(p);
                if (needsLogits(seq, p)) {
                    logitRows.add(t);
                }
            }
        }
        return new TokenBatch(tokens, positions, seqOf, adapterSlots, slots, tables, contexts, blocks.blockSize(),
                logitRows.stream().mapToInt(Integer::intValue).toArray());
    }

    /** Position p's logits score prompt token p + 1, or pick the next token after the last one. */
    private static boolean needsLogits(Sequence seq, int p) {
        return scoresPrompt(seq, p) || samples(seq, p);
    }

    /** Position p's logits give the log-probability of prompt token p + 1. */
    private static boolean scoresPrompt(Sequence seq, int p) {
        return seq.promptLogprobs != null && p + 1 < seq.promptLength();
    }

    /** Position p is the sequence's last and picks the next token. */
    private static boolean samples(Sequence seq, int p) {
        return p == seq.length() - 1 && seq.generatedCount() < seq.request.sampling().maxTokens();
    }

    /**
     * Samples from the logits of the step's rows: computed from hidden here, or already computed
     * (replayed) when given. Rows that greedy decoding alone reads come back as their summary
     * (argmax, log-sum-exp); the full rows are copied only when some row of the pass needs more.
     */
    private void consumeLogits(List<Scheduler.Chunk> chunks, TokenBatch batch, Tensor hidden, Tensor replayed, Listener listener) {
        int[] rows = batch.logitRows();
        int vocab = spec.vocabSize();
        for (int from = 0; from < rows.length; from += LOGIT_ROWS_PER_PASS) {
            int count = Math.min(LOGIT_ROWS_PER_PASS, rows.length - from);
            Tensor rowLogits = replayed != null ? model.backend().rows(replayed, from, count)
                    : model.logits(model.backend().rows(hidden, from, count));
            boolean full = false;
            for (int r = 0; r < count && !full; r++) {
                int t = rows[from + r];
                full = !greedyOnly(chunks.get(batch.seqOfToken()[t]).seq(), batch.positions()[t]);
            }
            float[] logits = full ? model.backend().toHost(rowLogits) : null;
            LogitSummary summary = model.backend().summarizeLogits(rowLogits, logits);
            int[] drawn = logits == null ? null : draws(chunks, batch, from, count, logits);
            for (int r = 0; r < count; r++) {
                int t = rows[from + r];
                Sequence seq = chunks.get(batch.seqOfToken()[t]).seq();
                int p = batch.positions()[t];
                int offset = r * vocab;
                double lse = summary.logSumExp()[r];
                SamplingParams sp = seq.request.sampling();
                if (scoresPrompt(seq, p)) {
                    seq.promptLogprobs[p + 1] = logits[offset + seq.token(p + 1)] - lse;
                    if (sp.logprobs() > 0) {
                        seq.promptTop[p + 1] = TopLogprobs.of(logits, offset, vocab, lse, sp.logprobs());
                    }
                }
                if (samples(seq, p)) {
                    boolean greedy = greedyOnly(seq, p);
                    int token = greedy ? summary.argmax()[r] : drawn[r];
                    double logprob = (greedy ? summary.max()[r] : logits[offset + token]) - lse;
                    TopLogprobs top = sp.logprobs() > 0 ? TopLogprobs.of(logits, offset, vocab, lse, sp.logprobs()) : null;
                    seq.append(token, logprob, top);
                    listener.onToken(seq.request.id(), token, logprob, top);
                    seq.finishReason = finishReason(seq, token);
                }
            }
        }
    }

    /**
     * The sampled token of every row of the pass that samples other than greedily (-1 elsewhere), the
     * rows side by side on the common pool when there are several: each draw reads only its own row
     * and its own sequence's generator, so the tokens are those of one row at a time.
     */
    private int[] draws(List<Scheduler.Chunk> chunks, TokenBatch batch, int from, int count, float[] logits) {
        int[] rows = batch.logitRows();
        int vocab = spec.vocabSize();
        int[] drawn = new int[count];
        java.util.Arrays.fill(drawn, -1);
        List<Integer> sampling = new ArrayList<>();
        for (int r = 0; r < count; r++) {
            int t = rows[from + r];
            Sequence seq = chunks.get(batch.seqOfToken()[t]).seq();
            int p = batch.positions()[t];
            if (samples(seq, p) && !greedyOnly(seq, p)) {
                sampling.add(r);
            }
        }
        java.util.stream.Stream<Integer> work = sampling.size() > 1 ? sampling.parallelStream() : sampling.stream();
        work.forEach(r -> {
            Sequence seq = chunks.get(batch.seqOfToken()[rows[from + r]]).seq();
            drawn[r] = sample(seq, logits, r * vocab, vocab, seq.request.sampling());
        });
        return drawn;
    }

    /**
     * Whether position p's row is read only for a greedy pick and its log-probability: no prompt
     * score, no top log-probabilities, no penalties, no min_tokens ban.
     */
    private static boolean greedyOnly(Sequence seq, int p) {
        SamplingParams sp = seq.request.sampling();
        boolean ban = seq.generatedCount() < sp.minTokens();
        return !scoresPrompt(seq, p) && sp.isGreedy() && sp.logprobs() == 0 && !sp.hasPenalties() && !ban;
    }

    /**
     * The next token, from the logits after min_tokens' ban and the penalties (as vLLM orders them);
     * log-probabilities stay those of the raw logits.
     */
    private int sample(Sequence seq, float[] logits, int offset, int vocab, SamplingParams sp) {
        boolean ban = seq.generatedCount() < sp.minTokens();
        if (!ban && !sp.hasPenalties()) {
            return Sampler.sample(logits, offset, vocab, sp, seq.random);
        }
        float[] row = java.util.Arrays.copyOfRange(logits, offset, offset + vocab);
        if (ban) {
            for (int id : banned(sp)) {
                if (id >= 0 && id < vocab) {
                    row[id] = Float.NEGATIVE_INFINITY;
                }
            }
        }
        if (sp.hasPenalties()) {
            Penalties.apply(row, seq.promptTokens(), seq.outputCounts, sp);
        }
        return Sampler.sample(row, 0, vocab, sp, seq.random);
    }

    /** Tokens that may not be sampled before min_tokens: the EOS tokens (unless ignored) and the stop tokens. */
    private Set<Integer> banned(SamplingParams p) {
        if (p.ignoreEos()) {
            return p.stopTokens();
        }
        java.util.Set<Integer> all = new java.util.HashSet<>(eosTokens);
        all.addAll(p.stopTokens());
        return all;
    }

    /** Drops a request wherever it is (queued or running) and frees its blocks and adapter slots at once. */
    public boolean abort(String requestId) {
        Sequence seq = active.remove(requestId);
        if (seq == null) {
            return false;
        }
        if (!scheduler.waiting.remove(seq)) {
            scheduler.finish(seq);
        }
        return true;
    }

    private FinishReason finishReason(Sequence seq, int token) {
        SamplingParams p = seq.request.sampling();
        if ((!p.ignoreEos() && eosTokens.contains(token)) || p.stopTokens().contains(token)) {
            return FinishReason.STOP;
        }
        if (seq.request.stopAfter() != null && seq.request.stopAfter().test(token)) {
            return FinishReason.STOP;
        }
        if (seq.generatedCount() >= p.maxTokens() || seq.length() >= spec.maxContext()) {
            return FinishReason.LENGTH;
        }
        return null;
    }
}
