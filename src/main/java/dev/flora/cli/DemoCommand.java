package dev.flora.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.adapter.Adapter;
import dev.flora.adapter.AdapterKind;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.adapter.RandomAdapters;
import dev.flora.cpu.CpuBackend;
import dev.flora.cpu.KernelProvider;
import dev.flora.demo.DemoModel;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.EngineLoop;
import dev.flora.loadgen.LoadGenerator;
import dev.flora.model.PretrainedModel;
import dev.flora.server.OpenAiServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;

/** {@code flora demo}: the main job on the embedded default model, no downloads. */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Flora's main job on its embedded default: a ~100M-parameter Llama (bf16, random weights, made once and "
                + "cached) served over the OpenAI API on loopback with 32 adapters of every kind and rank, driven by a "
                + "mixed-adapter Poisson load through real HTTP, then the same load on the base model alone, in two rounds (adapters, "
                + "base, base, adapters); prints the tables and the ratio of output tokens/s with each round's, and exits."})
final class DemoCommand implements Callable<Integer> {
    static final List<String> PROMPTS = List.of("The quick brown fox", "def fibonacci(n):", "Once upon a time, in a small town by the sea,");

    @Spec
    CommandSpec spec;

    @Option(names = "--requests", defaultValue = "48", paramLabel = "N", description = "Requests per load run (default: ${DEFAULT-VALUE}).")
    int requests;

    @Option(names = "--rate", defaultValue = "8", paramLabel = "R", description = "Requests per second, Poisson (default: ${DEFAULT-VALUE}).")
    double rate;

    @Option(names = "--seed", defaultValue = "42", paramLabel = "S", description = "Seed of the load (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--rounds", defaultValue = "2", paramLabel = "N", description = "Rounds of the two loads, in the order adapters, base, "
            + "base, adapters, ... so that warm-up and drift fall on both; the ratio is over all rounds and each round's is printed "
            + "(default: ${DEFAULT-VALUE}).")
    int rounds;

    @Option(names = "--cache", paramLabel = "DIR", description = "Where the demo model is kept (default: $FLORA_CACHE or ~/.cache/flora).")
    Path cache;

