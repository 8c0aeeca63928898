package dev.flora.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.bench.DecodeBench;
import dev.flora.bench.MachineLimits;
import dev.flora.cpu.KernelProvider;
import dev.flora.demo.DemoModel;
import dev.flora.demo.LlamaShape;
import dev.flora.model.CausalLM;
import dev.flora.model.ModelDirectory;
import dev.flora.model.Models;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code flora bench}: measurements against the machine's own limits. */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Benchmarks that print tables (and --json lines) of speed against the machine's measured limits.",
        subcommands = {BenchCommand.Decode.class, BenchCommand.Adapters.class, BenchLoadCommands.Throughput.class, BenchLoadCommands.Latency.class,
                BenchCommand.MakeModel.class,
                BenchReportCommand.class})
final class BenchCommand implements Runnable {
    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    @Command(name = "adapters", mixinStandardHelpOptions = true,
            description = {"Per-layer time of each adapter strategy against rank (the shape of the fLoRA paper's figure 2 on "
                    + "this machine): a d x d bf16 layer, T tokens over S sequences each with its own adapter, the base layer "
                    + "alone, and the automatic choice (by the stored calibration) beside the pinned strategies.",
                    "All cases of a point are timed interleaved, median of --rounds rounds. Prints a table (or --json lines) "
                            + "and writes a PNG plot."})
    static final class Adapters implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(names = "--dim", defaultValue = "4096", paramLabel = "D", description = "Layer width (default: ${DEFAULT-VALUE}).")
        int dim;

        @Option(names = "--sequences", defaultValue = "16", paramLabel = "S",
                description = "Sequences, each with its own adapter; at most one per token (default: ${DEFAULT-VALUE}).")
        int sequences;

        @Option(names = "--tokens", defaultValue = "16,64", split = ",", paramLabel = "T", description = "Token counts per step (default: ${DEFAULT-VALUE}).")
        int[] tokens;

        @Option(names = "--ranks", defaultValue = "1,2,4,8,16,32,64", split = ",", paramLabel = "R", description = "Ranks (default: ${DEFAULT-VALUE}).")
        int[] ranks;

        @Option(names = "--rounds", defaultValue = "3", paramLabel = "N", description = "Interleaved rounds per point; the median is reported (default: ${DEFAULT-VALUE}).")
        int rounds;

        @Option(names = "--calibration", paramLabel = "FILE", description = "Calibration for the automatic choice (default: $FLORA_CACHE/calibration.json; without one, AUTO's defaults).")
        Path calibration;

        @Option(names = "--plot", defaultValue = "bench-adapters.png", paramLabel = "PNG", description = "Plot file (default: ${DEFAULT-VALUE}).")
        Path plot;

        @Option(names = "--json", description = "Print one JSON line per point instead of the table.")
        boolean json;

        @picocli.CommandLine.Mixin
        DeviceOption device = new DeviceOption();

        @Option(names = "--from", paramLabel = "JSONL", description = "Measure nothing: table and plot from the JSON lines of an earlier "
                + "--json run (made on a machine that cannot draw, say).")
        Path from;

