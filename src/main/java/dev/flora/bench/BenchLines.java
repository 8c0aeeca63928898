package dev.flora.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.FloraException;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;

/**
 * The JSON lines of the base benchmark (tools/gpu/bench-base.sh): Flora's {@code bench decode --json}
 * lines and the transformers peer's. Any other line is an error naming where it is.
 */
public final class BenchLines {
    private final List<BaseRun> flora = new ArrayList<>();
    private final List<PeerRun> peer = new ArrayList<>();

    /** @param where the file and line, e.g. "runs.jsonl line 3", for errors */
    public void add(String where, JsonNode line) {
        if (line.has("rooflineTokensPerSecond")) {
            flora.add(flora(where, line));
        } else if (line.has("output_tokens_per_s")) {
            peer.add(peer(where, line));
        } else {
            throw new FloraException(where + ": neither a 'flora bench decode --json' line nor a transformers_bench.py line");
        }
    }

    public List<BaseRun> flora() {
        return List.copyOf(flora);
    }

    public List<PeerRun> peer() {
        return List.copyOf(peer);
    }

    /** The shapes seen, Flora's and the peer's, sorted. */
    public List<String> shapes() {
        TreeSet<String> shapes = new TreeSet<>();
        flora.forEach(r -> shapes.add(r.model()));
        peer.forEach(r -> shapes.add(r.shape()));
        return List.copyOf(shapes);
    }

    private static BaseRun flora(String where, JsonNode line) {
        String adapters = line.path("adapters").asText("none");
        if (!adapters.equals("none")) {
            throw new FloraException(where + ": a run with adapters (" + adapters + "); the base report takes runs without");
        }
        return new BaseRun(text(where, line, "model"), line.path("kernels").asText(""), count(where, line, "batch"),
                count(where, line, "promptTokens"), number(where, line, "tokensPerSecond"),
                number(where, line, "endToEndOutputTokensPerSecond"), number(where, line, "rooflineTokensPerSecond"),
                number(where, line, "memoryFraction"), number(where, line, "limits/bytesPerSecond"),
                number(where, line, "limits/flopsPerSecond"), line.has("prefillFlopFraction") ? number(where, line, "prefillFlopFraction") : Double.NaN);
    }

    private static PeerRun peer(String where, JsonNode line) {
        String adapters = line.path("adapters").asText("none");
        if (!adapters.equals("none")) {
            throw new FloraException(where + ": a peer run with adapters (" + adapters + "); the base report takes runs without");
        }
        int batch = count(where, line, "batch");
        int newTokens = count(where, line, "new_tokens");
        JsonNode runs = line.path("runs");
        if (!runs.isArray() || runs.isEmpty()) {
            throw new FloraException(where + ": field 'runs' must be a non-empty list of seconds");
        }
        List<Double> tokensPerSecond = new ArrayList<>();
        for (int i = 0; i < runs.size(); i++) {
            tokensPerSecond.add((double) batch * newTokens / positive(where, runs.get(i), "runs[" + i + "]"));
        }
        Path config = Path.of(text(where, line, "config")).getParent();
        if (config == null || config.getFileName() == null) {
            throw new FloraException(where + ": field 'config' must name a config.json inside the shape's directory");
        }
        return new PeerRun(config.getFileName().toString(), line.path("peer").asText("peer"), line.path("gpu").asText(""),
                batch, count(where, line, "prompt_tokens"), List.copyOf(tokensPerSecond));
    }

    private static JsonNode field(String where, JsonNode line, String path) {
        JsonNode v = line.at("/" + path);
        if (v.isMissingNode() || v.isNull()) {
            throw new FloraException(where + ": missing field '" + path.replace('/', '.') + "'");
        }
        return v;
    }

    private static String text(String where, JsonNode line, String path) {
        JsonNode v = field(where, line, path);
        if (!v.isTextual() || v.asText().isBlank()) {
            throw new FloraException(where + ": field '" + path + "' must be a non-empty string");
        }
        return v.asText();
    }

    private static double number(String where, JsonNode line, String path) {
        return positive(where, field(where, line, path), path.replace('/', '.'));
    }

    private static double positive(String where, JsonNode v, String name) {
        if (!v.isNumber() || !(v.asDouble() > 0) || Double.isInfinite(v.asDouble())) {
            throw new FloraException(where + ": field '" + name + "' must be a positive number, not " + v);
        }
        return v.asDouble();
    }

    private static int count(String where, JsonNode line, String path) {
        JsonNode v = field(where, line, path);
        if (!v.canConvertToInt() || !v.isIntegralNumber() || v.asInt() < 1) {
            throw new FloraException(where + ": field '" + path + "' must be a whole number of at least 1, not " + v);
        }
        return v.asInt();
    }
}
