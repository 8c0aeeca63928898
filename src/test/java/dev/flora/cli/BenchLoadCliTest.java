package dev.flora.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.Fixtures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static dev.flora.cli.CliTest.JSON;
import static dev.flora.cli.CliTest.flora;
import static org.assertj.core.api.Assertions.assertThat;

/** {@code flora bench throughput} and {@code flora bench latency} (the paper's figures 2 and 3) on the tiny fixture model. */
class BenchLoadCliTest {
    @TempDir
    Path tmp;

    /** The command on the fixture model, 5 requests of 8..40 + 2..6 tokens unless {@code extra} says otherwise. */
    private String[] args(String... extra) {
        List<String> a = new ArrayList<>(List.of("bench", "throughput", "--model", Fixtures.llamaTinyModel().toString(), "--requests", "5",
                "--plot", tmp.resolve("tp.png").toString()));
        a.addAll(List.of(extra));
        if (!a.contains("--input-len")) {
            a.addAll(List.of("--input-len", "8..40"));
        }
        if (!a.contains("--output-len")) {
            a.addAll(List.of("--output-len", "2..6"));
        }
        return a.toArray(String[]::new);
    }

    @Test
    void everySeriesAtEveryRankOnTheSameWorkload() throws IOException {
        CliTest.Run run = flora(args("--series", "none,flora,lora-bmm,lora-gathered,lora-auto", "--ranks", "1,2", "--json"));
        assertThat(run.code()).as(run.err()).isZero();
        List<JsonNode> points = new ArrayList<>();
        for (String line : run.out().lines().toList()) {
            points.add(JSON.readTree(line));
        }
        assertThat(points).hasSize(1 + 4 * 2);
        assertThat(points.getFirst().get("series").asText()).isEqualTo("none");
        assertThat(points.getFirst().get("rank").asInt()).isZero();
        // rank by rank across the series, so that a run stopped part way compares them all at the ranks it reached
        assertThat(points.stream().skip(1).map(p -> p.get("series").asText() + "@" + p.get("rank").asInt()).toList()).containsExactly(
                "flora@1", "lora-bmm@1", "lora-gathered@1", "lora-auto@1", "flora@2", "lora-bmm@2", "lora-gathered@2", "lora-auto@2");
        long prompt = points.getFirst().get("promptTokens").asLong();
        long output = points.getFirst().get("outputTokens").asLong();
        for (JsonNode p : points) {
            // EOS ignored: every series generates exactly the workload's tokens
            assertThat(p.get("promptTokens").asLong()).isEqualTo(prompt);
            assertThat(p.get("outputTokens").asLong()).isEqualTo(output);
            assertThat(p.get("requests").asInt()).isEqualTo(5);
            assertThat(p.get("tokensPerSecond").asDouble()).isPositive();
            assertThat(p.get("tokensPerSecond").asDouble()).isGreaterThan(p.get("outputTokensPerSecond").asDouble());
            // a share of the run: some of it (on the CPU the computation itself), never more than all of it
            assertThat(p.get("forwardShare").asDouble()).isGreaterThan(0.0).isLessThanOrEqualTo(1.0);
            // no calibration here: auto takes gathered for every LoRA token, and the pinned series report none
            assertThat(p.get("bmmPromptShare").asDouble()).isZero();
            assertThat(p.get("bmmDecodeShare").asDouble()).isZero();
            if (!p.get("series").asText().equals("none")) {
                assertThat(p.get("targets").asText()).isEqualTo("k_proj,o_proj,q_proj,v_proj");
                assertThat(p.get("rank").asInt()).isIn(1, 2);
            }
        }
        assertThat(points).filteredOn(p -> p.get("series").asText().equals("lora-bmm"))
                .allMatch(p -> p.get("strategy").asText().equals("bmm") && p.get("kind").asText().equals("lora"));
        assertThat(points).filteredOn(p -> p.get("series").asText().equals("flora"))
                .allMatch(p -> p.get("strategy").asText().equals("flora") && p.get("kind").asText().equals("flora"));
        assertThat(Files.size(tmp.resolve("tp.png"))).isPositive();
        Path lines = tmp.resolve("shares.jsonl");
        Files.writeString(lines, run.out());
        CliTest.Run table = flora("bench", "throughput", "--from", lines.toString(), "--plot", tmp.resolve("shares.png").toString());
        assertThat(table.code()).as(table.err()).isZero();
        assertThat(table.out()).containsPattern("forward passes' share of the run time .*:  none [01]\\.\\d\\d  flora [01]\\.\\d\\d(-[01]\\.\\d\\d)?  lora-bmm");
    }

