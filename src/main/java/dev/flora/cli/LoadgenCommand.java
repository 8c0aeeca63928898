package dev.flora.cli;

import dev.flora.FloraException;
import dev.flora.bench.LinePlot;
import dev.flora.loadgen.LoadGenerator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code flora loadgen}: drives an OpenAI-compatible server on loopback and reports what clients see. */
@Command(name = "loadgen", mixinStandardHelpOptions = true,
        description = {"Send streamed completions to a server on this machine: Poisson arrivals, log-normal prompt and output lengths, "
                + "each request's model (adapter) by a popularity; report throughput, TTFT, TPOT, ITL and latency at p50/p99.",
                "Loopback addresses only."})
final class LoadgenCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--url", defaultValue = "http://127.0.0.1:8000", paramLabel = "URL", description = "Server (default: ${DEFAULT-VALUE}).")
    URI url;

    @Option(names = "--rate", defaultValue = "4", paramLabel = "R", description = "Requests per second, Poisson; inf: all at once (default: ${DEFAULT-VALUE}).")
    String rate;

    @Option(names = "--requests", defaultValue = "64", paramLabel = "N", description = "Requests (default: ${DEFAULT-VALUE}).")
    int requests;

    @Option(names = "--adapters", split = ",", paramLabel = "NAME", description = "Models to spread requests over (default: every model the server lists).")
    List<String> adapters;

    @Option(names = "--popularity", defaultValue = "uniform", paramLabel = "P", description = "distinct, uniform, zipf or identical (default: ${DEFAULT-VALUE}).")
    String popularity;

    @Option(names = "--input-len", defaultValue = "50..2000", paramLabel = "LO..HI", description = "Prompt tokens (default: ${DEFAULT-VALUE}).")
    String inputLen;

    @Option(names = "--output-len", defaultValue = "16..256", paramLabel = "LO..HI", description = "Output tokens (default: ${DEFAULT-VALUE}).")
    String outputLen;

    @Option(names = "--vocab", defaultValue = "1000", paramLabel = "V", description = "Prompt token ids are drawn below this (default: ${DEFAULT-VALUE}).")
    int vocab;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "S", description = "Seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--json", paramLabel = "FILE", description = "Also write the report as JSON.")
    Path json;

    @Option(names = "--plot", paramLabel = "PNG", description = "Also plot the latency distributions.")
    Path plot;

    @Override
    public Integer call() throws IOException {
        LoadGenerator.Config config = config(url, rate, requests, adapters, popularity, inputLen, outputLen, vocab, seed);
        LoadGenerator.Report report = runAndReport(spec, config, plot);
        spec.commandLine().getOut().println(LoadGenerator.table(report));
        if (json != null) {
            JsonLines.JSON.writerWithDefaultPrettyPrinter().writeValue(json.toFile(), report);
        }
        return report.failed() == 0 ? 0 : 1;
    }

    static LoadGenerator.Config config(URI url, String rate, int requests, List<String> adapters, String popularity, String inputLen,
                                       String outputLen, int vocab, long seed) {
        LoadGenerator.checkLoopback(url);
        if (requests < 1 || vocab < 4) {
            throw new FloraException("--requests must be at least 1 and --vocab at least 4");
        }
        double r = rate.equals("inf") ? Double.POSITIVE_INFINITY : parseRate(rate);
        List<String> models = adapters != null && !adapters.isEmpty() ? adapters : listModels(url);
        LoadGenerator.Popularity p;
        try {
            p = LoadGenerator.Popularity.valueOf(popularity.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new FloraException("--popularity must be distinct, uniform, zipf or identical, not '" + popularity + "'");
        }
        int[] in = range(inputLen, "--input-len");
        int[] out = range(outputLen, "--output-len");
        return new LoadGenerator.Config(url, r, requests, models, p, in[0], in[1], out[0], out[1], vocab, seed, Duration.ofMinutes(10));
    }

    private static double parseRate(String rate) {
        try {
            double r = Double.parseDouble(rate);
            if (!(r > 0)) {
                throw new NumberFormatException();
            }
            return r;
        } catch (NumberFormatException e) {
            throw new FloraException("--rate must be a positive number or inf, not '" + rate + "'");
        }
    }

    static int[] range(String text, String option) {
        String[] parts = text.split("\\.\\.");
        try {
            int lo = Integer.parseInt(parts[0].trim());
            int hi = parts.length > 1 ? Integer.parseInt(parts[1].trim()) : lo;
            if (parts.length > 2 || lo < 1 || hi < lo) {
                throw new NumberFormatException();
            }
            return new int[] {lo, hi};
        } catch (NumberFormatException e) {
            throw new FloraException(option + " must be N or LO..HI with 1 <= LO <= HI, not '" + text + "'");
        }
    }

    private static List<String> listModels(URI url) {
        try {
            var http = java.net.http.HttpClient.newHttpClient();
            var response = http.send(java.net.http.HttpRequest.newBuilder(url.resolve("/v1/models")).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString());
            List<String> ids = new ArrayList<>();
            JsonLines.JSON.readTree(response.body()).path("data").forEach(m -> ids.add(m.get("id").asText()));
            if (ids.isEmpty()) {
                throw new FloraException(url + " lists no models");
            }
            return ids;
        } catch (IOException e) {
            throw new FloraException("cannot reach " + url + " (" + e.getMessage() + "); is flora serve running?");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new FloraException("interrupted");
        }
    }

    static LoadGenerator.Report runAndReport(CommandSpec spec, LoadGenerator.Config config, Path plot) throws IOException {
        long start = System.nanoTime();
        List<LoadGenerator.Sample> samples;
        try (Progress progress = new Progress(spec.commandLine().getErr(), "requests", config.requests())) {
            samples = LoadGenerator.run(config, n -> {
                synchronized (progress) {
                    progress.advance(n);
                }
            });
        }
        LoadGenerator.Report report = LoadGenerator.report(config, samples, (System.nanoTime() - start) / 1e9);
        if (plot != null) {
            Map<String, List<double[]>> series = new LinkedHashMap<>();
            series.put("TTFT", sorted(samples.stream().filter(s -> s.status() == 200).map(LoadGenerator.Sample::ttft).toList()));
            series.put("e2e", sorted(samples.stream().filter(s -> s.status() == 200).map(LoadGenerator.Sample::e2e).toList()));
            series.put("ITL", sorted(samples.stream().filter(s -> s.status() == 200).flatMap(s -> s.itl().stream()).toList()));
            LinePlot.writeOrSay(plot, "Latency distributions (" + report.popularity() + ", " + report.adapters() + " models)", "rank", "s",
                    Map.of("sorted latencies", series), spec.commandLine().getErr());
        }
        return report;
    }

    private static List<double[]> sorted(List<Double> values) {
        List<Double> v = values.stream().filter(d -> d > 0 && Double.isFinite(d)).sorted().toList();
        List<double[]> out = new ArrayList<>();
        for (int i = 0; i < v.size(); i++) {
            out.add(new double[] {i + 1, v.get(i)});
        }
        return out;
    }
}
