package dev.flora.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.backend.Activation;
import dev.flora.backend.DType;
import dev.flora.cpu.CpuBackend;
import dev.flora.demo.RandomLlama;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.model.llama.LlamaConfig;
import dev.flora.model.llama.LlamaModel;
import dev.flora.safetensors.Checkpoint;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/**
 * Flora's engine (CPU backend, paged KV cache, one flattened batch) against {@link ReferenceLlama}
 * on tiny random models of each supported architecture and option.
 */
class ReferenceLlamaTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final double TOLERANCE = 1e-4;
    private static final int GENERATED = 4;
    /** Max |Flora - reference| per configuration, printed at the end. */
    private static final Map<String, Double> MAX_DIFFS = new TreeMap<>();

    @TempDir
    Path tmp;

    @AfterAll
    static void report() {
        MAX_DIFFS.forEach((name, diff) -> System.out.printf("ReferenceLlamaTest %-40s max |logprob diff| = %.3e%n", name, diff));
    }

    private static ObjectNode base(String arch, int hidden, int intermediate, int layers, int heads, int kvHeads, int headDim,
                                   double rmsNormEps) {
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add(arch);
        c.put("hidden_size", hidden);
        c.put("intermediate_size", intermediate);
        c.put("num_hidden_layers", layers);
        c.put("num_attention_heads", heads);
        c.put("num_key_value_heads", kvHeads);
        c.put("head_dim", headDim);
        c.put("vocab_size", 97);
        c.put("max_position_embeddings", 128);
        c.put("rms_norm_eps", rmsNormEps);
        return c;
    }

    private record Comparison(LlamaConfig config, Path dir, List<Result> results, double maxDiff, int greedyChecked) {
    }

    /** Writes the model, runs the three prompts through Flora in one batch and through the reference. */
    private Comparison compare(String name, ObjectNode configNode, long seed, int... promptLengths) throws IOException {
        Path dir = tmp.resolve(name);
        RandomLlama.write(dir, configNode, seed, 2.0, DType.F32);
        ModelDirectory md = ModelDirectory.open(dir);
        LlamaConfig config = LlamaConfig.read(md.config(), md.architecture());
        List<Result> results = runFlora(dir, config, prompts(seed, config.vocabSize(), promptLengths), EngineConfig.DEFAULT.withKvCacheBytes(64 << 20));
        ReferenceLlama reference = ReferenceLlama.load(dir);

        double maxDiff = 0;
        int greedyChecked = 0;
        for (Result r : results) {
            int n = r.prompt().length;
            assertThat(r.promptLogprobs()).hasSize(n);
            assertThat(r.promptLogprobs()[0]).isNaN();
            assertThat(r.generated()).hasSize(GENERATED);
            // The reference scores the prompt and Flora's own continuation: prompt logprobs, the
            // logprob of each generated token, and whether each was the greedy choice.
            int[] all = concat(r.prompt(), r.generated());
            ReferenceLlama.Output ref = reference.forward(all);
            for (int i = 1; i < n; i++) {
                double diff = Math.abs(r.promptLogprobs()[i] - ref.logprobs()[i]);
                maxDiff = Math.max(maxDiff, diff);
                assertThat(r.promptLogprobs()[i]).as("%s: request %s, prompt logprob %d", name, r.id(), i)
                        .isCloseTo(ref.logprobs()[i], within(TOLERANCE));
            }
            for (int j = 0; j < GENERATED; j++) {
                double diff = Math.abs(r.generatedLogprobs()[j] - ref.logprobs()[n + j]);
                maxDiff = Math.max(maxDiff, diff);
                assertThat(r.generatedLogprobs()[j]).as("%s: request %s, generated logprob %d", name, r.id(), j)
                        .isCloseTo(ref.logprobs()[n + j], within(TOLERANCE));
                if (ref.margin()[n - 1 + j] > 1e-3) {
                    greedyChecked++;
                    assertThat(r.generated()[j]).as("%s: request %s, greedy token %d", name, r.id(), j)
                            .isEqualTo(ref.argmax()[n - 1 + j]);
                }
            }
            // The reference run on the prompt alone agrees on the first greedy token.
            ReferenceLlama.Output promptOnly = reference.forward(r.prompt());
            if (promptOnly.nextMargin() > 1e-3) {
                assertThat(r.generated()[0]).as("%s: request %s, first greedy token", name, r.id()).isEqualTo(promptOnly.nextToken());
            }
        }
        assertThat(greedyChecked).as("%s: greedy tokens checked", name).isPositive();
        synchronized (MAX_DIFFS) {
            MAX_DIFFS.merge(name, maxDiff, Math::max);
        }
        // The reference must not trivially agree: logprobs of random models are far from uniform.
        assertThat(Arrays.stream(results.get(2).promptLogprobs()).skip(1).map(Math::abs).max().orElseThrow())
                .isGreaterThan(Math.log(97) + 1);
        return new Comparison(config, dir, results, maxDiff, greedyChecked);
    }

    static List<Result> runFlora(Path dir, LlamaConfig config, List<int[]> prompts, EngineConfig engineConfig) {
        LlamaModel model = new LlamaModel(config, Checkpoint.open(dir), new CpuBackend());
        Engine engine = new Engine(model, engineConfig, Set.of());
        List<Request> requests = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) {
            requests.add(new Request("r" + i, prompts.get(i), SamplingParams.greedy(GENERATED, true), true));
        }
        return engine.run(requests, new Engine.Listener() {
        });
    }

    private static List<int[]> prompts(long seed, int vocab, int... lengths) {
        SplittableRandom random = new SplittableRandom(seed * 31 + 7);
        List<int[]> prompts = new ArrayList<>();
        for (int length : lengths) {
            prompts.add(random.ints(length, 0, vocab).toArray());
        }
        return prompts;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    @Test
    void llamaGqaWithHeadDimOtherThanHiddenOverHeads() throws IOException {
        ObjectNode c = base("LlamaForCausalLM", 48, 80, 2, 4, 2, 16, 1e-5);
        c.put("tie_word_embeddings", false);
        Comparison cmp = compare("a-llama-gqa-headdim16", c, 11, 5, 19, 40);

        LlamaConfig config = cmp.config();
        assertThat(config.qWidth()).isEqualTo(64).isNotEqualTo(config.hiddenSize());
        assertThat(config.kvWidth()).isEqualTo(32);
        assertThat(config.activation()).isEqualTo(Activation.SILU);
        assertThat(config.qkvBias() || config.outputBias() || config.mlpBias() || config.tieEmbeddings()).isFalse();
        assertThat(Checkpoint.open(cmp.dir()).contains("lm_head.weight")).isTrue();
    }

    @Test
    void llamaWithBiasesTiedEmbeddingsAndTanhGelu() throws IOException {
        ObjectNode c = base("LlamaForCausalLM", 32, 64, 2, 4, 2, 8, 1e-6);
        c.put("attention_bias", true);
        c.put("mlp_bias", true);
        c.put("tie_word_embeddings", true);
        c.put("hidden_act", "gelu_pytorch_tanh");
        Comparison cmp = compare("b-llama-bias-tied-gelu-tanh", c, 12, 6, 23, 40);

        LlamaConfig config = cmp.config();
        assertThat(config.qkvBias()).isTrue();
        assertThat(config.outputBias()).isTrue();
        assertThat(config.mlpBias()).isTrue();
        assertThat(config.tieEmbeddings()).isTrue();
        assertThat(config.activation()).isEqualTo(Activation.GELU_TANH);
        Checkpoint ckpt = Checkpoint.open(cmp.dir());
        assertThat(ckpt.contains("lm_head.weight")).isFalse();
        assertThat(ckpt.names()).contains("model.layers.1.self_attn.o_proj.bias", "model.layers.1.mlp.down_proj.bias",
                "model.layers.0.self_attn.q_proj.bias", "model.layers.0.mlp.gate_proj.bias");
    }

    @Test
    void llamaLinearRopeScalingInTheOldLayout() throws IOException {
        ObjectNode c = base("LlamaForCausalLM", 40, 72, 3, 4, 4, 10, 0.05);
        c.put("rope_theta", 500.0);
        ObjectNode scaling = c.putObject("rope_scaling");
        scaling.put("type", "linear");
        scaling.put("factor", 2.5);
        Comparison cmp = compare("c-llama-rope-linear", c, 13, 5, 17, 40);

        assertThat(cmp.config().rmsNormEps()).isEqualTo(0.05f);
        RopeConfig rope = cmp.config().rope();
        assertThat(rope.type()).isEqualTo("linear");
        assertThat(rope.theta()).isEqualTo(500.0);
        assertThat(rope.factor()).isEqualTo(2.5);
        float[] inv = rope.inverseFrequencies(10);
        assertThat(inv).hasSize(5);
        for (int i = 0; i < 5; i++) {
            double expected = 1.0 / Math.pow(500.0, 2.0 * i / 10) / 2.5;
            assertThat((double) inv[i]).as("inv_freq[%d]", i).isCloseTo(expected, within(2e-6 * expected));
        }
    }

    @Test
    void llamaLlama3RopeInTheTransformers5Layout() throws IOException {
        ObjectNode c = base("LlamaForCausalLM", 32, 64, 2, 2, 1, 16, 1e-5);
        ObjectNode params = c.putObject("rope_parameters");
        params.put("rope_type", "llama3");
        params.put("rope_theta", 10000.0);
        params.put("factor", 8.0);
        params.put("low_freq_factor", 1.0);
        params.put("high_freq_factor", 4.0);
        params.put("original_max_position_embeddings", 16);
        Comparison cmp = compare("d-llama-rope-llama3", c, 14, 7, 22, 40);

        RopeConfig rope = cmp.config().rope();
        assertThat(rope.type()).isEqualTo("llama3");
        assertThat(rope.factor()).isEqualTo(8.0);
        assertThat(rope.originalMaxPositions()).isEqualTo(16);
        // transformers' _compute_llama3_parameters in float64: all three regimes occur for head_dim 16.
        float[] inv = rope.inverseFrequencies(16);
        boolean sawMedium = false;
        boolean sawLow = false;
        for (int i = 0; i < 8; i++) {
            double base = 1.0 / Math.pow(10000.0, 2.0 * i / 16);
            double wavelen = 2 * Math.PI / base;
            double expected;
            if (wavelen < 16.0 / 4) {
                expected = base;
            } else if (wavelen > 16.0 / 1) {
                expected = base / 8;
                sawLow = true;
            } else {
                double smooth = (16 / wavelen - 1) / (4 - 1);
                expected = (1 - smooth) * base / 8 + smooth * base;
                sawMedium = true;
            }
            assertThat((double) inv[i]).as("inv_freq[%d]", i).isCloseTo(expected, within(2e-6 * expected));
        }
        assertThat(sawMedium).isTrue();
        assertThat(sawLow).isTrue();
    }

    @Test
    void qwen2WithQkvBiasAndSlidingWindowOnUpperLayers() throws IOException {
        ObjectNode c = base("Qwen2ForCausalLM", 48, 96, 3, 6, 2, 8, 1e-6);
        c.put("rope_theta", 1000000.0);
        c.put("use_sliding_window", true);
        c.put("sliding_window", 6);
        c.put("max_window_layers", 1);
        Comparison cmp = compare("e-qwen2-bias-sliding6", c, 15, 9, 24, 40);

        LlamaConfig config = cmp.config();
        assertThat(config.qkvBias()).isTrue();
        assertThat(config.outputBias()).isFalse();
        assertThat(config.mlpBias()).isFalse();
        assertThat(config.slidingWindow()).containsExactly(0, 6, 6);
        assertThat(Checkpoint.open(cmp.dir()).names()).contains("model.layers.2.self_attn.k_proj.bias")
                .doesNotContain("model.layers.2.self_attn.o_proj.bias");
        assertWindowMatters(cmp);
    }

    @Test
    void mistralMultiQueryWithSlidingWindow() throws IOException {
        ObjectNode c = base("MistralForCausalLM", 32, 64, 2, 4, 1, 8, 1e-5);
        c.put("sliding_window", 5);
        Comparison cmp = compare("f-mistral-mqa-sliding5", c, 16, 8, 21, 40);

        LlamaConfig config = cmp.config();
        assertThat(config.kvHeads()).isEqualTo(1);
        assertThat(config.slidingWindow()).containsExactly(5, 5);
        assertThat(config.qkvBias() || config.outputBias() || config.mlpBias()).isFalse();
        assertWindowMatters(cmp);
    }

    /** The same reference without the sliding window disagrees with Flora: the prompts do exercise the window. */
    private static void assertWindowMatters(Comparison cmp) {
        int[] none = new int[cmp.config().layers()];
        ReferenceLlama full = ReferenceLlama.load(cmp.dir(), cmp.config(), none);
        Result longest = cmp.results().get(2);
        double[] ref = full.forward(longest.prompt()).logprobs();
        double maxDiff = 0;
        for (int i = 1; i < ref.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(ref[i] - longest.promptLogprobs()[i]));
        }
        assertThat(maxDiff).isGreaterThan(1e-2);
    }

    /**
     * Prefill split over many steps (a budget of 7 tokens, blocks of 4) mixes prompt chunks and
     * decode tokens of different sequences in each step, and a cache of only 12 blocks makes the
     * last request reuse freed blocks; every result is bitwise the one-batch one.
     */
    @Test
    void chunkedPrefillGivesBitwiseTheSameResults() throws IOException {
        ObjectNode c = base("MistralForCausalLM", 32, 64, 2, 4, 2, 8, 1e-5);
        c.put("sliding_window", 6);
        Path dir = tmp.resolve("chunked");
        RandomLlama.write(dir, c, 21, 2.0, DType.F32);
        ModelDirectory md = ModelDirectory.open(dir);
        LlamaConfig config = LlamaConfig.read(md.config(), md.architecture());
        List<int[]> prompts = prompts(21, 97, 5, 19, 40);
        List<Result> oneBatch = runFlora(dir, config, prompts, EngineConfig.DEFAULT.withKvCacheBytes(64 << 20));
        // 2 layers * 4 positions * 16 keys and as many values, float32: 1 KiB a block, so 12 blocks.
        // The longest request (43 positions, 11 blocks) waits until both others have finished and
        // then gets blocks 8..11 followed by the freed 0..6: a non-contiguous table.
        List<Result> chunked = runFlora(dir, config, prompts,
                new EngineConfig(4, 7, 256, 12 * 1024, false));
        for (int i = 0; i < prompts.size(); i++) {
            assertThat(chunked.get(i).generated()).isEqualTo(oneBatch.get(i).generated());
            assertThat(bits(chunked.get(i).promptLogprobs())).isEqualTo(bits(oneBatch.get(i).promptLogprobs()));
            assertThat(bits(chunked.get(i).generatedLogprobs())).isEqualTo(bits(oneBatch.get(i).generatedLogprobs()));
        }
        ReferenceLlama reference = ReferenceLlama.load(dir);
        double[] ref = reference.forward(prompts.get(2)).logprobs();
        for (int i = 1; i < ref.length; i++) {
            assertThat(chunked.get(2).promptLogprobs()[i]).isCloseTo(ref[i], within(TOLERANCE));
        }
    }

    private static long[] bits(double[] values) {
        return Arrays.stream(values).mapToLong(Double::doubleToRawLongBits).toArray();
    }
}
