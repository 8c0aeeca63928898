package dev.flora.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/** The base report on the real H200 lines of bench/results/cuda/base-llama2-7b-cuda1.txt (two sessions of both workloads). */
class BaseReportTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    static BenchLines h200Lines() throws IOException, URISyntaxException {
        BenchLines lines = new BenchLines();
        for (String name : List.of("flora-llama2-7b.jsonl", "transformers-llama2-7b.jsonl")) {
            Path file = Path.of(BaseReportTest.class.getResource("/bench/" + name).toURI());
            List<String> text = Files.readAllLines(file);
            for (int i = 0; i < text.size(); i++) {
                lines.add(name + " line " + (i + 1), JSON.readTree(text.get(i)));
            }
        }
        return lines;
    }

    /** The markdown row that starts with this cell, split into its cells. */
    static List<String> row(String markdown, String section, String first) {
        String part = markdown.substring(markdown.indexOf(section));
        String line = part.lines().filter(l -> l.startsWith("| " + first + " |")).findFirst().orElseThrow();
        return List.of(line.substring(2, line.length() - 2).split(" \\| "));
    }

    @Test
    void everyRunTheirMediansThePeersRunsPooledAndTheGoals() throws Exception {
        BenchLines lines = h200Lines();
        assertThat(lines.shapes()).containsExactly("llama2-7b");
        assertThat(lines.flora()).hasSize(4);
        assertThat(lines.peer()).extracting(PeerRun::shape).containsOnly("llama2-7b");
        String md = new BaseReport("llama2-7b", lines.flora(), lines.peer()).markdown("flora bench report --in x --out y", "p.png");

        assertThat(md).startsWith("Made by: `flora bench report --in x --out y`\n");
        assertThat(md).contains("cuda (NVIDIA H200, 132 SMs)", "transformers 5.17.0 torch 2.11.0+cu130 on NVIDIA H200", "![output tokens/s against batch](p.png)");
        // run | decode | end-to-end | roofline | of roofline | prefill of bf16 rate (— in these older lines) | TB/s | TFLOP/s |
        // peer best | peer median | ratio | goal
        assertThat(row(md, "## batch 1, 16 prompt tokens", "1"))
                .containsExactly("1", "125.8", "125.8", "320.6", "39.2%", "—", "4.25", "865.1", "57.9", "50.1", "2.51×",
                        "≥ 80% of roofline: not met; ≥ 5× peer: not met");
        assertThat(row(md, "## batch 1, 16 prompt tokens", "median"))
                .containsExactly("median", "125.8", "125.9", "319.7", "39.4%", "—", "4.24", "860.5", "57.9", "50.1", "2.51×",
                        "≥ 80% of roofline: not met; ≥ 5× peer: not met");
        assertThat(row(md, "## batch 64, 256 prompt tokens", "2"))
                .containsExactly("2", "1065.8", "840.1", "8154.1", "13.1%", "—", "4.14", "856.7", "2395.9", "1920.2", "0.44×",
                        "≥ 2× peer: not met; prefill ≥ 60% of bf16 rate: —");
        assertThat(row(md, "## batch 64, 256 prompt tokens", "median"))
                .containsExactly("median", "1131.5", "821.4", "8257.7", "13.7%", "—", "4.19", "855.7", "2395.9", "1920.2", "0.43×",
                        "≥ 2× peer: not met; prefill ≥ 60% of bf16 rate: —");
    }

    @Test
    void withoutThePeerItsColumnsAndItsGoalsAreDashes() throws Exception {
        BenchLines lines = h200Lines();
        String md = new BaseReport("llama2-7b", lines.flora().subList(0, 1), List.of()).markdown("c", "p.png");
        assertThat(md).doesNotContain("| median |");
        assertThat(row(md, "## batch 1, 16 prompt tokens", "1"))
                .containsExactly("1", "125.8", "125.8", "320.6", "39.2%", "—", "4.25", "865.1", "—", "—", "—", "≥ 80% of roofline: not met; ≥ 5× peer: —");
    }

    @Test
    void goalsMetAtTheirThresholdsAndNoneAtOtherBatches() {
        assertThat(BaseReport.goal(1, 0.8, 0.1, 5.0)).isEqualTo("≥ 80% of roofline: met; ≥ 5× peer: met");
        assertThat(BaseReport.goal(1, 0.79, 0.9, 5.1)).isEqualTo("≥ 80% of roofline: not met; ≥ 5× peer: met");
        assertThat(BaseReport.goal(64, 0.1, 0.6, 2.0)).isEqualTo("≥ 2× peer: met; prefill ≥ 60% of bf16 rate: met");
        assertThat(BaseReport.goal(64, 0.1, 0.59, 1.99)).isEqualTo("≥ 2× peer: not met; prefill ≥ 60% of bf16 rate: not met");
        assertThat(BaseReport.goal(64, 0.1, Double.NaN, 2.5)).isEqualTo("≥ 2× peer: met; prefill ≥ 60% of bf16 rate: —");
        assertThat(BaseReport.goal(8, 0.9, 0.9, 9)).isEqualTo("—");
        assertThat(BaseReport.median(List.of(3.0, 1.0, 2.0))).isEqualTo(2.0);
        assertThat(BaseReport.median(List.of(4.0, 1.0))).isEqualTo(2.5);
    }

    @Test
    void plotIsAPng() throws Exception {
        BenchLines lines = h200Lines();
        Path png = tmp.resolve("base.png");
        new BaseReport("llama2-7b", lines.flora(), lines.peer()).plot(png);
        assertThat(Files.size(png)).isPositive();
        assertThat(Files.readAllBytes(png)).startsWith(0x89, 'P', 'N', 'G');
    }
}