    @Override
    public Integer call() throws IOException, InterruptedException {
        if (requests < 1 || !(rate > 0) || rounds < 1) {
            throw new dev.flora.FloraException("--requests and --rounds must be at least 1 and --rate positive");
        }
        PrintWriter out = spec.commandLine().getOut();
        Path dir = DemoModel.ensure(cache != null ? cache : DemoModel.defaultCache(),
                total -> new Progress(spec.commandLine().getErr(), "making the demo model (once)", total));
        try (PretrainedModel pretrained = PretrainedModel.load(dir, new CpuBackend())) {
            AdapterRegistry registry = new AdapterRegistry(32);
            List<String> names = new ArrayList<>();
            addAdapters(pretrained, registry, names, AdapterKind.LORA, 4, Set.of("q_proj", "v_proj"), 6);
            addAdapters(pretrained, registry, names, AdapterKind.LORA, 16, Set.of("q_proj", "k_proj", "v_proj", "o_proj"), 6);
            addAdapters(pretrained, registry, names, AdapterKind.FLORA, 1, Set.of("q_proj", "k_proj"), 6);
            addAdapters(pretrained, registry, names, AdapterKind.FLORA, 2, Set.of("q_proj", "v_proj"), 6);
            addAdapters(pretrained, registry, names, AdapterKind.IA3, 1, Set.of("k_proj", "v_proj", "down_proj"), 8);
            EngineLoop loop = new EngineLoop(new Engine(pretrained.model(), EngineConfig.DEFAULT, pretrained.eosTokenIds(), registry), 4096);
            try (loop; OpenAiServer server = new OpenAiServer(pretrained, loop, registry, "demo-llama", null, "127.0.0.1", 0)) {
                server.start();
                URI url = URI.create("http://127.0.0.1:" + server.port());
                out.printf(Locale.ROOT, "Demo model: %s (%.0fM weights, bf16, random: its text is nonsense), kernels %s%n", dir,
                        pretrained.model().spec().matmulWeights() / 1e6, KernelProvider.describe());
                out.printf("Serving on %s with 32 adapters: 6 LoRA r4 (q,v), 6 LoRA r16 (q,k,v,o), 6 fLoRA r1 (q,k), 6 fLoRA r2 (q,v), 8 IA3 (k,v,down)%n%n", url);
                samples(out, url, names);
                LoadGenerator.Config mixed = new LoadGenerator.Config(url, rate, requests, names, LoadGenerator.Popularity.UNIFORM, 16, 256, 8, 32,
                        pretrained.model().spec().vocabSize(), seed, java.time.Duration.ofMinutes(5));
                LoadGenerator.Config alone = new LoadGenerator.Config(url, rate, requests, List.of("demo-llama"), LoadGenerator.Popularity.IDENTICAL,
                        16, 256, 8, 32, pretrained.model().spec().vocabSize(), seed, java.time.Duration.ofMinutes(5));
                // Adapters, base, base, adapters, ...: the JIT's warm-up and any drift of the machine fall on both.
                double[] adapted = new double[rounds];
                double[] baseOnly = new double[rounds];
                int failed = 0;
                for (int round = 0; round < rounds; round++) {
                    for (boolean adapters : round % 2 == 0 ? new boolean[] {true, false} : new boolean[] {false, true}) {
                        String which = adapters ? "Load 1: each request with one of the 32 adapters (uniform), Poisson arrivals"
                                : "Load 2: the same requests on the base model alone";
                        out.println(rounds == 1 ? which : which + " (round " + (round + 1) + " of " + rounds + ")");
                        LoadGenerator.Report report = LoadgenCommand.runAndReport(spec, adapters ? mixed : alone, null);
                        out.println(LoadGenerator.table(report));
                        out.println();
                        (adapters ? adapted : baseOnly)[round] = report.outputThroughput();
                        failed += report.failed();
                    }
                }
                out.printf(Locale.ROOT, "With 32 different adapters, output tokens/s is %.2fx the base model's under the same load%s.%n",
                        java.util.Arrays.stream(adapted).sum() / java.util.Arrays.stream(baseOnly).sum(), perRound(adapted, baseOnly));
                return failed == 0 ? 0 : 1;
            }
        }
    }

    /** Each round's ratio, where there is more than one: how much of the ratio is this machine's noise. */
    static String perRound(double[] adapted, double[] baseOnly) {
        if (adapted.length < 2) {
            return "";
        }
        StringBuilder b = new StringBuilder(" (rounds: ");
        for (int i = 0; i < adapted.length; i++) {
            b.append(i == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%.2fx", adapted[i] / baseOnly[i]));
        }
        return b.append(')').toString();
    }

    private static void addAdapters(PretrainedModel model, AdapterRegistry registry, List<String> names, AdapterKind kind, int rank,
                                    Set<String> targets, int count) {
        for (Adapter a : RandomAdapters.create(model.model(), kind, rank, targets, count, 7L * rank + kind.ordinal() * 1000L + names.size())) {
            String name = kind.name().toLowerCase(Locale.ROOT) + (kind == AdapterKind.IA3 ? "" : "-r" + rank) + "-" + (names.size() + 1);
            registry.register(new Adapter(name, a.kind(), a.dir(), a.config(), a.modules()));
            names.add(name);
        }
    }

    /** A few completions through the API, each with another adapter. */
    private static void samples(PrintWriter out, URI url, List<String> names) throws IOException, InterruptedException {
        HttpClient http = HttpClient.newHttpClient();
        for (int i = 0; i < PROMPTS.size(); i++) {
            String model = names.get(i * 11 % names.size());
            var body = JsonLines.JSON.createObjectNode().put("model", model).put("prompt", PROMPTS.get(i)).put("max_tokens", 16)
                    .put("temperature", 0.8).put("seed", i);
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(url.resolve("/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(body.toString()))
                    .build(), HttpResponse.BodyHandlers.ofString());
            JsonNode choice = JsonLines.JSON.readTree(r.body()).path("choices").path(0);
            out.printf("[%s] %s|%s%n", model, PROMPTS.get(i), choice.path("text").asText().replace("\n", "\\n"));
        }
        out.println();
    }
}
