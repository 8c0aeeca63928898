package dev.flora.cli;

import dev.flora.FloraException;
import dev.flora.bench.LatencyBench;
import dev.flora.bench.LinePlot;
import dev.flora.bench.ThroughputBench;
import dev.flora.demo.DemoModel;
import dev.flora.loadgen.LoadGenerator;
import dev.flora.model.CausalLM;
import dev.flora.model.ModelDirectory;
import dev.flora.model.Models;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;

/**
 * {@code flora bench throughput} and {@code flora bench latency}: the fLoRA paper's figures 2 and 3,
 * a workload of requests each with its own random adapter, per series (adapter kind and strategy)
 * and rank.
 */
final class BenchLoadCommands {
    private BenchLoadCommands() {
    }

    /**
     * What a plot's panel says of the runs, from the fewest and most runs of any point: nothing for one
     * run a point, "medians of N runs" where every point ran N times, "medians of up to N runs" where
     * some ran fewer (a --from file joining runs of several calls).
     */
    static String runsLabel(int fewest, int most) {
        return most <= 1 ? "" : (fewest == most ? ", medians of " : ", medians of up to ") + most + " runs";
    }

    /** What both measure on: the model, the series and ranks, the workload. */
    abstract static class Workload<P extends ThroughputBench.Labelled> implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(names = "--model", paramLabel = "DIR", description = "Hugging Face model directory (default: the demo model).")
        Path model;

        @Option(names = "--random-weights", description = "The model directory has config.json only: make seeded random weights where "
                + "the backend keeps them.")
        boolean randomWeights;

        @Mixin
        DeviceOption device;

        @Option(names = "--series", defaultValue = "none,flora,lora-bmm,lora-gathered,lora-auto", split = ",", paramLabel = "S",
                description = "Series to measure (default: ${DEFAULT-VALUE}).")
        List<String> series;

        @Option(names = "--targets", split = ",", paramLabel = "M",
                description = "Adapted modules (default: c_attn where the model has it, as the paper; else q_proj,k_proj,v_proj,o_proj).")
        Set<String> targets;

        @Option(names = "--requests", defaultValue = "200", paramLabel = "N", description = "Requests per point (default: ${DEFAULT-VALUE}).")
        int requests;

        @Option(names = "--input-len", defaultValue = "50..2000", paramLabel = "LO..HI", description = "Prompt tokens, log-normal (default: ${DEFAULT-VALUE}).")
        String inputLen;

        @Option(names = "--output-len", defaultValue = "16..256", paramLabel = "LO..HI", description = "Generated tokens, log-normal (default: ${DEFAULT-VALUE}).")
        String outputLen;

        @Option(names = "--max-num-seqs", defaultValue = "256", paramLabel = "N", description = "Sequences per step (default: ${DEFAULT-VALUE}).")
        int maxSequences;

        @Option(names = "--kv-cache-memory", defaultValue = "1073741824", paramLabel = "BYTES", description = "KV-cache memory (default: ${DEFAULT-VALUE}).")
        long kvCacheBytes;

        @Option(names = "--seed", defaultValue = "1", paramLabel = "S", description = "Lengths, prompts, arrivals and adapters (default: ${DEFAULT-VALUE}).")
        long seed;

        @Option(names = "--runs", defaultValue = "1", paramLabel = "N", description = "Runs of every point, interleaved (every point once, "
                + "then again); the table and plot show each point's median (default: ${DEFAULT-VALUE}).")
        int runs;

        @Option(names = "--json", description = "Print one JSON line per point instead of the table.")
        boolean json;

        @Option(names = "--calibration", paramLabel = "FILE", description = "Calibration for the automatic series (default: the "
                + "device's stored one in $FLORA_CACHE; without one, AUTO's defaults). A GPU's calibration on --device cpu shows which "
                + "ways auto would take on that GPU for this workload (lora-auto's bmm shares), at the nearest measured layer shape.")
        Path calibration;

        @Option(names = "--from", paramLabel = "JSONL", description = "Measure nothing: table and plot from the JSON lines of an earlier "
                + "--json run (made on a machine that cannot draw, say).")
        Path from;

        abstract int[] ranks();

        /** The record a point's JSON line holds (for --from). */
        abstract Class<P> pointType();

        /** Takes the workload's settings the title shows (requests, rate) from a point read back (--from). */
        abstract void adoptSettings(P point);

