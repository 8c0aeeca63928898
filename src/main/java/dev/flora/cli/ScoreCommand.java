package dev.flora.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.adapter.AdapterRange;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.model.PretrainedModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code flora score}: log-probabilities of prompts and their greedy continuations, all requests batched together. */
@Command(name = "score", mixinStandardHelpOptions = true,
        description = {"Score prompts: the log-probability of every prompt token given the ones before it, and the "
                + "next N greedy tokens. All requests of the file run together in batches.",
                "Request lines: {\"id\", \"prompt\", \"adapter\"} (adapter: a name or null for the base model). "
                        + "Output lines: {\"id\", \"tokens\", \"logprobs\", \"greedy\"} (logprobs[0] is null)."})
final class ScoreCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face model directory.")
    Path model;

    @Option(names = "--adapter", paramLabel = "NAME=DIR", description = "An adapter requests may name (repeatable).")
    Map<String, Path> adapters = Map.of();

    @Option(names = "--max-adapters", paramLabel = "N",
            description = "Adapters resident at once (default: all given, within --max-cpu-adapters); requests for others wait their turn.")
    Integer maxAdapters;

    @Option(names = "--max-cpu-adapters", paramLabel = "N",
            description = "Adapters kept in host memory, least recently used dropped first and read from disk again when needed "
                    + "(default: all; at least --max-adapters).")
    Integer maxCpuAdapters;

    @Option(names = "--requests", required = true, paramLabel = "IN.jsonl", description = "Request lines (- for stdin).")
    Path requests;

    @Option(names = "--out", required = true, paramLabel = "OUT.jsonl", description = "Where to write results (- for stdout).")
    Path out;

    @Option(names = "--greedy-tokens", defaultValue = "8", paramLabel = "N",
            description = "Greedy tokens after each prompt, EOS not honoured (default: ${DEFAULT-VALUE}).")
    int greedyTokens;

    @Option(names = "--strategy", defaultValue = "auto", paramLabel = "S",
            description = "How adapted layers are computed: auto, exact, flora, gathered, bmm, merged (default: ${DEFAULT-VALUE}).")
    String strategy;

    @Option(names = "--max-batched-tokens", defaultValue = "8192", paramLabel = "N",
            description = "Tokens computed per step (default: ${DEFAULT-VALUE}).")
    int maxBatchedTokens;

    @Mixin
    DeviceOption device;

    @Override
    public Integer call() {
        if (greedyTokens < 0) {
            throw new FloraException("--greedy-tokens must be >= 0, got " + greedyTokens);
        }
        if (maxBatchedTokens <= 0) {
            throw new FloraException("--max-batched-tokens must be positive, got " + maxBatchedTokens);
        }
        AdapterStrategy pinned = AdapterStrategy.parse(strategy);
        List<JsonLines.Line> lines = JsonLines.read(requests);
        try (PretrainedModel pretrained = PretrainedModel.load(model, device.create())) {
            AdapterRegistry registry = AdapterOptions.load(pretrained.model(), adapters,
                    AdapterOptions.maxResident(maxAdapters, adapters.size(), maxCpuAdapters), maxCpuAdapters, spec.commandLine().getErr());
            registry.pin(pinned);
            List<Request> batch = new ArrayList<>();
            for (JsonLines.Line line : lines) {
                batch.add(toRequest(line, pretrained, registry));
            }
            Engine engine = new Engine(pretrained.model(), EngineConfig.DEFAULT.withMaxBatchedTokens(maxBatchedTokens), pretrained.eosTokenIds(), registry);
            List<Result> results;
            try (Progress progress = new Progress(spec.commandLine().getErr(), "scoring", batch.size())) {
                results = engine.run(batch, new Engine.Listener() {
                    @Override
                    public void onFinish(Result result) {
                        progress.advance(1);
                    }
                });
            }
            List<ObjectNode> outputs = new ArrayList<>();
            for (int i = 0; i < results.size(); i++) {
                outputs.add(toJson(lines.get(i).value().get("id"), results.get(i)));
            }
            JsonLines.write(out, outputs, spec.commandLine().getOut());
        }
        return 0;
    }

    private Request toRequest(JsonLines.Line line, PretrainedModel pretrained, AdapterRegistry registry) {
        JsonNode v = line.value();
        String where = requests + " line " + line.number();
        JsonNode prompt = v.get("prompt");
        if (prompt == null || !prompt.isTextual()) {
            throw new FloraException(where + ": \"prompt\" must be a string");
        }
        List<AdapterRange> ranges = adapterRanges(v, where, registry);
        int[] tokens = pretrained.tokenizer().encode(prompt.asText(), true);
        int context = pretrained.model().spec().maxContext();
        if (tokens.length + Math.max(0, greedyTokens - 1) > context) {
            throw new FloraException(where + ": the prompt has " + tokens.length + " tokens; with " + greedyTokens
                    + " greedy tokens that exceeds the model's context of " + context);
        }
        Request request = new Request("line-" + line.number(), tokens, SamplingParams.greedy(greedyTokens, true), true, ranges);
        for (AdapterRange r : ranges) {
            if (r.from() >= tokens.length) {
                throw new FloraException(where + ": adapter range from " + r.from() + " starts past the prompt's " + tokens.length + " tokens");
            }
        }
        return request;
    }

    /** "adapter": a name or null, or "adapters": [{"from", "name"}, ...] ranges over the prompt's tokens. */
    private static List<AdapterRange> adapterRanges(JsonNode v, String where, AdapterRegistry registry) {
        JsonNode adapter = v.get("adapter");
        JsonNode ranges = v.get("adapters");
        if (ranges != null && !ranges.isNull()) {
            if (adapter != null && !adapter.isNull()) {
                throw new FloraException(where + ": give \"adapter\" or \"adapters\", not both");
            }
            if (!ranges.isArray() || ranges.isEmpty()) {
                throw new FloraException(where + ": \"adapters\" must be a non-empty list of {\"from\", \"name\"}");
            }
            List<AdapterRange> out = new ArrayList<>();
            for (JsonNode r : ranges) {
                JsonNode from = r.get("from");
                JsonNode name = r.get("name");
                if (from == null || !from.isIntegralNumber() || from.asInt() < 0) {
                    throw new FloraException(where + ": each adapter range needs \"from\", a token position >= 0");
                }
                if (name != null && !name.isNull() && !name.isTextual()) {
                    throw new FloraException(where + ": an adapter range's \"name\" must be a string or null");
                }
                out.add(new AdapterRange(from.asInt(), known(name == null || name.isNull() ? null : name.asText(), where, registry)));
            }
            return out;
        }
        if (adapter == null || adapter.isNull()) {
            return List.of();
        }
        if (!adapter.isTextual()) {
            throw new FloraException(where + ": \"adapter\" must be a name or null");
        }
        return List.of(new AdapterRange(0, known(adapter.asText(), where, registry)));
    }

    private static String known(String name, String where, AdapterRegistry registry) {
        if (name != null && !registry.contains(name)) {
            throw new FloraException(where + ": unknown adapter '" + name + "'; load it with --adapter " + name + "=DIR");
        }
        return name;
    }

    private static ObjectNode toJson(JsonNode id, Result r) {
        ObjectNode o = JsonLines.JSON.createObjectNode();
        o.set("id", id);
        ArrayNode tokens = o.putArray("tokens");
        for (int t : r.prompt()) {
            tokens.add(t);
        }
        ArrayNode logprobs = o.putArray("logprobs");
        for (double lp : r.promptLogprobs()) {
            if (Double.isNaN(lp)) {
                logprobs.addNull();
            } else {
                logprobs.add(lp);
            }
        }
        ArrayNode greedy = o.putArray("greedy");
        for (int t : r.generated()) {
            greedy.add(t);
        }
        return o;
    }
}
