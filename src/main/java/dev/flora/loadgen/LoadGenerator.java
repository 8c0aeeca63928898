package dev.flora.loadgen;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;

import java.io.IOException;
import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.IntConsumer;
import java.util.stream.Stream;

/**
 * A load generator for OpenAI-compatible servers, as the field measures them: Poisson arrivals at
 * a rate, prompt and output lengths drawn from log-normal (ShareGPT-like) distributions within
 * bounds, each request's adapter by one of Punica's popularities, streamed completions timed per
 * chunk. Loopback addresses only.
 */
public final class LoadGenerator {
    private static final ObjectMapper JSON = new ObjectMapper();

    public enum Popularity { DISTINCT, UNIFORM, ZIPF, IDENTICAL }

    /**
     * @param rate requests per second (Poisson); infinite sends all at once
     * @param vocab token ids are drawn from [3, vocab)
     */
    public record Config(URI url, double rate, int requests, List<String> adapters, Popularity popularity, int minInput, int maxInput,
                         int minOutput, int maxOutput, int vocab, long seed, Duration timeout) {
    }

    /** One request's timings (seconds from its send) and sizes. */
    public record Sample(String model, int promptTokens, int outputTokens, double ttft, double e2e, List<Double> itl, int status) {
    }

    /**
     * Percentiles and rates over the run, with DESIGN.md §5's definitions: throughput = (prompt +
     * output tokens) / wall time; latency per output token = mean of request latency / output tokens.
     */
    public record Report(int requests, int failed, double seconds, double throughput, double outputThroughput,
                         double ttftP50, double ttftP99, double tpotP50, double tpotP99, double itlP50, double itlP99,
                         double e2eP50, double e2eP99, double latencyPerOutputToken, String popularity, int adapters, double rate) {
    }

    public static void checkLoopback(URI url) {
        try {
            InetAddress address = InetAddress.getByName(url.getHost());
            if (!address.isLoopbackAddress()) {
                throw new FloraException("loadgen sends traffic to loopback addresses only (127.0.0.0/8, localhost, ::1), not " + url.getHost());
            }
        } catch (IOException e) {
            throw new FloraException("cannot resolve " + url.getHost() + " (" + e.getMessage() + ")");
        }
    }

