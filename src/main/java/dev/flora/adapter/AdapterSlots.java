package dev.flora.adapter;

/** What the model needs of the resident adapters during a step: a module's adapter in a slot. */
public interface AdapterSlots {
    AdapterSlots NONE = (module, slot) -> null;

    /** The adapter module for this base module in this slot, or null (slot empty or module not adapted). */
    AdapterModule module(String module, int slot);
}
