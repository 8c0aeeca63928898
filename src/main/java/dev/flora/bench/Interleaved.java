package dev.flora.bench;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Times several cases in turn, round after round (a, b, c, a, b, c, ...), so that a change in the
 * machine's load (other processes on a shared machine) falls on every case alike: each round
 * takes the median of a case's timed calls, and the result is the median of the rounds.
 */
final class Interleaved {
    private static final long ROUND_NANOS = 40_000_000L;
    private static final int MIN_CALLS = 3;
    private static final int MAX_CALLS = 25;

    private Interleaved() {
    }

    /** Median microseconds per call of every case, over {@code rounds} interleaved rounds. */
    static Map<String, Double> medians(Map<String, Runnable> cases, int rounds) {
        Map<String, List<Double>> perRound = new LinkedHashMap<>();
        for (int round = 0; round < rounds; round++) {
            for (var c : cases.entrySet()) {
                perRound.computeIfAbsent(c.getKey(), k -> new ArrayList<>()).add(roundMedian(c.getValue()));
            }
        }
        Map<String, Double> out = new LinkedHashMap<>();
        perRound.forEach((name, times) -> out.put(name, median(times)));
        return out;
    }

    /** One untimed call (caches, lazily made copies), then at least MIN_CALLS timed calls and ROUND_NANOS: their median. */
    private static double roundMedian(Runnable r) {
        r.run();
        List<Double> t = new ArrayList<>();
        long end = System.nanoTime() + ROUND_NANOS;
        while (t.size() < MIN_CALLS || (System.nanoTime() < end && t.size() < MAX_CALLS)) {
            long start = System.nanoTime();
            r.run();
            t.add((System.nanoTime() - start) / 1e3);
        }
        return median(t);
    }

    static double median(List<Double> values) {
        List<Double> sorted = new ArrayList<>(values);
        Collections.sort(sorted);
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
    }
}
