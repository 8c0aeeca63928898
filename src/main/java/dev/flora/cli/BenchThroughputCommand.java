package dev.flora.cli;

import dev.flora.FloraException;
import dev.flora.bench.LinePlot;
import dev.flora.bench.ThroughputBench;
import dev.flora.demo.DemoModel;
import dev.flora.model.CausalLM;
import dev.flora.model.ModelDirectory;
import dev.flora.model.Models;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
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

/** {@code flora bench throughput}: serving throughput against adapter rank, the fLoRA paper's figure 2. */
@Command(name = "throughput", mixinStandardHelpOptions = true,
        description = {"Serving throughput against adapter rank (the fLoRA paper's figure 2, as vLLM's offline throughput benchmark "
                + "runs): every request submitted at once, each with its own random adapter of the series' kind and the rank, under "
                + "a batched-token budget; throughput = (prompt + output tokens) / wall time, and output tokens/s.",
                "Series: none (the base model, once), flora (fused), flora-auto, lora-bmm (padded batched products, prompts and decodes "
                        + "in separate steps: the paper's baseline), lora-gathered (SGMV-like), lora-auto, ia3. Prints a table (or "
                        + "--json lines) and writes a PNG plot."})
final class BenchThroughputCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR", description = "Hugging Face model directory (default: the demo model).")
    Path model;

    @Option(names = "--random-weights", description = "The model directory has config.json only: make seeded random weights where the "
            + "backend keeps them.")
    boolean randomWeights;

    @Mixin
    DeviceOption device;

    @Option(names = "--series", defaultValue = "none,flora,lora-bmm,lora-gathered,lora-auto", split = ",", paramLabel = "S",
            description = "Series to measure (default: ${DEFAULT-VALUE}).")
    List<String> series;

    @Option(names = "--ranks", defaultValue = "1,2,4,8,16,32,64", split = ",", paramLabel = "R", description = "Ranks (default: ${DEFAULT-VALUE}).")
    int[] ranks;

    @Option(names = "--targets", split = ",", paramLabel = "M",
            description = "Adapted modules (default: c_attn where the model has it, as the paper; else q_proj,k_proj,v_proj,o_proj).")
    Set<String> targets;

    @Option(names = "--requests", defaultValue = "200", paramLabel = "N", description = "Requests per point (default: ${DEFAULT-VALUE}).")
    int requests;

    @Option(names = "--input-len", defaultValue = "50..2000", paramLabel = "LO..HI", description = "Prompt tokens, log-normal (default: ${DEFAULT-VALUE}).")
    String inputLen;

    @Option(names = "--output-len", defaultValue = "16..256", paramLabel = "LO..HI", description = "Generated tokens, log-normal (default: ${DEFAULT-VALUE}).")
    String outputLen;

    @Option(names = "--max-batched-tokens", defaultValue = "8192", paramLabel = "N", description = "Tokens per step (default: ${DEFAULT-VALUE}).")
    int maxBatchedTokens;

    @Option(names = "--max-num-seqs", defaultValue = "256", paramLabel = "N", description = "Sequences per step (default: ${DEFAULT-VALUE}).")
    int maxSequences;

    @Option(names = "--kv-cache-memory", defaultValue = "1073741824", paramLabel = "BYTES", description = "KV-cache memory (default: ${DEFAULT-VALUE}).")
    long kvCacheBytes;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "S", description = "Lengths, prompts and adapters (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--plot", defaultValue = "bench-throughput.png", paramLabel = "PNG", description = "Plot file (default: ${DEFAULT-VALUE}).")
    Path plot;

    @Option(names = "--json", description = "Print one JSON line per point instead of the table.")
    boolean json;

    @Override
    public Integer call() throws IOException {
        if (requests < 1 || maxBatchedTokens < 1 || maxSequences < 1 || kvCacheBytes < 1 || java.util.Arrays.stream(ranks).anyMatch(r -> r < 1)) {
            throw new FloraException("--requests, --max-batched-tokens, --max-num-seqs, --kv-cache-memory and --ranks must be at least 1");
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
        List<ThroughputBench.Point> points = new ArrayList<>();
        try {
            CausalLM lm = Models.load(directory, backend, randomWeights);
            Set<String> modules = targets != null ? targets : defaultTargets(lm);
            var workload = new ThroughputBench.Workload(requests, in[0], in[1], out[0], out[1], maxBatchedTokens, maxSequences, kvCacheBytes,
                    modules, seed);
            int runs = 0;
            for (ThroughputBench.Series s : chosen) {
                runs += s.kind() == null ? 1 : ranks.length;
            }
            try (Progress progress = new Progress(spec.commandLine().getErr(), "generating", runs * ThroughputBench.outputTokens(workload))) {
                for (ThroughputBench.Series s : chosen) {
                    for (int rank : s.kind() == null ? new int[] {0} : ranks) {
                        points.add(ThroughputBench.run(lm, s, rank, workload, progress));
                    }
                }
            }
        } finally {
            backend.close();
        }
        PrintWriter o = spec.commandLine().getOut();
        String name = dir.getFileName().toString();
        if (json) {
            points.forEach(p -> o.println(JsonLines.JSON.valueToTree(p)));
        } else {
            o.print(table(name, backend.name(), points));
        }
        Map<String, List<double[]>> lines = new LinkedHashMap<>();
        for (ThroughputBench.Point p : points) {
            if (p.kind().equals("none")) {
                List<double[]> flat = new ArrayList<>();
                for (int r : ranks) {
                    flat.add(new double[] {r, p.tokensPerSecond()});
                }
                lines.put("no adapter", flat);
            } else {
                lines.computeIfAbsent(p.series(), k -> new ArrayList<>()).add(new double[] {p.rank(), p.tokensPerSecond()});
            }
        }
        LinePlot.write(plot, name + ": throughput against rank", "rank", "tok/s",
                Map.of(requests + " requests, " + inputLen + " + " + outputLen + " tokens, " + maxBatchedTokens + " batched", lines));
        spec.commandLine().getErr().println("plot: " + plot.toAbsolutePath());
        return 0;
    }

    /** c_attn (GPT-BigCode's fused attention projection, the paper's target) where the model has it, else q, k, v and o. */
    static Set<String> defaultTargets(CausalLM model) {
        boolean fused = model.linears().keySet().stream().anyMatch(k -> k.endsWith(".c_attn"));
        return fused ? Set.of("c_attn") : Set.of("q_proj", "k_proj", "v_proj", "o_proj");
    }

    /** Tokens/s per series (columns) and rank (rows), and each series against the base model. */
    static String table(String model, String backend, List<ThroughputBench.Point> points) {
        StringBuilder b = new StringBuilder();
        ThroughputBench.Point first = points.getFirst();
        String targets = points.stream().map(ThroughputBench.Point::targets).filter(t -> !t.isEmpty()).findFirst().orElse("-");
        b.append(String.format(Locale.ROOT, "%s on %s: %d requests each with its own adapter on %s; (prompt + output) tokens/s "
                + "(output tokens/s); ratio to no adapter%n", model, backend, first.requests(), targets));
        List<String> columns = points.stream().map(ThroughputBench.Point::series).distinct().toList();
        double base = points.stream().filter(p -> p.kind().equals("none")).mapToDouble(ThroughputBench.Point::tokensPerSecond).findFirst()
                .orElse(Double.NaN);
        b.append(String.format(Locale.ROOT, "%5s", "rank"));
        for (String c : columns) {
            b.append(String.format(Locale.ROOT, " %26s", c));
        }
        b.append('\n');
        List<Integer> ranks = points.stream().filter(p -> !p.kind().equals("none")).map(ThroughputBench.Point::rank).distinct().toList();
        for (int rank : ranks.isEmpty() ? List.of(0) : ranks) {
            b.append(String.format(Locale.ROOT, "%5d", rank));
            for (String c : columns) {
                ThroughputBench.Point p = points.stream().filter(q -> q.series().equals(c) && (q.kind().equals("none") || q.rank() == rank))
                        .findFirst().orElse(null);
                b.append(p == null ? String.format(Locale.ROOT, " %26s", "-") : String.format(Locale.ROOT, " %9.1f (%7.1f) %6.3fx",
                        p.tokensPerSecond(), p.outputTokensPerSecond(), p.tokensPerSecond() / base));
            }
            b.append('\n');
        }
        return b.toString();
    }
}
