package dev.flora.cli;

import dev.flora.cpu.CpuBackend;
import dev.flora.demo.DemoModel;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.model.PretrainedModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;

/** {@code flora demo}: the main job on the embedded default model, no downloads. */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Run Flora on its embedded default: a small random Llama and a tokenizer it builds itself "
                + "(made once, cached), generating from several prompts at once in one batch."})
final class DemoCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    static final List<String> PROMPTS = List.of(
            "The quick brown fox",
            "def fibonacci(n):",
            "Once upon a time, in a small town by the sea,",
            "SELECT name, count(*) FROM requests",
            "What is the capital of France?",
            "Every request may bring its own adapter, and");

    @Option(names = "--max-tokens", defaultValue = "24", paramLabel = "N", description = "Tokens per prompt (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--seed", defaultValue = "42", paramLabel = "S", description = "Sampling seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--cache", paramLabel = "DIR", description = "Where the demo model is kept (default: $FLORA_CACHE or ~/.cache/flora).")
    Path cache;

    @Override
    public Integer call() {
        if (maxTokens < 1) {
            throw new dev.flora.FloraException("--max-tokens must be at least 1, got " + maxTokens);
        }
        PrintWriter out = spec.commandLine().getOut();
        Path dir = DemoModel.ensure(cache != null ? cache : DemoModel.defaultCache(),
                total -> new Progress(spec.commandLine().getErr(), "making the demo model (once)", total));
        out.println("Demo model: " + dir + " (random weights: expect fluent-looking nonsense)");
        try (PretrainedModel pretrained = PretrainedModel.load(dir, new CpuBackend())) {
            List<Request> requests = new ArrayList<>();
            for (int i = 0; i < PROMPTS.size(); i++) {
                int[] prompt = pretrained.tokenizer().encode(PROMPTS.get(i), true);
                SamplingParams sampling = new SamplingParams(0.8, 40, 0.95, seed + i, maxTokens, true, Set.of());
                requests.add(new Request("prompt-" + i, prompt, sampling, false));
            }
            Engine engine = new Engine(pretrained.model(), EngineConfig.DEFAULT, pretrained.eosTokenIds());
            long start = System.nanoTime();
            List<Result> results;
            try (Progress progress = new Progress(spec.commandLine().getErr(), "generating", (long) PROMPTS.size() * maxTokens)) {
                results = engine.run(requests, new Engine.Listener() {
                    @Override
                    public void onToken(String requestId, int token, double logprob) {
                        progress.advance(1);
                    }
                });
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            int generated = 0;
            int promptTokens = 0;
            for (int i = 0; i < results.size(); i++) {
                Result r = results.get(i);
                generated += r.generated().length;
                promptTokens += r.prompt().length;
                int[] all = java.util.stream.IntStream.concat(java.util.Arrays.stream(r.prompt()), java.util.Arrays.stream(r.generated())).toArray();
                String text = pretrained.tokenizer().decode(all, true);
                out.printf("%n[%d] %s%n", i + 1, text.replace("\n", "\n    "));
            }
            out.printf(Locale.ROOT, "%n%d prompts batched together: %d prompt + %d generated tokens in %.2f s over %d steps"
                            + " (%.1f generated tokens/s, %.1f total tokens/s)%n",
                    results.size(), promptTokens, generated, seconds, engine.steps(), generated / seconds, (generated + promptTokens) / seconds);
        }
        return 0;
    }
}
