package dev.flora.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Finds the CUDA libraries: libcuda (the driver, required) by the loader's own search, the toolkit
 * libraries (cuBLAS, NVRTC) under CUDA_HOME / CUDA_PATH, the standard /usr/local/cuda folders and
 * LD_LIBRARY_PATH, then by the loader. Nothing is loaded until a CUDA backend is asked for.
 * {@code -Dflora.cuda.library=FILE} takes all four from that one library instead: CUDA emulated on the
 * CPU (tools/emulator/build-cuda-on-cpu.sh), which runs the GPU tests where no GPU is lent.
 */
public final class CudaLibraries {
    private CudaLibraries() {
    }

    /** The driver library, or a message saying why there is none. */
    static SymbolLookup driver() {
        Optional<SymbolLookup> standIn = standIn();
        if (standIn.isPresent()) {
            return standIn.get();
        }
        return load("libcuda.so.1", List.of("libcuda.so.1", "libcuda.so"), true)
                .orElseThrow(() -> new CudaException("no CUDA driver: libcuda.so.1 was not found by the loader (is an NVIDIA driver"
                        + " installed? --device cpu works without one)"));
    }

    static SymbolLookup cublas() {
        return toolkit("cuBLAS", "libcublas.so");
    }

    static SymbolLookup cublasLt() {
        return toolkit("cuBLASLt", "libcublasLt.so");
    }

    static SymbolLookup nvrtc() {
        return toolkit("NVRTC", "libnvrtc.so");
    }

    private static SymbolLookup toolkit(String what, String stem) {
        Optional<SymbolLookup> standIn = standIn();
        if (standIn.isPresent()) {
            return standIn.get();
        }
        List<String> names = new ArrayList<>();
        for (int major = 14; major >= 12; major--) {
            names.add(stem + "." + major);
        }
        names.add(stem);
        return load(stem, names, false).orElseThrow(() -> new CudaException("no " + what + ": " + stem + ".* was not found in "
                + searchFolders() + " nor by the loader; set CUDA_HOME to the CUDA toolkit folder"));
    }

    /** The library named by -Dflora.cuda.library, which answers for the driver and the toolkit alike. */
    private static Optional<SymbolLookup> standIn() {
        String file = System.getProperty("flora.cuda.library");
        if (file == null || file.isBlank()) {
            return Optional.empty();
        }
        Path path = Path.of(file);
        if (!Files.isRegularFile(path)) {
            throw new CudaException("-Dflora.cuda.library=" + file + ": no such file (build CUDA on the CPU with"
                    + " tools/emulator/build-cuda-on-cpu.sh OUT_DIR)");
        }
        return Optional.of(SymbolLookup.libraryLookup(path, Arena.global()));
    }

    private static Optional<SymbolLookup> load(String label, List<String> names, boolean loaderOnly) {
        if (!loaderOnly) {
            for (Path folder : searchFolders()) {
                for (String name : names) {
                    Path file = folder.resolve(name);
                    if (Files.isRegularFile(file)) {
                        return Optional.of(SymbolLookup.libraryLookup(file, Arena.global()));
                    }
                }
            }
        }
        for (String name : names) {
            try {
                return Optional.of(SymbolLookup.libraryLookup(name, Arena.global()));
            } catch (IllegalArgumentException notFound) {
                // try the next name
            }
        }
        return Optional.empty();
    }

    /** Folders searched for the toolkit libraries, in order. */
    static List<Path> searchFolders() {
        Set<Path> folders = new LinkedHashSet<>();
        for (String env : List.of("CUDA_HOME", "CUDA_PATH")) {
            String home = System.getenv(env);
            if (home != null && !home.isBlank()) {
                folders.add(Path.of(home, "lib64"));
                folders.add(Path.of(home, "targets", "x86_64-linux", "lib"));
                folders.add(Path.of(home, "lib"));
            }
        }
        folders.add(Path.of("/usr/local/cuda/lib64"));
        folders.add(Path.of("/usr/local/cuda/targets/x86_64-linux/lib"));
        Path local = Path.of("/usr/local");
        if (Files.isDirectory(local)) {
            try (Stream<Path> entries = Files.list(local)) {
                entries.filter(p -> p.getFileName().toString().startsWith("cuda-")).sorted((a, b) -> b.compareTo(a))
                        .forEach(p -> {
                            folders.add(p.resolve("targets/x86_64-linux/lib"));
                            folders.add(p.resolve("lib64"));
                        });
            } catch (java.io.IOException ignored) {
                // an unreadable /usr/local just means fewer places to look
            }
        }
        String ld = System.getenv("LD_LIBRARY_PATH");
        if (ld != null) {
            for (String part : ld.split(":")) {
                if (!part.isBlank()) {
                    folders.add(Path.of(part));
                }
            }
        }
        folders.add(Path.of("/usr/lib/x86_64-linux-gnu"));
        return folders.stream().filter(Files::isDirectory).toList();
    }
}
