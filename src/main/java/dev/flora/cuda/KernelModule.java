package dev.flora.cuda;

import dev.flora.demo.DemoModel;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Flora's kernels (kernels.cu in the jar), compiled by NVRTC for the device's architecture the
 * first time and cached on disk under $FLORA_CACHE/cuda by a hash of source, options and NVRTC
 * version, then loaded as a module. NVRTC is needed only when the cache has no cubin.
 */
final class KernelModule {
    private final Driver driver;
    private final MemorySegment module;
    private final Map<String, MemorySegment> functions = new ConcurrentHashMap<>();

    private KernelModule(Driver driver, MemorySegment module) {
        this.driver = driver;
        this.module = module;
    }

    /**
     * The kernels' tunables (#ifndef in kernels.cu, kernel-internal: no Java constant mirrors them),
     * which -Dflora.cuda.defines=NAME=N,... sets for A/B runs without a rebuild.
     */
    static final List<String> TUNABLES = List.of("GEMV_UNROLL", "ROTATE_BATCH", "FLORA_BATCH", "LORA_WIDE_LOADS", "ATTN_V2_LOADS", "ATTN_LANE_SUMS", "ATTN_V4_LOADS", "COMBINE_BATCH", "ATTN_CHUNK", "ATTN_MIN_BLOCKS", "RMS_PREFETCH");
    /** The tunables that are switches: 1 on, 0 off (the others are counts and sizes, 1 or more). */
    static final List<String> SWITCHES = List.of("LORA_WIDE_LOADS", "RMS_PREFETCH");

    /** NVRTC options -DNAME=N from a -Dflora.cuda.defines value (null: none), or a refusal naming what is wrong. */
    static List<String> defines(String value) {
        List<String> options = new java.util.ArrayList<>();
        if (value == null || value.isBlank()) {
            return options;
        }
        for (String entry : value.split(",")) {
            String[] kv = entry.trim().split("=", -1);
            boolean valid = kv.length == 2 && TUNABLES.contains(kv[0])
                    && kv[1].matches(SWITCHES.contains(kv[0]) ? "[01]" : "[1-9][0-9]{0,8}");
            if (!valid) {
                throw new dev.flora.FloraException("-Dflora.cuda.defines takes NAME=N pairs, NAME one of " + String.join(", ", TUNABLES)
                        + ", N 0 or 1 for the switches (" + String.join(", ", SWITCHES) + ") and a positive whole number for the others; not '"
                        + entry.trim() + "'");
            }
            options.add("-D" + kv[0] + "=" + kv[1]);
        }
        return options;
    }

