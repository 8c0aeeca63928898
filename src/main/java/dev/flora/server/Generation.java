package dev.flora.server;

import dev.flora.engine.Engine;
import dev.flora.engine.EngineLoop;
import dev.flora.engine.Request;
import dev.flora.engine.Result;
import dev.flora.engine.SamplingParams;
import dev.flora.engine.TopLogprobs;
import dev.flora.tokenizer.IncrementalDecoder;
import dev.flora.tokenizer.Tokenizer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * One API request's sequences in the engine: best_of (at least n) samples of one prompt, each
 * turned into text as it grows (incremental detokenisation, then stop strings) on the engine
 * thread, so the engine can stop a sequence at once. The sequences report through one queue.
 * With a seed, sequence i samples with seed + i (as vLLM does), so every choice is reproducible.
 */
final class Generation {
    /** What a sequence did. */
    sealed interface Event {
    }

    /** A generated token and the text it made safe to show (possibly empty). */
    record Token(int sequence, int token, double logprob, TopLogprobs top, String text) implements Event {
    }

    /** A sequence ended; {@code text} is the rest of its text. */
    record Finished(int sequence, String text, Result result, String stopString) implements Event {
    }

    record Failed(int sequence, RuntimeException error) implements Event {
    }

    /** The client went away. */
    record Gone() implements Event {
    }

    /** A finished sequence with its whole text. */
    record Choice(int sequence, String text, Result result, String stopString) {
        double cumulativeLogprob() {
            double sum = 0;
            for (double lp : result.generatedLogprobs()) {
                sum += lp;
            }
            return sum;
        }
    }

    /** Why a choice stopped, as vLLM's stop_reason: its stop string, or the stop token (not an EOS) it ended on; else null. */
    static Object stopReason(Result result, String stopString, SamplingParams sampling, java.util.Set<Integer> eos) {
        if (stopString != null) {
            return stopString;
        }
        int n = result.generated().length;
        if (result.finishReason() == dev.flora.engine.FinishReason.STOP && n > 0) {
            int last = result.generated()[n - 1];
            if (sampling.stopTokens().contains(last) && (sampling.ignoreEos() || !eos.contains(last))) {
                return last;
            }
        }
        return null;
    }

    /** The client disconnected before the response was complete. */
    static final class ClientGone extends RuntimeException {
        ClientGone() {
            super("the client disconnected", null, false, false);
        }
    }

    private final EngineLoop loop;
    private final List<String> ids = new ArrayList<>();
    private final LinkedBlockingQueue<Event> events = new LinkedBlockingQueue<>();

    private Generation(EngineLoop loop) {
        this.loop = loop;
    }

    /** Submits the sequences; refusals (a full queue, an impossible request) cancel the ones already queued. */
    static Generation start(EngineLoop loop, Tokenizer tokenizer, String id, int[] prompt, GenerationOptions options, String adapter,
                            boolean scorePrompt, RequestMetrics metrics) {
        Generation g = new Generation(loop);
        try {
            for (int i = 0; i < options.bestOf(); i++) {
                SamplingParams sampling = options.sampling();
                if (sampling.seed() != null) {
                    sampling = sampling.withSeed(sampling.seed() + i);
                }
                String sequenceId = options.bestOf() == 1 ? id : id + "-" + i;
                StopStrings stops = new StopStrings(options.stop(), options.includeStop());
                Request request = Request.withAdapter(sequenceId, prompt, sampling, scorePrompt, adapter).withStop(token -> stops.stopped());
                loop.submit(request, g.listener(i, new IncrementalDecoder(tokenizer, prompt), stops, metrics));
                g.ids.add(sequenceId);
            }
        } catch (RuntimeException e) {
            g.cancel();
            throw e;
        }
        return g;
    }

    private Engine.Listener listener(int sequence, IncrementalDecoder decoder, StopStrings stops, RequestMetrics metrics) {
        return new Engine.Listener() {
            private long first;

            @Override
            public void onToken(String requestId, int token, double logprob, TopLogprobs top) {
                if (first == 0) {
                    first = System.nanoTime();
                }
                metrics.token();
                events.add(new Token(sequence, token, logprob, top, stops.add(decoder.add(token))));
            }

            @Override
            public void onFinish(Result result) {
                metrics.sequenceFinished(result, first);
                events.add(new Finished(sequence, stops.add(decoder.finish()) + stops.finish(), result, stops.matched()));
            }

            @Override
            public void onError(String requestId, RuntimeException error) {
                events.add(new Failed(sequence, error));
            }
        };
    }

    int sequences() {
        return ids.size();
    }

    Event next() throws InterruptedException {
        return events.take();
    }

    /**
     * Waits for every sequence and returns the n to answer with: all of them in order when best_of
     * equals n, else the n with the highest cumulative log-probability, best first.
     */
    List<Choice> awaitChoices(int n) throws InterruptedException {
        StringBuilder[] texts = new StringBuilder[ids.size()];
        Choice[] done = new Choice[ids.size()];
        int remaining = ids.size();
        while (remaining > 0) {
            switch (next()) {
                case Token t -> {
                    if (texts[t.sequence()] == null) {
                        texts[t.sequence()] = new StringBuilder();
                    }
                    texts[t.sequence()].append(t.text());
                }
                case Finished f -> {
                    String before = texts[f.sequence()] == null ? "" : texts[f.sequence()].toString();
                    done[f.sequence()] = new Choice(f.sequence(), before + f.text(), f.result(), f.stopString());
                    remaining--;
                }
                case Failed f -> {
                    cancel();
                    throw f.error();
                }
                case Gone g -> throw new ClientGone();
            }
        }
        List<Choice> all = new ArrayList<>(List.of(done));
        if (all.size() > n) {
            all.sort(Comparator.comparingDouble(Choice::cumulativeLogprob).reversed());
            return List.copyOf(all.subList(0, n));
        }
        return all;
    }

    /** Stops every sequence still in the engine and frees its blocks. */
    void cancel() {
        ids.forEach(loop::cancel);
    }

    /** The client disconnected: cancel, and wake whoever waits on the events. */
    void clientGone() {
        cancel();
        events.add(new Gone());
    }
}
