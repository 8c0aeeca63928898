package dev.flora.cli;

import dev.flora.FloraException;
import dev.flora.adapter.CostModel;
import dev.flora.bench.AdapterBench;
import dev.flora.cpu.CpuBackend;
import dev.flora.cpu.KernelProvider;
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
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code flora calibrate}: measures what adapted layers cost here; the engine's automatic strategy uses it. */
@Command(name = "calibrate", mixinStandardHelpOptions = true,
        description = {"Measure the cost of every adapter strategy on this machine (token counts x ranks, S adapters), fit the "
                + "fLoRA paper's eq. 7 constants c1 and c2, and store it all; --strategy auto then picks the cheapest per layer and step.",
                "Stored in $FLORA_CACHE/calibration.json (default ~/.cache/flora)."})
final class CalibrateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR", description = "Calibrate at this model's hidden size.")
    Path model;

    @Option(names = "--dim", defaultValue = "1024", paramLabel = "D", description = "Layer width without --model (default: ${DEFAULT-VALUE}).")
    int dim;

    @Option(names = "--sequences", defaultValue = "16", paramLabel = "S", description = "Adapters per step (default: ${DEFAULT-VALUE}).")
    int sequences;

    @Option(names = "--tokens", defaultValue = "16,64", split = ",", paramLabel = "T", description = "Token counts (default: ${DEFAULT-VALUE}).")
    int[] tokens;

    @Option(names = "--ranks", defaultValue = "1,2,4,8,16,32,64", split = ",", paramLabel = "R", description = "Ranks (default: ${DEFAULT-VALUE}).")
    int[] ranks;

    @Option(names = "--out", paramLabel = "FILE", description = "Where to store it (default: $FLORA_CACHE/calibration.json).")
    Path out;

    @Override
    public Integer call() throws IOException {
        int d = model != null ? Models.load(ModelDirectory.open(model), new CpuBackend()).spec().hiddenSize() : dim;
        for (int t : tokens) {
            if (t < sequences) {
                throw new FloraException("--tokens " + t + " is fewer than --sequences " + sequences);
            }
        }
        List<AdapterBench.Point> points;
        try (Progress progress = new Progress(spec.commandLine().getErr(), "calibrating", (long) tokens.length * ranks.length)) {
            points = AdapterBench.run(new CpuBackend(), d, sequences, tokens, ranks, progress);
        }
        double c2 = 0;
        int n2 = 0;
        double c1 = 0;
        int n1 = 0;
        for (AdapterBench.Point p : points) {
            if (p.strategy().equals("base")) {
                c2 += p.micros() / (p.tokens() * (double) d * d);
                n2++;
            }
        }
        c2 /= n2;
        for (AdapterBench.Point p : points) {
            if (p.strategy().equals("bmm")) {
                double base = c2 * p.tokens() * (double) d * d;
                c1 += Math.max(0, p.micros() - base) / (2.0 * p.tokens() * d * p.rank());
                n1++;
            }
        }
        c1 /= n1;
        List<CostModel.Measurement> measured = new ArrayList<>();
        for (AdapterBench.Point p : points) {
            measured.add(new CostModel.Measurement(p.strategy(), p.tokens(), p.rank(), p.micros()));
        }
        CostModel costs = new CostModel(System.getProperty("os.arch") + ", " + Runtime.getRuntime().availableProcessors() + " cores",
                KernelProvider.describe(), d, c1, c2, measured);
        Path file = out != null ? out : CostModel.defaultFile();
        costs.save(file);
        PrintWriter w = spec.commandLine().getOut();
        w.printf(Locale.ROOT, "d = %d, %d adapters per step; eq. 7 fit: c2 = %.3e us per token*d^2, c1 = %.3e us per token*d*r%n", d, sequences, c2, c1);
        w.printf(Locale.ROOT, "%7s %5s %12s %12s %12s %12s   %s%n", "tokens", "rank", "fLoRA", "eq7 fLoRA", "bmm", "eq7 bmm", "auto picks (fLoRA / LoRA)");
        for (int t : tokens) {
            for (int r : ranks) {
                w.printf(Locale.ROOT, "%7d %5d %12.1f %12.1f %12.1f %12.1f   %s / %s%n", t, r, micros(points, "flora", t, r), costs.predictFlora(t, r),
                        micros(points, "bmm", t, r), costs.predictBmm(t, r),
                        costs.choose(dev.flora.adapter.AdapterKind.FLORA, t, r).cliName(), costs.choose(dev.flora.adapter.AdapterKind.LORA, t, r).cliName());
            }
        }
        w.println("stored: " + file.toAbsolutePath());
        return 0;
    }

    private static double micros(List<AdapterBench.Point> points, String strategy, int t, int r) {
        return points.stream().filter(p -> p.strategy().equals(strategy) && p.tokens() == t && p.rank() == r)
                .mapToDouble(AdapterBench.Point::micros).findFirst().orElse(Double.NaN);
    }
}