    static KernelModule load(Driver driver, int major, int minor) {
        String source = source();
        List<String> options = new java.util.ArrayList<>(List.of("--gpu-architecture=sm_" + major + minor, "--std=c++17", "-default-device"));
        options.addAll(defines(System.getProperty("flora.cuda.defines")));
        Path cache = DemoModel.defaultCache().resolve("cuda");
        String key = hash(source + "\n" + options + "\n" + driver.version());
        Path cubinFile = cache.resolve("kernels-" + key + ".cubin");
        byte[] cubin;
        try {
            if (Files.isRegularFile(cubinFile)) {
                cubin = Files.readAllBytes(cubinFile);
            } else {
                cubin = new Nvrtc().compile(source, "kernels.cu", options);
                Files.createDirectories(cache);
                Path tmp = Files.createTempFile(cache, "kernels", ".tmp");
                Files.write(tmp, cubin);
                Files.move(tmp, cubinFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("kernel cache " + cache + ": " + e.getMessage(), e);
        }
        MemorySegment image = Arena.global().allocate(cubin.length + 1L, 16);
        MemorySegment.copy(cubin, 0, image, ValueLayout.JAVA_BYTE, 0, cubin.length);
        return new KernelModule(driver, driver.loadModule(image));
    }

    static String source() {
        try (InputStream in = KernelModule.class.getResourceAsStream("kernels.cu")) {
            if (in == null) {
                throw new IllegalStateException("kernels.cu is missing from the jar");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String hash(String text) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8)), 0, 12);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static final int MAX_ARGS = 64;
    // cuLaunchKernel copies the arguments when it is called, so one buffer serves every launch.
    private final MemorySegment argValues = Arena.ofAuto().allocate(8L * MAX_ARGS, 8);
    private final MemorySegment argPointers = pointersInto(argValues);

    private static MemorySegment pointersInto(MemorySegment values) {
        MemorySegment pointers = Arena.ofAuto().allocate(ValueLayout.ADDRESS, MAX_ARGS);
        for (int i = 0; i < MAX_ARGS; i++) {
            pointers.setAtIndex(ValueLayout.ADDRESS, i, values.asSlice(8L * i, 8));
        }
        return pointers;
    }

    // CUlaunchConfig (56 bytes) and its one CUlaunchAttribute (72 bytes): programmatic stream
    // serialization, which lets the kernel start while the one before it drains (cuda.h, CUDA 12.3+).
    private static final int ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;
    private final MemorySegment config = overlapConfig();

    /** The launch config with its one attribute set; launchOverlapped fills in the dimensions and stream. */
    private static MemorySegment overlapConfig() {
        MemorySegment config = Arena.ofAuto().allocate(56 + 72, 8);
        MemorySegment attribute = config.asSlice(56, 72);
        config.set(ValueLayout.ADDRESS, 40, attribute);
        config.set(ValueLayout.JAVA_INT, 48, 1);
        attribute.set(ValueLayout.JAVA_INT, 0, ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION);
        attribute.set(ValueLayout.JAVA_INT, 8, 1);
        return config;
    }

    /**
     * Launches {@code name} on the stream. Arguments are Long (device pointers), Integer, Float,
     * in the kernel's order; null stands for a null pointer.
     */
    synchronized void launch(String name, int gridX, int gridY, int block, int sharedBytes, MemorySegment stream, Object... args) {
        MemorySegment f = setArguments(name, args);
        driver.launch(f, Math.max(1, gridX), Math.max(1, gridY), 1, block, 1, 1, sharedBytes, stream, argPointers, name);
    }

    /**
     * Launches a kernel that calls grid_wait() before it touches anything the kernels before it
     * write, so that it may start while the one before it drains (programmatic dependent launch).
     */
    synchronized void launchOverlapped(String name, int gridX, int gridY, int block, int sharedBytes, MemorySegment stream, Object... args) {
        MemorySegment f = setArguments(name, args);
        int[] dims = {Math.max(1, gridX), Math.max(1, gridY), 1, block, 1, 1, sharedBytes};
        for (int i = 0; i < dims.length; i++) {
            config.set(ValueLayout.JAVA_INT, 4L * i, dims[i]);
        }
        config.set(ValueLayout.ADDRESS, 32, stream);
        driver.launch(config, f, argPointers, name);
    }

    private MemorySegment setArguments(String name, Object[] args) {
        MemorySegment f = functions.computeIfAbsent(name, n -> driver.function(module, n));
        if (args.length > MAX_ARGS) {
            throw new IllegalArgumentException(name + ": more than " + MAX_ARGS + " arguments");
        }
        for (int i = 0; i < args.length; i++) {
            long at = 8L * i;
            switch (args[i]) {
                case null -> argValues.set(ValueLayout.JAVA_LONG, at, 0L);
                case Long l -> argValues.set(ValueLayout.JAVA_LONG, at, l);
                case Integer v -> argValues.set(ValueLayout.JAVA_INT, at, v);
                case Float v -> argValues.set(ValueLayout.JAVA_FLOAT, at, v);
                default -> throw new IllegalArgumentException("kernel argument of type " + args[i].getClass());
            }
        }
        return f;
    }
}
