package dev.flora.cli;

import dev.flora.FloraException;
import dev.flora.adapter.AdapterKind;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.adapter.Calibration;
import dev.flora.adapter.CostModel;
import dev.flora.bench.AdapterBench;
import dev.flora.cpu.KernelProvider;
import dev.flora.model.Linear;
import dev.flora.model.ModelDirectory;
import dev.flora.model.Models;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;

/** {@code flora calibrate}: measures what adapted layers cost here; the engine's automatic strategy uses it. */
@Command(name = "calibrate", mixinStandardHelpOptions = true,
        description = {"Measure the cost of every adapter strategy on this machine (layer shapes x token counts x ranks, S adapters), "
                + "fit the fLoRA paper's eq. 7 constants c1 and c2, and store it all; --strategy auto then picks the cheapest per "
                + "layer and step, interpolating the measured times over token count and rank.",
                "With --model, every distinct shape of the model's linear layers; else one --dim x --dim layer. Shapes measured "
                        + "before (same machine and kernels) and not measured now are kept.",
                "Stored in $FLORA_CACHE/calibration.json (default ~/.cache/flora); with --device cuda in calibration-cuda.json, "
                        + "which the engine on the GPU reads."})
final class CalibrateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR", description = "Calibrate at this model's layer shapes.")
    Path model;

    @Option(names = "--random-weights", description = "With --model: a directory with config.json only (flora bench model "
            + "--config-only); the weights are made, as the shapes are all that is needed.")
    boolean randomWeights;

    @Option(names = "--dim", defaultValue = "1024", paramLabel = "D", description = "Layer width without --model (default: ${DEFAULT-VALUE}).")
    int dim;

    @Option(names = "--sequences", defaultValue = "16", paramLabel = "S", description = "Adapters per step, at most one per token (default: ${DEFAULT-VALUE}).")
    int sequences;

    @Option(names = "--tokens", defaultValue = "1,4,16,64,256", split = ",", paramLabel = "T", description = "Token counts (default: ${DEFAULT-VALUE}).")
    int[] tokens;

    @Option(names = "--decode-sequences", defaultValue = "16,64,256", split = ",", paramLabel = "S",
            description = "Decode steps to time LoRA-gathered and LoRA-bmm at: S sequences of one token each, each its own adapter "
                    + "(default: ${DEFAULT-VALUE}; 0 for none). The automatic choice reads decode steps off these.")
    int[] decodeSequences;

    @Option(names = "--single-prompts", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Also time LoRA-gathered and LoRA-bmm on steps of one prompt (each token count, one adapter; default: on, "
                    + "--no-single-prompts for none). The automatic choice reads steps of fewer prompts than --sequences between these "
                    + "and the steps of --sequences prompts.")
    boolean singlePrompts;

    @Option(names = "--ranks", defaultValue = "1,2,4,8,16,32,64", split = ",", paramLabel = "R", description = "Ranks (default: ${DEFAULT-VALUE}).")
    int[] ranks;

    @Option(names = "--rounds", defaultValue = "3", paramLabel = "N", description = "Interleaved rounds per point; the median is kept (default: ${DEFAULT-VALUE}).")
    int rounds;

    @Option(names = "--strategies", split = ",", paramLabel = "S", defaultValue = "flora,exact-flora,gathered,bmm,exact-lora",
            description = "Strategies to time (default: ${DEFAULT-VALUE}); the automatic choice picks among those measured. Leaving out "
                    + "the exact ones shortens a GPU calibration with many adapters (a launch per adapter).")
    List<String> strategies;

    @Option(names = "--out", paramLabel = "FILE", description = "Where to store it (default: $FLORA_CACHE/calibration.json, "
            + "calibration-cuda.json with --device cuda).")
    Path out;

    @picocli.CommandLine.Mixin
    DeviceOption device = new DeviceOption();

    @Override
    public Integer call() throws IOException {
        if (sequences < 1 || rounds < 1 || java.util.Arrays.stream(tokens).anyMatch(t -> t < 1) || java.util.Arrays.stream(ranks).anyMatch(r -> r < 1)) {
            throw new FloraException("--sequences, --rounds, --tokens and --ranks must be at least 1");
        }
        int[] decode = decodeSteps(decodeSequences);
        for (String s : strategies) {
            if (!AdapterBench.ALL_PINNED.contains(s)) {
                throw new FloraException("--strategies: '" + s + "' is not a strategy to time (supported: " + String.join(", ", AdapterBench.ALL_PINNED) + ")");
            }
        }
        Set<List<Integer>> shapes = new LinkedHashSet<>();
        int d = dim;
        dev.flora.backend.Backend backend = device.create();
        if (model != null) {
            // Loaded where it is measured (a config-only directory with --random-weights), for its layer shapes only.
            var lm = Models.load(ModelDirectory.open(model), backend, randomWeights);
            d = lm.spec().hiddenSize();
            for (Linear l : lm.linears().values()) {
                shapes.add(List.of(l.inFeatures(), l.outFeatures()));
            }
        } else {
            shapes.add(List.of(dim, dim));
        }
        List<AdapterBench.Point> points = new ArrayList<>();
        List<AdapterBench.Point> decodePoints = new ArrayList<>();
        List<AdapterBench.Point> singlePoints = new ArrayList<>();
        Set<String> decodeStrategies = new java.util.TreeSet<>(strategies);
        decodeStrategies.retainAll(Set.of("gathered", "bmm"));
        boolean decoding = decode.length > 0 && !decodeStrategies.isEmpty();
        boolean single = singlePrompts && !decodeStrategies.isEmpty() && sequences > 1;
        long work = (long) shapes.size() * (tokens.length * (single ? 2 : 1) + (decoding ? decode.length : 0)) * ranks.length;
        try (Progress progress = new Progress(spec.commandLine().getErr(), "calibrating", work)) {
            for (List<Integer> shape : shapes) {
                var setup = new AdapterBench.Setup(shape.get(0), shape.get(1), sequences, tokens, ranks, rounds, false, null, Set.copyOf(strategies), true);
                points.addAll(AdapterBench.run(backend, setup, progress));
                if (decoding) {
                    // As many sequences as tokens: one token each, each its own adapter.
                    var steps = new AdapterBench.Setup(shape.get(0), shape.get(1), decode[decode.length - 1], decode, ranks, rounds, false, null,
                            decodeStrategies, true);
                    decodePoints.addAll(AdapterBench.run(backend, steps, progress));
                }
                if (single) {
                    // One prompt of each token count, one adapter: a step's LoRA work with few prompts.
                    var one = new AdapterBench.Setup(shape.get(0), shape.get(1), 1, tokens, ranks, rounds, false, null, decodeStrategies, true);
                    singlePoints.addAll(AdapterBench.run(backend, one, progress));
                }
            }
        }
        int fitIn = shapes.contains(List.of(d, d)) ? d : shapes.iterator().next().get(0);
        int fitOut = shapes.contains(List.of(d, d)) ? d : shapes.iterator().next().get(1);
        double c2 = fitC2(points, fitIn, fitOut);
        double c1 = fitC1(points, fitIn, fitOut, c2);
        List<Calibration.Measurement> measured = new ArrayList<>();
        for (AdapterBench.Point p : points) {
            measured.add(new Calibration.Measurement(p.strategy(), p.in(), p.out(), p.tokens(), p.rank(), p.micros()));
        }
        for (AdapterBench.Point p : decodePoints) {
            if (decodeStrategies.contains(p.strategy())) {
                measured.add(new Calibration.Measurement(p.strategy() + CostModel.DECODE_SUFFIX, p.in(), p.out(), p.tokens(), p.rank(), p.micros()));
            }
        }
        for (AdapterBench.Point p : singlePoints) {
            if (decodeStrategies.contains(p.strategy())) {
                measured.add(new Calibration.Measurement(p.strategy() + CostModel.SINGLE_SUFFIX, p.in(), p.out(), p.tokens(), p.rank(), p.micros()));
            }
        }
        Path file = out != null ? out : CostModel.defaultFile(backend);
        boolean cpu = backend.device().equals("cpu");
        Calibration calibration = new Calibration(cpu ? System.getProperty("os.arch") + ", " + Runtime.getRuntime().availableProcessors() + " cores"
                : backend.name(), cpu ? KernelProvider.describe() : "flora cuda kernels + cuBLAS", fitIn, sequences, c1, c2, List.copyOf(measured)).keepingOtherShapesOf(Calibration.loadIfPresent(file));
        calibration.save(file);
        CostModel costs = new CostModel(calibration);
        PrintWriter w = spec.commandLine().getOut();
        w.printf(Locale.ROOT, "eq. 7 fit on the %d x %d layer: c2 = %.3e us per token*d^2, c1 = %.3e us per token*d*r%n", fitOut, fitIn, c2, c1);
        for (List<Integer> shape : shapes) {
            int in = shape.get(0);
            int o = shape.get(1);
            w.printf(Locale.ROOT, "layer [%d, %d], up to %d adapters per step, median of %d interleaved rounds (us per call: the GPU's, or the host's to issue it where longer)%n", o, in, sequences, rounds);
            w.printf(Locale.ROOT, "%7s %5s %10s %10s %10s %10s %10s %10s %10s   %s%n", "tokens", "rank", "base", "flora", "exact-flora",
                    "gathered", "bmm", "exact-lora", (in == fitIn && o == fitOut) ? "eq7 fLoRA" : "", "picks (fLoRA / LoRA)");
            for (int t : tokens) {
                for (int r : ranks) {
                    w.printf(Locale.ROOT, "%7d %5d", t, r);
                    for (String s : List.of("base", "flora", "exact-flora", "gathered", "bmm", "exact-lora")) {
                        w.printf(Locale.ROOT, " %10.1f", micros(points, s, in, o, t, r));
                    }
                    w.printf(Locale.ROOT, " %10s", (in == fitIn && o == fitOut) ? String.format(Locale.ROOT, "%.1f", calibration.predictFlora(t, r)) : "");
                    w.printf(Locale.ROOT, "   %s / %s%n", costs.choose(AdapterKind.FLORA, in, o, t, r).cliName(), costs.choose(AdapterKind.LORA, in, o, t, r).cliName());
                }
            }
        }
        if (decoding) { // S sequences of a token each, each its own adapter
            printLoraSteps(w, shapes, "decode steps: S sequences of one token, each its own adapter", "S", decode, decodePoints,
                    (in, o, sq, r) -> costs.choose(AdapterKind.LORA, in, o, sq, sq, 1, r));
        }
        if (single) { // one prompt of T tokens
            printLoraSteps(w, shapes, "steps of one prompt: T tokens, one adapter", "tokens", tokens, singlePoints,
                    (in, o, t, r) -> costs.choose(AdapterKind.LORA, in, o, t, 1, t, r));
        }
        w.println("stored: " + file.toAbsolutePath());
        return 0;
    }

    /** AUTO's LoRA pick for a layer [o, in] at a grid point (count: sequences or tokens) and rank. */
    private interface LoraPick {
        AdapterStrategy at(int in, int out, int count, int rank);
    }

    /** One table per shape of a LoRA grid of its own (decode steps, one prompt): base, gathered and bmm, and AUTO's pick. */
    private void printLoraSteps(PrintWriter w, Set<List<Integer>> shapes, String what, String countName, int[] counts,
                                List<AdapterBench.Point> points, LoraPick pick) {
        for (List<Integer> shape : shapes) {
            int in = shape.get(0);
            int o = shape.get(1);
            w.printf(Locale.ROOT, "layer [%d, %d], %s (us per call, as above)%n", o, in, what);
            w.printf(Locale.ROOT, "%7s %5s %10s %10s %10s   %s%n", countName, "rank", "base", "gathered", "bmm", "picks (LoRA)");
            for (int n : counts) {
                for (int r : ranks) {
                    w.printf(Locale.ROOT, "%7d %5d", n, r);
                    for (String st : List.of("base", "gathered", "bmm")) {
                        w.printf(Locale.ROOT, " %10.1f", micros(points, st, in, o, n, r));
                    }
                    w.printf(Locale.ROOT, "   %s%n", pick.at(in, o, n, r).cliName());
                }
            }
        }
    }

    /** The decode steps' sequence counts, ascending and distinct; none for a lone 0. */
    static int[] decodeSteps(int[] given) {
        if (given.length == 1 && given[0] == 0) {
            return new int[0];
        }
        if (java.util.Arrays.stream(given).anyMatch(x -> x < 1)) {
            throw new FloraException("--decode-sequences: counts of sequences must be at least 1 (or a lone 0 for no decode steps), got "
                    + java.util.Arrays.toString(given));
        }
        return java.util.Arrays.stream(given).distinct().sorted().toArray();
    }

    /** eq. 7's c2: the base product's microseconds per token·d², averaged over the points. */
    private static double fitC2(List<AdapterBench.Point> points, int in, int out) {
        return points.stream().filter(p -> p.strategy().equals("base") && p.in() == in && p.out() == out)
                .mapToDouble(p -> p.micros() / (p.tokens() * (double) in * out)).average().orElse(Double.NaN);
    }

    /** eq. 7's c1: what bmm LoRA costs beyond the base product, per token·d·r (two small products). */
    private static double fitC1(List<AdapterBench.Point> points, int in, int out, double c2) {
        return points.stream().filter(p -> p.strategy().equals("bmm") && p.in() == in && p.out() == out)
                .mapToDouble(p -> Math.max(0, p.micros() - c2 * p.tokens() * (double) in * out) / (2.0 * p.tokens() * Math.sqrt((double) in * out) * p.rank()))
                .average().orElse(Double.NaN);
    }

    private static double micros(List<AdapterBench.Point> points, String strategy, int in, int out, int t, int r) {
        return points.stream().filter(p -> p.strategy().equals(strategy) && p.in() == in && p.out() == out && p.tokens() == t && p.rank() == r)
                .mapToDouble(AdapterBench.Point::micros).findFirst().orElse(Double.NaN);
    }
}
