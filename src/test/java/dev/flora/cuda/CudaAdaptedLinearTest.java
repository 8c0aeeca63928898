package dev.flora.cuda;

import dev.flora.adapter.AdaptedLinear;
import dev.flora.adapter.AdapterModule;
import dev.flora.adapter.AdapterSlots;
import dev.flora.adapter.AdapterStrategy;
import dev.flora.adapter.SplitCalibration;
import dev.flora.adapter.CostModel;
import dev.flora.backend.Backend;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.cpu.CpuBackend;
import dev.flora.model.Linear;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.fail;

/**
 * One LoRA-adapted layer on the GPU, a step of three prompts and 25 one-token sequences: AUTO with
 * the prompts and the decodes sent different ways (bmm and gathered, either way round), and LoRA-bmm
 * pinned (its one-token sequences in a call of their own), against the CPU's exact strategy.
 */
@Tag("gpu")
class CudaAdaptedLinearTest {
    private static final int IN = 37;
    private static final int OUT = 70;
    private static final int TOKENS = 45;
    private static final int[] RANKS = {1, 3, 8, 2};

    private static CudaBackend cuda;

    @BeforeAll
    static void open() {
        cuda = CudaBackend.open(0);
    }

    @AfterAll
    static void close() {
        cuda.close();
    }

    /** The layer's LoRA modules of slots 0..3 on one backend, the strategy and costs the test sets. */
    private record Slots(List<AdapterModule> modules, AdapterStrategy strategy, CostModel costModel) implements AdapterSlots {
        @Override
        public AdapterModule module(String module, int slot) {
            return module.equals("layer") ? modules.get(slot) : null;
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"bmm-prompts", "bmm-decodes", "bmm-pinned"})
    void promptsAndDecodesApartMatchTheCpu(String mode) {
        SplittableRandom r = new SplittableRandom(11);
        float[][] a = new float[RANKS.length][];
        float[][] b = new float[RANKS.length][];
        float[][] bias = new float[RANKS.length][];
        for (int k = 0; k < RANKS.length; k++) {
            a[k] = values(r, RANKS[k] * IN, 0.3);
            b[k] = values(r, OUT * RANKS[k], 0.3);
            bias[k] = k % 2 == 1 ? values(r, OUT, 0.3) : null;
        }
        float[] w = values(r, OUT * IN, 0.3);
        float[] wBias = values(r, OUT, 0.3);
        float[] x = values(r, TOKENS * IN, 1);
        int[] slots = new int[TOKENS];
        int[] seqs = new int[TOKENS];
        for (int t = 0; t < TOKENS; t++) {
            slots[t] = r.nextInt(-1, RANKS.length);
            seqs[t] = t < 20 ? t % 3 : 3 + t; // three prompts of about 7 tokens, then one-token sequences
        }
        Backend cpu = new CpuBackend();
        float[] exact = project(cpu, new Slots(modules(cpu, a, b, bias), AdapterStrategy.EXACT, null), w, wBias, x, slots, seqs);
        Slots onGpu = mode.equals("bmm-pinned") ? new Slots(modules(cuda, a, b, bias), AdapterStrategy.BMM, null)
                : new Slots(modules(cuda, a, b, bias), AdapterStrategy.AUTO, SplitCalibration.model(IN, OUT, mode.equals("bmm-prompts")));
        float[] got = project(cuda, onGpu, w, wBias, x, slots, seqs);
        for (int i = 0; i < exact.length; i++) {
            if (!(Math.abs(got[i] - exact[i]) <= 1e-4 * (1 + Math.abs(exact[i])))) {
                fail("%s: element %d (token %d) is %s, the CPU's exact %s", mode, i, i / OUT, got[i], exact[i]);
            }
        }
    }

    private static List<AdapterModule> modules(Backend backend, float[][] a, float[][] b, float[][] bias) {
        List<AdapterModule> modules = new ArrayList<>();
        for (int k = 0; k < RANKS.length; k++) {
            modules.add(new AdapterModule.Lora(backend.weight(a[k], RANKS[k], IN), backend.weight(b[k], OUT, RANKS[k]),
                    bias[k] == null ? null : backend.weight(bias[k], 1, OUT), 1.5f + k, RANKS[k]));
        }
        return modules;
    }

    private static float[] project(Backend backend, Slots slots, float[] w, float[] wBias, float[] x, int[] tokenSlots, int[] seqs) {
        Linear layer = new Linear("layer", backend.weight(w, OUT, IN), backend.weight(wBias, 1, OUT));
        Tensor out = backend.fromHost(values(new SplittableRandom(1), TOKENS * OUT, 1e3), TOKENS, OUT); // garbage to overwrite
        int n = tokenSlots.length;
        TokenBatch batch = new TokenBatch(new int[n], new int[n], seqs, tokenSlots, new int[n], new int[0][], new int[0], 16, new int[0]);
        AdaptedLinear.forStep(backend, slots, batch).project(layer, backend.fromHost(x, n, IN), out);
        return backend.toHost(out);
    }

    private static float[] values(SplittableRandom r, int n, double spread) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (spread * r.nextDouble(-1, 1));
        }
        return v;
    }
}