        @Override
        public Integer call() throws java.io.IOException {
            if (from != null) {
                var points = JsonLines.readAs(from, dev.flora.bench.AdapterBench.Point.class, "bench adapters");
                PrintWriter out = spec.commandLine().getOut();
                out.printf(Locale.ROOT, "measured earlier (%s): d = %d, microseconds per layer call%n", from, points.getFirst().in());
                dev.flora.bench.AdapterTable.print(out, points, points.stream().anyMatch(p -> p.picked() != null));
                plot(points, points.stream().mapToInt(dev.flora.bench.AdapterBench.Point::tokens).distinct().toArray(), 0, points.getFirst().in(),
                        "measured earlier");
                return 0;
            }
            if (dim < 16 || sequences < 1 || rounds < 1 || java.util.Arrays.stream(ranks).anyMatch(r -> r < 1)
                    || java.util.Arrays.stream(tokens).anyMatch(t -> t < 1)) {
                throw new FloraException("--dim must be >= 16, --sequences, --tokens, --rounds and --ranks >= 1");
            }
            dev.flora.backend.Backend backend = device.create();
            Path file = calibration != null ? calibration : dev.flora.adapter.CostModel.defaultFile(backend);
            dev.flora.adapter.CostModel costs = dev.flora.adapter.CostModel.loadIfPresent(file);
            if (calibration != null && costs == null) {
                throw new FloraException("--calibration " + calibration + ": no such file");
            }
            String kernels = backend.device().equals("cpu") ? KernelProvider.describe() + ", " + Runtime.getRuntime().availableProcessors()
                    + " threads" : backend.name();
            var setup = new dev.flora.bench.AdapterBench.Setup(dim, dim, sequences, tokens, ranks, rounds, true, costs);
            java.util.List<dev.flora.bench.AdapterBench.Point> points;
            try (Progress progress = new Progress(spec.commandLine().getErr(), "measuring", (long) tokens.length * ranks.length)) {
                points = dev.flora.bench.AdapterBench.run(backend, setup, progress);
            }
            PrintWriter out = spec.commandLine().getOut();
            if (json) {
                for (var p : points) {
                    out.println(JsonLines.JSON.valueToTree(p));
                }
            } else {
                out.printf(Locale.ROOT, "d = %d, min(T, %d) sequences each with its own adapter (LoRA for gathered/bmm/exact-lora, fLoRA for "
                                + "flora/exact-flora), %s; microseconds per layer call, median of %d interleaved rounds; "
                                + "auto by %s%n", dim, sequences, kernels, rounds,
                        costs == null ? "AUTO's defaults (no calibration)" : file);
                dev.flora.bench.AdapterTable.print(out, points, true);
            }
            plot(points, tokens, sequences, dim, kernels);
            return 0;
        }

