package dev.flora.adapter;

import dev.flora.backend.Backend;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;
import dev.flora.cpu.CpuBackend;
import dev.flora.model.Linear;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

/**
 * One adapted layer on seeded random batches: adapters of every kind and mixed ranks in one step,
 * tokens of several sequences per slot and tokens without adapters. Every strategy equals the
 * exact one within 1e-5 relative; with a pinned strategy each token alone gives the bits it gets
 * in the batch.
 */
class AdaptedLinearTest {
    private static final int IN = 37;
    private static final int OUT = 70;
    private static final int TOKENS = 45;

    private final Backend backend = new CpuBackend();

    /** Slots 0..n-1 holding random adapters of every kind: LoRA r 1..8 (some with lora_bias), fLoRA r 1..4, IA3 both sides. */
    private final class RandomSlots implements AdapterSlots {
        final List<Adapter> adapters = new ArrayList<>();
        AdapterStrategy strategy = AdapterStrategy.EXACT;
        CostModel costs;

        RandomSlots(SplittableRandom r) {
            int[] loraRanks = {1, 3, 8, 2};
            for (int k = 0; k < loraRanks.length; k++) {
                int rank = loraRanks[k];
                add("lora" + k, AdapterKind.LORA, new AdapterModule.Lora(backend.weight(values(r, rank * IN, 0, 0.3), rank, IN),
                        backend.weight(values(r, OUT * rank, 0, 0.3), OUT, rank),
                        k % 2 == 1 ? backend.weight(values(r, OUT, 0, 0.3), 1, OUT) : null, 1.5f + k, rank));
            }
            for (int rank = 1; rank <= 4; rank++) {
                add("flora" + rank, AdapterKind.FLORA, new AdapterModule.Flora(backend.fromHost(values(r, rank * IN, 1, 0.2), rank, IN),
                        backend.fromHost(values(r, rank * OUT, 1, 0.2), rank, OUT), rank));
            }
            add("ia3-out", AdapterKind.IA3, new AdapterModule.Ia3(backend.fromHost(values(r, OUT, 1, 0.2), 1, OUT), false));
            add("ia3-in", AdapterKind.IA3, new AdapterModule.Ia3(backend.fromHost(values(r, IN, 1, 0.2), 1, IN), true));
        }

        private void add(String name, AdapterKind kind, AdapterModule module) {
            adapters.add(new Adapter(name, kind, null, null, Map.of("layer", module)));
        }

        @Override
        public AdapterModule module(String module, int slot) {
            return adapters.get(slot).modules().get(module);
        }

        @Override
        public AdapterStrategy strategy() {
            return strategy;
        }

        @Override
        public CostModel costModel() {
            return costs;
        }

        @Override
        public Adapter adapter(int slot) {
            return adapters.get(slot);
        }
    }

