package dev.flora.demo;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.backend.DType;
import dev.flora.model.ConfigReader;
import dev.flora.model.llama.LlamaConfig;
import dev.flora.safetensors.SafetensorsWriter;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Writes a Llama-family model directory with seeded random weights (config.json and
 * model.safetensors, named as transformers names them): the demo's model, and test models of
 * any shape the config describes.
 */
public final class RandomLlama {
    private RandomLlama() {
    }

    /**
     * @param std  standard deviation of projection and embedding weights, relative to 1/sqrt(fan-in)
     */
    public static void write(Path dir, ObjectNode config, long seed, double std, DType dtype) throws IOException {
        write(dir, config, seed, std, dtype, total -> n -> { });
    }

    /**
     * As {@link #write(Path, ObjectNode, long, double, DType)}, reporting progress: {@code progress}
     * gets the total number of weights and returns what to tell as they are made.
     */
    public static void write(Path dir, ObjectNode config, long seed, double std, DType dtype,
                             java.util.function.LongFunction<java.util.function.LongConsumer> progress) throws IOException {
        Files.createDirectories(dir);
        ObjectMapper json = new ObjectMapper();
        Path configFile = dir.resolve("config.json");
        json.writerWithDefaultPrettyPrinter().writeValue(configFile.toFile(), config);
        String arch = config.path("architectures").path(0).asText();
        LlamaConfig c = LlamaConfig.read(new ConfigReader(config, configFile), arch);
        SplittableRandom random = new SplittableRandom(seed);
        SafetensorsWriter out = new SafetensorsWriter();
        java.util.function.LongConsumer made = progress.apply(parameterCount(c));
        int d = c.hiddenSize();
        matrix(out, "model.embed_tokens.weight", c.vocabSize(), d, std, random, dtype);
        made.accept((long) c.vocabSize() * d);
        for (int i = 0; i < c.layers(); i++) {
            String p = "model.layers." + i + ".";
            norm(out, p + "input_layernorm.weight", d, random, dtype);
            linear(out, p + "self_attn.q_proj", c.qWidth(), d, c.qkvBias(), std, random, dtype);
            linear(out, p + "self_attn.k_proj", c.kvWidth(), d, c.qkvBias(), std, random, dtype);
            linear(out, p + "self_attn.v_proj", c.kvWidth(), d, c.qkvBias(), std, random, dtype);
            linear(out, p + "self_attn.o_proj", d, c.qWidth(), c.outputBias(), std, random, dtype);
            norm(out, p + "post_attention_layernorm.weight", d, random, dtype);
            linear(out, p + "mlp.gate_proj", c.intermediateSize(), d, c.mlpBias(), std, random, dtype);
            linear(out, p + "mlp.up_proj", c.intermediateSize(), d, c.mlpBias(), std, random, dtype);
            linear(out, p + "mlp.down_proj", d, c.intermediateSize(), c.mlpBias(), std, random, dtype);
            made.accept(layerParameters(c));
        }
        norm(out, "model.norm.weight", d, random, dtype);
        if (!c.tieEmbeddings()) {
            matrix(out, "lm_head.weight", c.vocabSize(), d, std, random, dtype);
            made.accept((long) c.vocabSize() * d);
        }
        out.metadata("format", "pt");
        out.write(dir.resolve("model.safetensors"));
    }

    /** Matrix weights of one decoder layer (norms and biases are too few to count). */
    static long layerParameters(LlamaConfig c) {
        long d = c.hiddenSize();
        return d * (c.qWidth() + 2L * c.kvWidth()) + (long) c.qWidth() * d + 3L * d * c.intermediateSize();
    }

    static long parameterCount(LlamaConfig c) {
        long embeddings = (long) c.vocabSize() * c.hiddenSize() * (c.tieEmbeddings() ? 1 : 2);
        return embeddings + c.layers() * layerParameters(c);
    }

    private static void linear(SafetensorsWriter out, String module, int rows, int cols, boolean bias, double std,
                               SplittableRandom random, DType dtype) {
        matrix(out, module + ".weight", rows, cols, std, random, dtype);
        if (bias) {
            float[] b = new float[rows];
            for (int i = 0; i < rows; i++) {
                b[i] = (float) (gaussian(random) * 0.1);
            }
            out.add(module + ".bias", dtype, new long[] {rows}, b);
        }
    }

    private static void matrix(SafetensorsWriter out, String name, int rows, int cols, double std, SplittableRandom random, DType dtype) {
        float[] w = new float[Math.multiplyExact(rows, cols)];
        double scale = std / Math.sqrt(cols);
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (gaussian(random) * scale);
        }
        out.add(name, dtype, new long[] {rows, cols}, w);
    }

    private static void norm(SafetensorsWriter out, String name, int n, SplittableRandom random, DType dtype) {
        float[] w = new float[n];
        for (int i = 0; i < n; i++) {
            w[i] = (float) (1.0 + 0.1 * gaussian(random));
        }
        out.add(name, dtype, new long[] {n}, w);
    }

    /** A standard normal draw (Box-Muller), reproducible from the generator's seed. */
    static double gaussian(SplittableRandom random) {
        double u = random.nextDouble();
        double v = random.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v);
    }
}
