package dev.flora.bench;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

class LinePlotTest {
    @Test
    void logTicksRunOneTwoFiveFromBelowTheLeastToAboveTheLargest() {
        assertThat(LinePlot.logTicks(2369, 8910)).containsExactly(2000, 5000, 10000);
        assertThat(LinePlot.logTicks(1000, 5000)).containsExactly(1000, 2000, 5000);
        assertThat(LinePlot.logTicks(3000, 3000)).containsExactly(2000, 5000);
        assertThat(LinePlot.logTicks(1000, 1000)).containsExactly(1000, 2000); // one value on a tick: still an axis of some height
        assertThat(LinePlot.logTicks(0.03, 40)).containsExactly(0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50);
    }

    @Test
    void theLegendGoesToTheCornerWithTheFewestPoints() {
        // A plot area of (0, 0)-(400, 300); points crowd the top left and the top right.
        List<int[]> points = List.of(new int[] {10, 10}, new int[] {20, 12}, new int[] {390, 8}, new int[] {380, 20}, new int[] {385, 290});
        assertThat(LinePlot.legendCorner(points, 100, 60, 0, 0, 400, 300)).containsExactly(6, 300 - 6 - 60);
        assertThat(LinePlot.legendCorner(List.of(), 100, 60, 0, 0, 400, 300)).containsExactly(6, 6);
    }

    @Test
    void drawsAPngOfThePanelsSize(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("plot.png");
        var series = Map.of("a", List.of(new double[] {1, 8000}, new double[] {64, 2300}), "b", List.of(new double[] {1, 7600}, new double[] {64, 7500}));
        LinePlot.write(file, "title", "rank", "tok/s", Map.of("panel", series));
        var image = ImageIO.read(file.toFile());
        assertThat(image.getWidth()).isEqualTo(520);
        assertThat(image.getHeight()).isEqualTo(440);
    }
}
