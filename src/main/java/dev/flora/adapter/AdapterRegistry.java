package dev.flora.adapter;

import dev.flora.FloraException;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Every registered adapter by name, and a bounded set of resident slots ({@code --max-adapters}).
 * A running sequence holds a reference on each slot it uses; a slot whose references are all
 * released may be given to another adapter. Batches address adapters by slot only.
 */
public final class AdapterRegistry implements AdapterSlots {
    private final Map<String, Adapter> registered = new LinkedHashMap<>();
    private final Adapter[] slots;
    private final int[] references;
    private volatile AdapterStrategy strategy = AdapterStrategy.AUTO;
    private volatile CostModel costModel;

    public AdapterRegistry(int maxResident) {
        if (maxResident < 1) {
            throw new FloraException("--max-adapters must be at least 1, got " + maxResident);
        }
        this.slots = new Adapter[maxResident];
        this.references = new int[maxResident];
    }

    public synchronized void register(Adapter adapter) {
        if (registered.containsKey(adapter.name())) {
            throw new FloraException("adapter name '" + adapter.name() + "' is already registered");
        }
        registered.put(adapter.name(), adapter);
    }

    /**
     * Puts a new version under an existing name (or registers it): sequences already running keep
     * the version they started with; later ones get this one.
     */
    public synchronized void replace(Adapter adapter) {
        registered.put(adapter.name(), adapter);
    }

    /** Forgets a name; sequences using it finish on their version, whose slot is then reused. False if unknown. */
    public synchronized boolean unregister(String name) {
        return registered.remove(name) != null;
    }

    public synchronized boolean contains(String name) {
        return registered.containsKey(name);
    }

    public synchronized Collection<Adapter> adapters() {
        return java.util.List.copyOf(registered.values());
    }

    public int capacity() {
        return slots.length;
    }

    /** A slot holding the named adapter, with one more reference; -1 when every slot is in use. */
    public synchronized int acquire(String name) {
        Adapter adapter = registered.get(name);
        if (adapter == null) {
            throw new FloraException("unknown adapter '" + name + "'");
        }
        int free = -1;
        for (int s = 0; s < slots.length; s++) {
            if (slots[s] == adapter) {
                references[s]++;
                return s;
            }
            if (references[s] == 0 && (free < 0 || slots[free] != null && slots[s] == null)) {
                free = s;
            }
        }
        if (free < 0) {
            return -1;
        }
        slots[free] = adapter;
        references[free] = 1;
        return free;
    }

    public synchronized void release(int slot) {
        if (references[slot] <= 0) {
            throw new IllegalStateException("slot " + slot + " released more often than acquired");
        }
        references[slot]--;
    }

    /** References held on all slots together (0 when no sequence runs). */
    public synchronized int referencesHeld() {
        int sum = 0;
        for (int r : references) {
            sum += r;
        }
        return sum;
    }

    @Override
    public AdapterStrategy strategy() {
        return strategy;
    }

    public void pin(AdapterStrategy strategy) {
        this.strategy = strategy;
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
