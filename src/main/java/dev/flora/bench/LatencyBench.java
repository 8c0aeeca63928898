package dev.flora.bench;

import dev.flora.adapter.AdapterRegistry;
import dev.flora.engine.Engine;
import dev.flora.engine.EngineConfig;
import dev.flora.engine.EngineLoop;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.engine.TopLogprobs;
import dev.flora.loadgen.LoadGenerator;
import dev.flora.model.CausalLM;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongConsumer;

/**
 * Latency under load, the fLoRA paper's figure 3: the workload's requests arrive at a Poisson rate
 * at the continuous-batching engine loop (in process, as the server runs it, without HTTP), each
 * with its own adapter; reported as {@code flora loadgen} reports a server: seconds per output
 * token (mean of each request's latency over its output tokens), TTFT, TPOT, ITL and latency
 * percentiles, throughput.
 */
public final class LatencyBench {

    /** One point: the series, its rank and targets, the load and its figures. */
    public record Point(String series, String kind, String strategy, int rank, String targets, LoadGenerator.Report report)
            implements ThroughputBench.Labelled {
    }

    private LatencyBench() {
    }

    public static Point run(CausalLM model, ThroughputBench.Series series, int rank, ThroughputBench.Workload w, double rate,
                            LongConsumer progress) throws InterruptedException {
        AdapterRegistry registry = ThroughputBench.registry(model, series, rank, w);
        EngineConfig config = EngineConfig.DEFAULT.withMaxBatchedTokens(w.maxBatchedTokens()).withMaxSequences(w.maxSequences())
                .withKvCacheBytes(w.kvCacheBytes()).withSeparatePrefillDecode(series.separateSteps());
        List<Request> requests = ThroughputBench.requests(model, series, w, registry);
        Engine engine = new Engine(model, config, Set.of(), registry);
        if (!series.adapted()) {
            engine.recordDecodeSteps(); // set-up: no recording inside the measured run (steps with adapters are never recorded)
        }
        EngineLoop loop = new EngineLoop(engine, requests.size() + 8);
        try {
            warmUp(loop, requests);
            int n = requests.size();
            long[] sent = new long[n];
            List<List<Long>> arrivals = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                arrivals.add(new ArrayList<>());
            }
            long[] finished = new long[n];
            CountDownLatch done = new CountDownLatch(n);
            SplittableRandom arrivalsAt = new SplittableRandom(w.seed() ^ 0x5DEECE66DL);
            long start = System.nanoTime();
            double at = 0;
            for (int i = 0; i < n; i++) {
                at += -Math.log(1 - arrivalsAt.nextDouble()) / rate;
                long due = start + (long) (at * 1e9);
                for (long wait = due - System.nanoTime(); wait > 0; wait = due - System.nanoTime()) {
                    LockSupport.parkNanos(wait);
                }
                int index = i;
                sent[i] = System.nanoTime();
                loop.submit(requests.get(i), new Engine.Listener() {
                    @Override
                    public void onToken(String id, int token, double logprob, TopLogprobs top) {
                        arrivals.get(index).add(System.nanoTime());
                        progress.accept(1);
                    }

                    @Override
                    public void onFinish(Result result) {
                        finished[index] = System.nanoTime();
                        done.countDown();
                    }

                    @Override
                    public void onError(String id, RuntimeException error) {
                        done.countDown();
                    }
                });
            }
            done.await();
            double seconds = (System.nanoTime() - start) / 1e9;
            List<LoadGenerator.Sample> samples = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                List<Long> times = arrivals.get(i);
                boolean ok = finished[i] != 0 && !times.isEmpty();
                List<Double> itl = new ArrayList<>();
                for (int k = 1; k < times.size(); k++) {
                    itl.add((times.get(k) - times.get(k - 1)) / 1e9);
                }
                samples.add(new LoadGenerator.Sample(series.name(), requests.get(i).prompt().length, times.size(),
                        ok ? (times.getFirst() - sent[i]) / 1e9 : Double.NaN, ok ? (finished[i] - sent[i]) / 1e9 : Double.NaN, itl, ok ? 200 : 500));
            }
            LoadGenerator.Report report = LoadGenerator.report("distinct", series.adapted() ? n : 0, rate, samples, seconds);
            return new Point(series.name(), series.adapted() ? series.kind().name().toLowerCase(java.util.Locale.ROOT) : "none",
                    series.strategy().cliName(), series.adapted() ? rank : 0, series.adapted() ? String.join(",", new java.util.TreeSet<>(w.targets())) : "",
                    report);
        } finally {
            loop.close();
        }
    }

    /** A few short requests through the loop first, so that one-time set-up stays out of the figures. */
    private static void warmUp(EngineLoop loop, List<Request> requests) throws InterruptedException {
        int warm = Math.min(4, requests.size());
        CountDownLatch done = new CountDownLatch(warm);
        for (int i = 0; i < warm; i++) {
            Request r = requests.get(i);
            loop.submit(new Request("warm-" + r.id(), r.prompt(), SamplingParams.greedy(Math.min(4, r.sampling().maxTokens()), true), false,
                    r.adapters()), new Engine.Listener() {
                @Override
                public void onFinish(Result result) {
                    done.countDown();
                }

                @Override
                public void onError(String id, RuntimeException error) {
                    done.countDown();
                }
            });
        }
        done.await();
    }
}