    public static List<Sample> run(Config config, IntConsumer progress) {
        checkLoopback(config.url());
        SplittableRandom random = new SplittableRandom(config.seed());
        // Adapters drawn from their own stream, so that a seed gives the same arrivals and lengths whatever the popularity.
        SplittableRandom choices = new SplittableRandom(config.seed() ^ 0x5DEECE66DL);
        // HTTP/1.1 explicitly: the JDK client otherwise asks to upgrade to h2c, which Flora's server does not speak.
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
        List<Future<Sample>> futures = new ArrayList<>();
        ZipfSampler zipf = new ZipfSampler(Math.max(1, config.adapters().size()), 1.1);
        long start = System.nanoTime();
        double at = 0;
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int i = 0; i < config.requests(); i++) {
                if (Double.isFinite(config.rate())) {
                    at += -Math.log(1 - random.nextDouble()) / config.rate();
                    long due = start + (long) (at * 1e9);
                    for (long wait = due - System.nanoTime(); wait > 0; wait = due - System.nanoTime()) {
                        java.util.concurrent.locks.LockSupport.parkNanos(wait); // the Poisson arrival time of the next request
                    }
                }
                int input = logNormal(random, config.minInput(), config.maxInput());
                int output = logNormal(random, config.minOutput(), config.maxOutput());
                int[] prompt = random.ints(input, 3, config.vocab()).toArray();
                String model = adapterFor(config, i, choices, zipf);
                futures.add(pool.submit(() -> {
                    Sample s = send(http, config, model, prompt, output);
                    progress.accept(1);
                    return s;
                }));
            }
            List<Sample> samples = new ArrayList<>();
            for (Future<Sample> f : futures) {
                try {
                    samples.add(f.get());
                } catch (Exception e) {
                    samples.add(new Sample("?", 0, 0, Double.NaN, Double.NaN, List.of(), -1));
                }
            }
            return samples;
        }
    }

    private static String adapterFor(Config config, int i, SplittableRandom random, ZipfSampler zipf) {
        List<String> adapters = config.adapters();
        return switch (config.popularity()) {
            case DISTINCT -> adapters.get(i % adapters.size());
            case UNIFORM -> adapters.get(random.nextInt(adapters.size()));
            case ZIPF -> adapters.get(zipf.sample(random));
            case IDENTICAL -> adapters.getFirst();
        };
    }

    /** A log-normal draw between lo and hi: median at their geometric mean, about 2 sigma at the bounds. */
    public static int logNormal(SplittableRandom random, int lo, int hi) {
        if (lo >= hi) {
            return lo;
        }
        double mu = (Math.log(lo) + Math.log(hi)) / 2;
        double sigma = (Math.log(hi) - Math.log(lo)) / 4;
        double z = Math.sqrt(-2 * Math.log(1 - random.nextDouble())) * Math.cos(2 * Math.PI * random.nextDouble());
        return (int) Math.max(lo, Math.min(hi, Math.round(Math.exp(mu + sigma * z))));
    }

    private static Sample send(HttpClient http, Config config, String model, int[] prompt, int output) {
        ObjectNode body = JSON.createObjectNode().put("model", model).put("max_tokens", output).put("temperature", 0)
                .put("ignore_eos", true).put("stream", true);
        body.putObject("stream_options").put("include_usage", true);
        var p = body.putArray("prompt");
        for (int t : prompt) {
            p.add(t);
        }
        HttpRequest request = HttpRequest.newBuilder(config.url().resolve("/v1/completions")).timeout(config.timeout())
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body.toString())).build();
        long sent = System.nanoTime();
        try {
            HttpResponse<Stream<String>> response = http.send(request, HttpResponse.BodyHandlers.ofLines());
            if (response.statusCode() != 200) {
                response.body().close();
                return new Sample(model, prompt.length, 0, Double.NaN, (System.nanoTime() - sent) / 1e9, List.of(), response.statusCode());
            }
            List<Double> arrivals = new ArrayList<>();
            int[] outputTokens = {0};
            response.body().forEach(line -> {
                if (!line.startsWith("data: ") || line.equals("data: [DONE]")) {
                    return;
                }
                try {
                    JsonNode chunk = JSON.readTree(line.substring(6));
                    if (chunk.has("usage") && !chunk.get("usage").isNull()) {
                        outputTokens[0] = chunk.get("usage").get("completion_tokens").asInt();
                    } else if (chunk.path("choices").size() > 0 && chunk.get("choices").get(0).get("finish_reason").isNull()) {
                        arrivals.add((System.nanoTime() - sent) / 1e9);
                    }
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            });
            double e2e = (System.nanoTime() - sent) / 1e9;
            List<Double> itl = new ArrayList<>();
            for (int i = 1; i < arrivals.size(); i++) {
                itl.add(arrivals.get(i) - arrivals.get(i - 1));
            }
            return new Sample(model, prompt.length, outputTokens[0], arrivals.isEmpty() ? e2e : arrivals.getFirst(), e2e, itl, 200);
        } catch (IOException | RuntimeException e) {
            return new Sample(model, prompt.length, 0, Double.NaN, (System.nanoTime() - sent) / 1e9, List.of(), -1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Sample(model, prompt.length, 0, Double.NaN, Double.NaN, List.of(), -1);
        }
    }

    public static Report report(Config config, List<Sample> samples, double seconds) {
        return report(config.popularity().name().toLowerCase(Locale.ROOT), config.adapters().size(), config.rate(), samples, seconds);
    }

    /** The figures of a run: throughput over {@code seconds}, TTFT, TPOT, ITL and latency percentiles (DESIGN §5). */
    public static Report report(String popularity, int adapters, double rate, List<Sample> samples, double seconds) {
        List<Sample> ok = samples.stream().filter(s -> s.status() == 200).toList();
        long tokens = ok.stream().mapToLong(s -> s.promptTokens() + s.outputTokens()).sum();
        long out = ok.stream().mapToLong(Sample::outputTokens).sum();
        List<Double> ttft = ok.stream().map(Sample::ttft).toList();
        List<Double> tpot = ok.stream().filter(s -> s.outputTokens() > 1).map(s -> (s.e2e() - s.ttft()) / (s.outputTokens() - 1)).toList();
        List<Double> itl = ok.stream().flatMap(s -> s.itl().stream()).toList();
        List<Double> e2e = ok.stream().map(Sample::e2e).toList();
        double perToken = ok.stream().filter(s -> s.outputTokens() > 0).mapToDouble(s -> s.e2e() / s.outputTokens()).average().orElse(Double.NaN);
        return new Report(samples.size(), samples.size() - ok.size(), seconds, tokens / seconds, out / seconds,
                percentile(ttft, 50), percentile(ttft, 99), percentile(tpot, 50), percentile(tpot, 99), percentile(itl, 50), percentile(itl, 99),
                percentile(e2e, 50), percentile(e2e, 99), perToken, popularity, adapters, rate);
    }

    static double percentile(List<Double> values, double p) {
        if (values.isEmpty()) {
            return Double.NaN;
        }
        List<Double> sorted = new ArrayList<>(values);
        Collections.sort(sorted);
        int index = (int) Math.ceil(p / 100 * sorted.size()) - 1;
        return sorted.get(Math.max(0, Math.min(sorted.size() - 1, index)));
    }

    public static String table(Report r) {
        return String.format(Locale.ROOT, """
                requests          %d (%d failed) in %.2f s, %s popularity over %d models, rate %s/s
                throughput        %.1f tokens/s (prompt + output), %.1f output tokens/s
                TTFT              p50 %.3f s   p99 %.3f s
                TPOT              p50 %.4f s   p99 %.4f s
                ITL               p50 %.4f s   p99 %.4f s
                e2e latency       p50 %.3f s   p99 %.3f s   (%.4f s per output token, mean)""",
                r.requests(), r.failed(), r.seconds(), r.popularity(), r.adapters(), Double.isFinite(r.rate()) ? String.format(Locale.ROOT, "%.1f", r.rate()) : "inf",
                r.throughput(), r.outputThroughput(), r.ttftP50(), r.ttftP99(), r.tpotP50(), r.tpotP99(), r.itlP50(), r.itlP99(),
                r.e2eP50(), r.e2eP99(), r.latencyPerOutputToken());
    }

    /** Zipf over ranks 1..n with exponent s, by inversion of the cumulative weights. */
    static final class ZipfSampler {
        private final double[] cumulative;

        ZipfSampler(int n, double s) {
            cumulative = new double[n];
            double total = 0;
            for (int k = 1; k <= n; k++) {
                total += 1 / Math.pow(k, s);
                cumulative[k - 1] = total;
            }
            for (int k = 0; k < n; k++) {
                cumulative[k] /= total;
            }
        }

        int sample(SplittableRandom random) {
            double u = random.nextDouble();
            for (int k = 0; k < cumulative.length; k++) {
                if (u <= cumulative[k]) {
                    return k;
                }
            }
            return cumulative.length - 1;
        }
    }
}
