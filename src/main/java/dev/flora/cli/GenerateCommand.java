package dev.flora.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.FloraException;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.model.PretrainedModel;
import dev.flora.tokenizer.IncrementalDecoder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;

/** {@code flora generate}: streams a continuation of one prompt to stdout. */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = {"Generate a continuation of a prompt and stream the text to stdout.",
                "Sampling defaults come from the model's generation_config.json (greedy when it has none); "
                        + "--temperature 0 is greedy."})
final class GenerateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face model directory.")
    Path model;

    @Option(names = "--prompt", required = true, paramLabel = "TEXT", description = "The prompt.")
    String prompt;

    @Option(names = "--max-tokens", defaultValue = "64", paramLabel = "N", description = "Most tokens to generate (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--temperature", paramLabel = "T", description = "Sampling temperature; 0 is greedy.")
    Double temperature;

    @Option(names = "--top-p", paramLabel = "P", description = "Nucleus sampling: keep the most likely tokens up to this probability.")
    Double topP;

    @Option(names = "--top-k", paramLabel = "K", description = "Keep only the K most likely tokens (0: all).")
    Integer topK;

    @Option(names = "--seed", paramLabel = "S", description = "Random seed, for reproducible sampling.")
    Long seed;

    @Option(names = "--ignore-eos", description = "Keep generating past end-of-sequence tokens.")
    boolean ignoreEos;

    @Option(names = "--adapter", paramLabel = "DIR", description = "An adapter to apply (PEFT LoRA / IA3 or fLoRA directory).")
    Path adapter;

    @Mixin
    DeviceOption device;

    @Override
    public Integer call() {
        if (maxTokens < 0) {
            throw new FloraException("--max-tokens must be >= 0, got " + maxTokens);
        }
        try (PretrainedModel pretrained = PretrainedModel.load(model, device.create())) {
            SamplingParams sampling = sampling(pretrained.directory().generationConfig());
            int[] tokens = pretrained.tokenizer().encode(prompt, true);
            int context = pretrained.model().spec().maxContext();
            if (tokens.length > context) {
                throw new FloraException("the prompt has " + tokens.length + " tokens, more than the model's context of " + context);
            }
            AdapterRegistry registry = AdapterOptions.load(pretrained.model(),
                    adapter == null ? java.util.Map.of() : java.util.Map.of("adapter", adapter), 1);
            Engine engine = new Engine(pretrained.model(), EngineConfig.DEFAULT.withMaxSequences(1), pretrained.eosTokenIds(), registry);
            PrintWriter out = spec.commandLine().getOut();
            IncrementalDecoder decoder = new IncrementalDecoder(pretrained.tokenizer(), tokens);
            long start = System.nanoTime();
            Request request = Request.withAdapter("generate", tokens, sampling, false, adapter == null ? null : "adapter");
            List<Result> results = engine.run(List.of(request), new Engine.Listener() {
                @Override
                public void onToken(String requestId, int token, double logprob) {
                    out.print(decoder.add(token));
                    out.flush();
                }
            });
            out.println();
            double seconds = (System.nanoTime() - start) / 1e9;
            Result r = results.getFirst();
            spec.commandLine().getErr().printf(Locale.ROOT, "[%d prompt tokens, %d generated in %.2f s, %.1f tokens/s, finish: %s]%n",
                    tokens.length, r.generated().length, seconds, r.generated().length / seconds, r.finishReason().openAiName());
        }
        return 0;
    }

    /** Command-line values first, then generation_config.json (when it samples), then greedy. */
    SamplingParams sampling(JsonNode generationConfig) {
        boolean configSamples = generationConfig != null && generationConfig.path("do_sample").asBoolean(false);
        double t = temperature != null ? temperature : configSamples ? generationConfig.path("temperature").asDouble(1.0) : 0.0;
        int k = topK != null ? topK : configSamples ? generationConfig.path("top_k").asInt(50) : 0;
        double p = topP != null ? topP : configSamples ? generationConfig.path("top_p").asDouble(1.0) : 1.0;
        return new SamplingParams(t, k, p, seed, maxTokens, ignoreEos, Set.of());
    }
}
