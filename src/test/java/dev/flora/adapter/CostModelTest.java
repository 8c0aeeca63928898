package dev.flora.adapter;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

class CostModelTest {
    static CostModel model() {
        return new CostModel("test", "scalar", 64, 0.5, 0.001, List.of(
                new CostModel.Measurement("flora", 16, 1, 10), new CostModel.Measurement("exact-flora", 16, 1, 20),
                new CostModel.Measurement("gathered", 16, 1, 30), new CostModel.Measurement("bmm", 16, 1, 25),
                new CostModel.Measurement("exact-lora", 16, 1, 40),
                new CostModel.Measurement("flora", 16, 8, 90), new CostModel.Measurement("exact-flora", 16, 8, 70),
                new CostModel.Measurement("gathered", 16, 8, 31), new CostModel.Measurement("bmm", 16, 8, 60),
                new CostModel.Measurement("exact-lora", 16, 8, 50)));
    }

    @Test
    void picksTheFastestMeasuredStrategyForTheKindAtTheNearestPoint() {
        CostModel m = model();
        assertThat(m.choose(AdapterKind.FLORA, 16, 1)).isEqualTo(AdapterStrategy.FLORA);
        assertThat(m.choose(AdapterKind.LORA, 16, 1)).isEqualTo(AdapterStrategy.BMM);
        assertThat(m.choose(AdapterKind.FLORA, 14, 7)).isEqualTo(AdapterStrategy.EXACT);
        assertThat(m.choose(AdapterKind.LORA, 20, 16)).isEqualTo(AdapterStrategy.GATHERED);
    }

    @Test
    void eq7AndStorage(@TempDir Path tmp) throws IOException {
        CostModel m = model();
        assertThat(m.predictFlora(16, 2)).isEqualTo(0.001 * 2 * 16 * 64 * 64);
        assertThat(m.predictBmm(16, 2)).isEqualTo(0.001 * 16 * 64 * 64 + 2 * 0.5 * 16 * 64 * 2);
        Path file = tmp.resolve("c.json");
        m.save(file);
        assertThat(CostModel.loadIfPresent(file)).isEqualTo(m);
        assertThat(CostModel.loadIfPresent(tmp.resolve("none.json"))).isNull();
    }
}
