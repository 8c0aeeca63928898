package dev.flora.cuda;

import org.junit.jupiter.api.Test;

import java.util.stream.IntStream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The split of a gathered LoRA call between cuBLAS runs and the kernels (no GPU needed). */
class LoraRunsTest {
    private static int[] range(int from, int to) {
        return IntStream.range(from, to).toArray();
    }

    private static int[] concat(int[]... parts) {
        return java.util.Arrays.stream(parts).flatMapToInt(java.util.Arrays::stream).toArray();
    }

    @Test
    void runsOfConsecutiveRowsGoToCublasAndTheRestStays() {
        int[][] rows = {
                concat(range(0, 64), range(70, 75), range(100, 300)), // two runs around a short stretch
                range(300, 363),                                      // one row short of a run
                new int[] {400, 402, 404},                            // decode-like: scattered rows
                range(500, 700),                                      // a run, but its group has a bias
                concat(range(800, 900), new int[] {5000})};           // a run and a lone row after it
        LoraRuns runs = LoraRuns.of(rows, new int[] {64, 64, 64, Integer.MAX_VALUE, 64});
        assertThat(runs.group()).containsExactly(0, 0, 4);
        assertThat(runs.first()).containsExactly(0, 100, 800);
        assertThat(runs.length()).containsExactly(64, 200, 100);
        assertThat(runs.tokens()).isEqualTo(364);
        assertThat(runs.rest()[0]).containsExactly(range(70, 75));
        assertThat(runs.rest()[1]).containsExactly(rows[1]);
        assertThat(runs.rest()[2]).containsExactly(400, 402, 404);
        assertThat(runs.rest()[3]).as("not eligible: every row stays").containsExactly(rows[3]);
        assertThat(runs.rest()[4]).containsExactly(5000);
    }

    @Test
    void everyRowEndsInExactlyOnePlace() {
        java.util.Random random = new java.util.Random(13);
        for (int trial = 0; trial < 200; trial++) {
            int groups = 1 + random.nextInt(5);
            int[][] rows = new int[groups][];
            int[] minRun = new int[groups];
            int next = 0;
            for (int g = 0; g < groups; g++) {
                java.util.List<Integer> mine = new java.util.ArrayList<>();
                for (int stretch = random.nextInt(4); stretch >= 0; stretch--) {
                    int len = 1 + random.nextInt(100);
                    for (int i = 0; i < len; i++) {
                        mine.add(next + i);
                    }
                    next += len + 1 + random.nextInt(3); // a gap: stretches never join
                }
                rows[g] = mine.stream().mapToInt(Integer::intValue).toArray();
                minRun[g] = random.nextBoolean() ? 1 + random.nextInt(80) : Integer.MAX_VALUE; // eligible, or never
            }
            int chunk = random.nextBoolean() ? 0 : 1 + random.nextInt(40);
            LoraRuns runs = LoraRuns.of(rows, minRun, chunk);
            for (int g = 0; g < groups; g++) {
                java.util.List<Integer> covered = new java.util.ArrayList<>();
                for (int i = 0; i < runs.count(); i++) {
                    if (runs.group()[i] == g) {
                        assertThat(runs.length()[i]).isGreaterThanOrEqualTo(chunk > 0 ? chunk : minRun[g]);
                        if (chunk > 0) {
                            assertThat(runs.length()[i]).isEqualTo(chunk);
                        }
                        for (int k = 0; k < runs.length()[i]; k++) {
                            covered.add(runs.first()[i] + k);
                        }
                    }
                }
                for (int r : runs.rest()[g]) {
                    covered.add(r);
                }
                java.util.Collections.sort(covered);
                assertThat(covered).as("group %d's rows, each once", g).containsExactlyElementsOf(
                        java.util.Arrays.stream(rows[g]).boxed().toList());
            }
        }
    }

    /** Runs cut into chunks of one length; a run's last rows short of a chunk, and runs shorter than one, stay with the kernels. */
    @Test
    void runsCutIntoChunksLeaveTheirShortEndsToTheKernels() {
        int[][] rows = {concat(range(0, 300), range(400, 450)), range(500, 640)};
        LoraRuns runs = LoraRuns.of(rows, new int[] {128, 128}, 128);
        assertThat(runs.group()).containsExactly(0, 0, 1);
        assertThat(runs.first()).containsExactly(0, 128, 500);
        assertThat(runs.length()).containsExactly(128, 128, 128);
        assertThat(runs.rest()[0]).as("300's last 44 rows; 50 rows, short of the minimum").containsExactly(concat(range(256, 300), range(400, 450)));
        assertThat(runs.rest()[1]).containsExactly(range(628, 640));
        assertThat(LoraRuns.of(rows, new int[] {64, 64}, 256).group()).as("one chunk of 256 in 300 rows").containsExactly(0);
    }

    @Test
    void fewRunsStayWholeAndManyGoInChunks() {
        int[][] rows = {concat(range(0, 300), range(400, 450)), range(500, 640)};
        LoraRuns chunks = LoraRuns.of(rows, new int[] {128, 128}, 128, 2);
        assertThat(chunks.length()).as("two runs, chunks from two").containsExactly(128, 128, 128);
        assertThat(chunks.chunked()).isTrue();
        LoraRuns whole = LoraRuns.of(rows, new int[] {128, 128}, 128, 3);
        assertThat(whole.length()).as("two runs, chunks from three: whole").containsExactly(300, 140);
        assertThat(whole.chunked()).as("whole runs take a run's own products, not the batched ones").isFalse();
        assertThat(whole.rest()[0]).containsExactly(range(400, 450));
        assertThat(whole.rest()[1]).isEmpty();
        assertThat(LoraRuns.of(rows, new int[] {128, 128}, 0, 1).length()).as("chunk 0: whole").containsExactly(300, 140);
        assertThatThrownBy(() -> LoraRuns.of(rows, new int[] {128, 128}, 128, 0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void theChunksShrinkSplitsTheWidthInSlicesOfWholeEightColumns() {
        assertThat(CudaLoraRuns.chunkSplit(1, 4096)).isEqualTo(1);
        assertThat(CudaLoraRuns.chunkSplit(8, 4096)).isEqualTo(8);
        assertThat(CudaLoraRuns.chunkSplit(8, 1024)).isEqualTo(8);
        assertThat(CudaLoraRuns.chunkSplit(4, 1024)).isEqualTo(4);
        assertThat(CudaLoraRuns.chunkSplit(8, 768)).as("768 = 8 · 96: 8 slices of 96").isEqualTo(8);
        assertThat(CudaLoraRuns.chunkSplit(5, 768)).as("768 is no multiple of 40: 4 slices of 192").isEqualTo(4);
        assertThat(CudaLoraRuns.chunkSplit(8, 776)).as("776 = 8 · 97: no slices of whole 8 columns").isEqualTo(1);
        assertThat(CudaLoraRuns.chunkSplit(8, 2500)).isEqualTo(1);
        assertThat(CudaLoraRuns.chunkSplit(16, 6144)).isEqualTo(16);
    }

    @Test
    void aRunNeedsARow() {
        assertThatThrownBy(() -> LoraRuns.of(new int[][] {{1}}, new int[] {0})).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> LoraRuns.of(new int[][] {{1}}, new int[] {1}, -1)).isInstanceOf(IllegalArgumentException.class);
    }
}