        abstract int maxBatchedTokens();

        abstract Path plot();

        /** One point of the series at this rank (0 for the base model). */
        abstract P measure(CausalLM lm, ThroughputBench.Series series, int rank, ThroughputBench.Workload w,
                           java.util.function.LongConsumer progress) throws InterruptedException;

        /** The table's first line, given the adapted modules. */
        abstract String title(String model, String backend, String targets);

        /** A point's cell in the table (all points given, for ratios). */
        abstract String cell(P point, List<P> all);

        /** What the plot draws of a point, and its y axis and panel title. */
        abstract double plotted(P point);

        abstract String yLabel();

        abstract String panel();

        /** Options checked before the model loads. */
        void check() {
        }

        @Override
        public Integer call() throws Exception {
            if (from != null) {
                List<P> points = JsonLines.readAs(from, pointType(), "bench " + spec.name());
                adoptSettings(points.getFirst());
                report(String.valueOf(from.getFileName()), "an earlier run", points);
                return 0;
            }
            check();
            // Read once, here: a missing file, or one that is not a calibration, is refused before the model loads.
            dev.flora.adapter.Calibration costs = calibration == null ? null : dev.flora.adapter.Calibration.loadIfPresent(calibration);
            if (calibration != null && costs == null) {
                throw new FloraException("--calibration " + calibration + ": no such file");
            }
            if (requests < 1 || maxBatchedTokens() < 1 || maxSequences < 1 || kvCacheBytes < 1 || runs < 1
                    || java.util.Arrays.stream(ranks()).anyMatch(r -> r < 1)) {
                throw new FloraException("--requests, --max-batched-tokens, --max-num-seqs, --kv-cache-memory, --runs and --ranks must be at least 1");
            }
            int[] in = LoadgenCommand.range(inputLen, "--input-len");
            int[] out = LoadgenCommand.range(outputLen, "--output-len");
            List<ThroughputBench.Series> chosen = new ArrayList<>();
            for (String s : new LinkedHashSet<>(series)) {
                chosen.add(ThroughputBench.Series.parse(s.trim()));
            }
            Path dir = model != null ? model : DemoModel.ensure(DemoModel.defaultCache(),
                    total -> new Progress(spec.commandLine().getErr(), "making the demo model (once)", total));
            ModelDirectory directory = ModelDirectory.open(dir);
            dev.flora.backend.Backend backend = device.create();
            List<P> points = new ArrayList<>();
            try {
                CausalLM lm = Models.load(directory, backend, randomWeights);
                Set<String> modules = targets != null ? targets : defaultTargets(lm);
                var workload = new ThroughputBench.Workload(requests, in[0], in[1], out[0], out[1], maxBatchedTokens(), maxSequences,
                        kvCacheBytes, modules, seed, costs);
                List<Run> order = new ArrayList<>();
                for (int round = 0; round < runs; round++) {
                    order.addAll(order(chosen));
                }
                try (Progress progress = new Progress(spec.commandLine().getErr(), "generating", order.size() * ThroughputBench.outputTokens(workload))) {
                    for (Run run : order) {
                        P point = measure(lm, run.series(), run.rank(), workload, progress);
                        points.add(point);
                        if (json) { // as each point is made: a long run stopped part way keeps what it measured
                            spec.commandLine().getOut().println(JsonLines.JSON.valueToTree(point));
                            spec.commandLine().getOut().flush();
                        }
                    }
                }
            } finally {
                ThroughputBench.forgetAdapters(); // before the backend that holds them closes
                backend.close();
            }
            if (!json) {
                report(dir.getFileName().toString(), backend.name(), points);
            } else {
                Map<String, List<P>> byPoint = byPoint(points);
                List<P> medians = medians(byPoint);
                draw(dir.getFileName().toString(), medians, targetsOf(medians), runsLabel(byPoint));
            }
            return 0;
        }

        /** One point to measure: a series at a rank (0 for the base model). */
        record Run(ThroughputBench.Series series, int rank) {
        }

        /**
         * The base model first, then rank by rank across the adapted series: a run stopped part way
         * still compares every series at the ranks it reached.
         */
        List<Run> order(List<ThroughputBench.Series> chosen) {
            List<Run> order = new ArrayList<>();
            chosen.stream().filter(s -> s.kind() == null).forEach(s -> order.add(new Run(s, 0)));
            for (int rank : ranks()) {
                chosen.stream().filter(s -> s.kind() != null).forEach(s -> order.add(new Run(s, rank)));
            }
            return order;
        }

