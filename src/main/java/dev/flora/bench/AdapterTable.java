package dev.flora.bench;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.LinkedHashMap;

/**
 * The text table of {@link AdapterBench} points: microseconds per strategy, the automatic choice
 * beside the pinned ones with its ratio to the best of its kind (auto/best, timed) and the ratio of
 * the pinned strategy it picked to the best (pick/best: the choice alone, without the noise
 * between two timings of the same code), and fLoRA against LoRA-gathered.
 */
public final class AdapterTable {
    private AdapterTable() {
    }

    public static void print(PrintWriter out, List<AdapterBench.Point> points, boolean auto) {
        List<String> columns = AdapterBench.columns(auto);
        out.printf(Locale.ROOT, "%7s %5s", "tokens", "rank");
        for (String c : columns) {
            out.printf(Locale.ROOT, " %11s", c);
            if (c.equals(AdapterBench.AUTO_FLORA) || c.equals(AdapterBench.AUTO_LORA)) {
                out.printf(Locale.ROOT, " %9s %9s", "auto/best", "pick/best");
            }
        }
        out.printf(Locale.ROOT, " %14s", "flora/gathered");
        if (auto) {
            out.print("   auto picks (fLoRA / LoRA)");
        }
        out.println();
        double worstFlora = 0;
        double worstLora = 0;
        for (var key : keys(points)) {
            Map<String, AdapterBench.Point> row = new LinkedHashMap<>();
            points.stream().filter(p -> p.tokens() == key[0] && p.rank() == key[1]).forEach(p -> row.put(p.strategy(), p));
            out.printf(Locale.ROOT, "%7d %5d", key[0], key[1]);
            for (String c : columns) {
                out.printf(Locale.ROOT, " %11.1f", micros(row, c));
                if (c.equals(AdapterBench.AUTO_FLORA)) {
                    double ratio = micros(row, c) / best(row, AdapterBench.FLORA);
                    worstFlora = Math.max(worstFlora, ratio);
                    out.printf(Locale.ROOT, " %9.3f %9.3f", ratio, micros(row, pickedColumn(row.get(c).picked(), "exact-flora")) / best(row, AdapterBench.FLORA));
                } else if (c.equals(AdapterBench.AUTO_LORA)) {
                    double ratio = micros(row, c) / best(row, AdapterBench.LORA);
                    worstLora = Math.max(worstLora, ratio);
                    out.printf(Locale.ROOT, " %9.3f %9.3f", ratio, micros(row, pickedColumn(row.get(c).picked(), "exact-lora")) / best(row, AdapterBench.LORA));
                }
            }
            out.printf(Locale.ROOT, " %14.3f", micros(row, "flora") / micros(row, "gathered"));
            if (auto) {
                out.printf(Locale.ROOT, "   %s / %s", row.get(AdapterBench.AUTO_FLORA).picked(), row.get(AdapterBench.AUTO_LORA).picked());
            }
            out.println();
        }
        if (auto) {
            out.printf(Locale.ROOT, "worst auto/best: fLoRA %.3f, LoRA %.3f%n", worstFlora, worstLora);
        }
    }

    /** Distinct (tokens, rank) in the order measured. */
    private static List<int[]> keys(List<AdapterBench.Point> points) {
        Map<String, int[]> keys = new LinkedHashMap<>();
        for (var p : points) {
            keys.putIfAbsent(p.tokens() + "/" + p.rank(), new int[] {p.tokens(), p.rank()});
        }
        return List.copyOf(keys.values());
    }

    /** The pinned column of the strategy AUTO picked (the exact strategy's column is the kind's own). */
    private static String pickedColumn(String picked, String exactColumn) {
        return picked.equals("exact") ? exactColumn : picked;
    }

    private static double micros(Map<String, AdapterBench.Point> row, String strategy) {
        AdapterBench.Point p = row.get(strategy);
        return p == null ? Double.NaN : p.micros();
    }

    private static double best(Map<String, AdapterBench.Point> row, List<String> strategies) {
        return strategies.stream().mapToDouble(s -> micros(row, s)).min().orElse(Double.NaN);
    }
}
