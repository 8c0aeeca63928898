package dev.flora.adapter;

/** What the model needs of the resident adapters during a step: a module's adapter in a slot. */
public interface AdapterSlots {
    AdapterSlots NONE = (module, slot) -> null;

    /** The adapter module for this base module in this slot, or null (slot empty or module not adapted). */
    AdapterModule module(String module, int slot);

    /** How adapted layers are computed. */
    default AdapterStrategy strategy() {
        return AdapterStrategy.AUTO;
    }

    /** Measured costs for the AUTO strategy, or null for its defaults (fLoRA fused, LoRA gathered). */
    default CostModel costModel() {
        return null;
    }

    /** A slot's adapter (for caches keyed by adapter), or null. */
    default Adapter adapter(int slot) {
        return null;
    }
}