        /** The table (on standard output) and the plot of the points: each point's median where it ran more than once. */
        private void report(String name, String backendName, List<P> measured) throws java.io.IOException {
            PrintWriter o = spec.commandLine().getOut();
            Map<String, List<P>> byPoint = byPoint(measured);
            List<P> points = medians(byPoint);
            List<String> seriesOf = points.stream().map(ThroughputBench.Labelled::series).toList();
            List<Integer> rankOf = points.stream().map(ThroughputBench.Labelled::rank).toList();
            String used = targetsOf(points);
            o.print(table(title(name, backendName, used), seriesOf, rankOf, points.stream().map(p -> cell(p, points)).toList()));
            int most = runsOf(byPoint);
            if (most > 1) {
                String widest = null;
                double spread = -1;
                for (List<P> group : byPoint.values()) {
                    double[] v = group.stream().mapToDouble(this::plotted).sorted().toArray();
                    double s = (v[v.length - 1] - v[0]) / v[(v.length - 1) / 2];
                    if (s > spread) {
                        spread = s;
                        widest = group.getFirst().series() + (group.getFirst().rank() > 0 ? " at rank " + group.getFirst().rank() : "");
                    }
                }
                o.printf(Locale.ROOT, "medians of up to %d runs a point; the widest spread, (max - min) / median: %.1f%% (%s)%n", most,
                        100 * spread, widest);
            }
            o.print(autoAgainstBest(points));
            o.print(notes(points));
            o.flush();
            draw(name, points, used, runsLabel(byPoint));
        }

        /** Lines under the table particular to a figure ("" for none). */
        String notes(List<P> points) {
            return "";
        }

        /** Each automatic series and the pinned ones it chooses among. */
        private static final Map<String, List<String>> AUTO_CHOICES = Map.of(
                "lora-auto", List.of("lora-bmm", "lora-gathered"), "flora-auto", List.of("flora"));

        /**
         * One line per automatic series measured beside a pinned one of its kind: at each rank, its
         * figure as a fraction of the best pinned series' (speed: 1 is as fast, above 1 faster), and
         * the least over the ranks (issue 13's goal: 0.97 at every point, medians of 3).
         */
        String autoAgainstBest(List<P> points) {
            StringBuilder b = new StringBuilder();
            for (var e : new java.util.TreeMap<>(AUTO_CHOICES).entrySet()) {
                StringBuilder row = new StringBuilder();
                double least = Double.MAX_VALUE;
                for (P auto : points.stream().filter(p -> p.series().equals(e.getKey())).sorted(java.util.Comparator.comparingInt(P::rank)).toList()) {
                    P best = null;
                    for (P p : points) {
                        if (p.rank() == auto.rank() && e.getValue().contains(p.series()) && (best == null || faster(p, best))) {
                            best = p;
                        }
                    }
                    if (best != null) {
                        double fraction = higherIsBetter() ? plotted(auto) / plotted(best) : plotted(best) / plotted(auto);
                        least = Math.min(least, fraction);
                        row.append(String.format(Locale.ROOT, "  r%d %.3f (%s)", auto.rank(), fraction, best.series()));
                    }
                }
                if (!row.isEmpty()) {
                    b.append(String.format(Locale.ROOT, "%s against the best pinned series at its rank (speed, 1 = as fast):%s; least %.3f%n",
                            e.getKey(), row, least));
                }
            }
            return b.toString();
        }

        private boolean faster(P a, P b) {
            return higherIsBetter() ? plotted(a) > plotted(b) : plotted(a) < plotted(b);
        }

        /** Whether a larger plotted figure is the better one (tokens/s), or a smaller (seconds per token). */
        abstract boolean higherIsBetter();

        /** The adapters' target modules, as the points name them ("-" for the base model alone). */
        private String targetsOf(List<P> points) {
            return points.stream().map(ThroughputBench.Labelled::targets).filter(t -> !t.isEmpty()).findFirst().orElse("-");
        }

        /** The most runs any point had. */
        private int runsOf(Map<String, List<P>> byPoint) {
            return byPoint.values().stream().mapToInt(List::size).max().orElse(1);
        }

        /** What the plot's panel says of these points' runs. */
        String runsLabel(Map<String, List<P>> byPoint) {
            return BenchLoadCommands.runsLabel(byPoint.values().stream().mapToInt(List::size).min().orElse(1), runsOf(byPoint));
        }

