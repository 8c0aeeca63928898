package dev.flora.bench;

import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

class TurnsTest {
    @Test
    void everyCycleIsAPermutationAndEveryCaseFollowsEveryOther() {
        for (int n = 1; n <= 8; n++) {
            int[] first = new int[n];
            Set<Long> pairs = new HashSet<>();
            int cycles = 4 * n * n;
            for (int t = 0; t < cycles; t++) {
                Set<Integer> seen = new HashSet<>();
                for (int k = 0; k < n; k++) {
                    int c = Turns.of(n, t, k);
                    assertThat(c).isBetween(0, n - 1);
                    seen.add(c);
                    if (k > 0) {
                        pairs.add((long) Turns.of(n, t, k - 1) * n + c);
                    }
                }
                assertThat(seen).hasSize(n);
                first[Turns.of(n, t, 0)]++;
            }
            for (int c = 0; c < n; c++) {
                assertThat(first[c]).as("n %d case %d first", n, c).isEqualTo(cycles / n);
            }
            if (n >= 3) {
                // With more than one stride (n - 1 is one of them), each case follows at least two others.
                assertThat(pairs.size()).isGreaterThanOrEqualTo(2 * n);
            }
        }
    }
}
