package dev.flora.bench;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Times several cases call by call in turn (a, b, c, b, c, a, ...), so that whatever slows the
 * machine down for a while (other processes on a shared machine, the host) falls on every case
 * alike. The order changes every cycle ({@link Turns}), so that no case always follows the same
 * one and inherits what it left in the caches. A round is at least MIN_CYCLES
 * cycles and ROUND_NANOS; each case's round time is the median of its calls in the round, and
 * its result the median of the rounds.
 */
final class Interleaved {
    private static final long ROUND_NANOS = 1_000_000_000L;
    private static final int MIN_CYCLES = 5;
    private static final int MAX_CYCLES = 200;

    private Interleaved() {
    }

    /** One case: runs once and says how many microseconds that took. */
    @FunctionalInterface
    interface Case {
        double micros();
    }

    /** A case timed by the wall clock. */
    static Case wall(Runnable call) {
        return () -> {
            long start = System.nanoTime();
            call.run();
            return (System.nanoTime() - start) / 1e3;
        };
    }

    /** Median microseconds per call of every case, over {@code rounds} interleaved rounds. */
    static Map<String, Double> medians(Map<String, Case> cases, int rounds) {
        List<String> names = new ArrayList<>(cases.keySet());
        int n = names.size();
        for (String name : names) {
            cases.get(name).micros(); // untimed: caches, lazily made copies
        }
        Map<String, List<Double>> perRound = new LinkedHashMap<>();
        names.forEach(k -> perRound.put(k, new ArrayList<>()));
        int cycle = 0;
        for (int round = 0; round < rounds; round++) {
            Map<String, List<Double>> calls = new LinkedHashMap<>();
            names.forEach(k -> calls.put(k, new ArrayList<>()));
            long end = System.nanoTime() + ROUND_NANOS;
            for (int c = 0; c < MIN_CYCLES || (System.nanoTime() < end && c < MAX_CYCLES); c++, cycle++) {
                for (int i = 0; i < n; i++) {
                    String name = names.get(Turns.of(n, cycle, i));
                    calls.get(name).add(cases.get(name).micros());
                }
            }
            calls.forEach((name, t) -> perRound.get(name).add(median(t)));
        }
        Map<String, Double> out = new LinkedHashMap<>();
        perRound.forEach((name, times) -> out.put(name, median(times)));
        return out;
    }

    /** Runs the cases in turn, untimed, for at least this long (and once each at least): the JIT's last compilations. */
    static void warmUp(Map<String, Case> cases, long nanos) {
        long end = System.nanoTime() + nanos;
        do {
            cases.values().forEach(Case::micros);
        } while (System.nanoTime() < end);
    }

    static double median(List<Double> values) {
        List<Double> sorted = new ArrayList<>(values);
        Collections.sort(sorted);
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
    }
}