        /** The measured points by series and rank, in the order first measured. */
        private Map<String, List<P>> byPoint(List<P> measured) {
            Map<String, List<P>> byPoint = new LinkedHashMap<>();
            for (P p : measured) {
                byPoint.computeIfAbsent(p.series() + "@" + p.rank(), k -> new ArrayList<>()).add(p);
            }
            return byPoint;
        }

        /** Each point's median run by the plotted value (the lower of the two middle ones for an even count). */
        private List<P> medians(Map<String, List<P>> byPoint) {
            return byPoint.values().stream()
                    .map(group -> group.stream().sorted(java.util.Comparator.comparingDouble(this::plotted)).toList().get((group.size() - 1) / 2))
                    .toList();
        }

        /**
         * Writes the plot, or says on stderr why it cannot (a GPU machine's bare Java runtime has no fonts): the
         * table or JSON lines are out already, and the plot can be drawn elsewhere from the JSON lines. The base
         * model's one value is drawn flat across the ranks. The panel names the adapters' target modules and,
         * past one run a point, that the points are medians.
         */
        void draw(String model, List<P> points, String targets, String runs) throws java.io.IOException {
            Map<String, List<double[]>> lines = new LinkedHashMap<>();
            int[] ranks = from != null ? points.stream().mapToInt(P::rank).filter(r -> r > 0).distinct().sorted().toArray() : ranks();
            for (P p : points) {
                if (p.rank() == 0) {
                    lines.put("no adapter", java.util.Arrays.stream(ranks).mapToObj(r -> new double[] {r, plotted(p)}).toList());
                } else {
                    lines.computeIfAbsent(p.series(), k -> new ArrayList<>()).add(new double[] {p.rank(), plotted(p)});
                }
            }
            // by rank: a --from file may join several runs' lines
            lines.replaceAll((series, xy) -> xy.stream().sorted(java.util.Comparator.comparingDouble(p -> p[0])).toList());
            String panel = panel() + ", adapters on " + targets + runs;
            LinePlot.writeOrSay(plot(), model + ": " + spec.name() + " against rank", "rank", yLabel(), Map.of(panel, lines),
                    spec.commandLine().getErr());
        }

