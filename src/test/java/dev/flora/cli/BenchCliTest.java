package dev.flora.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.Fixtures;
import dev.flora.adapter.Calibration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import static dev.flora.cli.CliTest.JSON;
import static dev.flora.cli.CliTest.flora;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/** flora calibrate, bench adapters and bench decode --compare as a user runs them (shapes of the output, never speeds). */
class BenchCliTest {
    @TempDir
    Path tmp;

    private static List<JsonNode> lines(String out) throws IOException {
        List<JsonNode> nodes = new ArrayList<>();
        for (String line : out.lines().toList()) {
            nodes.add(JSON.readTree(line));
        }
        return nodes;
    }

    @Test
    void calibrateThenBenchAdaptersPutsTheAutomaticChoiceBesideThePinnedStrategies() throws IOException {
        Path file = tmp.resolve("calibration.json");
        CliTest.Run cal = flora("calibrate", "--dim", "32", "--sequences", "2", "--tokens", "2,4", "--ranks", "1,2", "--rounds", "1",
                "--decode-sequences", "3,2,3", "--out", file.toString());
        assertThat(cal.code()).as(cal.err()).isZero();
        assertThat(cal.out()).contains("eq. 7 fit", "picks (fLoRA / LoRA)", "decode steps: S sequences of one token",
                "steps of one prompt: T tokens, one adapter", "stored: ");
        Calibration c = Calibration.loadIfPresent(file);
        // Every strategy at every (tokens, rank) of the one 32 x 32 shape, and the two LoRA strategies at
        // every (sequences, rank) of the decode steps (2 and 3: sorted, once each) and at every (tokens,
        // rank) of one prompt.
        assertThat(c.measurements()).hasSize(2 * 2 * 6 + 2 * 2 * 2 + 2 * 2 * 2).allMatch(m -> m.in() == 32 && m.out() == 32 && m.micros() > 0);
        assertThat(c.measurements().stream().filter(m -> m.strategy().endsWith("-single")))
                .extracting(m -> m.strategy() + "@" + m.tokens() + "r" + m.rank())
                .containsExactlyInAnyOrder("gathered-single@2r1", "gathered-single@2r2", "gathered-single@4r1", "gathered-single@4r2",
                        "bmm-single@2r1", "bmm-single@2r2", "bmm-single@4r1", "bmm-single@4r2");
        assertThat(new dev.flora.adapter.CostModel(c).hasGrid("gathered-single")).isTrue();
        assertThat(c.measurements().stream().filter(m -> m.strategy().endsWith("-decode")))
                .extracting(m -> m.strategy() + "@" + m.tokens() + "r" + m.rank())
                .containsExactlyInAnyOrder("gathered-decode@2r1", "gathered-decode@2r2", "gathered-decode@3r1", "gathered-decode@3r2",
                        "bmm-decode@2r1", "bmm-decode@2r2", "bmm-decode@3r1", "bmm-decode@3r2");
        assertThat(c.sequences()).isEqualTo(2);
        assertThat(new dev.flora.adapter.CostModel(c).hasGrid("bmm-decode")).isTrue();
        // (the pick is the cheapest measured way: exact too, from the token grid, where timings on a busy machine make it so)
        String decodeTable = cal.out().substring(cal.out().indexOf("decode steps:"), cal.out().indexOf("steps of one prompt"));
        assertThat(decodeTable.lines().filter(l -> l.matches("\\s+[23]\\s+[12]\\s+[0-9.]+\\s+[0-9.]+\\s+[0-9.]+\\s+(gathered|bmm|exact)"))).hasSize(4);
        String singleTable = cal.out().substring(cal.out().indexOf("steps of one prompt"));
        assertThat(singleTable.lines().filter(l -> l.matches("\\s+[24]\\s+[12]\\s+[0-9.]+\\s+[0-9.]+\\s+[0-9.]+\\s+(gathered|bmm|exact)"))).hasSize(4);

        CliTest.Run badDecode = flora("calibrate", "--dim", "32", "--decode-sequences", "16,-1", "--out", file.toString());
        assertThat(badDecode.code()).isNotZero();
        assertThat(badDecode.err()).contains("--decode-sequences", "at least 1").doesNotContain("Exception");

        Path plot = tmp.resolve("plot.png");
        CliTest.Run bench = flora("bench", "adapters", "--dim", "32", "--sequences", "2", "--tokens", "2,4", "--ranks", "1,2", "--rounds", "1",
                "--calibration", file.toString(), "--plot", plot.toString(), "--json");
        assertThat(bench.code()).as(bench.err()).isZero();
        List<JsonNode> points = lines(bench.out());
        assertThat(points).hasSize(2 * 2 * 8);
        Set<String> strategies = points.stream().map(p -> p.get("strategy").asText()).collect(Collectors.toSet());
        assertThat(strategies).containsExactlyInAnyOrder("base", "flora", "exact-flora", "auto-flora", "gathered", "bmm", "exact-lora", "auto-lora");
        for (JsonNode p : points) {
            if (p.get("strategy").asText().startsWith("auto-")) {
                assertThat(p.get("picked").asText()).isIn("flora", "exact", "gathered", "bmm");
            } else {
                assertThat(p.get("picked").isNull()).isTrue();
            }
        }
        assertThat(Files.size(plot)).isPositive();

        CliTest.Run table = flora("bench", "adapters", "--dim", "32", "--sequences", "2", "--tokens", "2", "--ranks", "1", "--rounds", "1",
                "--calibration", file.toString(), "--plot", plot.toString());
        assertThat(table.code()).as(table.err()).isZero();
        assertThat(table.out()).contains("auto/best", "flora/gathered", "worst auto/best: fLoRA ");

        // --from: the same table and plot from the JSON lines, measured on a machine that cannot draw, say.
        Path lines = tmp.resolve("adapters.jsonl");
        Files.writeString(lines, bench.out());
        Path again = tmp.resolve("again.png");
        CliTest.Run from = flora("bench", "adapters", "--from", lines.toString(), "--plot", again.toString());
        assertThat(from.code()).as(from.err()).isZero();
        assertThat(from.out()).contains("measured earlier", "d = 32", "auto/best", "worst auto/best: fLoRA ");
        assertThat(from.out().lines().filter(l -> l.matches("\\s+[24]\\s+[12] .*"))).hasSize(4);
        assertThat(Files.size(again)).isPositive();
    }