    private static float[] values(SplittableRandom r, int n, double center, double spread) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (center + spread * r.nextDouble(-1, 1));
        }
        return v;
    }

    private static TokenBatch batch(int[] slots, int[] seqs) {
        int n = slots.length;
        return new TokenBatch(new int[n], new int[n], seqs, slots, new int[n], new int[0][], new int[0], 16, new int[0]);
    }

    private float[] project(RandomSlots slots, Linear layer, Tensor x, int[] tokenSlots, int[] seqs) {
        Tensor out = backend.fromHost(values(new SplittableRandom(1), x.rows() * OUT, 0, 1e3), x.rows(), OUT); // garbage to overwrite
        AdaptedLinear.forStep(backend, slots, batch(tokenSlots, seqs)).project(layer, x, out);
        return backend.toHost(out);
    }

    private record Case(RandomSlots slots, Linear layer, Tensor x, float[] xv, int[] tokenSlots, int[] seqs) {
    }

    private Case randomCase(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        RandomSlots slots = new RandomSlots(r);
        Linear layer = new Linear("layer", backend.weight(values(r, OUT * IN, 0, 0.3), OUT, IN),
                seed % 2 == 0 ? backend.weight(values(r, OUT, 0, 0.3), 1, OUT) : null);
        float[] xv = values(r, TOKENS * IN, 0, 1);
        int[] tokenSlots = new int[TOKENS];
        int[] seqs = new int[TOKENS];
        for (int t = 0; t < TOKENS; t++) {
            seqs[t] = r.nextInt(9);                        // several sequences share a slot (bmm pads per sequence)
            tokenSlots[t] = r.nextInt(-1, slots.adapters.size());
        }
        return new Case(slots, layer, backend.fromHost(xv, TOKENS, IN), xv, tokenSlots, seqs);
    }

    @ParameterizedTest
    @EnumSource(AdapterStrategy.class)
    void everyStrategyEqualsTheExactOneOnRandomBatches(AdapterStrategy strategy) {
        for (long seed = 1; seed <= 6; seed++) {
            Case c = randomCase(seed);
            c.slots.strategy = AdapterStrategy.EXACT;
            float[] exact = project(c.slots, c.layer, c.x, c.tokenSlots, c.seqs);
            c.slots.strategy = strategy;
            float[] got = project(c.slots, c.layer, c.x, c.tokenSlots, c.seqs);
            assertWithin(got, exact, strategy + " seed " + seed);
        }
    }

    @Test
    void autoByACalibrationEqualsTheExactStrategy() {
        for (long seed = 1; seed <= 4; seed++) {
            Case c = randomCase(seed);
            c.slots.strategy = AdapterStrategy.EXACT;
            float[] exact = project(c.slots, c.layer, c.x, c.tokenSlots, c.seqs);
            c.slots.strategy = AdapterStrategy.AUTO;
            c.slots.costs = CostModelTest.model(); // picks bmm, exact and gathered at different ranks
            assertWithin(project(c.slots, c.layer, c.x, c.tokenSlots, c.seqs), exact, "auto seed " + seed);
        }
    }

    /**
     * AUTO on a step of prompts and decoding sequences (one token each), with calibrations that send
     * the two parts different ways (bmm and gathered, either way round): the exact strategy's values,
     * and both kinds of call made.
     */
    @Test
    void autoWithPromptsAndDecodesApartEqualsTheExactStrategy() {
        for (boolean bmmPrompts : new boolean[] {true, false}) {
            for (long seed = 1; seed <= 3; seed++) {
                Case c = randomCase(seed);
                int[] seqs = c.seqs.clone();
                for (int t = 0; t < TOKENS; t++) {
                    seqs[t] = t < 20 ? t % 3 : 3 + t; // three prompts of about 7 tokens, then 25 one-token sequences
                }
                c.slots.strategy = AdapterStrategy.EXACT;
                float[] exact = project(c.slots, c.layer, c.x, c.tokenSlots, seqs);
                c.slots.strategy = AdapterStrategy.AUTO;
                c.slots.costs = SplitCalibration.model(IN, OUT, bmmPrompts);
                List<String> calls = new ArrayList<>();
                Tensor out = backend.fromHost(values(new SplittableRandom(1), TOKENS * OUT, 0, 1e3), TOKENS, OUT);
                AdaptedLinear.forStep(recording(calls), c.slots, batch(c.tokenSlots, seqs)).project(c.layer, c.x, out);
                assertWithin(backend.toHost(out), exact, "auto, bmm for " + (bmmPrompts ? "prompts" : "decodes") + ", seed " + seed);
                assertThat(calls).as("seed %d", seed).contains("loraShrinkExpand", "batchedLinear");
            }
        }
        // LoRA-bmm, pinned, on the same step: the one-token sequences in a call of their own (two
        // batched products a call), not padded to the prompts' length.
        Case c = randomCase(1);
        int[] seqs = new int[TOKENS];
        for (int t = 0; t < TOKENS; t++) {
            seqs[t] = t < 20 ? t % 3 : 3 + t;
            c.tokenSlots[t] = 0; // LoRA rank 1 for every token
        }
        c.slots.strategy = AdapterStrategy.EXACT;
        float[] exact = project(c.slots, c.layer, c.x, c.tokenSlots, seqs);
        c.slots.strategy = AdapterStrategy.BMM;
        List<String> calls = new ArrayList<>();
        Tensor out = backend.fromHost(values(new SplittableRandom(1), TOKENS * OUT, 0, 1e3), TOKENS, OUT);
        AdaptedLinear.forStep(recording(calls), c.slots, batch(c.tokenSlots, seqs)).project(c.layer, c.x, out);
        assertWithin(backend.toHost(out), exact, "bmm");
        assertThat(calls.stream().filter("batchedLinear"::equals).count()).as("two calls of two products").isEqualTo(4);
    }

    /** The CPU backend, recording the names of the methods called. */
    private Backend recording(List<String> calls) {
        return (Backend) java.lang.reflect.Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, method, args) -> {
                    calls.add(method.getName());
                    try {
                        return method.invoke(backend, args);
                    } catch (java.lang.reflect.InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }

    @ParameterizedTest
    @EnumSource(value = AdapterStrategy.class, names = "AUTO", mode = EnumSource.Mode.EXCLUDE)
    void pinnedEachTokenAloneGivesTheBitsItGetsInTheBatch(AdapterStrategy strategy) {
        Case c = randomCase(7);
        c.slots.strategy = strategy;
        float[] batched = project(c.slots, c.layer, c.x, c.tokenSlots, c.seqs);
        for (int t = 0; t < TOKENS; t++) {
            Tensor one = backend.fromHost(Arrays.copyOfRange(c.xv, t * IN, (t + 1) * IN), 1, IN);
            float[] alone = project(c.slots, c.layer, one, new int[] {c.tokenSlots[t]}, new int[] {0});
            assertThat(alone).as("%s token %d (slot %d)", strategy, t, c.tokenSlots[t])
                    .isEqualTo(Arrays.copyOfRange(batched, t * OUT, (t + 1) * OUT));
        }
    }

    /**
     * fLoRA's calls split to hold few stacked rows (a prompt chunk at a high rank would otherwise ask for
     * tens of GB) give the bits of one call: every limit, down to one token a call.
     */
    @Test
    void floraSplitToBoundedCallsGivesTheBitsOfOneCall() {
        for (long seed = 1; seed <= 4; seed++) {
            Case c = randomCase(seed);
            c.slots.strategy = AdapterStrategy.FLORA;
            float[] whole = project(c.slots, c.layer, c.x, c.tokenSlots, c.seqs);
            for (long limit : new long[] {1, 3L * OUT, 7L * OUT, 20L * OUT}) {
                Tensor out = backend.fromHost(values(new SplittableRandom(1), TOKENS * OUT, 0, 1e3), TOKENS, OUT);
                List<String> calls = new ArrayList<>();
                AdaptedLinear.forStep(recording(calls), c.slots, batch(c.tokenSlots, c.seqs), limit).project(c.layer, c.x, out);
                assertThat(backend.toHost(out)).as("seed %d, %d elements a call", seed, limit).isEqualTo(whole);
                if (limit == 1) {
                    assertThat(calls.stream().filter("floraLinears"::equals).count()).as("one fLoRA token a call").isGreaterThan(3);
                }
            }
        }
    }

    private static void assertWithin(float[] actual, float[] expected, String what) {
        for (int i = 0; i < expected.length; i++) {
            if (!(Math.abs(actual[i] - expected[i]) <= 1e-5 * (1 + Math.abs(expected[i])))) {
                fail("%s: element %d (token %d) is %s, exact %s", what, i, i / OUT, actual[i], expected[i]);
            }
        }
    }
}
