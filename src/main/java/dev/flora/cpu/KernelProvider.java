package dev.flora.cpu;

import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Chooses the CPU kernels once, after start-up checks (as Lucene's vectorization provider does):
 * the Vector API kernels when the incubator module is present, its preferred vectors hold at
 * least 4 floats, and they agree with the scalar kernels on a quick self-test; the scalar kernels
 * otherwise. {@code -Dflora.cpu.kernels=scalar|vector} forces a choice.
 */
public final class KernelProvider {
    private static final System.Logger LOG = System.getLogger(KernelProvider.class.getName());
    private static volatile Kernels chosen;

    private KernelProvider() {
    }

    static Kernels get() {
        Kernels k = chosen;
        if (k == null) {
            synchronized (KernelProvider.class) {
                if (chosen == null) {
                    chosen = select(System.getProperty("flora.cpu.kernels", "auto").toLowerCase(Locale.ROOT));
                }
                k = chosen;
            }
        }
        return k;
    }

    /** The name of the kernels in use, for reports. */
    public static String describe() {
        return get().name();
    }

    static Kernels byName(String name) {
        return switch (name) {
            case "scalar" -> new ScalarKernels();
            case "vector" -> vector();
            default -> throw new IllegalArgumentException("flora.cpu.kernels must be auto, scalar or vector, not '" + name + "'");
        };
    }

    private static Kernels select(String wanted) {
        if (!wanted.equals("auto")) {
            return byName(wanted);
        }
        try {
            Kernels v = vector();
            selfTest(v);
            return v;
        } catch (Throwable e) { // LinkageError without the module, or a failed check
            LOG.log(System.Logger.Level.INFO, "Vector API kernels unavailable, using scalar kernels: " + e);
            return new ScalarKernels();
        }
    }

    /** Loads the Vector API kernels by reflection, so that a runtime without the module still starts. */
    private static Kernels vector() {
        try {
            return (Kernels) Class.forName("dev.flora.cpu.VectorKernels").getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot load the Vector API kernels: " + e, e);
        }
    }

    private static void selfTest(Kernels v) {
        Kernels s = new ScalarKernels();
        SplittableRandom r = new SplittableRandom(1);
        float[] a = new float[67];
        float[] b = new float[67];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) r.nextDouble(-1, 1);
            b[i] = (float) r.nextDouble(-1, 1);
        }
        float dv = v.dot(a, 0, b, 0, a.length);
        float ds = s.dot(a, 0, b, 0, a.length);
        if (!(Math.abs(dv - ds) <= 1e-4f * (1 + Math.abs(ds)))) {
            throw new IllegalStateException("Vector API self-test disagrees: " + dv + " vs " + ds);
        }
    }
}
