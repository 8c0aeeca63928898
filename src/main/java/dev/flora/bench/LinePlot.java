package dev.flora.bench;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** A small PNG line chart (log-log axes), one panel per series group, drawn headless with Java2D. */
public final class LinePlot {
    private static final Color[] COLORS = {Color.BLACK, new Color(0xd62728), new Color(0xff7f0e), new Color(0x1f77b4),
            new Color(0x2ca02c), new Color(0x9467bd), new Color(0x8c564b)};

    private LinePlot() {
    }

    /**
     * {@link #write}, or one line on {@code err} saying why the plot is not drawn where the Java
     * runtime has no fonts (a GPU machine's bare runtime): the table or JSON lines a command printed
     * stand, and the plot can be drawn elsewhere from them. Whether it was drawn.
     */
    public static boolean writeOrSay(Path file, String title, String xLabel, String yLabel, Map<String, Map<String, List<double[]>>> panels,
                                     java.io.PrintWriter err) throws IOException {
        try {
            write(file, title, xLabel, yLabel, panels);
        } catch (RuntimeException | Error e) {
            err.println("plot: not drawn, this Java runtime finds no fonts (" + e.getMessage() + ")");
            return false;
        }
        err.println("plot: " + file.toAbsolutePath());
        return true;
    }

    /** @param panels panel title → series name → points (x, y), drawn on log2 x and log10 y axes */
    public static void write(Path file, String title, String xLabel, String yLabel, Map<String, Map<String, List<double[]>>> panels) throws IOException {
        System.setProperty("java.awt.headless", "true");
        int panelW = 520;
        int panelH = 380;
        int width = panelW * panels.size();
        int height = panelH + 60;
        BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, width, height);
        g.setColor(Color.BLACK);
        fitFont(g, Font.BOLD, 16, title, width - 30); // a model named by its results file makes a long title
        g.drawString(title, 20, 24);
        int p = 0;
        for (var panel : panels.entrySet()) {
            drawPanel(g, p * panelW, 40, panelW, panelH, panel.getKey(), xLabel, yLabel, panel.getValue());
            p++;
        }
        g.dispose();
        ImageIO.write(image, "png", file.toFile());
    }

    /** Sets a sans-serif font of this style at {@code size} points, or smaller (down to 8) where the text would pass {@code width}. */
    private static void fitFont(Graphics2D g, int style, int size, String text, int width) {
        g.setFont(new Font(Font.SANS_SERIF, style, size));
        while (size > 8 && g.getFontMetrics().stringWidth(text) > width) {
            g.setFont(new Font(Font.SANS_SERIF, style, --size));
        }
    }

    private static void drawPanel(Graphics2D g, int x0, int y0, int w, int h, String title, String xLabel, String yLabel,
                                  Map<String, List<double[]>> series) {
        int left = x0 + 70;
        int right = x0 + w - 20;
        int top = y0 + 30;
        int bottom = y0 + h - 50;
        double minX = Double.MAX_VALUE;
        double maxX = -Double.MAX_VALUE;
        double minY = Double.MAX_VALUE;
        double maxY = -Double.MAX_VALUE;
        for (List<double[]> pts : series.values()) {
            for (double[] pt : pts) {
                minX = Math.min(minX, log2(pt[0]));
                maxX = Math.max(maxX, log2(pt[0]));
                minY = Math.min(minY, Math.log10(pt[1]));
                maxY = Math.max(maxY, Math.log10(pt[1]));
            }
        }
        double[] yTicks = logTicks(Math.pow(10, minY), Math.pow(10, maxY));
        minY = Math.log10(yTicks[0]);
        maxY = Math.log10(yTicks[yTicks.length - 1]);
        if (maxX == minX) {
            maxX = minX + 1;
        }
        g.setColor(Color.BLACK);
        fitFont(g, Font.PLAIN, 12, title, x0 + w - 10 - left);
        g.drawString(title, left, y0 + 18);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        g.drawRect(left, top, right - left, bottom - top);
        for (double lx = Math.ceil(minX); lx <= maxX; lx++) {
            int px = (int) (left + (lx - minX) / (maxX - minX) * (right - left));
            g.drawLine(px, bottom, px, bottom + 4);
            g.drawString(String.format(Locale.ROOT, "%.0f", Math.pow(2, lx)), px - 6, bottom + 16);
        }
        for (double tick : yTicks) {
            int py = (int) (bottom - (Math.log10(tick) - minY) / (maxY - minY) * (bottom - top));
            g.setColor(new Color(0xdddddd));
            g.drawLine(left, py, right, py);
            g.setColor(Color.BLACK);
            String label = tickLabel(tick);
            g.drawString(label, left - 4 - g.getFontMetrics().stringWidth(label), py + 4);
        }
        g.drawString(xLabel, (left + right) / 2 - 20, bottom + 34);
        g.drawString(yLabel, x0 + 4, top - 8);
        List<int[]> drawn = new ArrayList<>();
        int c = 0;
        for (var s : series.entrySet()) {
            g.setColor(COLORS[c++ % COLORS.length]);
            g.setStroke(new BasicStroke(2f));
            int[] xs = new int[s.getValue().size()];
            int[] ys = new int[xs.length];
            for (int i = 0; i < xs.length; i++) {
                double[] pt = s.getValue().get(i);
                xs[i] = (int) (left + (log2(pt[0]) - minX) / (maxX - minX) * (right - left));
                ys[i] = (int) (bottom - (Math.log10(pt[1]) - minY) / (maxY - minY) * (bottom - top));
                g.fillOval(xs[i] - 3, ys[i] - 3, 6, 6);
                drawn.add(new int[] {xs[i], ys[i]});
            }
            g.drawPolyline(xs, ys, xs.length);
        }
        drawLegend(g, series.keySet().stream().toList(), drawn, left, top, right, bottom);
    }

    /**
     * The legend on a white box, drawn after the lines so no line crosses its names, in the corner of
     * the plot that covers the fewest points.
     */
    private static void drawLegend(Graphics2D g, List<String> names, List<int[]> points, int left, int top, int right, int bottom) {
        int boxW = 16;
        for (String name : names) {
            boxW = Math.max(boxW, g.getFontMetrics().stringWidth(name) + 16);
        }
        int boxH = 14 * names.size() + 6;
        int[] corner = legendCorner(points, boxW, boxH, left, top, right, bottom);
        g.setColor(Color.WHITE);
        g.fillRect(corner[0], corner[1], boxW, boxH);
        g.setColor(Color.GRAY);
        g.setStroke(new BasicStroke(1f));
        g.drawRect(corner[0], corner[1], boxW, boxH);
        for (int i = 0; i < names.size(); i++) {
            g.setColor(COLORS[i % COLORS.length]);
            g.drawString(names.get(i), corner[0] + 8, corner[1] + 15 + 14 * i);
        }
    }

    /** The top-left pixel of a w × h box in the corner of the plot area holding the fewest of {@code points}: top left, top right, bottom left, bottom right, the first of a tie. */
    static int[] legendCorner(List<int[]> points, int w, int h, int left, int top, int right, int bottom) {
        int[][] corners = {{left + 6, top + 6}, {right - 6 - w, top + 6}, {left + 6, bottom - 6 - h}, {right - 6 - w, bottom - 6 - h}};
        int[] best = corners[0];
        int fewest = Integer.MAX_VALUE;
        for (int[] corner : corners) {
            int inside = 0;
            for (int[] p : points) {
                if (p[0] >= corner[0] - 4 && p[0] <= corner[0] + w + 4 && p[1] >= corner[1] - 4 && p[1] <= corner[1] + h + 4) {
                    inside++;
                }
            }
            if (inside < fewest) {
                fewest = inside;
                best = corner;
            }
        }
        return best;
    }

    private static final double[] ONE_TWO_FIVE = {1, 2, 5};

    /**
     * Log-axis ticks at 1, 2 and 5 times the powers of ten, from the largest at or below {@code min}
     * to the smallest at or above {@code max}, at least two, so a range inside one decade (or a single
     * value) still spans the plot.
     */
    static double[] logTicks(double min, double max) {
        List<Double> ticks = new ArrayList<>();
        for (int k = 3 * (int) Math.floor(Math.log10(min)); ticks.size() < 2 || ticks.getLast() < max * (1 - 1e-12); k++) {
            double v = ONE_TWO_FIVE[Math.floorMod(k, 3)] * Math.pow(10, Math.floorDiv(k, 3));
            if (v <= min * (1 + 1e-12)) {
                ticks.clear(); // a tick at or below the least value starts the axis afresh
            }
            ticks.add(v);
        }
        return ticks.stream().mapToDouble(Double::doubleValue).toArray();
    }

    private static String tickLabel(double v) {
        return v >= 1 ? String.format(Locale.ROOT, "%.0f", v) : String.format(Locale.ROOT, "%.3g", v);
    }

    private static double log2(double v) {
        return Math.log(v) / Math.log(2);
    }
}
