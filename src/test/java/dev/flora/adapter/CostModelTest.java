package dev.flora.adapter;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

class CostModelTest {
    private static Calibration.Measurement m(String strategy, int tokens, int rank, double micros) {
        return new Calibration.Measurement(strategy, 64, 64, tokens, rank, micros);
    }

    static Calibration calibration() {
        return new Calibration("test", "scalar", 64, 16, 0.5, 0.001, List.of(
                m("flora", 16, 1, 10), m("exact-flora", 16, 1, 20),
                m("gathered", 16, 1, 30), m("bmm", 16, 1, 25),
                m("exact-lora", 16, 1, 40),
                m("flora", 16, 8, 90), m("exact-flora", 16, 8, 70),
                m("gathered", 16, 8, 31), m("bmm", 16, 8, 60),
                m("exact-lora", 16, 8, 50)));
    }

    static CostModel model() {
        return new CostModel(calibration());
    }

    /** A calibration belongs to the device it was measured on: the CPU's never steers the GPU. */
    @Test
    void eachKindOfDeviceHasItsOwnCalibrationFile() {
        assertThat(Calibration.defaultFile("cpu").getFileName().toString()).isEqualTo("calibration.json");
        assertThat(Calibration.defaultFile("cuda").getFileName().toString()).isEqualTo("calibration-cuda.json");
        assertThat(CostModel.defaultFile(new dev.flora.cpu.CpuBackend())).isEqualTo(Calibration.defaultFile());
        assertThat(Calibration.defaultFile("cuda").getParent()).isEqualTo(Calibration.defaultFile().getParent());
    }

    @Test
    void picksTheFastestMeasuredStrategyForTheKind() {
        CostModel m = model();
        assertThat(m.choose(AdapterKind.FLORA, 64, 64, 16, 1)).isEqualTo(AdapterStrategy.FLORA);
        assertThat(m.choose(AdapterKind.LORA, 64, 64, 16, 1)).isEqualTo(AdapterStrategy.BMM);
        assertThat(m.choose(AdapterKind.FLORA, 64, 64, 14, 7)).isEqualTo(AdapterStrategy.EXACT);
        assertThat(m.choose(AdapterKind.LORA, 64, 64, 20, 16)).isEqualTo(AdapterStrategy.GATHERED);
        assertThat(m.choose(AdapterKind.IA3, 64, 64, 16, 1)).isEqualTo(AdapterStrategy.EXACT);
    }

    /**
     * LoRA-bmm pays per sequence, each padded to the longest. The calibration measured 16 equal
     * sequences (16 tokens: one each): 16 sequences whose longest has 10 rows cost it ten times that
     * (a long prompt among decoding sequences), and 160 sequences of one token ten times too, so
     * gathered wins where bmm won on equal sequences.
     */
    @Test
    void loraBmmIsChargedPerSequenceForItsPaddedRows() {
        CostModel m = model();
        assertThat(m.choose(AdapterKind.LORA, 64, 64, 16, 16, 1, 1)).isEqualTo(AdapterStrategy.BMM);
        assertThat(m.estimateBmm(64, 64, 16, 1, 1)).isCloseTo(25, within(1e-9));
        assertThat(m.estimateBmm(64, 64, 16, 10, 1)).isCloseTo(250, within(1e-9));
        assertThat(m.choose(AdapterKind.LORA, 64, 64, 16, 16, 10, 1)).isEqualTo(AdapterStrategy.GATHERED);
        assertThat(m.estimateBmm(64, 64, 160, 1, 1)).isCloseTo(250, within(1e-9));
        assertThat(m.choose(AdapterKind.LORA, 64, 64, 16, 160, 1, 1)).isEqualTo(AdapterStrategy.GATHERED);
        assertThat(m.choose(AdapterKind.LORA, 64, 64, 16, 1)).as("the memo keeps them apart").isEqualTo(AdapterStrategy.BMM);
        assertThat(m.choose(AdapterKind.FLORA, 64, 64, 16, 160, 1, 1)).as("the shape is bmm's alone").isEqualTo(AdapterStrategy.FLORA);
    }

