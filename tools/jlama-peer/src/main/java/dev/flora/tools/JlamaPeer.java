package dev.flora.tools;

import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.model.ModelSupport;
import com.github.tjake.jlama.safetensors.Config;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.safetensors.prompt.PromptContext;
import com.github.tjake.jlama.tensor.AbstractTensor;
import com.github.tjake.jlama.tensor.KvBufferCache;
import com.github.tjake.jlama.tensor.operations.PanamaTensorOperations;
import com.github.tjake.jlama.tensor.operations.TensorOperations;
import com.github.tjake.jlama.tensor.operations.TensorOperationsProvider;
import com.github.tjake.jlama.util.MachineSpec;
import com.github.tjake.jlama.util.PhysicalCoreExecutor;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;
import java.util.Properties;
import java.util.SplittableRandom;
import java.util.UUID;

/**
 * Peer benchmark: Jlama's pure-Java (Panama Vector API) CPU decode speed on a Hugging Face model
 * directory, measured the way Flora's {@code bench decode} measures it (batch 1).
 *
 * <p>Procedure, mirroring {@code dev.flora.bench.DecodeBench}: a prompt of 16 token ids (the same
 * seeded random ids Flora uses) is prefilled with Jlama's batched forward pass and the first token
 * is sampled; neither is timed. Then N decode steps are timed, each one Jlama forward pass of one
 * token plus a greedy (temperature 0) sample over the vocabulary, exactly the work of the decode
 * loop in Jlama's {@code AbstractModel.generate}, minus its detokenisation. End-of-sequence tokens
 * are ignored so that every run decodes N tokens. A warm-up generation of the same shape (by default
 * as many decode steps as the timed one; Jlama needs more than Flora's 8 warm-up steps to reach a
 * steady speed) runs first, on its own fresh KV cache.
 *
 * <p>Jlama's native (C) tensor operations are switched off through its system property
 * {@code jlama.force_panama_tensor_operations=true}; the benchmark refuses to run if any
 * implementation other than {@link PanamaTensorOperations} is active.
 */
public final class JlamaPeer {
    /** Jlama 0.8.4's switch (read once, in TensorOperationsProvider's static initialiser). */
    static final String FORCE_PANAMA = "jlama.force_panama_tensor_operations";
    /** Same prompt length and seed as Flora's DecodeBench. */
    static final int PROMPT_TOKENS = 16;
    static final long PROMPT_SEED = 11;

    private JlamaPeer() {
    }

