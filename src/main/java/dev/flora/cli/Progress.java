package dev.flora.cli;

import java.io.PrintWriter;
import java.util.Locale;

/**
 * A progress bar on stderr for long work: redrawn in place on a terminal, a few plain lines
 * otherwise (logs and CI), silent for work too short to matter.
 */
final class Progress implements AutoCloseable, java.util.function.LongConsumer {
    private final PrintWriter err;
    private final String label;
    private final long total;
    private final boolean terminal;
    private final long start = System.nanoTime();
    private long done;
    private long lastDraw;
    private int lastDecile = -1;

    Progress(PrintWriter err, String label, long total) {
        this.err = err;
        this.label = label;
        this.total = Math.max(1, total);
        this.terminal = System.console() != null;
    }

    @Override
    public void accept(long n) {
        advance(n);
    }

    void advance(long n) {
        done = Math.min(total, done + n);
        long now = System.nanoTime();
        if (now - start < 1_000_000_000L) {
            return; // short work stays quiet
        }
        if (terminal) {
            if (now - lastDraw > 100_000_000L || done == total) {
                lastDraw = now;
                draw("\r");
            }
        } else {
            int decile = (int) (done * 10 / total);
            if (decile != lastDecile) {
                lastDecile = decile;
                draw("");
                err.println();
            }
        }
    }

    private void draw(String prefix) {
        int width = 30;
        int filled = (int) (done * width / total);
        double seconds = (System.nanoTime() - start) / 1e9;
        err.print(String.format(Locale.ROOT, "%s%s [%s%s] %d/%d %.1fs", prefix, label,
                "#".repeat(filled), " ".repeat(width - filled), done, total, seconds));
        err.flush();
    }

    @Override
    public void close() {
        if (terminal && lastDraw != 0) {
            err.println();
        }
    }
}