    /**
     * With a decode grid (S sequences of a token each), a decode step's LoRA costs are read off it, not
     * scaled per sequence from 16; prompt steps keep the main grid and the per-sequence rule. The
     * decode grid's token axis (16, 64, 256) does not leave gaps in the main grid's (16, 512).
     */
    @Test
    void decodeStepsAreReadOffTheDecodeGrid() {
        List<Calibration.Measurement> ms = new ArrayList<>();
        for (int t : new int[] {16, 512}) {
            ms.add(m("gathered", t, 8, t == 16 ? 30 : 300));
            ms.add(m("bmm", t, 8, t == 16 ? 25 : 400));
        }
        for (int s : new int[] {16, 64, 256}) {
            ms.add(m("gathered-decode", s, 8, s == 16 ? 30 : s == 64 ? 80 : 300));
            ms.add(m("bmm-decode", s, 8, s == 16 ? 25 : s == 64 ? 40 : 60));
        }
        CostModel c = new CostModel(new Calibration("test", "scalar", 64, 16, 0, 0, ms));
        assertThat(c.hasGrid("bmm-decode")).isTrue();
        assertThat(c.hasGrid("gathered")).as("the main grid keeps its strategies").isTrue();
        // 256 decoding sequences: bmm 60 against gathered 300 on the decode grid; the per-sequence rule
        // would have charged bmm 16 × 25 = 400.
        assertThat(c.estimateBmm(64, 64, 256, 1, 8)).isCloseTo(400, within(1e-9));
        assertThat(c.choose(AdapterKind.LORA, 64, 64, 256, 256, 1, 8)).isEqualTo(AdapterStrategy.BMM);
        assertThat(c.estimate("bmm-decode", 64, 64, 128, 8)).isCloseTo(Math.sqrt(40 * 60), within(1e-9));
        // Past the grid's largest S a time grows with the sequences.
        assertThat(c.estimate("gathered-decode", 64, 64, 512, 8)).isCloseTo(600, within(1e-9));
        // A prompt step of 256 tokens over 16 sequences of 16: the main grid, bmm charged for its padded rows.
        assertThat(c.choose(AdapterKind.LORA, 64, 64, 256, 16, 16, 8)).isEqualTo(AdapterStrategy.GATHERED);
        // Without a decode grid, the same decode step goes by the per-sequence rule.
        CostModel without = new CostModel(new Calibration("test", "scalar", 64, 16, 0, 0,
                ms.stream().filter(x -> !x.strategy().endsWith("-decode")).toList()));
        assertThat(without.hasGrid("bmm-decode")).isFalse();
        assertThat(without.choose(AdapterKind.LORA, 64, 64, 256, 256, 1, 8)).isEqualTo(AdapterStrategy.GATHERED);
    }

