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
    void aMissingStandInLibraryIsNamed() {
        String before = System.getProperty("flora.cuda.library");
        System.setProperty("flora.cuda.library", "/no/such/libflora-cuda-on-cpu.so");
        try {
            assertThatThrownBy(() -> CudaBackend.open(0)).isInstanceOf(FloraException.class)
                    .hasMessage("-Dflora.cuda.library=/no/such/libflora-cuda-on-cpu.so: no such file (build CUDA on the CPU with"
                            + " tools/emulator/build-cuda-on-cpu.sh OUT_DIR)");
        } finally {
            if (before == null) {
                System.clearProperty("flora.cuda.library");
            } else {
                System.setProperty("flora.cuda.library", before);
            }
        }
    }

    /**
     * Auto's decode attention form: the staged third where a launch has 32 blocks a multiprocessor
     * (64 sequences of 32 heads in three splits on the H200's 132), the second below (one sequence's
     * 32 heads in ten splits), as measured in session 12.
     */
    @Test
    void autoTakesTheStagedAttentionWhereBlocksAreMany() {
        assertThat(CudaBackend.autoAttentionForm(64 * 32 * 3, 132)).isEqualTo("v3");
        assertThat(CudaBackend.autoAttentionForm(32 * 10, 132)).isEqualTo("v2");
        assertThat(CudaBackend.autoAttentionForm(32 * 132, 132)).isEqualTo("v3");
        assertThat(CudaBackend.autoAttentionForm(32 * 132 - 1, 132)).isEqualTo("v2");
        assertThat(CudaBackend.autoAttentionForm(32L * 132 * 1_000_000, 132)).as("no overflow").isEqualTo("v3");
    }

    @Test
    void badKernelFlagsAreRefusedByName() {
        assertThat(CudaBackend.attentionForm("v1")).isEqualTo("v1");
        assertThat(CudaBackend.attentionForm("v2")).isEqualTo("v2");
        assertThat(CudaBackend.attentionForm("v3")).isEqualTo("v3");
        assertThat(CudaBackend.attentionForm("v4")).isEqualTo("v4");
        assertThat(CudaBackend.attentionForm("auto")).isEqualTo("auto");
        assertThat(CudaBackend.tileAttentionForm("v1")).isEqualTo("v1");
        assertThat(CudaBackend.tileAttentionForm("v2")).isEqualTo("v2");
        assertThatThrownBy(() -> CudaBackend.tileAttentionForm("auto")).isInstanceOf(FloraException.class)
                .hasMessage("-Dflora.cuda.attentionTiles takes v1 or v2 (the prefill attention's tile kernel), not 'auto'");
        assertThatThrownBy(() -> CudaBackend.attentionForm("v9")).isInstanceOf(FloraException.class)
                .hasMessage("-Dflora.cuda.attention takes auto, v1, v2, v3 or v4 (the decode attention kernel), not 'v9'");
        assertThat(CudaBackend.positiveFlag("flora.cuda.attentionMinSplit", null, 32)).isEqualTo(32);
        assertThat(CudaBackend.positiveFlag("flora.cuda.attentionMinSplit", " 16 ", 32)).isEqualTo(16);
        for (String bad : new String[] {"0", "-3", "abc", ""}) {
            assertThatThrownBy(() -> CudaBackend.positiveFlag("flora.cuda.attentionMinSplit", bad, 32)).isInstanceOf(FloraException.class)
                    .hasMessage("-Dflora.cuda.attentionMinSplit takes a positive whole number, not '" + bad + "'");
        }
        assertThat(CudaBackend.wholeNumberFlag("flora.cuda.loraRunChunk", null, 128)).isEqualTo(128);
        assertThat(CudaBackend.wholeNumberFlag("flora.cuda.loraRunChunk", " 0 ", 128)).as("0: off").isZero();
        assertThat(CudaBackend.wholeNumberFlag("flora.cuda.loraRunChunk", "64", 128)).isEqualTo(64);
        for (String bad : new String[] {"-1", "abc", ""}) {
            assertThatThrownBy(() -> CudaBackend.wholeNumberFlag("flora.cuda.loraRunChunk", bad, 128)).isInstanceOf(FloraException.class)
                    .hasMessage("-Dflora.cuda.loraRunChunk takes 0 or a positive whole number, not '" + bad + "'");
        }
        assertThat(CudaBackend.booleanFlag("flora.cuda.fuseRotation", null, true)).isTrue();
        assertThat(CudaBackend.booleanFlag("flora.cuda.fuseRotation", " False ", true)).isFalse();
        assertThat(CudaBackend.booleanFlag("flora.cuda.profile", "true", false)).isTrue();
        for (String bad : new String[] {"maybe", "0", "", "no"}) {
            assertThatThrownBy(() -> CudaBackend.booleanFlag("flora.cuda.fuseRotation", bad, true)).isInstanceOf(FloraException.class)
                    .hasMessage("-Dflora.cuda.fuseRotation takes true or false, not '" + bad + "'");
        }
    }

    @Test
    void kernelTunablesAreDefinesOrRefusedByName() {
        assertThat(KernelModule.defines(null)).isEmpty();
        assertThat(KernelModule.defines("GEMV_UNROLL=4, ATTN_V2_LOADS=8")).containsExactly("-DGEMV_UNROLL=4", "-DATTN_V2_LOADS=8");
        assertThat(KernelModule.defines("ATTN_LANE_SUMS=32,LORA_WIDE_LOADS=1")).as("session 21's untimed tunables")
                .containsExactly("-DATTN_LANE_SUMS=32", "-DLORA_WIDE_LOADS=1");
        assertThat(KernelModule.defines("LORA_WIDE_LOADS=0,RMS_PREFETCH=1")).as("switches take 0 and 1")
                .containsExactly("-DLORA_WIDE_LOADS=0", "-DRMS_PREFETCH=1");
        for (String bad : new String[] {"GEMV_ROWS=8", "GEMV_UNROLL=0", "GEMV_UNROLL", "GEMV_UNROLL=4=5", "ROTATE_BATCH=x", "LORA_WIDE_LOADS=2",
                "ATTN_MIN_BLOCKS=0"}) {
            assertThatThrownBy(() -> KernelModule.defines(bad)).isInstanceOf(FloraException.class).hasMessageContaining("not '" + bad + "'");
        }
        String source = KernelModule.source();
        for (String name : KernelModule.TUNABLES) {
            assertThat(source).as(name).contains("#ifndef " + name + " ").contains("#define " + name + " ");
        }
    }

    @Test
    void theKernelSourceShipsInTheJar() {
        assertThat(KernelModule.source()).contains("extern \"C\"").contains("__global__ void attention");
    }
}
