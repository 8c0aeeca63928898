package dev.flora.adapter;

import java.nio.file.Path;

/** Reads an adapter directory again (checked against the model) when the host tier needs it back. */
@FunctionalInterface
public interface AdapterReader {
    Adapter read(String name, Path dir);
}