    /**
     * A step of prompts and decoding sequences: each part takes its own way where that is cheaper than
     * gathered for all in one call. bmm on two prompts of 256 costs 2/16 of its 16 × 256 tokens (800)
     * = 100 against gathered's 300, and gathered on 64 decoding sequences 40 against bmm's 90: 140
     * apart against 337.5 together, where the one-way rule (bmm padding all 66 sequences to 256) took
     * gathered for all.
     */
    @Test
    void promptsAndDecodesOfOneStepTakeTheirOwnWays() {
        List<Calibration.Measurement> ms = new ArrayList<>();
        for (int t : new int[] {16, 512}) {
            ms.add(m("gathered", t, 8, t == 16 ? 30 : 300));
            ms.add(m("bmm", t, 8, t == 16 ? 25 : 100));
        }
        for (int s : new int[] {16, 64, 256}) {
            ms.add(m("gathered-decode", s, 8, s == 16 ? 20 : s == 64 ? 40 : 80));
            ms.add(m("bmm-decode", s, 8, s == 16 ? 60 : s == 64 ? 90 : 200));
        }
        CostModel c = new CostModel(new Calibration("test", "scalar", 64, 16, 0, 0, ms));
        assertThat(c.chooseLora(64, 64, 512, 2, 256, 64, 8)).isEqualTo(new CostModel.LoraWays(AdapterStrategy.BMM, AdapterStrategy.GATHERED));
        assertThat(c.choose(AdapterKind.LORA, 64, 64, 576, 66, 256, 8)).as("one way for all").isEqualTo(AdapterStrategy.GATHERED);
        assertThat(c.chooseLora(64, 64, 512, 2, 256, 64, 8)).as("remembered").isEqualTo(new CostModel.LoraWays(AdapterStrategy.BMM,
                AdapterStrategy.GATHERED));
        // One part only: choose's way for both.
        assertThat(c.chooseLora(64, 64, 512, 2, 256, 0, 8)).isEqualTo(new CostModel.LoraWays(AdapterStrategy.BMM, AdapterStrategy.BMM));
        CostModel.LoraTally before = c.loraTally();
        assertThat(c.chooseLora(64, 64, 0, 0, 0, 64, 8))
                .isEqualTo(new CostModel.LoraWays(AdapterStrategy.GATHERED, AdapterStrategy.GATHERED));
        // The tally counts every chooseLora's tokens by the way chosen (remembered answers too; choose's none).
        assertThat(c.loraTally()).isEqualTo(new CostModel.LoraTally(0, 3 * 512, 0, 3 * 64, 0, 0));
        assertThat(c.loraTally().minus(before)).isEqualTo(new CostModel.LoraTally(0, 0, 0, 64, 0, 0));
        assertThat(c.loraTally().bmmPromptShare()).isEqualTo(1.0);
        assertThat(c.loraTally().bmmDecodeShare()).isZero();
        assertThat(new CostModel.LoraTally(30, 10, 0, 0, 0, 0).bmmPromptShare()).isEqualTo(0.25);
        assertThat(new CostModel.LoraTally(0, 0, 0, 0, 0, 0).bmmDecodeShare()).as("no tokens: none to bmm").isZero();
        // Cheap gathered prompts of 16 tokens (5 µs): bmm's 4.7 for a prompt of 16 and gathered's 20 for 16
        // decodes make 24.7 apart, gathered for all 32 tokens in one call 11.3: gathered for both.
        List<Calibration.Measurement> cheap = new ArrayList<>(ms.stream().filter(x -> !(x.strategy().equals("gathered") && x.tokens() == 16)).toList());
        cheap.add(m("gathered", 16, 8, 5));
        CostModel d = new CostModel(new Calibration("test", "scalar", 64, 16, 0, 0, cheap));
        assertThat(d.choose(AdapterKind.LORA, 64, 64, 16, 1, 16, 8)).isEqualTo(AdapterStrategy.BMM);
        assertThat(d.choose(AdapterKind.LORA, 64, 64, 16, 16, 1, 8)).isEqualTo(AdapterStrategy.GATHERED);
        assertThat(d.chooseLora(64, 64, 16, 1, 16, 16, 8)).isEqualTo(new CostModel.LoraWays(AdapterStrategy.GATHERED, AdapterStrategy.GATHERED));
    }

    /**
     * Fewer prompts than the calibration's 16, with a one-prompt grid: between one prompt's measured time
     * and 16 prompts', in log sequences. One prompt of 512 tokens: gathered-single's 50 against
     * bmm-single's 120 (gathered), where 16 prompts alone charged bmm 1/16 of 16 × 512 tokens (100)
     * against gathered's 300 (bmm). Four prompts of 128 (f = 1/2): gathered √(50 · 300) = 122 against bmm
     * √(120 · 100) = 110 (bmm). Without the grid, one prompt goes to bmm as before.
     */
    @Test
    void fewPromptsAreReadBetweenTheOnePromptGridAndTheCalibrationsSequences() {
        List<Calibration.Measurement> ms = new ArrayList<>();
        for (int t : new int[] {16, 512}) {
            ms.add(m("gathered", t, 8, t == 16 ? 30 : 300));
            ms.add(m("bmm", t, 8, t == 16 ? 25 : 100));
        }
        CostModel without = new CostModel(new Calibration("test", "scalar", 64, 16, 0, 0, List.copyOf(ms)));
        for (int t : new int[] {16, 512}) {
            ms.add(m("gathered" + CostModel.SINGLE_SUFFIX, t, 8, t == 16 ? 10 : 50));
            ms.add(m("bmm" + CostModel.SINGLE_SUFFIX, t, 8, t == 16 ? 20 : 120));
        }
        CostModel with = new CostModel(new Calibration("test", "scalar", 64, 16, 0, 0, ms));
        assertThat(with.hasGrid("bmm" + CostModel.SINGLE_SUFFIX)).isTrue();
        assertThat(with.choose(AdapterKind.LORA, 64, 64, 512, 1, 512, 8)).isEqualTo(AdapterStrategy.GATHERED);
        assertThat(without.choose(AdapterKind.LORA, 64, 64, 512, 1, 512, 8)).isEqualTo(AdapterStrategy.BMM);
        assertThat(with.choose(AdapterKind.LORA, 64, 64, 512, 4, 128, 8)).isEqualTo(AdapterStrategy.BMM);
        assertThat(with.choose(AdapterKind.LORA, 64, 64, 512, 16, 32, 8)).as("the calibration's own sequences: its grid alone")
                .isEqualTo(AdapterStrategy.BMM);
        // Two prompts of 256 (f = 1/4): gathered 50^0.75 · 300^0.25 = 78 against bmm 120^0.75 · 100^0.25 (padded 512) = 115.
        assertThat(with.choose(AdapterKind.LORA, 64, 64, 512, 2, 256, 8)).isEqualTo(AdapterStrategy.GATHERED);
        assertThat(with.chooseLora(64, 64, 512, 1, 512, 0, 8)).isEqualTo(new CostModel.LoraWays(AdapterStrategy.GATHERED, AdapterStrategy.GATHERED));
    }

