package dev.flora.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.flora.cli.CliTest.flora;
import static org.assertj.core.api.Assertions.assertThat;

/** flora bench report as tools/gpu/bench-base.sh runs it, and its answer to lines it does not know. */
class BenchReportCliTest {
    @TempDir
    Path tmp;

    private static Path resource(String name) throws Exception {
        return Path.of(BenchReportCliTest.class.getResource("/bench/" + name).toURI());
    }

    @Test
    void writesTheTableWithItsCommandAndThePlot() throws Exception {
        Path flora = resource("flora-llama2-7b.jsonl");
        Path peer = resource("transformers-llama2-7b.jsonl");
        Path out = tmp.resolve("report");
        CliTest.Run run = flora("bench", "report", "--in", flora.toString(), peer.toString(), "--out", out.toString());
        assertThat(run.code()).as(run.err()).isZero();
        assertThat(run.out()).contains("base-llama2-7b.md", "base-llama2-7b.png");
        String md = Files.readString(out.resolve("base-llama2-7b.md"));
        assertThat(md.lines().findFirst().orElseThrow())
                .isEqualTo("Made by: `flora bench report --in " + flora + " " + peer + " --out " + out + "`");
        assertThat(md).contains("## batch 1, 16 prompt tokens", "## batch 64, 256 prompt tokens",
                "| 2.51× | ≥ 80% of roofline: not met; ≥ 5× peer: not met |", "| 0.43× | ≥ 2× peer: not met; prefill ≥ 60% of bf16 rate: — |");
        assertThat(Files.size(out.resolve("base-llama2-7b.png"))).isPositive();
    }

    @Test
    void floraLinesAloneGiveDashesForThePeer() throws Exception {
        Path out = tmp.resolve("report");
        CliTest.Run run = flora("bench", "report", "--in", resource("flora-llama2-7b.jsonl").toString(), "--out", out.toString());
        assertThat(run.code()).as(run.err()).isZero();
        assertThat(Files.readString(out.resolve("base-llama2-7b.md"))).contains("| — | — | — | ≥ 2× peer: —; prefill ≥ 60% of bf16 rate: — |");
    }

    @Test
    void aMalformedOrUnknownLineIsAnErrorNamingFileAndLine() throws Exception {
        List<String> good = Files.readAllLines(resource("flora-llama2-7b.jsonl"));
        Path in = tmp.resolve("runs.jsonl");
        String[][] cases = {
                {"{\"model\": ", "line 3: not valid JSON"},
                {"{\"strategy\": \"flora\", \"micros\": 3.5}", "line 3: neither a 'flora bench decode --json' line nor a transformers_bench.py line"},
                {good.get(0).replace("\"batch\":1,", ""), "line 3: missing field 'batch'"},
                {good.get(0).replace("\"bytesPerSecond\":", "\"bytesPerSecond\":\"fast\",\"x\":"), "line 3: field 'limits.bytesPerSecond' must be a positive number"},
                {"{\"peer\": \"transformers\", \"config\": \"x/llama2-7b/config.json\", \"batch\": 64, \"prompt_tokens\": 256, "
                        + "\"new_tokens\": 64, \"output_tokens_per_s\": 42.6, \"runs\": [96.2], \"adapters\": \"peft 0.21 lora r=8\"}",
                        "line 3: a peer run with adapters (peft 0.21 lora r=8); the base report takes runs without"},
        };
        for (String[] c : cases) {
            Files.write(in, List.of(good.get(0), "", c[0]));
            CliTest.Run run = flora("bench", "report", "--in", in.toString(), "--out", tmp.resolve("r").toString());
            assertThat(run.code()).as(run.err()).isEqualTo(2);
            assertThat(run.err().lines().toList()).singleElement().asString()
                    .startsWith("error: " + in + " " + c[1]).doesNotContain("Exception", "\tat ");
        }
        assertThat(tmp.resolve("r")).doesNotExist();
    }
}
