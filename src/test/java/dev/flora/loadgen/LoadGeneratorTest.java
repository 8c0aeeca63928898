package dev.flora.loadgen;

import dev.flora.FloraException;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.util.List;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class LoadGeneratorTest {
    @Test
    void onlyLoopbackIsATarget() {
        LoadGenerator.checkLoopback(URI.create("http://127.0.0.1:8000"));
        LoadGenerator.checkLoopback(URI.create("http://localhost:8000"));
        LoadGenerator.checkLoopback(URI.create("http://[::1]:8000"));
        assertThatThrownBy(() -> LoadGenerator.checkLoopback(URI.create("http://10.1.2.3:8000"))).isInstanceOf(FloraException.class)
                .hasMessageContaining("loopback");
        assertThatThrownBy(() -> LoadGenerator.checkLoopback(URI.create("http://192.168.0.1:80"))).isInstanceOf(FloraException.class);
    }

    @Test
    void lengthsStayWithinBoundsAroundTheGeometricMean() {
        SplittableRandom r = new SplittableRandom(3);
        int below = 0;
        for (int i = 0; i < 10_000; i++) {
            int n = LoadGenerator.logNormal(r, 50, 2000);
            assertThat(n).isBetween(50, 2000);
            if (n < 316) {
                below++;
            }
        }
        assertThat(below / 10_000.0).isBetween(0.45, 0.55); // median at sqrt(50 * 2000) = 316
    }

    @Test
    void zipfFavoursTheFirstRanks() {
        LoadGenerator.ZipfSampler z = new LoadGenerator.ZipfSampler(32, 1.1);
        SplittableRandom r = new SplittableRandom(4);
        int[] counts = new int[32];
        for (int i = 0; i < 20_000; i++) {
            counts[z.sample(r)]++;
        }
        assertThat(counts[0]).isGreaterThan(counts[1]).isGreaterThan(counts[10] * 5);
    }

    @Test
    void percentilesAndTheReport() {
        assertThat(LoadGenerator.percentile(List.of(5.0, 1.0, 3.0, 2.0, 4.0), 50)).isEqualTo(3.0);
        assertThat(LoadGenerator.percentile(List.of(5.0, 1.0, 3.0, 2.0, 4.0), 99)).isEqualTo(5.0);
        var config = new LoadGenerator.Config(URI.create("http://127.0.0.1:1"), 1, 2, List.of("m"), LoadGenerator.Popularity.IDENTICAL,
                1, 1, 1, 1, 10, 1, java.time.Duration.ofSeconds(1));
        var report = LoadGenerator.report(config, List.of(
                new LoadGenerator.Sample("m", 10, 4, 0.1, 0.4, List.of(0.1, 0.1, 0.1), 200),
                new LoadGenerator.Sample("m", 10, 0, Double.NaN, 0.1, List.of(), 500)), 2.0);
        assertThat(report.failed()).isEqualTo(1);
        assertThat(report.throughput()).isEqualTo(7.0);
        assertThat(report.outputThroughput()).isEqualTo(2.0);
        assertThat(report.tpotP50()).isCloseTo(0.1, org.assertj.core.api.Assertions.within(1e-12));
        assertThat(report.latencyPerOutputToken()).isEqualTo(0.1);
    }
}
