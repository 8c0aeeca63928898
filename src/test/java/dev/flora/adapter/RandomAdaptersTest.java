package dev.flora.adapter;

import dev.flora.FloraException;
import dev.flora.Fixtures;
import dev.flora.backend.DeviceMemoryFull;
import dev.flora.cpu.CpuBackend;
import dev.flora.model.CausalLM;
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class RandomAdaptersTest {
    @Test
    void aFullDeviceSaysWhatTheAdaptersNeedAndWhatToLower() {
        AtomicInteger room = new AtomicInteger(Integer.MAX_VALUE);
        CausalLM model = PretrainedModel.load(Fixtures.llamaTinyModel(), FillingBackend.fillingAfter(new CpuBackend(), room)).model();
        Set<String> targets = Set.of("q_proj", "v_proj");
        List<Adapter> fit = RandomAdapters.create(model, AdapterKind.LORA, 4, targets, 3, 1);
        assertThat(fit).hasSize(3);
        long floatsEach = 0;
        for (var e : model.linears().entrySet()) {
            if (e.getKey().endsWith("q_proj") || e.getKey().endsWith("v_proj")) {
                floatsEach += 4L * (e.getValue().inFeatures() + e.getValue().outFeatures());
            }
        }
        int modulesEach = (int) model.linears().keySet().stream().filter(k -> k.endsWith("q_proj") || k.endsWith("v_proj")).count();
        room.set(2 * modulesEach * 2 + 1); // two adapters' A and B, then one weight of the third
        double gb = 5 * floatsEach * 4 / 1e9;
        assertThatThrownBy(() -> RandomAdapters.create(model, AdapterKind.LORA, 4, targets, 5, 1))
                .isInstanceOf(FloraException.class).isNotInstanceOf(DeviceMemoryFull.class)
                .hasMessageStartingWith(String.format(java.util.Locale.ROOT, "5 random lora adapters of rank 4 on q_proj,v_proj need %.1f GB", gb))
                .hasMessageContaining("the device filled at adapter 3")
                .hasMessageContaining("--requests").hasMessageContaining("--kv-cache-memory")
                .hasMessageContaining("out of GPU memory: 1310720 bytes asked");
    }
}