    /** calibrate --strategies: only those are timed (and the base layer), and the automatic choice picks among them; a wrong name is refused. */
    @Test
    void calibrateTimesOnlyTheStrategiesAskedFor() {
        Path file = tmp.resolve("some.json");
        CliTest.Run cal = flora("calibrate", "--dim", "32", "--sequences", "2", "--tokens", "2,4", "--ranks", "1,2", "--rounds", "1",
                "--strategies", "flora,gathered", "--decode-sequences", "0", "--no-single-prompts", "--out", file.toString());
        assertThat(cal.code()).as(cal.err()).isZero();
        Calibration c = Calibration.loadIfPresent(file);
        assertThat(c.measurements()).as("no decode steps, no single prompts").hasSize(2 * 2 * 3);
        assertThat(c.measurements().stream().map(Calibration.Measurement::strategy).collect(Collectors.toSet()))
                .containsExactlyInAnyOrder("base", "flora", "gathered");
        assertThat(cal.out().lines().filter(l -> l.matches("\\s+[24]\\s+[12] .*"))).hasSize(4)
                .allMatch(l -> l.endsWith("flora / gathered"));

        CliTest.Run bad = flora("calibrate", "--dim", "32", "--strategies", "flora,sgmv", "--out", file.toString());
        assertThat(bad.code()).isNotZero();
        assertThat(bad.err()).contains("--strategies: 'sgmv' is not a strategy to time", "exact-lora").doesNotContain("Exception");
    }

    /** calibrate --model with a config-only directory and --random-weights: every distinct layer shape of the model, measured. */
    @Test
    void calibrateAModelsLayerShapesFromItsConfigAlone() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("config-only"));
        Files.copy(Fixtures.llamaTinyModel().resolve("config.json"), dir.resolve("config.json"));
        Path file = tmp.resolve("shapes.json");
        CliTest.Run cal = flora("calibrate", "--model", dir.toString(), "--random-weights", "--sequences", "1", "--tokens", "2", "--ranks", "1",
                "--rounds", "1", "--decode-sequences", "0", "--out", file.toString());
        assertThat(cal.code()).as(cal.err()).isZero();
        Set<List<Integer>> shapes = Calibration.loadIfPresent(file).measurements().stream().map(m -> List.of(m.in(), m.out()))
                .collect(Collectors.toSet());
        assertThat(shapes).hasSizeGreaterThan(1);
        assertThat(cal.out().lines().filter(l -> l.startsWith("layer ["))).hasSize(shapes.size());

        CliTest.Run without = flora("calibrate", "--model", dir.toString(), "--tokens", "2", "--ranks", "1", "--rounds", "1", "--out", file.toString());
        assertThat(without.code()).isNotZero();
        assertThat(without.err()).contains("no model.safetensors").doesNotContain("Exception");
    }

    @Test
    void benchDecodeCompareRunsEveryConfigurationAgainstNoAdapters() throws IOException {
        CliTest.Run run = flora("bench", "decode", "--model", Fixtures.llamaTinyModel().toString(), "--batch", "2", "--tokens", "3",
                "--adapter-kind", "lora", "--rank", "2", "--targets", "q_proj,v_proj", "--strategy", "gathered,auto", "--compare", "--rounds", "2", "--prompt-tokens", "24", "--json");
        assertThat(run.code()).as(run.err()).isZero();
        List<JsonNode> rows = lines(run.out());
        assertThat(rows).hasSize(3);
        assertThat(rows.get(0).get("adapters").asText()).isEqualTo("none");
        assertThat(rows.get(0).get("ratio").asDouble()).isEqualTo(1.0);
        assertThat(rows.get(1).get("adapters").asText()).contains("lora r=2", "strategy gathered");
        assertThat(rows.get(2).get("adapters").asText()).contains("strategy auto");
        for (JsonNode r : rows) {
            assertThat(r.get("tokensPerSecond")).hasSize(2);
            assertThat(r.get("median").asDouble()).isPositive();
            assertThat(r.get("ofBytesBound").asDouble()).isCloseTo(r.get("ratio").asDouble() / r.get("bytesBound").asDouble(), within(1e-12));
        }
        // What the bytes allow: 2 sequences x 3 layers x (q: A [2, 64] + B [64, 2]; v: A [2, 64] + B [32, 2]) float32 weights.
        assertThat(rows.get(0).get("adapterBytes").asLong()).isZero();
        assertThat(rows.get(0).get("bytesBound").asDouble()).isEqualTo(1.0);
        assertThat(rows.get(1).get("adapterBytes").asLong()).isEqualTo(2L * 3 * ((2 * 64 + 64 * 2) + (2 * 64 + 32 * 2)) * 4);
        assertThat(rows.get(1).get("bytesBound").asDouble()).isLessThan(1.0);
        CliTest.Run refused = flora("bench", "decode", "--model", Fixtures.llamaTinyModel().toString(), "--adapter-kind", "lora",
                "--strategy", "gathered,auto");
        CliTest.assertCleanError(refused, "--compare");
    }
}
