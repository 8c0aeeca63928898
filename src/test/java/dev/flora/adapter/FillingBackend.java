package dev.flora.adapter;

import dev.flora.backend.Backend;
import dev.flora.backend.DeviceMemoryFull;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.concurrent.atomic.AtomicInteger;

/** A backend that reports the device full, as CUDA's allocator does, once {@code room} more weights are made. */
final class FillingBackend {
    private FillingBackend() {
    }

    /** {@code inner}, except that after {@code room} more weights every weight() throws DeviceMemoryFull. */
    static Backend fillingAfter(Backend inner, AtomicInteger room) {
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, (proxy, method, args) -> {
            if (method.getName().equals("weight") && room.getAndDecrement() <= 0) {
                throw new DeviceMemoryFull("out of GPU memory: 1310720 bytes asked, 3276800 of 150109880320 free");
            }
            try {
                return method.invoke(inner, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        });
    }
}
