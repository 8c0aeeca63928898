package dev.flora.cuda;

import dev.flora.FloraException;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

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
    void badKernelFlagsAreRefusedByName() {
        assertThat(CudaBackend.attentionForm("v1")).isEqualTo("v1");
        assertThat(CudaBackend.attentionForm("v2")).isEqualTo("v2");
        assertThatThrownBy(() -> CudaBackend.attentionForm("v9")).isInstanceOf(FloraException.class)
                .hasMessage("-Dflora.cuda.attention takes v1 or v2 (the decode attention kernel), not 'v9'");
        assertThat(CudaBackend.positiveFlag("flora.cuda.attentionMinSplit", null, 32)).isEqualTo(32);
        assertThat(CudaBackend.positiveFlag("flora.cuda.attentionMinSplit", " 16 ", 32)).isEqualTo(16);
        assertThat(CudaBackend.loraTileFlag(null)).isEqualTo(1);
        assertThat(CudaBackend.loraTileFlag("8")).isEqualTo(8);
        assertThatThrownBy(() -> CudaBackend.loraTileFlag("9")).isInstanceOf(FloraException.class)
                .hasMessage("-Dflora.cuda.loraTile takes 1 to 8 tokens a block, not 9");
        for (String bad : new String[] {"0", "-3", "abc", ""}) {
            assertThatThrownBy(() -> CudaBackend.positiveFlag("flora.cuda.attentionMinSplit", bad, 32)).isInstanceOf(FloraException.class)
                    .hasMessage("-Dflora.cuda.attentionMinSplit takes a positive whole number, not '" + bad + "'");
        }
    }

    @Test
    void kernelTunablesAreDefinesOrRefusedByName() {
        assertThat(KernelModule.defines(null)).isEmpty();
        assertThat(KernelModule.defines("GEMV_UNROLL=4, ATTN_V2_LOADS=8")).containsExactly("-DGEMV_UNROLL=4", "-DATTN_V2_LOADS=8");
        for (String bad : new String[] {"GEMV_ROWS=8", "GEMV_UNROLL=0", "GEMV_UNROLL", "GEMV_UNROLL=4=5", "ROTATE_BATCH=x"}) {
            assertThatThrownBy(() -> KernelModule.defines(bad)).isInstanceOf(FloraException.class).hasMessageContaining("not '" + bad + "'");
        }
        String source = KernelModule.source();
        for (String name : KernelModule.TUNABLES) {
            assertThat(source).as(name).contains("#ifndef " + name + " ").contains("#define " + name + " ");
        }
    }

    @Test
    void loraTilesAreRunsOfOneGroup() {
        int[][] tiles = CudaBackend.loraTiles(new int[][] {{5, 3, 1}, {2}, {}, {7, 8, 9, 10, 11}}, 2);
        assertThat(tiles[0]).containsExactly(0, 2, 3, 4, 6, 8);
        assertThat(tiles[1]).containsExactly(2, 1, 1, 2, 2, 1);
    }

    @Test
    void theKernelSourceShipsInTheJar() {
        assertThat(KernelModule.source()).contains("extern \"C\"").contains("__global__ void attention");
    }
}
