package dev.flora.adapter;

import dev.flora.Fixtures;
import dev.flora.cpu.CpuBackend;
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/** The registry's tiers: disk, host memory (least recently used dropped, never what is resident), slots. */
class AdapterRegistryTiersTest {
    static PretrainedModel model;
    final List<String> readerThreads = Collections.synchronizedList(new ArrayList<>());
    @TempDir
    Path tmp;

    @BeforeAll
    static void load() {
        model = PretrainedModel.load(Fixtures.llamaTinyModel(), new CpuBackend());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    /** Reads adapter directories against the model, noting which thread asked. */
    Adapter read(String name, Path dir) {
        readerThreads.add(Thread.currentThread().getName());
        return AdapterLoader.load(name, dir, model.model().linears(), model.model().backend());
    }

    static Path fixture(String name) {
        return Fixtures.llamaTiny().resolve("adapters").resolve(name);
    }

    /** Waits (without a time bound on the result) until the background loader has dealt with a version. */
    static void awaitLoad(AdapterRegistry registry, AdapterVersion v, boolean expectFailure) throws InterruptedException {
        for (int i = 0; i < 600; i++) {
            long seen = registry.loadEvents();
            if (expectFailure ? registry.hostStats().failures() > 0 : registry.inHost(v)) {
                return;
            }
            registry.awaitLoadEvent(seen, 100);
        }
        throw new AssertionError("the loader never finished " + v);
    }

    @Test
    void leastRecentlyUsedGoFirstAndResidentAdaptersStay() throws InterruptedException {
        AdapterRegistry registry = new AdapterRegistry(2, 3, this::read);
        List<String> names = List.of("flora-all-r4", "flora-qk-r1", "ia3-kvd", "lora-all-r8", "lora-qv-r4");
        List<AdapterVersion> v = new ArrayList<>();
        for (String name : names) {
            registry.register(read(name, fixture(name)));
            v.add(registry.current(name));
        }
        readerThreads.clear();
        // Registered in full (checked at once), then held while there is room: the last three.
        assertThat(registry.hostOrder()).containsExactly(v.get(2), v.get(3), v.get(4));
        assertThat(registry.acquire(v.get(0))).isEqualTo(AdapterRegistry.NOT_IN_HOST);
        int slot = registry.acquire(v.get(2)); // resident from now on, and the most recently used
        assertThat(slot).isNotNegative();
        assertThat(registry.hostOrder()).containsExactly(v.get(3), v.get(4), v.get(2));
        assertThat(registry.hostRoom()).isEqualTo(2);

        registry.want(List.of(v.get(0)));
        awaitLoad(registry, v.get(0), false);
        assertThat(registry.hostOrder()).containsExactly(v.get(4), v.get(2), v.get(0));
        registry.want(List.of(v.get(1)));
        awaitLoad(registry, v.get(1), false);
        // v2 is now the least recently used, but resident: v4 goes.
        assertThat(registry.hostOrder()).containsExactly(v.get(2), v.get(0), v.get(1));
        registry.want(List.of(v.get(3)));
        awaitLoad(registry, v.get(3), false);
        assertThat(registry.hostOrder()).containsExactly(v.get(2), v.get(1), v.get(3));
        assertThat(registry.adapter(slot).name()).isEqualTo("ia3-kvd");
        int again = registry.acquire(v.get(1));
        assertThat(again).isNotNegative().isNotEqualTo(slot);
        assertThat(registry.acquire(v.get(3))).as("two slots, both held").isEqualTo(AdapterRegistry.NO_SLOT);

        registry.release(slot);
        registry.release(again);
        assertThat(registry.referencesHeld()).isZero();
        assertThat(registry.hostStats()).isEqualTo(new AdapterRegistry.HostStats(3, 3, 3, 5, 0));
        assertThat(readerThreads).hasSize(3).allMatch("flora-adapter-loader"::equals);
    }

    /** What is wanted by sequences about to start is not dropped for another load. */
    @Test
    void wantedAdaptersAreNotDropped() throws InterruptedException {
        AdapterRegistry registry = new AdapterRegistry(1, 2, this::read);
        for (String name : List.of("ia3-kvd", "lora-qv-r4", "flora-qk-r1")) {
            registry.register(read(name, fixture(name)));
        }
        AdapterVersion ia3 = registry.current("ia3-kvd");
        AdapterVersion lora = registry.current("lora-qv-r4");
        AdapterVersion flora = registry.current("flora-qk-r1");
        assertThat(registry.hostOrder()).containsExactly(lora, flora);
        registry.want(List.of(lora, ia3)); // lora is the least recently used, but wanted: flora goes
        awaitLoad(registry, ia3, false);
        assertThat(registry.hostOrder()).containsExactly(lora, ia3);
    }

    /** A dropped version comes back as it was registered, even after its name was loaded again; changed or deleted files fail it. */
    @Test
    void aDroppedVersionIsReadBackAsRegisteredOrFails() throws IOException, InterruptedException {
        Path a = tmp.resolve("a");
        Path b = tmp.resolve("b");
        Fixtures.copyTree(fixture("lora-qv-r4"), a);
        Fixtures.copyTree(fixture("ia3-kvd"), b);
        AdapterRegistry registry = new AdapterRegistry(1, 1, this::read);
        registry.register(read("x", a));
        AdapterVersion first = registry.current("x");
        registry.replace(read("x", b)); // load_inplace: a new version, and the first is dropped (nobody uses it)
        AdapterVersion second = registry.current("x");
        assertThat(second).isNotEqualTo(first);
        assertThat(registry.inHost(first)).isFalse();
        readerThreads.clear(); // registration read them on this thread; every read from now on is a reload

        // A sequence that started on the first version (preempted, say) gets exactly that one back.
        registry.want(List.of(first));
        awaitLoad(registry, first, false);
        int slot = registry.acquire(first);
        assertThat(registry.adapter(slot).kind()).isEqualTo(AdapterKind.LORA);
        assertThat(registry.adapter(slot).contentHash()).isEqualTo(first.contentHash()).isNotEqualTo(second.contentHash());
        registry.release(slot);

        // Its files changed on disk: reading it again fails, once per attempt, with a clear reason.
        registry.want(List.of(second));
        awaitLoad(registry, second, false);
        for (String f : List.of("adapter_config.json", "adapter_model.safetensors")) {
            Files.copy(b.resolve(f), a.resolve(f), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        registry.want(List.of(first));
        awaitLoad(registry, first, true);
        assertThat(registry.takeFailure(first).getMessage()).contains("'x'").contains(a.toString()).contains("changed since it was loaded");
        assertThat(registry.takeFailure(first)).isNull();

        // Its files are gone.
        try (Stream<Path> walk = Files.walk(a)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
        registry.want(List.of(first));
        for (int i = 0; i < 600 && registry.hostStats().failures() < 2; i++) {
            registry.awaitLoadEvent(registry.loadEvents(), 100);
        }
        assertThat(registry.takeFailure(first).getMessage()).contains("'x' was dropped from host memory and cannot be read again")
                .contains(a.toString());
        assertThat(registry.hostStats().failures()).isEqualTo(2);
        assertThat(registry.referencesHeld()).isZero();
        assertThat(readerThreads).allMatch("flora-adapter-loader"::equals);
    }

    @Test
    void theHostTierHoldsAtLeastTheResidentSlots() {
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> new AdapterRegistry(4, 2, this::read))
                .hasMessageContaining("--max-cpu-adapters (2) must be at least --max-adapters (4)");
    }
}