    /**
     * The H200's calibration on StarCoder-3B's width (session 12, committed with the figures), c_attn
     * (2816 → 3072): a mixed step of 5 prompts (8,000 tokens, the longest 2,000) and 100 decodes takes
     * bmm for both parts at rank 64, where one way for all took gathered (bmm padding the decodes to
     * 2,000 rows); at rank 8 gathered for all.
     */
    @Test
    void anH200CalibrationSendsRank64MixedStepsToBmmApart() {
        CostModel c = CostModel.loadIfPresent(Path.of("bench/results/cuda/calibration-cuda-h200-d2816-session12.json"));
        assertThat(c).isNotNull();
        assertThat(c.chooseLora(2816, 3072, 8000, 5, 2000, 100, 64)).isEqualTo(new CostModel.LoraWays(AdapterStrategy.BMM, AdapterStrategy.BMM));
        assertThat(c.choose(AdapterKind.LORA, 2816, 3072, 8100, 105, 2000, 64)).isEqualTo(AdapterStrategy.GATHERED);
        assertThat(c.chooseLora(2816, 3072, 8000, 5, 2000, 100, 8))
                .isEqualTo(new CostModel.LoraWays(AdapterStrategy.GATHERED, AdapterStrategy.GATHERED));
    }

    /**
     * The H200's 4096² calibrations of session 14, the same layer timed two ways: on the GPU alone, bmm's
     * decode step of 64 one-token sequences at rank 64 cost 107.5 µs against gathered's 126.1, so auto
     * took bmm, and lost end to end to gathered (0.957), the host issuing bmm's dozen operations a layer;
     * timed as the GPU's or the host's issuing, whichever is longer, bmm costs 133.5 against 123.9 and
     * auto takes gathered (0.968). At 256 sequences bmm stays the cheaper either way.
     */
    @Test
    void anIssueBoundCalibrationGivesGatheredTheDecodeStepsBmmIssuesSlowly() {
        CostModel gpuOnly = CostModel.loadIfPresent(Path.of("bench/results/cuda/calibration-cuda-h200-d4096-gpu-only-session14.json"));
        CostModel issueBound = CostModel.loadIfPresent(Path.of("bench/results/cuda/calibration-cuda-h200-d4096-session14.json"));
        assertThat(gpuOnly).isNotNull();
        assertThat(issueBound).isNotNull();
        assertThat(gpuOnly.choose(AdapterKind.LORA, 4096, 4096, 64, 64, 1, 64)).isEqualTo(AdapterStrategy.BMM);
        assertThat(issueBound.choose(AdapterKind.LORA, 4096, 4096, 64, 64, 1, 64)).isEqualTo(AdapterStrategy.GATHERED);
        assertThat(issueBound.choose(AdapterKind.LORA, 4096, 4096, 256, 256, 1, 64)).isEqualTo(AdapterStrategy.BMM);
        assertThat(issueBound.choose(AdapterKind.LORA, 4096, 4096, 64, 64, 1, 8)).isEqualTo(AdapterStrategy.GATHERED);
    }

