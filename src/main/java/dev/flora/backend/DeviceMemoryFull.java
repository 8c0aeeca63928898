package dev.flora.backend;

import dev.flora.FloraException;

/** A backend's device had no room for an allocation: callers that know what they asked for can say so. */
public final class DeviceMemoryFull extends FloraException {
    public DeviceMemoryFull(String message) {
        super(message);
    }
}