        /** One panel per token count (sequences 0: not known, from --from), a line per pinned strategy. */
        private void plot(java.util.List<dev.flora.bench.AdapterBench.Point> points, int[] tokenCounts, int sequences, int d, String kernels)
                throws java.io.IOException {
            java.util.Map<String, java.util.Map<String, java.util.List<double[]>>> panels = new java.util.LinkedHashMap<>();
            for (int t : tokenCounts) {
                java.util.Map<String, java.util.List<double[]>> series = new java.util.LinkedHashMap<>();
                for (String s : dev.flora.bench.AdapterBench.columns(false)) {
                    series.put(s, points.stream().filter(p -> p.tokens() == t && p.strategy().equals(s))
                            .map(p -> new double[] {p.rank(), p.micros()}).toList());
                }
                panels.put(t + " tokens" + (sequences > 0 ? ", " + Math.min(sequences, t) + " adapters" : ""), series);
            }
            dev.flora.bench.LinePlot.writeOrSay(plot, "Adapted layer time vs rank, d=" + d + " (" + kernels + ")", "rank", "us", panels,
                    spec.commandLine().getErr());
        }
    }

    @Command(name = "model", mixinStandardHelpOptions = true,
            description = "Write a random-weight Llama model directory of a known shape (bfloat16, seeded), for benchmarks.")
    static final class MakeModel implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(names = "--shape", required = true, paramLabel = "NAME",
                description = "demo-100m, tinyllama-1.1b or llama2-7b (weights written); with --config-only also llama2-13b, "
                        + "starcoder-1b, starcoder-3b, starcoder-15b.")
        String shape;

        @Option(names = "--config-only", description = "Write config.json and a placeholder word-level tokenizer.json (token i is "
                + "the word wi) alone, for --random-weights (weights made where they are used).")
        boolean configOnly;

        @Option(names = "--out", required = true, paramLabel = "DIR", description = "Directory to write (must not exist).")
        Path out;

        @Override
        public Integer call() throws java.io.IOException {
            if (java.nio.file.Files.exists(out)) {
                throw new FloraException(out + ": already exists; give a new directory");
            }
            if (configOnly) {
                dev.flora.bench.BenchShapes.writeConfig(shape, out);
                spec.commandLine().getOut().println("wrote " + shape + " config.json and a placeholder tokenizer.json to " + out
                        + " (use it with --random-weights)");
                return 0;
            }
            LlamaShape s = LlamaShape.named(shape);
            DemoModel.write(out, s, total -> new Progress(spec.commandLine().getErr(), "writing " + s.name(), total));
            spec.commandLine().getOut().println("wrote " + s.name() + " to " + out);
            return 0;
        }
    }

    @Command(name = "decode", mixinStandardHelpOptions = true,
            description = {"Decode tokens/s of B sequences together, with the memory bandwidth and FMA peak measured in the "
                    + "same run and the fractions of them reached.",
                    "Without --model, the demo model (made if needed)."})
    static final class Decode implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(names = "--model", paramLabel = "DIR", description = "Hugging Face model directory (default: the demo model).")
        Path model;

        @Option(names = "--batch", defaultValue = "1", paramLabel = "B", description = "Sequences decoded together (default: ${DEFAULT-VALUE}).")
        int batch;

        @Option(names = "--tokens", defaultValue = "64", paramLabel = "N", description = "Decode steps timed (default: ${DEFAULT-VALUE}).")
        int tokens;

        @Option(names = "--json", description = "Print one JSON line instead of the table.")
        boolean json;

        @Option(names = "--adapter-kind", paramLabel = "lora|flora|ia3",
                description = "Give every sequence its own random adapter of this kind (default: none).")
        String adapterKind;

        @Option(names = "--rank", defaultValue = "8", paramLabel = "R", description = "Adapter rank (default: ${DEFAULT-VALUE}).")
        int rank;

        @Option(names = "--targets", defaultValue = "q_proj,v_proj", split = ",", paramLabel = "M", description = "Adapted modules (default: ${DEFAULT-VALUE}).")
        java.util.Set<String> targets;

        @Option(names = "--strategy", defaultValue = "auto", split = ",", paramLabel = "S",
                description = "Adapter strategy; several (comma-separated) with --compare (default: ${DEFAULT-VALUE}).")
        java.util.List<String> strategy;

        @Option(names = "--compare", description = "Decode without adapters and with each --strategy, interleaved step by step, "
                + "--rounds times (after one untimed round); print tokens/s per round, their medians and the median of each round's ratio to no adapters.")
        boolean compare;

        @Option(names = "--rounds", defaultValue = "3", paramLabel = "N", description = "Rounds of --compare (default: ${DEFAULT-VALUE}).")
        int rounds;

        @Option(names = "--prompt-tokens", defaultValue = "16", paramLabel = "P", description = "Prompt tokens per sequence, prefilled in one step before the timed decode (default: ${DEFAULT-VALUE}).")
        int promptTokens;

        @Option(names = "--random-weights", description = "The model directory has config.json only: make seeded random weights "
                + "where the backend keeps them (as vLLM's dummy load format).")
        boolean randomWeights;

        @picocli.CommandLine.Mixin
        DeviceOption device;

        @Override
        public Integer call() {
            if (batch < 1 || tokens < 1 || rounds < 1) {
                throw new FloraException("--batch, --tokens and --rounds must be at least 1");
            }
            java.util.List<DecodeBench.AdapterSetup> setups = new java.util.ArrayList<>();
            if (adapterKind != null) {
                dev.flora.adapter.AdapterKind kind = switch (adapterKind.toLowerCase(Locale.ROOT)) {
                    case "lora" -> dev.flora.adapter.AdapterKind.LORA;
                    case "flora" -> dev.flora.adapter.AdapterKind.FLORA;
                    case "ia3" -> dev.flora.adapter.AdapterKind.IA3;
                    default -> throw new FloraException("--adapter-kind must be lora, flora or ia3, not '" + adapterKind + "'");
                };
                if (rank < 1) {
                    throw new FloraException("--rank must be at least 1");
                }
                for (String s : strategy) {
                    setups.add(new DecodeBench.AdapterSetup(kind, rank, targets, dev.flora.adapter.AdapterStrategy.parse(s)));
                }
            }
            if (!compare && setups.size() > 1) {
                throw new FloraException("several strategies need --compare");
            }
            Path dir = model != null ? model : DemoModel.ensure(DemoModel.defaultCache(),
                    total -> new Progress(spec.commandLine().getErr(), "making the demo model (once)", total));
            ModelDirectory directory = ModelDirectory.open(dir);
            if (promptTokens < 1) {
                throw new FloraException("--prompt-tokens must be at least 1");
            }
            dev.flora.backend.Backend backend = device.create();
            CausalLM lm = Models.load(directory, backend, randomWeights);
            if (promptTokens + tokens > lm.spec().maxContext()) {
                throw new FloraException("--tokens " + tokens + " does not fit the model's context of " + lm.spec().maxContext());
            }
            PrintWriter out = spec.commandLine().getOut();
            String name = dir.getFileName().toString();
            String kernels = backend instanceof dev.flora.cuda.CudaBackend ? backend.name() : KernelProvider.describe();
            if (compare) {
                setups.addFirst(null);
                java.util.List<DecodeBench.Comparison> results;
                try {
                    results = DecodeBench.compare(lm, name, batch, tokens, promptTokens, rounds, setups);
                } catch (dev.flora.backend.DeviceMemoryFull e) {
                    throw new FloraException("--compare keeps the " + setups.size() + " configurations' engines (no adapters and each strategy),"
                            + " each with its own KV cache, on the device at once: compare fewer strategies a run, or lower --batch or"
                            + " --prompt-tokens (" + e.getMessage() + ")", e);
                } finally {
                    backend.close();
                }
                if (json) {
                    results.forEach(r -> out.println(JsonLines.JSON.valueToTree(r)));
                } else {
                    out.println(comparisonTable(results, kernels, rounds));
                }
                return 0;
            }
            MachineLimits limits = backend instanceof dev.flora.cuda.CudaBackend gpu ? gpu.measureLimits() : MachineLimits.measure();
            DecodeBench.Result r;
            try {
                r = DecodeBench.run(lm, name, kernels, batch, tokens, promptTokens, limits, setups.isEmpty() ? null : setups.getFirst());
            } finally {
                backend.close();
            }
            if (json) {
                ObjectNode o = JsonLines.JSON.valueToTree(r);
                out.println(o);
            } else {
                out.println(table(r));
            }
            return 0;
        }

        static String comparisonTable(java.util.List<DecodeBench.Comparison> results, String kernels, int rounds) {
            StringBuilder b = new StringBuilder();
            DecodeBench.Comparison first = results.getFirst();
            b.append(String.format(Locale.ROOT, "model %s, batch %d x %d decode steps, kernels %s, %d threads; %d rounds, configurations interleaved step by step%n",
                    first.model(), first.batch(), first.steps(), kernels, Runtime.getRuntime().availableProcessors(), rounds));
            b.append(String.format(Locale.ROOT, "%-72s %-28s %9s %9s %10s %10s%n", "adapters", "tokens/s per round", "median", "vs none*",
                    "bytes allow", "of that**"));
            for (DecodeBench.Comparison c : results) {
                String perRound = String.join(" ", c.tokensPerSecond().stream().map(v -> String.format(Locale.ROOT, "%.1f", v)).toList());
                b.append(String.format(Locale.ROOT, "%-72s %-28s %9.1f %9.3f %10.3f %10.3f%n", c.adapters(), perRound, c.median(), c.ratio(),
                        c.bytesBound(), c.ofBytesBound()));
            }
            b.append("* median over the rounds of each round's ratio to no adapters (measured side by side)\n");
            b.append("** the ratio over what the bytes allow: model matrix bytes / (those + every sequence's adapter bytes); 1 = the adapters "
                    + "cost only the bytes they add");
            return b.toString().stripTrailing();
        }

        static String table(DecodeBench.Result r) {
            MachineLimits m = r.limits();
            return String.format(Locale.ROOT, """
                    model            %s (%.1f MB of matrix weights)
                    adapters         %s
                    kernels          %s, %d threads
                    batch x steps    %d x %d in %.3f s
                    decode           %.1f tokens/s
                    with prefill     %.1f output tokens/s (%d prompt tokens each, %d + 1 tokens generated)
                    prefill          %.1f ms, %.0f%% of the matrix peak in its products
                    memory roofline  %.1f tokens/s at %.1f GB/s measured  -> %.0f%% reached
                    FMA peak         %.1f GFLOP/s measured               -> %.0f%% reached""",
                    r.model(), r.weightBytes() / 1e6, r.adapters(), r.kernels(), m.threads(), r.batch(), r.steps(), r.seconds(),
                    r.tokensPerSecond(), r.endToEndOutputTokensPerSecond(), r.promptTokens(), r.steps(), r.prefillSeconds() * 1e3, 100 * r.prefillFlopFraction(),
                    r.rooflineTokensPerSecond(), m.bytesPerSecond() / 1e9, 100 * r.memoryFraction(),
                    m.flopsPerSecond() / 1e9, 100 * r.flopFraction());
        }
    }
}