    /** --from: the table and plot again from the JSON lines, nothing measured; a file of other lines is refused by line. */
    @Test
    void tableAndPlotFromTheJsonLinesOfAnEarlierRun() throws IOException {
        CliTest.Run run = flora(args("--series", "none,flora", "--ranks", "1,3", "--targets", "q_proj", "--json"));
        assertThat(run.code()).as(run.err()).isZero();
        Path lines = tmp.resolve("points.jsonl");
        Files.writeString(lines, run.out());
        Path png = tmp.resolve("again.png");
        CliTest.Run again = flora("bench", "throughput", "--from", lines.toString(), "--plot", png.toString());
        assertThat(again.code()).as(again.err()).isZero();
        assertThat(again.out()).contains("points.jsonl on an earlier run: 5 requests each with its own adapter on q_proj", "none", "flora");
        assertThat(again.out().lines().filter(l -> l.matches("\\s+[13] .*"))).hasSize(2);
        assertThat(Files.size(png)).isPositive();

        CliTest.Run wrong = flora("bench", "latency", "--from", lines.toString());
        assertThat(wrong.code()).isNotZero();
        assertThat(wrong.err()).contains("points.jsonl line 1: not a line of bench latency --json").doesNotContain("Exception");
    }

    /** --runs: every point again, round by round; the table (here from the lines) shows each point's median and the widest spread. */
    @Test
    void repeatedRunsInterleaveAndTheTableShowsMedians() throws IOException {
        CliTest.Run run = flora(args("--series", "none,flora", "--ranks", "1", "--targets", "q_proj", "--runs", "3", "--json"));
        assertThat(run.code()).as(run.err()).isZero();
        List<JsonNode> points = new ArrayList<>();
        for (String line : run.out().lines().toList()) {
            points.add(JSON.readTree(line));
        }
        assertThat(points.stream().map(p -> p.get("series").asText()).toList()).containsExactly("none", "flora", "none", "flora", "none", "flora");
        double[] flora = points.stream().filter(p -> p.get("series").asText().equals("flora"))
                .mapToDouble(p -> p.get("tokensPerSecond").asDouble()).sorted().toArray();
        Path lines = tmp.resolve("runs.jsonl");
        Files.writeString(lines, run.out());
        CliTest.Run again = flora("bench", "throughput", "--from", lines.toString(), "--plot", tmp.resolve("runs.png").toString());
        assertThat(again.code()).as(again.err()).isZero();
        assertThat(again.out().lines().filter(l -> l.matches("\\s+1 .*")).findFirst().orElseThrow())
                .contains(String.format(java.util.Locale.ROOT, "%.1f", flora[1]));
        assertThat(again.out()).contains("medians of up to 3 runs a point; the widest spread");

        CliTest.Run none = flora(args("--series", "none", "--runs", "0"));
        assertThat(none.code()).isNotZero();
        assertThat(none.err()).contains("--runs").doesNotContain("Exception");
    }

    /** The plot's panel says "medians" only past one run a point, and "up to" where points ran different numbers of times. */
    @Test
    void thePanelSaysHowManyRunsThePointsAreMediansOf() {
        assertThat(BenchLoadCommands.runsLabel(1, 1)).isEmpty();
        assertThat(BenchLoadCommands.runsLabel(3, 3)).isEqualTo(", medians of 3 runs");
        assertThat(BenchLoadCommands.runsLabel(1, 3)).isEqualTo(", medians of up to 3 runs");
    }

