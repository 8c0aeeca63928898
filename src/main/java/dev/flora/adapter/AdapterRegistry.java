package dev.flora.adapter;

import dev.flora.FloraException;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Every registered adapter by name, in three tiers: its files on disk, a bounded host-memory cache
 * ({@code --max-cpu-adapters}, least recently used dropped first) and a bounded set of resident
 * slots ({@code --max-adapters}). A running sequence holds a reference on each slot it uses; a slot
 * whose references are all released may be given to another adapter. Batches address adapters by
 * slot only. Adapters the host tier dropped are read again from disk by a background thread,
 * never by the engine's step; what is resident, or wanted by the sequences about to be admitted,
 * is never dropped.
 */
public final class AdapterRegistry implements AdapterSlots {
    /** {@link #acquire}: every slot is held by running sequences. */
    public static final int NO_SLOT = -1;
    /** {@link #acquire}: the adapter is not in host memory (yet); {@link #want} it. */
    public static final int NOT_IN_HOST = -2;
    /** {@link #hostRoom} without a cap on host memory. */
    public static final int UNLIMITED = Integer.MAX_VALUE;

    private final Map<String, AdapterVersion> registered = new LinkedHashMap<>();
    private final AdapterVersion[] slotVersions;
    private final Adapter[] slots;
    private final int[] references;
    /** Null without a cap on host memory: then every adapter is kept. */
    private final HostAdapterCache host;
    private final BackgroundLoader loader;
    private final Set<AdapterVersion> wanted = new HashSet<>();
    private final Set<AdapterVersion> loading = new HashSet<>();
    private final Map<AdapterVersion, FloraException> failed = new HashMap<>();
    private final List<Runnable> loadListeners = new CopyOnWriteArrayList<>();
    private long nextId;
    private long loadEvents;
    private long loads;
    private long loadFailures;
    private volatile AdapterStrategy strategy = AdapterStrategy.AUTO;
    private volatile CostModel costModel;

    /** Every registered adapter stays in host memory. */
    public AdapterRegistry(int maxResident) {
        this(maxResident, UNLIMITED, null);
    }

    /**
     * @param maxInHost adapters held in host memory at most ({@link #UNLIMITED}: all); adapters read from
     *                  files may be dropped and read again with {@code reader}
     */
    public AdapterRegistry(int maxResident, int maxInHost, AdapterReader reader) {
        if (maxResident < 1) {
            throw new FloraException("--max-adapters must be at least 1, got " + maxResident);
        }
        if (maxInHost < maxResident) {
            throw new FloraException("--max-cpu-adapters (" + maxInHost + ") must be at least --max-adapters (" + maxResident
                    + "): resident adapters are held in host memory too");
        }
        if (maxInHost != UNLIMITED && reader == null) {
            throw new IllegalArgumentException("a capped host tier needs a reader to load adapters again");
        }
        this.slots = new Adapter[maxResident];
        this.slotVersions = new AdapterVersion[maxResident];
        this.references = new int[maxResident];
        this.host = maxInHost == UNLIMITED ? null : new HostAdapterCache(maxInHost);
        this.loader = host == null ? null : new BackgroundLoader(reader);
    }

    public synchronized void register(Adapter adapter) {
        if (registered.containsKey(adapter.name())) {
            throw new FloraException("adapter name '" + adapter.name() + "' is already registered");
        }
        registered.put(adapter.name(), newVersion(adapter));
    }

    /**
     * Puts a new version under an existing name (or registers it): sequences already running keep
     * the version they started with; later ones get this one.
     */
    public synchronized void replace(Adapter adapter) {
        AdapterVersion old = registered.put(adapter.name(), newVersion(adapter));
        if (old != null) {
            forget(old);
        }
    }

    /** Forgets a name; sequences using it finish on their version, whose slot is then reused. False if unknown. */
    public synchronized boolean unregister(String name) {
        AdapterVersion old = registered.remove(name);
        if (old != null) {
            forget(old);
        }
        return old != null;
    }

    public synchronized boolean contains(String name) {
        return registered.containsKey(name);
    }

    /** The registered versions, in registration order. */
    public synchronized List<AdapterVersion> adapters() {
        return List.copyOf(registered.values());
    }