    /**
     * Session 15's H200 calibration at 4096² with its one-prompt grid (committed with the figures): a
     * step's lone prompt of 204 tokens (session 14's example, priced at 28 µs for bmm as 1/16 of 16
     * prompts) goes to gathered at ranks 16 and 64 by the grid, and to bmm by the same file without it;
     * with the grid Llama-2-7B's auto gave bmm 0% and 2% of its prompt tokens and reached 1.003 and 0.987
     * of gathered, without it 35% and 28%, 0.914 and 0.960.
     */
    @Test
    void theH200sOnePromptGridGivesALonePromptToGathered(@TempDir Path dir) throws IOException {
        Path file = Path.of("bench/results/cuda/calibration-cuda-h200-d4096-session15.json");
        CostModel with = CostModel.loadIfPresent(file);
        assertThat(with).isNotNull();
        assertThat(with.hasGrid("gathered" + CostModel.SINGLE_SUFFIX)).isTrue();
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        com.fasterxml.jackson.databind.node.ObjectNode tree = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(file.toFile());
        com.fasterxml.jackson.databind.node.ArrayNode kept = json.createArrayNode();
        tree.withArray("measurements").forEach(m -> {
            if (!m.get("strategy").asText().endsWith(CostModel.SINGLE_SUFFIX)) {
                kept.add(m);
            }
        });
        tree.set("measurements", kept);
        Path stripped = dir.resolve("calibration-without-grid.json");
        json.writeValue(stripped.toFile(), tree);
        CostModel without = CostModel.loadIfPresent(stripped);
        assertThat(without).isNotNull();
        assertThat(without.hasGrid("gathered" + CostModel.SINGLE_SUFFIX)).isFalse();
        for (int rank : new int[] {16, 64}) {
            assertThat(with.choose(AdapterKind.LORA, 4096, 4096, 204, 1, 204, rank)).as("rank %d, the grid", rank).isEqualTo(AdapterStrategy.GATHERED);
            assertThat(without.choose(AdapterKind.LORA, 4096, 4096, 204, 1, 204, rank)).as("rank %d, no grid", rank).isEqualTo(AdapterStrategy.BMM);
        }
    }

    /** Fewer sequences than the calibration's, a token each: the calibration's own step of that many tokens (one a sequence). */
    @Test
    void fewDecodingSequencesAreReadOffTheGrid() {
        List<Calibration.Measurement> ms = new ArrayList<>();
        for (int t : new int[] {4, 16, 64}) {
            ms.add(m("bmm", t, 8, t == 4 ? 10 : t == 16 ? 20 : 40));
        }
        CostModel c = new CostModel(new Calibration("test", "scalar", 64, 16, 0, 0, ms));
        assertThat(c.estimateBmm(64, 64, 4, 1, 8)).isCloseTo(10, within(1e-9));
        assertThat(c.estimateBmm(64, 64, 16, 1, 8)).isCloseTo(20, within(1e-9));
        assertThat(c.estimateBmm(64, 64, 32, 1, 8)).as("32 sequences: twice 16").isCloseTo(40, within(1e-9));
        assertThat(c.estimateBmm(64, 64, 4, 4, 8)).as("4 of 4 tokens: a quarter of 16 of 4 (64 tokens)").isCloseTo(10, within(1e-9));
        ms.add(m("gathered", 4, 8, 15));
        ms.add(m("gathered", 16, 8, 15));
        ms.add(m("gathered", 64, 8, 15));
        c = new CostModel(new Calibration("test", "scalar", 64, 16, 0, 0, ms));
        // the calibration's own points: 4 tokens were 4 sequences (bmm 10 < 15), 64 were 16 of 4 (bmm 40 > 15)
        assertThat(c.choose(AdapterKind.LORA, 64, 64, 4, 8)).isEqualTo(AdapterStrategy.BMM);
        assertThat(c.choose(AdapterKind.LORA, 64, 64, 64, 8)).isEqualTo(AdapterStrategy.GATHERED);
    }

    @Test
    void interpolatesLogTimeOverLogTokensAndLogRankClampsAtTheEdgesAndGrowsWithTokensPastTheLast() {
        List<Calibration.Measurement> ms = new ArrayList<>();
        for (int t : new int[] {4, 16}) {
            for (int r : new int[] {1, 4}) {
                ms.add(m("flora", t, r, t * r));          // time ∝ tokens · rank: exact in log-log
                ms.add(m("exact-flora", t, r, 3 * t));    // flat in rank
            }
        }
        CostModel c = new CostModel(new Calibration("test", "scalar", 64, 16, 0, 0, ms));
        assertThat(c.estimate("flora", 64, 64, 8, 2)).isCloseTo(16, within(1e-9));
        assertThat(c.estimate("flora", 64, 64, 1, 1)).isCloseTo(4, within(1e-9));     // clamped to 4 tokens
        assertThat(c.estimate("flora", 64, 64, 16, 64)).isCloseTo(64, within(1e-9));  // clamped to rank 4
        assertThat(c.estimate("flora", 64, 64, 64, 64)).isCloseTo(256, within(1e-9)); // past 16 tokens: ∝ tokens
        assertThat(c.estimate("gathered", 64, 64, 8, 2)).isNaN();
        // flora t·r against exact 3t: flora below rank 3, exact above
        assertThat(c.choose(AdapterKind.FLORA, 64, 64, 8, 2)).isEqualTo(AdapterStrategy.FLORA);
        assertThat(c.choose(AdapterKind.FLORA, 64, 64, 8, 4)).isEqualTo(AdapterStrategy.EXACT);
    }