    /** The automatic choice against the best pinned series of its kind, rank by rank, and the least of those fractions. */
    @Test
    void theTableSaysHowCloseTheAutomaticChoiceCameToTheBest() throws IOException {
        StringBuilder lines = new StringBuilder();
        double[][] perRank = {{1, 100, 120, 118}, {64, 60, 90, 81}}; // rank, lora-bmm, lora-gathered, lora-auto tokens/s
        String[] series = {"lora-bmm", "lora-gathered", "lora-auto"};
        for (double[] r : perRank) {
            for (int i = 0; i < 3; i++) {
                lines.append(String.format(java.util.Locale.ROOT, "{\"series\":\"%s\",\"kind\":\"lora\",\"strategy\":\"%s\",\"rank\":%d,"
                        + "\"targets\":\"c_attn\",\"requests\":200,\"promptTokens\":1000,\"outputTokens\":100,\"seconds\":1.0,"
                        + "\"tokensPerSecond\":%s,\"outputTokensPerSecond\":10.0,\"steps\":5%s}%n", series[i], series[i].substring(5), (int) r[0],
                        r[i + 1], r[0] == 64 ? ",\"forwardShare\":0." + (3 + i) + (i == 2 ? ",\"bmmPromptShare\":0.25,\"bmmDecodeShare\":0.104" : "")
                        : "")); // rank 1's lines as before the fields

            }
        }
        Path file = tmp.resolve("auto.jsonl");
        Files.writeString(file, lines);
        CliTest.Run run = flora("bench", "throughput", "--from", file.toString(), "--plot", tmp.resolve("auto.png").toString());
        assertThat(run.code()).as(run.err()).isZero();
        assertThat(run.out()).contains("lora-auto against the best pinned series at its rank (speed, 1 = as fast):  r1 0.983 (lora-gathered)"
                + "  r64 0.900 (lora-gathered); least 0.900");
        assertThat(run.out()).as("no base model measured: no ratio to it").contains("120.0 (10.0)").doesNotContain("NaN");
        assertThat(run.out()).as("shares of the lines that have one").contains(
                "forward passes' share of the run time (near 1 on a GPU: the host set the pace):  lora-bmm 0.30  lora-gathered 0.40  lora-auto 0.50");
        assertThat(run.out()).as("auto's ways, of the lines that have them").contains(
                "lora-auto's tokens given to LoRA-bmm (prompt / decode, the rest gathered):  r64 25% / 10%" + System.lineSeparator());
    }

    /**
     * --calibration: the automatic series chooses by the given file, not the stored one. In this one bmm
     * costs 1 µs and gathered 1,000 at every point, so auto gives bmm every LoRA token, prompt and decode;
     * a missing file and a file that is not a calibration are refused by name.
     */
    @Test
    void theAutomaticSeriesChoosesByTheCalibrationGiven() throws IOException {
        List<dev.flora.adapter.Calibration.Measurement> ms = new ArrayList<>();
        for (int t : new int[] {1, 16, 512}) {
            for (int r : new int[] {1, 64}) {
                ms.add(new dev.flora.adapter.Calibration.Measurement("gathered", 64, 64, t, r, 1000));
                ms.add(new dev.flora.adapter.Calibration.Measurement("bmm", 64, 64, t, r, 1));
            }
        }
        Path file = tmp.resolve("bmm-cheap.json");
        new dev.flora.adapter.Calibration("test", "test", 64, 16, 0, 0, ms).save(file);
        CliTest.Run run = flora(args("--series", "lora-auto", "--ranks", "2", "--json", "--calibration", file.toString()));
        assertThat(run.code()).as(run.err()).isZero();
        JsonNode point = JSON.readTree(run.out().lines().toList().getLast());
        assertThat(point.get("bmmPromptShare").asDouble()).isEqualTo(1.0);
        assertThat(point.get("bmmDecodeShare").asDouble()).isEqualTo(1.0);

        CliTest.Run missing = flora(args("--series", "lora-auto", "--ranks", "2", "--calibration", tmp.resolve("none.json").toString()));
        assertThat(missing.code()).isNotZero();
        assertThat(missing.err()).contains("--calibration", "none.json: no such file").doesNotContain("Exception");
        Path notOne = tmp.resolve("not-one.json");
        Files.writeString(notOne, "{\"hello\": 1}");
        CliTest.Run wrong = flora(args("--series", "lora-auto", "--ranks", "2", "--calibration", notOne.toString()));
        assertThat(wrong.code()).isNotZero();
        assertThat(wrong.err()).contains("not-one.json: not a Flora calibration").doesNotContain("Exception");
    }

