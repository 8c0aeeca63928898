package dev.flora.cuda;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/** Downcall handles into a C library, and the C types the CUDA headers use. */
final class Native {
    static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
    static final ValueLayout.OfLong SIZE_T = ValueLayout.JAVA_LONG;
    static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG;
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    static final java.lang.foreign.AddressLayout PTR = ValueLayout.ADDRESS;

    private final SymbolLookup library;
    private final String label;

    Native(SymbolLookup library, String label) {
        this.library = library;
        this.label = label;
    }

    /** A function returning an int status. */
    MethodHandle status(String name, MemoryLayout... args) {
        return function(name, FunctionDescriptor.of(INT, args));
    }

    MethodHandle function(String name, FunctionDescriptor descriptor) {
        return Linker.nativeLinker().downcallHandle(library.find(name)
                .orElseThrow(() -> new CudaException(label + " has no function " + name + " (too old a version?)")), descriptor);
    }

    /** Invokes a handle, turning Java's checked Throwable into an unchecked error. */
    static Object call(MethodHandle handle, Object... args) {
        try {
            return handle.invokeWithArguments(args);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