    public static void main(String[] args) throws Exception {
        // Before any Jlama class is initialised.
        System.setProperty(FORCE_PANAMA, "true");

        File modelDir = null;
        int tokens = 64;
        int warmup = -1; // default: one warm-up generation as long as the timed one
        int threads = 0;
        boolean generateCheck = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--tokens" -> tokens = Integer.parseInt(value(args, ++i, "--tokens"));
                case "--warmup" -> warmup = Integer.parseInt(value(args, ++i, "--warmup"));
                case "--threads" -> threads = Integer.parseInt(value(args, ++i, "--threads"));
                case "--generate-check" -> generateCheck = true;
                case "-h", "--help" -> {
                    usage();
                    return;
                }
                default -> {
                    if (args[i].startsWith("-") || modelDir != null) {
                        usage();
                        System.exit(2);
                    }
                    modelDir = new File(args[i]);
                }
            }
        }
        if (warmup < 0) {
            warmup = tokens;
        }
        if (modelDir == null || tokens < 1) {
            usage();
            System.exit(2);
        }
        if (!new File(modelDir, "config.json").isFile()) {
            fail(modelDir + ": no config.json (give a Hugging Face model directory)");
        }

        TensorOperations ops = TensorOperationsProvider.get();
        if (!(ops instanceof PanamaTensorOperations)) {
            fail("expected Jlama's PanamaTensorOperations, got " + ops.getClass().getName() + " (" + ops.name() + ")");
        }
        String opsImpl = ops.getClass().getSimpleName() + "/" + MachineSpec.VECTOR_TYPE;
        if (threads > 0) {
            PhysicalCoreExecutor.overrideThreadCount(threads);
        }

        String version = jlamaVersion();
        String model = modelDir.getAbsoluteFile().toPath().normalize().getFileName().toString();
        info("jlama %s, tensor operations: %s (%s), %d threads, %d processors, Java %s", version, ops.getClass().getName(),
                ops.name(), PhysicalCoreExecutor.instance.get().getCoreCount(), Runtime.getRuntime().availableProcessors(),
                Runtime.version());

        long loadStart = System.nanoTime();
        // Working memory F32; working quantisation BF16 = what Jlama forces for a BF16 model anyway
        // (AbstractModel: "hack to support Avoid Q8BF16 evals"). The weights stay BF16: no model quantisation.
        AbstractModel lm = ModelSupport.loadModel(modelDir, DType.F32, DType.BF16);
        Config c = lm.getConfig();
        info("loaded %s (%s) in %.1f s: weights %s, working memory %s, %d layers, hidden %d, vocab %d, context %d",
                model, lm.getModelType(), (System.nanoTime() - loadStart) / 1e9, lm.getWeights().getModelDType(),
                lm.getWorkingDType(), c.numberOfLayers, c.embeddingLength, c.vocabularySize, c.contextLength);
        if (PROMPT_TOKENS + warmup + 1 > c.contextLength || PROMPT_TOKENS + tokens + 1 > c.contextLength) {
            fail("--tokens/--warmup do not fit the model's context of " + c.contextLength);
        }

        int[] prompt = new SplittableRandom(PROMPT_SEED).ints(PROMPT_TOKENS, 0, c.vocabularySize).toArray();
        info("prompt ids %s", java.util.Arrays.toString(prompt));

        if (warmup > 0) {
            Run w = decode(lm, prompt, warmup);
            info("warm-up: %d tokens in %.3f s (%.2f tokens/s), prefill %d tokens %.3f s", warmup, w.seconds(),
                    warmup / w.seconds(), PROMPT_TOKENS, w.prefillSeconds());
        }
        Run r = decode(lm, prompt, tokens);
        info("timed run: prefill %d tokens %.3f s (not counted); generated ids %s", PROMPT_TOKENS, r.prefillSeconds(),
                r.firstIds());
        info("other processes used %s cores on average during the timed run (%s processors)", r.otherCores(),
                Runtime.getRuntime().availableProcessors());
        System.out.println(String.format(Locale.ROOT, "jlama %s %s %s decode %.2f tokens/s (%d tokens in %.3f s)", version,
                opsImpl, model, tokens / r.seconds(), tokens, r.seconds()));

        if (generateCheck) {
            generateCheck(lm, tokens);
        }
        lm.close();
        System.exit(0); // Jlama's ForkJoinPool threads are not daemons in every version
    }

    record Run(double seconds, double prefillSeconds, String firstIds, String otherCores) {
    }

    /** Prefill (untimed) then {@code steps} timed decode steps, greedy, EOS ignored, on a fresh KV cache. */
    static Run decode(AbstractModel lm, int[] prompt, int steps) {
        Config c = lm.getConfig();
        try (KvBufferCache cache = new KvBufferCache(lm);
             KvBufferCache.KvBuffer kv = cache.getKvBuffer(UUID.randomUUID());
             AbstractTensor logits = lm.makeDenseTensor(c.vocabularySize)) {
            long p0 = System.nanoTime();
            int next;
            try (AbstractTensor last = lm.batchForward(prompt, 0, kv)) {
                next = lm.sample(last.slice(last.shape().first() - 1), 0.0f, 0.5f, logits);
            }
            long p1 = System.nanoTime();
            StringBuilder ids = new StringBuilder("[").append(next);
            long[] cpu0 = cpuTicks();
            long start = System.nanoTime();
            for (int i = 0; i < steps; i++) {
                AbstractTensor out = lm.forward(next, prompt.length + i, kv, Optional.empty());
                next = lm.sample(out, 0.0f, 0.5f, logits);
                out.close();
                kv.incrementContextPosition();
                if (i < 7) {
                    ids.append(',').append(next);
                }
            }
            long end = System.nanoTime();
            long[] cpu1 = cpuTicks();
            return new Run((end - start) / 1e9, (p1 - p0) / 1e9, ids.append(steps > 7 ? ",...]" : "]").toString(),
                    otherCores(cpu0, cpu1, (end - start) / 1e9));
        }
    }

    /**
     * Cross-check with Jlama's own {@code generate()} (its decode-time figure excludes the prompt, but
     * it stops at an end-of-sequence token and detokenises each token); printed for information only.
     */
    static void generateCheck(AbstractModel lm, int tokens) {
        PromptContext ctx = PromptContext.of("hello world"); // plain prompt, no chat template
        var resp = lm.generate(UUID.randomUUID(), ctx, 0.0f, tokens + PROMPT_TOKENS, (s, f) -> { });
        double s = resp.generateTimeMs / 1e3;
        info("generate() check: prompt %d tokens in %d ms; %d tokens generated in %.3f s = %.2f tokens/s (finish: %s)",
                resp.promptTokens, resp.promptTimeMs, resp.generatedTokens, s, resp.generatedTokens / s,
                resp.finishReason);
    }

    /**
     * Linux only: {busy ticks of the whole machine, ticks of this process} from /proc/stat and
     * /proc/self/stat, to tell how much CPU other processes took during a run; null where unreadable.
     */
    static long[] cpuTicks() {
        try {
            String[] all = Files.readAllLines(Path.of("/proc/stat")).getFirst().trim().split("\\s+");
            long total = 0;
            for (int i = 1; i <= 8 && i < all.length; i++) { // user nice system idle iowait irq softirq steal
                total += Long.parseLong(all[i]);
            }
            long busy = total - Long.parseLong(all[4]) - Long.parseLong(all[5]);
            String self = Files.readString(Path.of("/proc/self/stat"));
            String[] f = self.substring(self.lastIndexOf(')') + 2).trim().split("\\s+"); // f[0] is field 3 (state)
            long own = Long.parseLong(f[11]) + Long.parseLong(f[12]); // utime, stime (fields 14, 15)
            return new long[] {busy, own};
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /** Cores' worth of CPU time that other processes used between two {@link #cpuTicks()} samples. */
    static String otherCores(long[] t0, long[] t1, double seconds) {
        if (t0 == null || t1 == null || seconds <= 0) {
            return "?";
        }
        double hz = 100.0; // USER_HZ: 100 on every mainstream Linux build
        double other = ((t1[0] - t0[0]) - (t1[1] - t0[1])) / hz / seconds;
        return String.format(Locale.ROOT, "%.2f", Math.max(0, other));
    }

    static String jlamaVersion() {
        try (InputStream in = AbstractModel.class.getResourceAsStream(
                "/META-INF/maven/com.github.tjake/jlama-core/pom.properties")) {
            if (in != null) {
                Properties p = new Properties();
                p.load(in);
                return p.getProperty("version", "?");
            }
        } catch (IOException e) {
            // fall through
        }
        return "?";
    }

    private static String value(String[] args, int i, String name) {
        if (i >= args.length) {
            fail(name + " needs a value");
        }
        return args[i];
    }

    private static void usage() {
        System.err.println("usage: JlamaPeer MODEL_DIR [--tokens N (64)] [--warmup N (= tokens)] [--threads T] [--generate-check]");
    }

    static void info(String format, Object... args) {
        System.err.println("[jlama-peer] " + String.format(Locale.ROOT, format, args));
    }

    static void fail(String message) {
        System.err.println("jlama-peer: " + message);
        System.exit(1);
    }
}
