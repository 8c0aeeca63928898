package dev.flora.cli;

import dev.flora.FloraException;
import dev.flora.adapter.AdapterRegistry;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.demo.DemoModel;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.EngineLoop;
import dev.flora.model.PretrainedModel;
import dev.flora.server.OpenAiServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/** {@code flora serve}: the OpenAI-compatible server, every request with its own adapter. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve a model over the OpenAI HTTP API (POST /v1/completions and /v1/chat/completions, GET /v1/models, GET /health, GET /metrics), "
                + "batching all requests together whatever adapter each names in its \"model\" field.",
                "Without --model, the embedded demo model."})
final class ServeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR", description = "Hugging Face model directory (default: the demo model).")
    Path model;

    @Option(names = "--adapter", paramLabel = "NAME=DIR", description = "An adapter requests may name (repeatable).")
    Map<String, Path> adapters = Map.of();

    @Option(names = "--served-model-name", paramLabel = "NAME", description = "The base model's id in the API (default: the directory's name).")
    String servedName;

    @Option(names = "--host", defaultValue = "127.0.0.1", paramLabel = "H", description = "Address to listen on (default: ${DEFAULT-VALUE}).")
    String host;

    @Option(names = "--port", defaultValue = "8000", paramLabel = "P", description = "Port (default: ${DEFAULT-VALUE}).")
    int port;

    @Option(names = "--api-key", paramLabel = "KEY", description = "Require Authorization: Bearer KEY.")
    String apiKey;

    @Option(names = "--max-adapters", paramLabel = "N",
            description = "Adapters resident at once (default: all given, at least 1, within --max-cpu-adapters).")
    Integer maxAdapters;

    @Option(names = "--max-cpu-adapters", paramLabel = "N",
            description = "Adapters kept in host memory, least recently used dropped first and read from disk again when needed "
                    + "(default: all; at least --max-adapters).")
    Integer maxCpuAdapters;

    @Option(names = "--max-batched-tokens", defaultValue = "8192", paramLabel = "N", description = "Tokens per step (default: ${DEFAULT-VALUE}).")
    int maxBatchedTokens;

    @Option(names = "--max-num-seqs", defaultValue = "256", paramLabel = "N", description = "Sequences running at once (default: ${DEFAULT-VALUE}).")
    int maxSequences;

    @Option(names = "--kv-cache-memory", defaultValue = "1073741824", paramLabel = "BYTES", description = "KV-cache memory (default: ${DEFAULT-VALUE}).")
    long kvCacheBytes;

    @Option(names = "--max-waiting", defaultValue = "1024", paramLabel = "N", description = "Requests that may wait; more get 503 (default: ${DEFAULT-VALUE}).")
    int maxWaiting;

    @Option(names = "--adapter-root", paramLabel = "DIR",
            description = "Allow POST /v1/load_lora_adapter for adapter directories under DIR (no traversal, no symlink escape).")
    Path adapterRoot;

    @Option(names = "--strategy", defaultValue = "auto", paramLabel = "S", description = "Adapter strategy: auto, exact, flora, gathered, "
            + "bmm (with prompts and decodes in separate steps, as the fLoRA paper's vLLM 0.1.3 baseline ran), merged (default: ${DEFAULT-VALUE}).")
    String strategy;

    @Mixin
    DeviceOption device;

    @Option(names = "--random-weights", description = "The model directory has config.json and tokenizer.json only (flora bench model "
            + "--config-only writes such a directory): make seeded random weights where the backend keeps them, as vLLM's dummy load format.")
    boolean randomWeights;

    /** " with adapters a, b" (or how many, when there are many), and the host tier's cap when there is one. */
    private static String describe(java.util.Set<String> names, AdapterRegistry registry) {
        if (names.isEmpty()) {
            return "";
        }
        String which = names.size() <= 8 ? "adapters " + String.join(", ", names) : names.size() + " adapters";
        return " with " + which + " (" + registry.capacity() + " resident"
                + (registry.hostCapacity() == AdapterRegistry.UNLIMITED ? "" : ", " + registry.hostCapacity() + " in host memory") + ")";
    }

    @Override
    public Integer call() throws InterruptedException {
        if (port < 0 || port > 65535) {
            throw new FloraException("--port must be in [0, 65535], got " + port);
        }
        if (maxBatchedTokens < 1 || maxSequences < 1 || kvCacheBytes < 1 || maxWaiting < 1) {
            throw new FloraException("--max-batched-tokens, --max-num-seqs, --kv-cache-memory and --max-waiting must be positive");
        }
        AdapterStrategy pinned = AdapterStrategy.parse(strategy);
        Path dir = model != null ? model : DemoModel.ensure(DemoModel.defaultCache(),
                total -> new Progress(spec.commandLine().getErr(), "making the demo model (once)", total));
        PretrainedModel pretrained = PretrainedModel.load(dir, device.create(), randomWeights);
        String name = servedName != null ? servedName : dir.getFileName().toString();
        if (adapters.containsKey(name)) {
            throw new FloraException("adapter name '" + name + "' is the base model's id; rename the adapter or use --served-model-name");
        }
        AdapterRegistry registry = AdapterOptions.load(pretrained.model(), adapters,
                AdapterOptions.maxResident(maxAdapters, adapters.size(), maxCpuAdapters), maxCpuAdapters, spec.commandLine().getErr());
        registry.pin(pinned);
        EngineConfig config = EngineConfig.DEFAULT.withMaxBatchedTokens(maxBatchedTokens).withMaxSequences(maxSequences).withKvCacheBytes(kvCacheBytes)
                .withSeparatePrefillDecode(pinned == AdapterStrategy.BMM);
        Engine engine = new Engine(pretrained.model(), config, pretrained.eosTokenIds(), registry);
        // Decode steps as CUDA graphs, every size now (as vLLM captures at start-up), not during the first requests.
        long recordStart = System.nanoTime();
        int recorded = engine.recordDecodeSteps();
        if (recorded > 0) {
            spec.commandLine().getErr().printf("recorded %d decode-step sizes (up to %d sequences) as GPU graphs in %.1f s%n", recorded,
                    maxSequences, (System.nanoTime() - recordStart) / 1e9);
        }
        EngineLoop loop = new EngineLoop(engine, maxWaiting);
        OpenAiServer server = new OpenAiServer(pretrained, loop, registry, name, apiKey, host, port);
        if (adapterRoot != null) {
            server.allowAdapterLoading(adapterRoot);
        }
        server.start();
        spec.commandLine().getOut().printf("Flora serving %s%s on http://%s:%d (POST /v1/completions and /v1/chat/completions, GET /v1/models, GET /health, GET /metrics)%n",
                name, describe(adapters.keySet(), registry), host, server.port());
        if (server.chatProblem() != null) {
            spec.commandLine().getErr().println("note: POST /v1/chat/completions will answer 400: " + server.chatProblem());
        }
        spec.commandLine().getOut().flush();
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.close();
            loop.close();
            stop.countDown();
        }));
        stop.await();
        return 0;
    }
}