        /** A table with a row per rank and a column per series; cells from {@code cell}, the base model's in every row. */
        String table(String title, List<String> seriesOf, List<Integer> rankOf, List<String> cells) {
            int width = Math.max(12, cells.stream().mapToInt(String::length).max().orElse(0));
            StringBuilder b = new StringBuilder(title).append('\n');
            List<String> columns = seriesOf.stream().distinct().toList();
            b.append(String.format(Locale.ROOT, "%5s", "rank"));
            columns.forEach(c -> b.append(String.format(Locale.ROOT, " %" + width + "s", c)));
            b.append('\n');
            List<Integer> rows = rankOf.stream().filter(r -> r > 0).distinct().sorted().toList();
            for (int rank : rows.isEmpty() ? List.of(0) : rows) {
                b.append(String.format(Locale.ROOT, "%5d", rank));
                for (String c : columns) {
                    String cell = "-";
                    for (int i = 0; i < cells.size(); i++) {
                        if (seriesOf.get(i).equals(c) && (rankOf.get(i) == 0 || rankOf.get(i) == rank)) {
                            cell = cells.get(i);
                        }
                    }
                    b.append(String.format(Locale.ROOT, " %" + width + "s", cell));
                }
                b.append('\n');
            }
            return b.toString();
        }
    }

    /** c_attn (GPT-BigCode's fused attention projection, the paper's target) where the model has it, else q, k, v and o. */
    static Set<String> defaultTargets(CausalLM model) {
        boolean fused = model.linears().keySet().stream().anyMatch(k -> k.endsWith(".c_attn"));
        return fused ? Set.of("c_attn") : Set.of("q_proj", "k_proj", "v_proj", "o_proj");
    }

    @Command(name = "throughput", mixinStandardHelpOptions = true,
            description = {"Serving throughput against adapter rank (the fLoRA paper's figure 2, as vLLM's offline throughput benchmark "
                    + "runs): every request submitted at once, each with its own random adapter of the series' kind and the rank, under "
                    + "a batched-token budget; throughput = (prompt + output tokens) / wall time, and output tokens/s.",
                    "Series: none (the base model, once), flora (fused), flora-auto, lora-bmm (padded batched products, prompts and decodes "
                            + "in separate steps: the paper's baseline), lora-gathered (SGMV-like), lora-auto, ia3. Prints a table (or "
                            + "--json lines) and writes a PNG plot."})
    static final class Throughput extends Workload<ThroughputBench.Point> {
        @Option(names = "--ranks", defaultValue = "1,2,4,8,16,32,64", split = ",", paramLabel = "R", description = "Ranks (default: ${DEFAULT-VALUE}).")
        int[] ranks;

        @Option(names = "--max-batched-tokens", defaultValue = "8192", paramLabel = "N", description = "Tokens per step (default: ${DEFAULT-VALUE}).")
        int maxBatchedTokens;

        @Option(names = "--plot", defaultValue = "bench-throughput.png", paramLabel = "PNG", description = "Plot file (default: ${DEFAULT-VALUE}).")
        Path plot;

        @Override
        int[] ranks() {
            return ranks;
        }

        @Override
        int maxBatchedTokens() {
            return maxBatchedTokens;
        }

        @Override
        Path plot() {
            return plot;
        }

        @Override
        ThroughputBench.Point measure(CausalLM lm, ThroughputBench.Series series, int rank, ThroughputBench.Workload w,
                                      java.util.function.LongConsumer progress) {
            return ThroughputBench.run(lm, series, rank, w, progress);
        }

        @Override
        String title(String model, String backend, String targets) {
            return String.format(Locale.ROOT, "%s on %s: %d requests each with its own adapter on %s; (prompt + output) tokens/s "
                    + "(output tokens/s); ratio to no adapter", model, backend, requests, targets);
        }

        @Override
        String cell(ThroughputBench.Point p, List<ThroughputBench.Point> all) {
            double base = all.stream().filter(x -> x.rank() == 0).mapToDouble(ThroughputBench.Point::tokensPerSecond).findFirst()
                    .orElse(Double.NaN);
            String ratio = Double.isNaN(base) ? "" : String.format(Locale.ROOT, " %.3fx", p.tokensPerSecond() / base); // none not measured: no ratio
            return String.format(Locale.ROOT, "%.1f (%.1f)%s", p.tokensPerSecond(), p.outputTokensPerSecond(), ratio);
        }

        @Override
        Class<ThroughputBench.Point> pointType() {
            return ThroughputBench.Point.class;
        }

        /**
         * Per series, the least and most of its points' forwardShare, over the points that have one (a
         * line older than the field reads 0: a file joining old and new runs leaves those out).
         */
        @Override
        String notes(List<ThroughputBench.Point> points) {
            List<ThroughputBench.Point> measured = points.stream().filter(p -> p.forwardShare() > 0).toList();
            if (measured.isEmpty()) {
                return "";
            }
            Map<String, double[]> range = new java.util.LinkedHashMap<>();
            for (ThroughputBench.Point p : measured) {
                double[] r = range.computeIfAbsent(p.series(), k -> new double[] {Double.MAX_VALUE, 0});
                r[0] = Math.min(r[0], p.forwardShare());
                r[1] = Math.max(r[1], p.forwardShare());
            }
            StringBuilder b = new StringBuilder("forward passes' share of the run time (near 1 on a GPU: the host set the pace):");
            range.forEach((series, r) -> b.append(r[0] == r[1] ? String.format(Locale.ROOT, "  %s %.2f", series, r[0])
                    : String.format(Locale.ROOT, "  %s %.2f-%.2f", series, r[0], r[1])));
            b.append(System.lineSeparator());
            return b.append(autoWays(measured)).toString();
        }

        /**
         * Per rank, the shares of lora-auto's prompt and decode tokens its cost model gave LoRA-bmm (the
         * rest gathered), the mean over the point's runs that have them (NaN: lines from before session 14);
         * empty where none has.
         */
        static String autoWays(List<ThroughputBench.Point> points) {
            Map<Integer, double[]> byRank = new java.util.TreeMap<>(); // rank -> {prompt sum, decode sum, runs}
            for (ThroughputBench.Point p : points) {
                if (p.series().equals("lora-auto") && !Double.isNaN(p.bmmPromptShare()) && !Double.isNaN(p.bmmDecodeShare())) {
                    double[] s = byRank.computeIfAbsent(p.rank(), k -> new double[3]);
                    s[0] += p.bmmPromptShare();
                    s[1] += p.bmmDecodeShare();
                    s[2]++;
                }
            }
            if (byRank.isEmpty()) {
                return "";
            }
            StringBuilder b = new StringBuilder("lora-auto's tokens given to LoRA-bmm (prompt / decode, the rest gathered):");
            byRank.forEach((rank, s) -> b.append(String.format(Locale.ROOT, "  r%d %.0f%% / %.0f%%", rank, 100 * s[0] / s[2], 100 * s[1] / s[2])));
            return b.append(System.lineSeparator()).toString();
        }

        @Override
        void adoptSettings(ThroughputBench.Point point) {
            requests = point.requests();
        }

        @Override
        double plotted(ThroughputBench.Point p) {
            return p.tokensPerSecond();
        }

        @Override
        boolean higherIsBetter() {
            return true;
        }

        @Override
        String yLabel() {
            return "tok/s";
        }

        @Override
        String panel() {
            return requests + " requests, " + inputLen + " + " + outputLen + " tokens, " + maxBatchedTokens + " batched";
        }
    }

    @Command(name = "latency", mixinStandardHelpOptions = true,
            description = {"Latency against adapter rank under a Poisson load (the fLoRA paper's figure 3): requests arrive at --rate per "
                    + "second at the engine loop (in process, without HTTP), each with its own random adapter; seconds per output token "
                    + "(the mean of each request's latency over its output tokens), TTFT and TPOT, as flora loadgen reports a server.",
                    "Series as bench throughput. Prints a table (or --json lines) and writes a PNG plot."})
    static final class Latency extends Workload<LatencyBench.Point> {
        @Option(names = "--ranks", defaultValue = "1,2,4,8", split = ",", paramLabel = "R", description = "Ranks (default: ${DEFAULT-VALUE}).")
        int[] ranks;

        @Option(names = "--max-batched-tokens", defaultValue = "2560", paramLabel = "N", description = "Tokens per step (default: ${DEFAULT-VALUE}).")
        int maxBatchedTokens;

        @Option(names = "--rate", defaultValue = "8", paramLabel = "R", description = "Requests per second, Poisson (default: ${DEFAULT-VALUE}).")
        double rate;

        @Option(names = "--plot", defaultValue = "bench-latency.png", paramLabel = "PNG", description = "Plot file (default: ${DEFAULT-VALUE}).")
        Path plot;

        @Override
        int[] ranks() {
            return ranks;
        }

        @Override
        int maxBatchedTokens() {
            return maxBatchedTokens;
        }

        @Override
        Path plot() {
            return plot;
        }

        @Override
        void check() {
            if (!(rate > 0) || Double.isInfinite(rate)) {
                throw new FloraException("--rate must be a positive number of requests per second, not " + rate);
            }
        }

        @Override
        LatencyBench.Point measure(CausalLM lm, ThroughputBench.Series series, int rank, ThroughputBench.Workload w,
                                   java.util.function.LongConsumer progress) throws InterruptedException {
            return LatencyBench.run(lm, series, rank, w, rate, progress);
        }

        @Override
        String title(String model, String backend, String targets) {
            return String.format(Locale.ROOT, "%s on %s: %d requests at %.1f/s, each with its own adapter on %s; s per output token "
                    + "(TTFT p50 s / TPOT p50 s)", model, backend, requests, rate, targets);
        }

        @Override
        String cell(LatencyBench.Point p, List<LatencyBench.Point> all) {
            LoadGenerator.Report r = p.report();
            return String.format(Locale.ROOT, "%.4f (%.3f / %.4f)%s", r.latencyPerOutputToken(), r.ttftP50(), r.tpotP50(),
                    r.failed() > 0 ? " " + r.failed() + " failed" : "");
        }

        @Override
        Class<LatencyBench.Point> pointType() {
            return LatencyBench.Point.class;
        }

        @Override
        void adoptSettings(LatencyBench.Point point) {
            requests = point.report().requests();
            rate = point.report().rate();
        }

        @Override
        double plotted(LatencyBench.Point p) {
            return p.report().latencyPerOutputToken();
        }

        @Override
        boolean higherIsBetter() {
            return false;
        }

        @Override
        String yLabel() {
            return "s/token";
        }

        @Override
        String panel() {
            return requests + " requests at " + rate + "/s, " + maxBatchedTokens + " batched";
        }
    }
}
