package dev.flora.cli;

import dev.flora.FloraException;
import dev.flora.adapter.AdapterConfig;
import dev.flora.adapter.AdapterKind;
import dev.flora.safetensors.SafetensorsFile;
import dev.flora.safetensors.TensorView;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Callable;

/** {@code flora adapters}: look at adapter directories, or write random ones for benchmarks. */
@Command(name = "adapters", mixinStandardHelpOptions = true, description = "Adapter tools.",
        subcommands = {AdaptersCommand.Inspect.class, AdaptersCommand.Random.class})
final class AdaptersCommand implements Runnable {
    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    @Command(name = "inspect", mixinStandardHelpOptions = true,
            description = "Print an adapter's kind, rank(s), target modules, scale(s) and parameter count (no model needed).")
    static final class Inspect implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Parameters(paramLabel = "DIR", description = "A PEFT LoRA / IA3 or fLoRA adapter directory.")
        Path dir;

        @Override
        public Integer call() {
            AdapterConfig config = AdapterConfig.read(dir);
            Path weights = dir.resolve("adapter_model.safetensors");
            if (!Files.isRegularFile(weights)) {
                throw new FloraException(dir + ": no adapter_model.safetensors");
            }
            SafetensorsFile file = SafetensorsFile.open(weights);
            Map<String, Integer> ranks = new TreeMap<>();
            Map<String, Double> scales = new TreeMap<>();
            TreeSet<String> targets = new TreeSet<>();
            long parameters = 0;
            for (String key : file.names()) {
                TensorView t = file.get(key);
                parameters += t.numel();
                String module = key.replaceFirst("^base_model\\.model\\.", "").replaceFirst("\\.(lora_[AB]|flora_[AB])\\.(weight|bias)$", "")
                        .replaceFirst("\\.ia3_l$", "");
                targets.add(module.substring(module.lastIndexOf('.') + 1));
                if (key.endsWith(".flora_A.weight")) {
                    ranks.put(module, (int) t.shape()[0]);
                } else if (key.endsWith(".lora_A.weight")) {
                    int r = (int) t.shape()[0];
                    ranks.put(module, r);
                    scales.put(module, config.scaleFor(module, r));
                }
            }
            PrintWriter out = spec.commandLine().getOut();
            out.printf("adapter     %s%n", dir);
            out.printf("kind        %s%n", config.kind());
            out.printf("targets     %s (%d modules)%n", String.join(", ", targets), config.kind() == AdapterKind.LORA || config.kind() == AdapterKind.FLORA ? ranks.size() : file.names().size());
            if (!ranks.isEmpty()) {
                out.printf("rank(s)     %s%n", new TreeSet<>(ranks.values()));
            }
            if (!scales.isEmpty()) {
                out.printf(Locale.ROOT, "scale(s)    %s%s%n", new TreeSet<>(scales.values()), config.rslora() ? " (rsLoRA: alpha / sqrt(r))" : " (alpha / r)");
            }
            if (config.kind() == AdapterKind.FLORA) {
                out.println("scale(s)    W0 ∘ (B A) / r");
            }
            if (config.loraBias()) {
                out.println("lora_bias   yes");
            }
            out.printf(Locale.ROOT, "parameters  %,d%n", parameters);
            for (String w : config.warnings()) {
                out.println("warning     " + w);
            }
            return 0;
        }
    }

    @Command(name = "random", mixinStandardHelpOptions = true,
            description = {"Write seeded random adapters as PEFT directories that fit a model (noise values, real shapes): "
                    + "for benchmarks with many adapters on disk, e.g. flora serve --max-cpu-adapters.",
                    "Without --model, the demo model's shapes."})
    static final class Random implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(names = "--model", paramLabel = "DIR", description = "Hugging Face model directory (default: the demo model).")
        Path model;

        @Option(names = "--out", required = true, paramLabel = "DIR", description = "Where to write the adapter directories.")
        Path out;

        @Option(names = "--count", defaultValue = "8", paramLabel = "N", description = "Adapters (default: ${DEFAULT-VALUE}).")
        int count;

        @Option(names = "--kind", defaultValue = "lora", paramLabel = "lora|flora|ia3", description = "Adapter kind (default: ${DEFAULT-VALUE}).")
        String kind;

        @Option(names = "--rank", defaultValue = "4", paramLabel = "R", description = "Rank (default: ${DEFAULT-VALUE}).")
        int rank;

        @Option(names = "--targets", defaultValue = "q_proj,v_proj", split = ",", paramLabel = "M", description = "Adapted modules (default: ${DEFAULT-VALUE}).")
        java.util.Set<String> targets;

        @Option(names = "--dtype", defaultValue = "bf16", paramLabel = "bf16|f16|f32", description = "Tensor type (default: ${DEFAULT-VALUE}).")
        String dtype;

        @Option(names = "--seed", defaultValue = "1", paramLabel = "S", description = "Seed (default: ${DEFAULT-VALUE}).")
        long seed;

        @Override
        public Integer call() {
            AdapterKind k;
            try {
                k = AdapterKind.valueOf(kind.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new FloraException("--kind must be lora, flora or ia3, not '" + kind + "'");
            }
            dev.flora.backend.DType type = switch (dtype.toLowerCase(Locale.ROOT)) {
                case "bf16" -> dev.flora.backend.DType.BF16;
                case "f16" -> dev.flora.backend.DType.F16;
                case "f32" -> dev.flora.backend.DType.F32;
                default -> throw new FloraException("--dtype must be bf16, f16 or f32, not '" + dtype + "'");
            };
            Path dir = model != null ? model : dev.flora.demo.DemoModel.ensure(dev.flora.demo.DemoModel.defaultCache(),
                    total -> new Progress(spec.commandLine().getErr(), "making the demo model (once)", total));
            try (dev.flora.model.PretrainedModel pretrained = dev.flora.model.PretrainedModel.load(dir, new dev.flora.cpu.CpuBackend())) {
                var written = dev.flora.adapter.RandomAdapterFiles.write(pretrained.model().linears(), k, rank, targets, count, seed, type, out);
                spec.commandLine().getOut().printf("wrote %d %s adapters (rank %d, %s, %s) for %s under %s (%s ... %s)%n", written.size(), k,
                        rank, String.join(",", new TreeSet<>(targets)), dtype, dir, out, written.getFirst().getFileName(), written.getLast().getFileName());
            }
            return 0;
        }
    }
}