    /** The version a new sequence naming this adapter gets. */
    public synchronized AdapterVersion current(String name) {
        AdapterVersion v = registered.get(name);
        if (v == null) {
            throw new FloraException("unknown adapter '" + name + "'");
        }
        return v;
    }

    public int capacity() {
        return slots.length;
    }

    /** Adapters held in host memory at most ({@link #UNLIMITED} without a cap). */
    public int hostCapacity() {
        return host == null ? UNLIMITED : host.capacity();
    }

    /**
     * A slot holding this version, with one more reference; {@link #NO_SLOT} when every slot is in
     * use, {@link #NOT_IN_HOST} when it must be read from disk first. Never reads from disk itself.
     */
    public synchronized int acquire(AdapterVersion version) {
        int free = -1;
        for (int s = 0; s < slots.length; s++) {
            if (version.equals(slotVersions[s])) {
                references[s]++;
                return s;
            }
            if (references[s] == 0 && (free < 0 || slots[free] != null && slots[s] == null)) {
                free = s;
            }
        }
        if (free < 0) {
            return NO_SLOT;
        }
        Adapter adapter = version.kept() != null ? version.kept() : host.get(version);
        if (adapter == null) {
            return NOT_IN_HOST;
        }
        slots[free] = adapter;
        slotVersions[free] = version;
        references[free] = 1;
        return free;
    }

    public synchronized void release(int slot) {
        if (references[slot] <= 0) {
            throw new IllegalStateException("slot " + slot + " released more often than acquired");
        }
        if (--references[slot] == 0 && host != null && slotVersions[slot].evictable()) {
            host.get(slotVersions[slot]); // just used: the last to be dropped (a preempted sequence wants it back soon)
        }
    }

    /** References held on all slots together (0 when no sequence runs). */
    public synchronized int referencesHeld() {
        int sum = 0;
        for (int r : references) {
            sum += r;
        }
        return sum;
    }

    /** Host-memory places left for adapters beyond those resident for running sequences ({@link #UNLIMITED} without a cap). */
    public synchronized int hostRoom() {
        if (host == null) {
            return UNLIMITED;
        }
        Set<AdapterVersion> pinned = new HashSet<>();
        for (int s = 0; s < slots.length; s++) {
            if (references[s] > 0 && slotVersions[s].evictable()) {
                pinned.add(slotVersions[s]);
            }
        }
        return host.capacity() - pinned.size();
    }

    /** Whether a version needs a place in the host tier of its own: it may be dropped and is not resident for a running sequence. */
    public synchronized boolean needsHostRoom(AdapterVersion version) {
        return version.evictable() && !isResident(version);
    }

    /**
     * The versions the sequences about to be admitted need (the scheduler's window, which fits in
     * {@link #hostRoom}): they are not dropped from host memory, and those not there are read from
     * disk in the background, in this order. Replaces the previous call's set.
     */
    public synchronized void want(Collection<AdapterVersion> versions) {
        wanted.clear();
        wanted.addAll(versions);
        if (host == null) {
            return;
        }
        for (AdapterVersion v : versions) {
            if (v.evictable() && !host.contains(v) && loading.add(v)) {
                loader.submit(v, this);
            }
        }
    }

    /** Why reading this version from disk again failed, once (the next request for it tries again); null if it did not. */
    public synchronized FloraException takeFailure(AdapterVersion version) {
        return failed.remove(version);
    }

    /** Counts background loads that ended (read, failed or skipped); see {@link #awaitLoadEvent}. */
    public synchronized long loadEvents() {
        return loadEvents;
    }

    /** Waits until a background load ends after {@code seen} was read from {@link #loadEvents}, at most {@code millis}. */
    public synchronized void awaitLoadEvent(long seen, long millis) throws InterruptedException {
        long end = System.nanoTime() + millis * 1_000_000;
        for (long left = millis; loadEvents == seen && left > 0; left = (end - System.nanoTime()) / 1_000_000) {
            wait(left);
        }
    }

    /** Called (on the loader thread) each time a background load ends. */
    public void onLoadEvent(Runnable listener) {
        loadListeners.add(listener);
    }

    /** What the host tier holds and has done, for metrics. */
    public record HostStats(int inHost, int capacity, long loads, long evictions, long failures) {
    }

