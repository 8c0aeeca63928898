package dev.flora.adapter;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.FloraException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * What {@code flora calibrate} measured on this machine and stores: the time of every strategy
 * for layers of given shapes over token counts and ranks, and the fLoRA paper's eq. 7 constants
 * fitted at width {@code dim} (bmm LoRA c2·b·l·d² + 2·c1·b·l·d·r, fLoRA c2·r·b·l·d²).
 *
 * @param sequences adapters per step in the measurements (each sequence its own adapter)
 * @param c2        microseconds per token·d² of a large product with W0
 * @param c1        microseconds per token·d·r of the batched small products
 */
public record Calibration(String machine, String kernels, int dim, int sequences, double c1, double c2, List<Measurement> measurements) {

    /** Microseconds per call of a layer W [out, in] with T tokens over the adapters of rank r, by one strategy. */
    public record Measurement(String strategy, int in, int out, int tokens, int rank, double micros) {
    }

    public static Path defaultFile() {
        return defaultFile("cpu");
    }

    /**
     * Where the calibration of a kind of device is kept: $FLORA_CACHE/calibration.json for the CPU,
     * calibration-DEVICE.json for others, so that times measured on one never steer another.
     */
    public static Path defaultFile(String device) {
        String env = System.getenv("FLORA_CACHE");
        Path base = env != null && !env.isBlank() ? Path.of(env) : Path.of(System.getProperty("user.home"), ".cache", "flora");
        return base.resolve(device.equals("cpu") ? "calibration.json" : "calibration-" + device + ".json");
    }

    /** The stored calibration, or null when there is none. */
    public static Calibration loadIfPresent(Path file) {
        if (!Files.isRegularFile(file)) {
            return null;
        }
        try {
            Calibration c = new ObjectMapper().configure(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES, true)
                    .configure(DeserializationFeature.FAIL_ON_MISSING_CREATOR_PROPERTIES, true)
                    .readValue(file.toFile(), Calibration.class);
            if (c.measurements() == null) {
                throw new IOException("no measurements");
            }
            return c;
        } catch (IOException e) {
            throw new FloraException(file + ": not a Flora calibration of this version (" + e.getMessage().lines().findFirst().orElse("")
                    + "); run flora calibrate again");
        }
    }

    public void save(Path file) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(file.toFile(), this);
    }

    /** This calibration with the measurements of an earlier one kept for the layer shapes this one did not measure. */
    public Calibration keepingOtherShapesOf(Calibration earlier) {
        if (earlier == null || !earlier.machine().equals(machine) || !earlier.kernels().equals(kernels)) {
            return this;
        }
        List<Measurement> all = new ArrayList<>(measurements);
        for (Measurement m : earlier.measurements()) {
            if (measurements.stream().noneMatch(n -> n.in() == m.in() && n.out() == m.out())) {
                all.add(m);
            }
        }
        return new Calibration(machine, kernels, dim, sequences, c1, c2, List.copyOf(all));
    }

    /** eq. 7, predicted microseconds of one d × d layer for bmm LoRA. */
    public double predictBmm(int tokens, int rank) {
        return c2 * tokens * (double) dim * dim + 2 * c1 * tokens * (double) dim * rank;
    }

    /** eq. 7, predicted microseconds of one d × d layer for fLoRA. */
    public double predictFlora(int tokens, int rank) {
        return c2 * rank * tokens * (double) dim * dim;
    }
}
