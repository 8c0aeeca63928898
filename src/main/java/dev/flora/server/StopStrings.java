package dev.flora.server;

import java.util.List;

/**
 * Generated text checked against stop strings as it grows, as vLLM does: the text ends before the
 * first stop string (or after it, with include_stop_str_in_output), and text that could still turn
 * into a stop string is held back, so a streamed response never shows what the complete one cuts.
 * A stop string can span several tokens.
 */
final class StopStrings {
    private final List<String> stops;
    private final boolean include;
    private final StringBuilder pending = new StringBuilder();
    private String matched;

    StopStrings(List<String> stops, boolean include) {
        this.stops = stops;
        this.include = include;
    }

    boolean stopped() {
        return matched != null;
    }

    /** The stop string that ended the text, or null. */
    String matched() {
        return matched;
    }

    /** Adds newly decoded text; returns the text that is safe to show now. */
    String add(String piece) {
        if (matched != null) {
            return "";
        }
        pending.append(piece);
        int at = -1;
        String first = null;
        for (String stop : stops) {
            int i = pending.indexOf(stop);
            if (i >= 0 && (at < 0 || i < at)) {
                at = i;
                first = stop;
            }
        }
        if (first != null) {
            matched = first;
            String out = pending.substring(0, include ? at + first.length() : at);
            pending.setLength(0);
            return out;
        }
        int hold = 0;
        for (String stop : stops) {
            for (int k = Math.min(stop.length() - 1, pending.length()); k > hold; k--) {
                if (pending.substring(pending.length() - k).equals(stop.substring(0, k))) {
                    hold = k;
                    break;
                }
            }
        }
        String out = pending.substring(0, pending.length() - hold);
        pending.delete(0, pending.length() - hold);
        return out;
    }

    /** The text held back when generation ended without a stop string. */
    String finish() {
        if (matched != null) {
            return "";
        }
        String out = pending.toString();
        pending.setLength(0);
        return out;
    }
}
