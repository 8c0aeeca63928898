package dev.flora.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class RopeConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private ConfigReader reader(ObjectNode node) throws IOException {
        Path file = dir.resolve("config.json");
        Files.writeString(file, node.toString());
        return new ConfigReader(JSON.readTree(file.toFile()), file);
    }

    // ---------------------------------------------------------------- independent reference (transformers' formulas, double precision)

    static double[] referenceDefault(double theta, int d) {
        double[] inv = new double[d / 2];
        for (int i = 0; i < inv.length; i++) {
            inv[i] = 1.0 / Math.pow(theta, (2.0 * i) / d);
        }
        return inv;
    }

    static double[] referenceLinear(double theta, int d, double factor) {
        double[] inv = referenceDefault(theta, d);
        for (int i = 0; i < inv.length; i++) {
            inv[i] /= factor;
        }
        return inv;
    }

    enum Band { HIGH, MEDIUM, LOW }

    static Band band(double invFreq, double orig, double low, double high) {
        double wavelen = 2 * Math.PI / invFreq;
        double lowWavelen = orig / low;
        double highWavelen = orig / high;
        if (wavelen > lowWavelen) {
            return Band.LOW;
        }
        if (wavelen < highWavelen) {
            return Band.HIGH;
        }
        return Band.MEDIUM;
    }

    static double[] referenceLlama3(double theta, int d, double factor, double low, double high, double orig) {
        double[] inv = referenceDefault(theta, d);
        double[] out = new double[inv.length];
        for (int i = 0; i < inv.length; i++) {
            double wavelen = 2 * Math.PI / inv[i];
            switch (band(inv[i], orig, low, high)) {
                case LOW -> out[i] = inv[i] / factor;
                case HIGH -> out[i] = inv[i];
                case MEDIUM -> {
                    double smooth = (orig / wavelen - low) / (high - low);
                    out[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
                }
            }
        }
        return out;
    }

    private static void assertClose(float[] actual, double[] expected) {
        assertThat(actual).hasSize(expected.length);
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(actual[i] - expected[i]) / Math.abs(expected[i]);
            assertThat(err).as("inv[%d]: %s vs %s", i, actual[i], expected[i]).isLessThanOrEqualTo(1e-6);
        }
    }

    // ---------------------------------------------------------------- layouts

    /** The three ways a config can say the same rope: rope_parameters, rope_scaling {type}, rope_scaling {rope_type}. */
    private List<ObjectNode> layouts(String type, double theta, Consumer<ObjectNode> params) {
        ObjectNode v5 = JSON.createObjectNode();
        ObjectNode p = v5.putObject("rope_parameters").put("rope_type", type).put("rope_theta", theta);
        params.accept(p);

        ObjectNode oldType = JSON.createObjectNode();
        oldType.put("rope_theta", theta);
        ObjectNode s1 = oldType.putObject("rope_scaling").put("type", type);
        params.accept(s1);

        ObjectNode oldRopeType = JSON.createObjectNode();
        oldRopeType.put("rope_theta", theta);
        ObjectNode s2 = oldRopeType.putObject("rope_scaling").put("rope_type", type);
        params.accept(s2);
        return List.of(v5, oldType, oldRopeType);
    }

    @Test
    void defaultRope() throws IOException {
        for (int d : new int[] {16, 64, 128}) {
            for (double theta : new double[] {10000, 500000, 1e6}) {
                ObjectNode n = JSON.createObjectNode();
                n.putObject("rope_parameters").put("rope_type", "default").put("rope_theta", theta);
                RopeConfig rope = RopeConfig.read(reader(n), 10000);
                assertThat(rope.type()).isEqualTo("default");
                assertThat(rope.factor()).isEqualTo(1.0);
                assertClose(rope.inverseFrequencies(d), referenceDefault(theta, d));

                ObjectNode old = JSON.createObjectNode();
                old.put("rope_theta", theta);
                assertThat(RopeConfig.read(reader(old), 10000)).isEqualTo(rope);
            }
        }
    }

    @Test
    void noRopeKeysAtAllUsesTheDefaultTheta() throws IOException {
        RopeConfig rope = RopeConfig.read(reader(JSON.createObjectNode()), 12345.0);
        assertThat(rope.type()).isEqualTo("default");
        assertThat(rope.theta()).isEqualTo(12345.0);
        assertClose(rope.inverseFrequencies(16), referenceDefault(12345.0, 16));
        // rope_scaling null is the same as absent
        ObjectNode n = JSON.createObjectNode();
        n.putNull("rope_scaling");
        n.put("rope_theta", 1e6);
        assertThat(RopeConfig.read(reader(n), 10000).theta()).isEqualTo(1e6);
    }

    @Test
    void ropeParametersThetaWinsOverTopLevel() throws IOException {
        ObjectNode n = JSON.createObjectNode();
        n.put("rope_theta", 1.0e4);
        n.putObject("rope_parameters").put("rope_type", "default").put("rope_theta", 5.0e5);
        assertThat(RopeConfig.read(reader(n), 10000).theta()).isEqualTo(5.0e5);
    }

    @Test
    void linearInAllLayouts() throws IOException {
        for (ObjectNode n : layouts("linear", 10000.0, p -> p.put("factor", 4.0))) {
            RopeConfig rope = RopeConfig.read(reader(n), 10000);
            assertThat(rope.type()).as(n.toString()).isEqualTo("linear");
            assertThat(rope.factor()).isEqualTo(4.0);
            for (int d : new int[] {16, 64}) {
                float[] inv = rope.inverseFrequencies(d);
                assertClose(inv, referenceLinear(10000.0, d, 4.0));
                assertThat(inv[0]).isEqualTo(0.25f);
            }
        }
    }

    @Test
    void llama3InAllLayoutsCoversAllThreeBands() throws IOException {
        double theta = 10000.0;
        int d = 16;
        double factor = 8;
        double low = 1;
        double high = 4;
        int orig = 64;
        // the chosen values put frequencies in every band (else the test would check little)
        double[] base = referenceDefault(theta, d);
        java.util.EnumMap<Band, Integer> counts = new java.util.EnumMap<>(Band.class);
        for (double f : base) {
            counts.merge(band(f, orig, low, high), 1, Integer::sum);
        }
        assertThat(counts).containsOnlyKeys(Band.values());

        double[] expected = referenceLlama3(theta, d, factor, low, high, orig);
        for (ObjectNode n : layouts("llama3", theta, p -> p.put("factor", factor).put("low_freq_factor", low)
                .put("high_freq_factor", high).put("original_max_position_embeddings", orig))) {
            RopeConfig rope = RopeConfig.read(reader(n), 10000);
            assertThat(rope.type()).as(n.toString()).isEqualTo("llama3");
            assertThat(rope.factor()).isEqualTo(8.0);
            assertThat(rope.lowFreqFactor()).isEqualTo(1.0);
            assertThat(rope.highFreqFactor()).isEqualTo(4.0);
            assertThat(rope.originalMaxPositions()).isEqualTo(64);
            float[] inv = rope.inverseFrequencies(d);
            assertClose(inv, expected);
            // high band untouched, low band divided by the factor, medium strictly between
            for (int i = 0; i < base.length; i++) {
                switch (band(base[i], orig, low, high)) {
                    case HIGH -> assertThat((double) inv[i]).isCloseTo(base[i], org.assertj.core.data.Percentage.withPercentage(1e-4));
                    case LOW -> assertThat((double) inv[i]).isCloseTo(base[i] / factor, org.assertj.core.data.Percentage.withPercentage(1e-4));
                    case MEDIUM -> assertThat((double) inv[i]).isStrictlyBetween(base[i] / factor, base[i]);
                }
            }
        }
    }

    @Test
    void llama31RealisticParameters() throws IOException {
        // Llama 3.1 8B: theta 500000, factor 8, low 1, high 4, original 8192, head_dim 128
        ObjectNode n = JSON.createObjectNode();
        n.putObject("rope_parameters").put("rope_type", "llama3").put("rope_theta", 500000.0).put("factor", 8.0)
                .put("low_freq_factor", 1.0).put("high_freq_factor", 4.0).put("original_max_position_embeddings", 8192);
        RopeConfig rope = RopeConfig.read(reader(n), 10000);
        assertClose(rope.inverseFrequencies(128), referenceLlama3(500000.0, 128, 8, 1, 4, 8192));
    }

    // ---------------------------------------------------------------- errors

    private void assertRopeError(ObjectNode n, String... fragments) {
        assertThatThrownBy(() -> RopeConfig.read(reader(n), 10000))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.resolve("config.json").toString())
                .hasMessageContainingAll(fragments);
    }

    @Test
    void unknownTypeListsTheSupportedOnes() {
        for (ObjectNode n : layouts("yarn", 10000.0, p -> p.put("factor", 4.0))) {
            assertRopeError(n, "'yarn'", "supported: default, linear, llama3");
        }
        assertThat(RopeConfig.SUPPORTED).containsExactly("default", "linear", "llama3");
    }

    @Test
    void linearWithoutFactorOrWithABadFactor() {
        ObjectNode n = JSON.createObjectNode();
        n.putObject("rope_scaling").put("type", "linear");
        assertRopeError(n, "'linear'", "factor");
        ObjectNode m = JSON.createObjectNode();
        m.putObject("rope_scaling").put("type", "linear").put("factor", 0.0);
        assertRopeError(m, "factor", "positive");
    }

    @Test
    void llama3MissingKeys() {
        for (String missing : List.of("low_freq_factor", "high_freq_factor", "original_max_position_embeddings")) {
            ObjectNode n = JSON.createObjectNode();
            ObjectNode p = n.putObject("rope_parameters").put("rope_type", "llama3").put("rope_theta", 500000.0).put("factor", 8.0)
                    .put("low_freq_factor", 1.0).put("high_freq_factor", 4.0).put("original_max_position_embeddings", 8192);
            p.remove(missing);
            assertRopeError(n, "llama3", missing);
        }
    }

    @Test
    void llama3HighNotAboveLow() {
        ObjectNode n = JSON.createObjectNode();
        n.putObject("rope_parameters").put("rope_type", "llama3").put("factor", 8.0)
                .put("low_freq_factor", 4.0).put("high_freq_factor", 4.0).put("original_max_position_embeddings", 8192);
        assertRopeError(n, "high_freq_factor", "low_freq_factor");
    }

    @Test
    void badThetaAndShapes() {
        ObjectNode n = JSON.createObjectNode();
        n.put("rope_theta", -1.0);
        assertRopeError(n, "theta");
        ObjectNode m = JSON.createObjectNode();
        m.put("rope_theta", "10000");
        assertRopeError(m, "rope_theta");
        ObjectNode k = JSON.createObjectNode();
        k.put("rope_parameters", 5);
        assertRopeError(k, "rope_parameters");
        ObjectNode s = JSON.createObjectNode();
        s.putArray("rope_scaling").add(1);
        assertRopeError(s, "rope_scaling");
    }

    @Test
    void partialRotaryFactor() throws IOException {
        ObjectNode n = JSON.createObjectNode();
        n.putObject("rope_parameters").put("rope_type", "default").put("rope_theta", 10000.0).put("partial_rotary_factor", 0.5);
        assertRopeError(n, "partial_rotary_factor");
        ObjectNode ok = JSON.createObjectNode();
        ok.putObject("rope_parameters").put("rope_type", "default").put("rope_theta", 10000.0).put("partial_rotary_factor", 1.0);
        assertThat(RopeConfig.read(reader(ok), 10000).type()).isEqualTo("default");
    }
}