    public synchronized HostStats hostStats() {
        if (host == null) {
            return new HostStats(registered.size(), UNLIMITED, 0, 0, 0);
        }
        return new HostStats(host.size(), host.capacity(), loads, host.evictions(), loadFailures);
    }

    /** Versions in host memory, least recently used first (for tests). */
    synchronized List<AdapterVersion> hostOrder() {
        return host == null ? List.of() : host.order();
    }

    /** Whether the host tier holds this version (or it is kept for good). */
    public synchronized boolean inHost(AdapterVersion version) {
        return version.kept() != null || host.contains(version);
    }

    /** Still wanted when the loader gets to it? Otherwise the read is skipped. */
    synchronized boolean stillWanted(AdapterVersion version) {
        return wanted.contains(version) || isResident(version);
    }

    /** The loader's result: the adapter read again, or why it could not be. */
    void loaded(AdapterVersion version, Adapter adapter, FloraException failure) {
        synchronized (this) {
            loading.remove(version);
            if (failure != null) {
                failed.put(version, failure);
                loadFailures++;
            } else if (adapter != null) {
                loads++;
                offer(version, adapter);
            }
            loadEvents++;
            notifyAll();
        }
        loadListeners.forEach(Runnable::run);
    }

    private AdapterVersion newVersion(Adapter adapter) {
        long id = ++nextId;
        if (host == null || adapter.dir() == null || adapter.contentHash() == null) {
            return new AdapterVersion(adapter.name(), id, adapter.dir(), adapter.contentHash(), adapter);
        }
        AdapterVersion v = new AdapterVersion(adapter.name(), id, adapter.dir(), adapter.contentHash(), null);
        offer(v, adapter); // it was just read: keep it while there is room
        return v;
    }

    /** Puts a loaded version in the host tier; a slot that held a dropped version and is free forgets it. */
    private void offer(AdapterVersion version, Adapter adapter) {
        List<AdapterVersion> evicted = new ArrayList<>();
        host.put(version, adapter, v -> wanted.contains(v) || isResident(v), evicted);
        for (AdapterVersion v : evicted) {
            clearFreeSlots(v);
        }
    }

    /** An old version's name now means another (or nothing): drop it from host memory unless a sequence holds it. */
    private void forget(AdapterVersion old) {
        if (host != null && old.evictable() && !isResident(old) && !wanted.contains(old)) {
            host.remove(old);
            clearFreeSlots(old);
        }
    }

    private boolean isResident(AdapterVersion version) {
        for (int s = 0; s < slots.length; s++) {
            if (references[s] > 0 && version.equals(slotVersions[s])) {
                return true;
            }
        }
        return false;
    }

    private void clearFreeSlots(AdapterVersion version) {
        for (int s = 0; s < slots.length; s++) {
            if (references[s] == 0 && version.equals(slotVersions[s])) {
                slots[s] = null;
                slotVersions[s] = null;
            }
        }
    }

    @Override
    public AdapterStrategy strategy() {
        return strategy;
    }

    public void pin(AdapterStrategy strategy) {
        this.strategy = strategy;
    }

    /**
     * LoRA-bmm's padded copies of every registered LoRA adapter kept in memory, at its own rank, made
     * now rather than inside the first step that uses each (PaddedLora): set-up, as loading is.
     */
    public synchronized void padForBmm(dev.flora.model.CausalLM model) {
        List<Adapter> loras = new java.util.ArrayList<>();
        for (AdapterVersion v : adapters()) {
            if (v.kept() != null && v.kept().kind() == AdapterKind.LORA) {
                loras.add(v.kept());
            }
        }
        PaddedLora.prepare(model.backend(), loras, model.linears());
    }

    /** Measured costs the AUTO strategy chooses by (null: its defaults). */
    public void useCosts(CostModel model) {
        this.costModel = model;
    }

    @Override
    public CostModel costModel() {
        return costModel;
    }

    @Override
    public Adapter adapter(int slot) {
        return slots[slot];
    }

    @Override
    public AdapterModule module(String module, int slot) {
        Adapter a = slots[slot];
        return a == null ? null : a.modules().get(module);
    }
}