    @Test
    void tableHasARowPerRankAndAColumnPerSeries() {
        CliTest.Run run = flora(args("--series", "none,flora", "--ranks", "1,3", "--targets", "q_proj"));
        assertThat(run.code()).as(run.err()).isZero();
        assertThat(run.out()).contains("5 requests each with its own adapter on q_proj", "none", "flora");
        assertThat(run.out().lines().filter(l -> l.matches("\\s+[13] .*"))).hasSize(2);
    }

    @Test
    void latencyUnderAPoissonLoadPerSeriesAndRank() throws IOException {
        List<String> a = new ArrayList<>(List.of(args("--series", "none,lora-gathered,flora", "--ranks", "2", "--rate", "40", "--json")));
        a.set(1, "latency");
        a.set(a.indexOf(tmp.resolve("tp.png").toString()), tmp.resolve("lat.png").toString());
        CliTest.Run run = flora(a.toArray(String[]::new));
        assertThat(run.code()).as(run.err()).isZero();
        List<JsonNode> points = new ArrayList<>();
        for (String line : run.out().lines().toList()) {
            points.add(JSON.readTree(line));
        }
        assertThat(points).extracting(p -> p.get("series").asText()).containsExactly("none", "lora-gathered", "flora");
        for (JsonNode p : points) {
            JsonNode r = p.get("report");
            assertThat(r.get("requests").asInt()).isEqualTo(5);
            assertThat(r.get("failed").asInt()).isZero();
            assertThat(r.get("rate").asDouble()).isEqualTo(40.0);
            assertThat(r.get("latencyPerOutputToken").asDouble()).isPositive();
            assertThat(r.get("ttftP50").asDouble()).isPositive().isLessThanOrEqualTo(r.get("e2eP99").asDouble());
            assertThat(p.get("rank").asInt()).isEqualTo(p.get("series").asText().equals("none") ? 0 : 2);
        }
        assertThat(Files.size(tmp.resolve("lat.png"))).isPositive();
        List<String> bad = new ArrayList<>(List.of(args("--series", "none", "--rate", "0")));
        bad.set(1, "latency");
        CliTest.Run zero = flora(bad.toArray(String[]::new));
        assertThat(zero.code()).isEqualTo(1);
        assertThat(zero.err()).contains("--rate must be a positive number");
    }

    @Test
    void badSeriesTargetsAndLengthsAreRefusedByName() {
        CliTest.Run series = flora(args("--series", "none,dora"));
        assertThat(series.code()).isEqualTo(1);
        assertThat(series.err()).contains("--series 'dora' is not a series", "lora-gathered");
        CliTest.Run targets = flora(args("--series", "flora", "--ranks", "1", "--targets", "c_attn"));
        assertThat(targets.code()).isEqualTo(1);
        assertThat(targets.err()).contains("no layer of the model matches the targets [c_attn] (its layers: ", "q_proj");
        CliTest.Run lengths = flora(args("--series", "none", "--input-len", "600..700"));
        assertThat(lengths.code()).isEqualTo(1);
        assertThat(lengths.err()).contains("does not fit the model's context of 512");
        CliTest.Run range = flora(args("--output-len", "9..3"));
        assertThat(range.code()).isEqualTo(1);
        assertThat(range.err()).contains("--output-len must be N or LO..HI");
    }
}
