package dev.flora.adapter;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The AUTO strategy's choice, from a {@link Calibration}: for an adapted layer of a step (its shape,
 * the tokens of one adapter kind and their largest rank), the strategy whose measured time,
 * interpolated over token count and rank, is least. Times are interpolated linearly in log time
 * over log tokens and log rank between the measured grid points (costs grow as powers of both), on
 * the measured layer shape nearest in log in and log out. Past the largest measured token count a
 * time grows in proportion to the tokens (every strategy's work is linear in them there); below the
 * smallest, and past either end of the ranks, it is clamped.
 *
 * <p>LoRA-bmm's work is per sequence, each padded to the step's longest: its time for S sequences of
 * longest L is S / s times the measured time of the calibration's s equal sequences of L tokens each
 * (s L tokens). A prompt of 2,000 tokens among decoding sequences makes each of them 2,000 rows, and
 * 200 decoding sequences are 200 small products however few their tokens: on the H200, LoRA-bmm at
 * rank 64 took 2.6 ms a layer in decode steps of ~200 sequences against the 113 µs it measured for
 * 16 sequences of 4 tokens, while a count of real tokens would have called it the cheaper one.
 *
 * <p>Decode steps (every sequence one token) are read off the calibration's decode grid where it has
 * one ({@code flora calibrate --decode-sequences}: S sequences of a token each, each its own adapter,
 * measured as {@code bmm-decode} and {@code gathered-decode} over S and rank), not scaled from 16
 * sequences: on the H200 bmm's 16 one-token sequences took 87 µs at rank 1 and 111 at rank 64 on a
 * 6144² layer (the base product 26 of them), so whether that grows with the sequences is measured, not
 * assumed. Without a decode grid the rules above apply.
 *
 * <p>Steps of fewer prompts than the calibration's sequences (a prompt or two beside decodes: on Llama-2-7B's
 * figure-2 workload most of its prompt steps) are read between the calibration's one-prompt grid ({@code flora
 * calibrate --single-prompts}: one prompt of T tokens, one adapter, as {@code gathered-single} and
 * {@code bmm-single}) and its steps of as many prompts as sequences, in log sequences ({@link #micros}).
 *
 * <p>A step of prompts and decoding sequences (a prompt chunk beside a batch of decodes, the usual
 * step of a busy server) gets two LoRA ways, one for its prompt tokens and one for its decode tokens
 * ({@link #chooseLora}): with one way for all, bmm would pad every decoding sequence to the prompt's
 * length, and gathered would take the prompt's tokens too where bmm's padded products are the
 * cheaper for them (rank 16 and up in prompt steps of 512 tokens and more on the H200).
 */
public final class CostModel {
    private static final List<String> FLORA_STRATEGIES = List.of("flora", "exact-flora");
    private static final List<String> LORA_STRATEGIES = List.of("gathered", "bmm", "exact-lora");
    /** The name of a strategy's decode-grid measurements (S sequences of one token each, tokens = S). */
    public static final String DECODE_SUFFIX = "-decode";
    private static final List<String> DECODE_STRATEGIES = List.of("gathered" + DECODE_SUFFIX, "bmm" + DECODE_SUFFIX);
    /** The name of a strategy's one-prompt measurements (a step of one prompt of T tokens, one adapter). */
    public static final String SINGLE_SUFFIX = "-single";
    private static final List<String> SINGLE_STRATEGIES = List.of("gathered" + SINGLE_SUFFIX, "bmm" + SINGLE_SUFFIX);
    /** Distinct queries remembered; a serving step repeats the same few in every layer. */
    private static final int MEMO_LIMIT = 4096;

    private final Calibration calibration;
    private final List<Grid> grids;
    private final Map<Query, AdapterStrategy> memo = new ConcurrentHashMap<>();

    private record Query(AdapterKind kind, int in, int out, int tokens, int sequences, int longest, int rank) {
    }

    /**
     * AUTO's ways for the LoRA tokens of one layer in a step: one for its prompt tokens (of sequences
     * with several tokens in the step), one for its decode tokens (of one-token sequences).
     */
    public record LoraWays(AdapterStrategy prompts, AdapterStrategy decodes) {
    }

    private record LoraQuery(int in, int out, int promptTokens, int promptSequences, int promptLongest, int decodes, int rank) {
    }

    private final Map<LoraQuery, LoraWays> loraMemo = new ConcurrentHashMap<>();

    /**
     * LoRA tokens chooseLora gave each way, layer by layer, since this model was made: prompt tokens
     * (of sequences with several in the step) and decode tokens, by strategy (gathered, bmm, exact).
     */
    public record LoraTally(long gatheredPrompts, long bmmPrompts, long exactPrompts, long gatheredDecodes, long bmmDecodes, long exactDecodes) {
        /** This tally less an earlier one of the same model: what was chosen in between. */
        public LoraTally minus(LoraTally before) {
            return new LoraTally(gatheredPrompts - before.gatheredPrompts, bmmPrompts - before.bmmPrompts, exactPrompts - before.exactPrompts,
                    gatheredDecodes - before.gatheredDecodes, bmmDecodes - before.bmmDecodes, exactDecodes - before.exactDecodes);
        }

        /** The share of prompt tokens given to bmm (0 without prompt tokens). */
        public double bmmPromptShare() {
            long all = gatheredPrompts + bmmPrompts + exactPrompts;
            return all == 0 ? 0 : (double) bmmPrompts / all;
        }

        /** The share of decode tokens given to bmm (0 without decode tokens). */
        public double bmmDecodeShare() {
            long all = gatheredDecodes + bmmDecodes + exactDecodes;
            return all == 0 ? 0 : (double) bmmDecodes / all;
        }
    }

    // chooseLora's tally, LoraTally's order: gathered, bmm, exact prompt tokens, then the same of decode tokens
    private final java.util.concurrent.atomic.LongAdder[] tally = java.util.stream.Stream.generate(java.util.concurrent.atomic.LongAdder::new)
            .limit(6).toArray(java.util.concurrent.atomic.LongAdder[]::new);

    /**
     * One layer shape's measurements: log time per strategy on a tokens × ranks grid (NaN where not
     * measured). The decode grid of a shape is a grid of its own (its tokens are its sequences).
     */
    private record Grid(int in, int out, double[] logTokens, double[] logRanks, Map<String, double[][]> logMicros) {
        double distance(int in, int out) {
            return Math.abs(Math.log((double) this.in / in)) + Math.abs(Math.log((double) this.out / out));
        }
    }

    public CostModel(Calibration calibration) {
        this.calibration = calibration;
        this.grids = grids(calibration);
    }

    public static CostModel loadIfPresent(Path file) {
        Calibration c = Calibration.loadIfPresent(file);
        return c == null ? null : new CostModel(c);
    }

    public static Path defaultFile() {
        return Calibration.defaultFile();
    }

    /** The stored calibration's file for the device this backend computes on. */
    public static Path defaultFile(dev.flora.backend.Backend backend) {
        return Calibration.defaultFile(backend.device());
    }

    public Calibration calibration() {
        return calibration;
    }

    /** Without measurements: fLoRA fused, LoRA gathered, IA3 exact. */
    public static AdapterStrategy defaultFor(AdapterKind kind) {
        return switch (kind) {
            case FLORA -> AdapterStrategy.FLORA;
            case LORA -> AdapterStrategy.GATHERED;
            case IA3 -> AdapterStrategy.EXACT;
        };
    }

    /** The cheapest strategy for adapters of this kind on a layer W [out, in] with these tokens (the calibration's equal sequences) and largest rank. */
    public AdapterStrategy choose(AdapterKind kind, int in, int out, int tokens, int rank) {
        int s = Math.max(1, Math.min(calibration.sequences(), tokens)); // the calibration: at most a sequence a token
        return choose(kind, in, out, tokens, s, (tokens + s - 1) / s, rank);
    }

    /**
     * The cheapest strategy for adapters of this kind on a layer W [out, in] with these tokens and
     * largest rank, from {@code sequences} sequences the longest of which has {@code longest} of them
     * (LoRA-bmm's padded shape).
     */
    public AdapterStrategy choose(AdapterKind kind, int in, int out, int tokens, int sequences, int longest, int rank) {
        Query q = new Query(kind, in, out, tokens, sequences, longest, rank);
        AdapterStrategy known = memo.get(q);
        if (known != null) {
            return known;
        }
        AdapterStrategy chosen = compute(kind, in, out, tokens, sequences, longest, rank);
        if (memo.size() >= MEMO_LIMIT) {
            memo.clear();
        }
        memo.put(q, chosen);
        return chosen;
    }

    /**
     * LoRA's ways for a step's layer of {@code promptTokens} tokens in {@code promptSequences}
     * sequences (the longest {@code promptLongest} of them) and {@code decodes} one-token sequences,
     * largest rank {@code rank}: each part's cheapest alone, as the layer runs them apart (gathered
     * and bmm calls of their own; bmm never pads a one-token sequence to a prompt's length), unless
     * gathered for all in one call costs less than the two parts together. A step of one part is
     * {@link #choose}'s.
     */
    public LoraWays chooseLora(int in, int out, int promptTokens, int promptSequences, int promptLongest, int decodes, int rank) {
        LoraWays ways = waysFor(in, out, promptTokens, promptSequences, promptLongest, decodes, rank);
        tally[wayIndex(ways.prompts())].add(promptTokens);
        tally[3 + wayIndex(ways.decodes())].add(decodes);
        return ways;
    }

    /** What chooseLora has chosen so far, in tokens (layer by layer). */
    public LoraTally loraTally() {
        long[] n = java.util.Arrays.stream(tally).mapToLong(java.util.concurrent.atomic.LongAdder::sum).toArray();
        return new LoraTally(n[0], n[1], n[2], n[3], n[4], n[5]);
    }

    private static int wayIndex(AdapterStrategy way) {
        return switch (way) {
            case GATHERED -> 0;
            case BMM -> 1;
            default -> 2;
        };
    }

    private LoraWays waysFor(int in, int out, int promptTokens, int promptSequences, int promptLongest, int decodes, int rank) {
        if (decodes == 0 || promptTokens == 0) {
            AdapterStrategy way = decodes == 0 ? choose(AdapterKind.LORA, in, out, promptTokens, promptSequences, promptLongest, rank)
                    : choose(AdapterKind.LORA, in, out, decodes, decodes, 1, rank);
            return new LoraWays(way, way);
        }
        LoraQuery q = new LoraQuery(in, out, promptTokens, promptSequences, promptLongest, decodes, rank);
        LoraWays known = loraMemo.get(q);
        if (known != null) {
            return known;
        }
        AdapterStrategy prompts = choose(AdapterKind.LORA, in, out, promptTokens, promptSequences, promptLongest, rank);
        AdapterStrategy decoding = choose(AdapterKind.LORA, in, out, decodes, decodes, 1, rank);
        LoraWays ways = new LoraWays(prompts, decoding);
        if (prompts != decoding || prompts == AdapterStrategy.BMM) {
            double apart = micros(nameOf(prompts), in, out, promptTokens, promptSequences, promptLongest, rank)
                    + micros(nameOf(decoding), in, out, decodes, decodes, 1, rank);
            double together = micros("gathered", in, out, promptTokens + decodes, promptSequences + decodes, promptLongest, rank);
            if (together < apart) {
                ways = new LoraWays(AdapterStrategy.GATHERED, AdapterStrategy.GATHERED);
            }
        }
        if (loraMemo.size() >= MEMO_LIMIT) {
            loraMemo.clear();
        }
        loraMemo.put(q, ways);
        return ways;
    }

    /** A LoRA strategy's name in the calibration. */
    private static String nameOf(AdapterStrategy strategy) {
        return switch (strategy) {
            case GATHERED -> "gathered";
            case BMM -> "bmm";
            default -> "exact-lora";
        };
    }

    /**
     * A measured strategy's estimated microseconds for this step's layer (NaN where not measured). Fewer
     * prompts than the calibration's sequences, where it has a one-prompt grid ({@code flora calibrate
     * --single-prompts}): between that grid's time for one prompt of these tokens (bmm: of the padded
     * tokens) and the time for the calibration's sequences, in log sequences. Scaled from 16 prompts
     * alone, one prompt of 204 tokens at rank 64 cost bmm 1/16 of 16 prompts of 204 (28 µs at 4096² on
     * the H200, the launches and uploads of a step shared 16 ways) and gathered its time for 204 tokens
     * as 16 adapters' runs of 13 rows (193 µs), where the step ran one adapter's 204 rows (NOTES.md,
     * session 14).
     */
    private double micros(String strategy, int in, int out, int tokens, int sequences, int longest, int rank) {
        boolean decode = longest == 1 && tokens == sequences;
        if (decode && hasGrid(strategy + DECODE_SUFFIX)) {
            return estimate(strategy + DECODE_SUFFIX, in, out, sequences, rank);
        }
        double many = strategy.equals("bmm") ? estimateBmm(in, out, sequences, longest, rank) : estimate(strategy, in, out, tokens, rank);
        int s = calibration.sequences();
        if (decode || sequences >= s || !hasGrid(strategy + SINGLE_SUFFIX)) {
            return many;
        }
        double one = estimate(strategy + SINGLE_SUFFIX, in, out, strategy.equals("bmm") ? sequences * longest : tokens, rank);
        double f = Math.log(sequences) / Math.log(s);
        return Math.exp((1 - f) * Math.log(one) + f * Math.log(many));
    }

    private AdapterStrategy compute(AdapterKind kind, int in, int out, int tokens, int sequences, int longest, int rank) {
        List<String> candidates = kind == AdapterKind.FLORA ? FLORA_STRATEGIES : kind == AdapterKind.LORA ? LORA_STRATEGIES : List.of();
        String best = null;
        double bestMicros = Double.MAX_VALUE;
        for (String s : candidates) {
            double micros = micros(s, in, out, tokens, sequences, longest, rank);
            if (micros < bestMicros) {
                bestMicros = micros;
                best = s;
            }
        }
        return best == null ? defaultFor(kind) : strategyOf(best);
    }

    /** Whether some measured shape has a full grid of this strategy (a name of the decode grid included). */
    public boolean hasGrid(String strategy) {
        return grids.stream().anyMatch(g -> g.logMicros.containsKey(strategy));
    }

    /** Interpolated microseconds of one strategy on the nearest measured shape, NaN where it was not measured. */
    public double estimate(String strategy, int in, int out, int tokens, int rank) {
        Grid grid = null;
        for (Grid g : grids) {
            if (g.logMicros.containsKey(strategy) && (grid == null || g.distance(in, out) < grid.distance(in, out))) {
                grid = g;
            }
        }
        if (grid == null) {
            return Double.NaN;
        }
        double[][] t = grid.logMicros.get(strategy);
        double lt = Math.log(Math.max(1, tokens));
        double lr = Math.log(Math.max(1, rank));
        int ti = lower(grid.logTokens, lt);
        int ri = lower(grid.logRanks, lr);
        double ft = fraction(grid.logTokens, ti, lt);
        double fr = fraction(grid.logRanks, ri, lr);
        int ti1 = Math.min(ti + 1, grid.logTokens.length - 1);
        int ri1 = Math.min(ri + 1, grid.logRanks.length - 1);
        double v = (1 - ft) * ((1 - fr) * t[ti][ri] + fr * t[ti][ri1]) + ft * ((1 - fr) * t[ti1][ri] + fr * t[ti1][ri1]);
        double beyond = Math.max(0, lt - grid.logTokens[grid.logTokens.length - 1]); // past the grid: ∝ tokens
        return Math.exp(v + beyond);
    }

    /**
     * LoRA-bmm's microseconds for these sequences padded to the longest: per sequence, as the
     * calibration's equal ones. The calibration's steps of fewer tokens than its sequences had a token
     * a sequence, so up to that many sequences of one token each are read off as measured.
     */
    public double estimateBmm(int in, int out, int sequences, int longest, int rank) {
        int s = Math.max(1, calibration.sequences());
        if (longest == 1 && sequences <= s) {
            return estimate("bmm", in, out, sequences, rank);
        }
        return (double) sequences / s * estimate("bmm", in, out, s * longest, rank);
    }

    /** The last grid index at or below v (0 below the grid). */
    private static int lower(double[] grid, double v) {
        int i = 0;
        while (i + 1 < grid.length && grid[i + 1] <= v) {
            i++;
        }
        return i;
    }

    /** Where v lies between grid[i] and grid[i + 1], clamped to [0, 1]. */
    private static double fraction(double[] grid, int i, double v) {
        if (i + 1 >= grid.length) {
            return 0;
        }
        return Math.clamp((v - grid[i]) / (grid[i + 1] - grid[i]), 0.0, 1.0);
    }

    static AdapterStrategy strategyOf(String measured) {
        return switch (measured) {
            case "flora" -> AdapterStrategy.FLORA;
            case "exact-flora", "exact-lora" -> AdapterStrategy.EXACT;
            case "bmm" -> AdapterStrategy.BMM;
            case "gathered" -> AdapterStrategy.GATHERED;
            default -> throw new IllegalArgumentException("not a measured strategy: " + measured);
        };
    }

    /**
     * Grids per measured shape, the decode and one-prompt grids apart; a strategy missing at some grid point is left out
     * for that shape.
     */
    private static List<Grid> grids(Calibration c) {
        Map<List<Integer>, List<Calibration.Measurement>> byShape = new HashMap<>();
        for (Calibration.Measurement m : c.measurements()) {
            if (m.micros() > 0 && m.tokens() > 0 && m.rank() > 0) {
                int decode = DECODE_STRATEGIES.contains(m.strategy()) ? 1 : SINGLE_STRATEGIES.contains(m.strategy()) ? 2 : 0;
                byShape.computeIfAbsent(List.of(m.in(), m.out(), decode), k -> new ArrayList<>()).add(m);
            }
        }
        List<Grid> out = new ArrayList<>();
        for (var e : byShape.entrySet()) {
            TreeSet<Integer> tokens = new TreeSet<>();
            TreeSet<Integer> ranks = new TreeSet<>();
            for (Calibration.Measurement m : e.getValue()) {
                tokens.add(m.tokens());
                ranks.add(m.rank());
            }
            List<Integer> tl = new ArrayList<>(tokens);
            List<Integer> rl = new ArrayList<>(ranks);
            Map<String, double[][]> times = new HashMap<>();
            for (Calibration.Measurement m : e.getValue()) {
                if (FLORA_STRATEGIES.contains(m.strategy()) || LORA_STRATEGIES.contains(m.strategy()) || DECODE_STRATEGIES.contains(m.strategy())
                        || SINGLE_STRATEGIES.contains(m.strategy())) {
                    double[][] t = times.computeIfAbsent(m.strategy(), s -> nanGrid(tl.size(), rl.size()));
                    t[tl.indexOf(m.tokens())][rl.indexOf(m.rank())] = Math.log(m.micros());
                }
            }
            times.values().removeIf(CostModel::hasGaps);
            if (!times.isEmpty()) {
                out.add(new Grid(e.getKey().get(0), e.getKey().get(1), tl.stream().mapToDouble(Math::log).toArray(),
                        rl.stream().mapToDouble(Math::log).toArray(), times));
            }
        }
        return out;
    }

    private static double[][] nanGrid(int rows, int cols) {
        double[][] g = new double[rows][cols];
        for (double[] row : g) {
            java.util.Arrays.fill(row, Double.NaN);
        }
        return g;
    }

    private static boolean hasGaps(double[][] grid) {
        for (double[] row : grid) {
            for (double v : row) {
                if (Double.isNaN(v)) {
                    return true;
                }
            }
        }
        return false;
    }
}
