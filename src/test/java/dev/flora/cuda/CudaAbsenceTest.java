package dev.flora.cuda;

import dev.flora.FloraException;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Everywhere (CI has no GPU): asking for the CUDA backend either works or says clearly why not,
 * in one line a user can act on, never a linkage error or a stack trace.
 */
class CudaAbsenceTest {
    @Test
    void cudaOpensOrSaysWhyNot() {
        CudaBackend backend = null;
        try {
            backend = CudaBackend.open(0);
        } catch (FloraException e) {
            assertThat(e.getMessage()).matches("(?s)no CUDA (driver|device|toolkit)?.*|no (cuBLAS|NVRTC): .*")
                    .doesNotContain("\n");
            return;
        }
        try {
            assertThat(backend.name()).startsWith("cuda (");
        } finally {
            backend.close();
        }
    }

    @Test
    void theKernelSourceShipsInTheJar() {
        assertThat(KernelModule.source()).contains("extern \"C\"").contains("__global__ void attention");
    }
}
