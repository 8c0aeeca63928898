package dev.flora.bench;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.ToDoubleFunction;
import java.util.stream.Collectors;

/**
 * The base model's report for one shape: Flora's decode runs against the transformers peer, a
 * markdown table per workload (batch, prompt tokens) and a plot of output tokens/s against batch.
 */
public final class BaseReport {
    private static final String DASH = "—";

    /** Sequences decoded together and the prompt tokens of each. */
    record Workload(int batch, int promptTokens) {
        static final Comparator<Workload> ORDER = Comparator.comparingInt(Workload::batch).thenComparingInt(Workload::promptTokens);
    }

    /** The peer's runs of one workload, pooled over its lines: best and median output tokens/s (NaN without any). */
    record Peer(double best, double median) {
        static Peer of(List<PeerRun> runs) {
            List<Double> all = runs.stream().flatMap(r -> r.tokensPerSecond().stream()).toList();
            return new Peer(all.stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN), BaseReport.median(all));
        }
    }

    private final String shape;
    private final Map<Workload, List<BaseRun>> flora = new LinkedHashMap<>();
    private final Map<Workload, List<PeerRun>> peer = new LinkedHashMap<>();
    private final List<Workload> workloads;

    public BaseReport(String shape, List<BaseRun> flora, List<PeerRun> peer) {
        this.shape = shape;
        flora.stream().filter(r -> r.model().equals(shape))
                .forEach(r -> this.flora.computeIfAbsent(new Workload(r.batch(), r.promptTokens()), w -> new ArrayList<>()).add(r));
        peer.stream().filter(r -> r.shape().equals(shape))
                .forEach(r -> this.peer.computeIfAbsent(new Workload(r.batch(), r.promptTokens()), w -> new ArrayList<>()).add(r));
        TreeSet<Workload> all = new TreeSet<>(Workload.ORDER);
        all.addAll(this.flora.keySet());
        all.addAll(this.peer.keySet());
        workloads = List.copyOf(all);
    }

    /** The markdown: the command that made it, what the columns mean, a table per workload, the plot. */
    public String markdown(String command, String plotFile) {
        StringBuilder b = new StringBuilder();
        b.append("Made by: `").append(command).append("`\n\n");
        b.append("# ").append(shape).append(": Flora's base model decode against transformers\n\n");
        b.append("- Flora: `flora bench decode --json`, kernels ").append(distinct(flora, BaseRun::kernels)).append('\n');
        b.append("- peer: ").append(distinct(peer, r -> r.peer() + (r.gpu().isEmpty() ? "" : " on " + r.gpu())))
                .append(" (tools/peer/transformers_bench.py)\n");
        b.append("""
                - decode: tok/s over the timed decode steps; end-to-end: output tok/s with the prefill; roofline: the decode \
                tok/s that the copy bandwidth allows (weights and KV cache read once per step); copy TB/s and bf16 TFLOP/s: \
                measured in the same run
                - peer: output tok/s over the whole generate call, best and median of all its runs; ratio: Flora end-to-end / peer median
                - prefill of bf16 rate: the prefill step's matrix-product flops (2 × weights × prompt tokens) per second over the bf16 rate
                - goals: at batch 1, decode ≥ 80% of the roofline and end-to-end ≥ 5× the peer; at 64 sequences, end-to-end ≥ 2× the peer and the prefill ≥ 60% of the bf16 rate
                """);
        for (Workload w : workloads) {
            b.append(String.format(Locale.ROOT, "%n## batch %d, %d prompt tokens%n%n", w.batch(), w.promptTokens()));
            b.append("| run | decode tok/s | end-to-end tok/s | roofline tok/s | of roofline | prefill of bf16 rate | copy TB/s | bf16 TFLOP/s "
                    + "| peer best tok/s | peer median tok/s | end-to-end / peer | goal |\n");
            b.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
            Peer p = Peer.of(peer.getOrDefault(w, List.of()));
            List<BaseRun> runs = flora.getOrDefault(w, List.of());
            for (int i = 0; i < runs.size(); i++) {
                b.append(row(String.valueOf(i + 1), w, medians(runs.subList(i, i + 1)), p));
            }
            if (runs.size() != 1) {
                b.append(row(runs.isEmpty() ? DASH : "median", w, medians(runs), p));
            }
        }
        b.append("\n![output tokens/s against batch](").append(plotFile).append(")\n");
        return b.toString();
    }

    /** Output tokens/s against batch: Flora end-to-end and decode (medians), the roofline and the peer's median. */
    public void plot(Path file) throws IOException {
        Map<String, List<double[]>> series = new LinkedHashMap<>();
        series.put("Flora end-to-end", points(w -> medians(flora.getOrDefault(w, List.of())).endToEnd()));
        series.put("Flora decode", points(w -> medians(flora.getOrDefault(w, List.of())).decode()));
        series.put("roofline (decode)", points(w -> medians(flora.getOrDefault(w, List.of())).roofline()));
        series.put("transformers (median)", points(w -> Peer.of(peer.getOrDefault(w, List.of())).median()));
        series.values().removeIf(List::isEmpty);
        LinePlot.write(file, shape + ": base model output tokens/s against batch", "batch", "tok/s",
                Map.of("Flora against transformers", series));
    }

    private List<double[]> points(ToDoubleFunction<Workload> y) {
        return workloads.stream().map(w -> new double[] {w.batch(), y.applyAsDouble(w)}).filter(pt -> pt[1] > 0).toList();
    }

    private static String row(String run, Workload w, BaseRun r, Peer p) {
        double ratio = r.endToEnd() / p.median();
        return String.format(Locale.ROOT, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |%n", run, f(r.decode(), "%.1f"),
                f(r.endToEnd(), "%.1f"), f(r.roofline(), "%.1f"), f(100 * r.rooflineFraction(), "%.1f%%"), f(100 * r.prefillFraction(), "%.1f%%"),
                f(r.bytesPerSecond() / 1e12, "%.2f"), f(r.flopsPerSecond() / 1e12, "%.1f"), f(p.best(), "%.1f"), f(p.median(), "%.1f"),
                f(ratio, "%.2f×"), goal(w.batch(), r.rooflineFraction(), r.prefillFraction(), ratio));
    }

    /**
     * The goals: at batch 1, decode ≥ 80% of the roofline and ≥ 5× the peer; at 64 sequences, ≥ 2× the peer and the
     * prefill (64 × 256 tokens) ≥ 60% of the bf16 product rate.
     */
    static String goal(int batch, double rooflineFraction, double prefillFraction, double ratio) {
        return switch (batch) {
            case 1 -> "≥ 80% of roofline: " + met(rooflineFraction, 0.8) + "; ≥ 5× peer: " + met(ratio, 5);
            case 64 -> "≥ 2× peer: " + met(ratio, 2) + "; prefill ≥ 60% of bf16 rate: " + met(prefillFraction, 0.6);
            default -> DASH;
        };
    }

    private static String met(double value, double goal) {
        return Double.isNaN(value) ? DASH : value >= goal ? "met" : "not met";
    }

    private static String f(double v, String format) {
        return Double.isNaN(v) ? DASH : String.format(Locale.ROOT, format, v);
    }

    /** Each column's median over the runs (NaN without any). */
    static BaseRun medians(List<BaseRun> runs) {
        BaseRun first = runs.isEmpty() ? null : runs.getFirst();
        return new BaseRun(first == null ? "" : first.model(), first == null ? "" : first.kernels(), first == null ? 0 : first.batch(),
                first == null ? 0 : first.promptTokens(), median(runs, BaseRun::decode), median(runs, BaseRun::endToEnd),
                median(runs, BaseRun::roofline), median(runs, BaseRun::rooflineFraction), median(runs, BaseRun::bytesPerSecond),
                median(runs, BaseRun::flopsPerSecond), median(runs, BaseRun::prefillFraction));
    }

    private static double median(List<BaseRun> runs, ToDoubleFunction<BaseRun> value) {
        return median(runs.stream().map(r -> value.applyAsDouble(r)).toList());
    }

    static double median(List<Double> values) {
        if (values.isEmpty()) {
            return Double.NaN;
        }
        List<Double> sorted = values.stream().sorted().toList();
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
    }

    private static <T> String distinct(Map<Workload, List<T>> runs, java.util.function.Function<T, String> name) {
        String names = runs.values().stream().flatMap(List::stream).map(name).filter(s -> !s.isEmpty())
                .distinct().collect(Collectors.joining(", "));
        return names.isEmpty() ? DASH : names;
    }
}
