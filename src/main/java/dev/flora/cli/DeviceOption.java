package dev.flora.cli;

import dev.flora.FloraException;
import dev.flora.backend.Backend;
import dev.flora.cpu.CpuBackend;
import picocli.CommandLine.Option;

/** {@code --device cpu|cuda}: which backend computes. */
final class DeviceOption {
    @Option(names = "--device", defaultValue = "cpu", paramLabel = "cpu|cuda",
            description = "Where to compute (default: ${DEFAULT-VALUE}).")
    String device;

    Backend create() {
        return switch (device) {
            case "cpu" -> new CpuBackend();
            case "cuda" -> dev.flora.cuda.CudaBackend.open(0);
            default -> throw new FloraException("--device '" + device + "' is not a device (use cpu or cuda)");
        };
    }
}