    @Test
    void usesTheNearestMeasuredLayerShape() {
        List<Calibration.Measurement> ms = new ArrayList<>();
        for (int t : new int[] {1, 16}) {
            ms.add(new Calibration.Measurement("gathered", 768, 768, t, 8, 10));
            ms.add(new Calibration.Measurement("exact-lora", 768, 768, t, 8, 20));
            ms.add(new Calibration.Measurement("gathered", 768, 2048, t, 8, 30));
            ms.add(new Calibration.Measurement("exact-lora", 768, 2048, t, 8, 20));
        }
        CostModel c = new CostModel(new Calibration("test", "scalar", 768, 16, 0, 0, ms));
        assertThat(c.choose(AdapterKind.LORA, 768, 768, 16, 8)).isEqualTo(AdapterStrategy.GATHERED);
        assertThat(c.choose(AdapterKind.LORA, 768, 256, 16, 8)).isEqualTo(AdapterStrategy.GATHERED);
        assertThat(c.choose(AdapterKind.LORA, 768, 2048, 16, 8)).isEqualTo(AdapterStrategy.EXACT);
        assertThat(c.choose(AdapterKind.LORA, 2048, 768, 16, 8)).isEqualTo(AdapterStrategy.GATHERED);
        // fLoRA was not measured: the defaults
        assertThat(c.choose(AdapterKind.FLORA, 768, 768, 16, 8)).isEqualTo(AdapterStrategy.FLORA);
    }

    @Test
    void eq7AndStorage(@TempDir Path tmp) throws IOException {
        Calibration c = calibration();
        assertThat(c.predictFlora(16, 2)).isEqualTo(0.001 * 2 * 16 * 64 * 64);
        assertThat(c.predictBmm(16, 2)).isEqualTo(0.001 * 16 * 64 * 64 + 2 * 0.5 * 16 * 64 * 2);
        Path file = tmp.resolve("c.json");
        c.save(file);
        assertThat(Calibration.loadIfPresent(file)).isEqualTo(c);
        assertThat(CostModel.loadIfPresent(file).calibration()).isEqualTo(c);
        assertThat(CostModel.loadIfPresent(tmp.resolve("none.json"))).isNull();
        Files.writeString(tmp.resolve("old.json"), "{\"machine\":\"x\",\"kernels\":\"y\",\"dim\":64,\"c1\":1,\"c2\":1,"
                + "\"measurements\":[{\"strategy\":\"flora\",\"tokens\":16,\"rank\":1,\"micros\":3}]}");
        assertThatThrownBy(() -> Calibration.loadIfPresent(tmp.resolve("old.json"))).hasMessageContaining("run flora calibrate again");
    }

    @Test
    void aNewCalibrationKeepsTheOtherShapesOfAnEarlierOneOnTheSameMachine() {
        Calibration earlier = new Calibration("m", "k", 64, 16, 0, 0, List.of(
                new Calibration.Measurement("flora", 64, 64, 16, 1, 5), new Calibration.Measurement("flora", 32, 64, 16, 1, 7)));
        Calibration now = new Calibration("m", "k", 64, 16, 0, 0, List.of(new Calibration.Measurement("flora", 64, 64, 16, 1, 6)));
        assertThat(now.keepingOtherShapesOf(earlier).measurements()).containsExactly(
                new Calibration.Measurement("flora", 64, 64, 16, 1, 6), new Calibration.Measurement("flora", 32, 64, 16, 1, 7));
        Calibration elsewhere = new Calibration("other", "k", 64, 16, 0, 0, earlier.measurements());
        assertThat(now.keepingOtherShapesOf(elsewhere)).isEqualTo(now);
    }
}
