package dev.flora.adapter;

/**
 * From prompt position {@code from} on, tokens use adapter {@code name} (null: the base model),
 * until the next range; generated tokens use the last range's adapter.
 */
public record AdapterRange(int from, String name) {
}
