package dev.flora.cuda;

import dev.flora.backend.StepRecorder;
import dev.flora.backend.Tensor;
import dev.flora.backend.TokenBatch;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.ref.Cleaner;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * Decode steps recorded as CUDA graphs and replayed: a decode step is hundreds of small kernels,
 * and launching each from the host costs more than running it.
 *
 * <p>A step without adapters depends only on the step data (tokens, positions, slots, block
 * tables): its recording is replayed by copying the new step data and launching the graph. A step
 * with adapters also uploads the adapters' layouts (which token takes which adapter, where its
 * weights are), and which kernels it launches depends on them. Such a step first runs on the host
 * alone (a dry run): every kernel, product and upload it would issue goes to a work log, nothing
 * runs, and the uploads are copied for real. Every allocation, upload included, comes from the
 * recorder's arena in a fixed order, so a recording whose log equals the dry run's launches exactly
 * those kernels with exactly those arguments, on the data just copied: it is replayed; else the step
 * runs in the arena and is recorded. Adapters seen for the first time skip all this and run directly
 * (the caller's step), so a composition that never comes back costs no dry run. A step with the
 * adapters of the last adapted replay (a running batch between joins and finishes) skips the dry run:
 * its uploads are still in the arena, so it replays as a step without adapters does.
 *
 * <p>Every recording made here starts its memory over from the beginning of one arena: replays never
 * overlap (a step at a time, and a replay's result is valid until the next step), so the recorder
 * holds what its largest recording needs, not the sum of them (vLLM's graphs share one pool so).
 */
final class GraphRecorder implements StepRecorder {
    /** Adapted steps' graphs kept at once (the least recently replayed goes first). */
    private static final int MAX_ADAPTED = 48;
    private static final Cleaner GRAPHS = Cleaner.create();

    private final CudaBackend backend;
    private final DeviceMemory.RecordingArena arena;
    /** Page-locked step data by shape: every recording of a shape puts it first in the arena. */
    private final Map<Shape, StepData> stepData = new HashMap<>();
    /** Adapted steps' recordings by their work log, least recently replayed first. */
    private final LinkedHashMap<List<Object>, Graph> adapted = new LinkedHashMap<>(16, 0.75f, true);
    /** Hashes of the shapes and adapters of the adapted steps seen, and how often. */
    private final Map<Integer, Integer> seen = new HashMap<>();

    GraphRecorder(CudaBackend backend) {
        this.backend = backend;
        this.arena = backend.memory().new RecordingArena(this);
    }

    private record Shape(int tokens, int sequences, int maxBlocks) {
    }

    @Override
    public Recording record(TokenBatch batch, int maxBlocks, Function<TokenBatch, Tensor> work) {
        backend.bindContext();
        forgetLast();
        backend.driver().synchronize(backend.stream());
        StepData data = stepData(batch, maxBlocks);
        List<Object> log = new ArrayList<>();
        Captured captured;
        try {
            CudaBackend.CudaStep step = begin(data, batch);
            data.upload(batch);
            long[] mark = arena.mark();
            backend.issuing(CudaBackend.Issue.RUN, null, step, () -> work.apply(batch)); // lazy set-up (cuBLAS) must not be captured
            captured = capture(mark, step, batch, work, log);
        } finally {
            backend.memory().endRecording();
        }
        if (log.contains("upload")) {
            throw new IllegalStateException("a step recorded without adapters uploaded data of its own"); // replayAdapted's work
        }
        Tensor output = captured.output();
        Graph graph = captured.graph();
        return replayed -> {
            backend.bindContext();
            forgetLast(); // its work overwrites the arena
            backend.memory().beginStep(); // what the caller allocates after the replay (a logit summary) is step memory
            data.upload(replayed);
            backend.driver().launchGraph(graph.exec, backend.stream());
            return output;
        };
    }

    @Override
    public Tensor replayAdapted(TokenBatch batch, int maxBlocks, Object adapters, Function<TokenBatch, Tensor> work) {
        backend.bindContext();
        if (adapters != null && adapters.equals(lastAdapters) && lastGraph != null && lastShape.equals(shapeOf(batch, maxBlocks))) {
            // The adapter work of the last replay: its uploads are still in place (nothing else has used the arena since).
            backend.memory().beginStep();
            StepData data = stepData(batch, maxBlocks);
            data.upload(batch);
            backend.driver().launchGraph(lastGraph.graph().exec, backend.stream());
            return lastGraph.output();
        }
        forgetLast();
        // Adapters seen once run directly: a composition that never comes back costs no dry run.
        // (By hash: holding the adapters themselves would keep dropped ones alive; a collision only brings a dry run early.)
        Integer sighting = adapters == null ? null : 31 * shapeOf(batch, maxBlocks).hashCode() + adapters.hashCode();
        if (sighting != null && seen.merge(sighting, 1, Integer::sum) < 2) {
            if (seen.size() > 4096) {
                seen.clear();
            }
            return null;
        }
        backend.memory().beginStep(); // waits for the last step: its data and staging are free
        StepData data = stepData(batch, maxBlocks);
        List<Object> log = new ArrayList<>();
        try {
            CudaBackend.CudaStep step = begin(data, batch);
            data.upload(batch);
            long[] mark = arena.mark();
            Tensor output;
            try {
                output = backend.issuing(CudaBackend.Issue.LOG, log, step, () -> work.apply(batch));
            } catch (RuntimeException e) {
                return null; // work this recorder cannot log (it reads back, say): the caller runs the step
            }
            Graph graph = adapted.get(log);
            if (graph != null) {
                backend.driver().launchGraph(graph.exec, backend.stream());
                remember(adapters, batch, maxBlocks, new Captured(output, graph));
                return output;
            }
            // Not recorded yet: run it here (its result is this step's) and record it.
            arena.rewind(mark);
            List<Object> ranLog = new ArrayList<>();
            List<Object> capturedLog = new ArrayList<>();
            Captured captured;
            try {
                output = backend.issuing(CudaBackend.Issue.RUN, ranLog, step, () -> work.apply(batch));
                captured = capture(mark, step, batch, work, capturedLog);
            } catch (RuntimeException e) {
                // The GPU full, say: the caller runs the step as it comes (it writes the same cache slots again).
                forgetLast();
                return null;
            }
            // Kept only where the run, the capture and the dry run issued the very same work (else something
            // in it is not a function of the step and its adapters: never replay it).
            if (capturedLog.equals(log) && ranLog.equals(log)) {
                adapted.put(log, captured.graph());
                if (adapted.size() > MAX_ADAPTED) {
                    var eldest = adapted.entrySet().iterator();
                    eldest.next();
                    eldest.remove(); // its graph is destroyed once collected (Graph's cleaner)
                }
                // The capture ran nothing: the arena holds this step's uploads and results, so a like step may replay.
                remember(adapters, batch, maxBlocks, new Captured(output, captured.graph()));
            }
            return output;
        } finally {
            backend.memory().endRecording();
        }
    }

    /** The adapters, shape and graph of the last adapted replay (or recording), whose uploads are in the arena now. */
    private Object lastAdapters;
    private Shape lastShape;
    private Captured lastGraph;

    private void remember(Object adapters, TokenBatch batch, int maxBlocks, Captured graph) {
        lastAdapters = adapters;
        lastShape = shapeOf(batch, maxBlocks);
        lastGraph = adapters == null ? null : graph;
    }

    /** Something else uses the arena now (another recording, a dry run): the last replay's uploads are gone. */
    private void forgetLast() {
        lastAdapters = null;
        lastShape = null;
        lastGraph = null;
    }

    private static Shape shapeOf(TokenBatch batch, int maxBlocks) {
        return new Shape(batch.numTokens(), batch.numSequences(), maxBlocks);
    }

    /** The arena started over, its first allocation the step data; the step the recorded work sees. */
    private CudaBackend.CudaStep begin(StepData data, TokenBatch batch) {
        arena.rewind(DeviceMemory.RecordingArena.START); // the recorder's other recordings' memory, reused
        backend.memory().beginRecording(arena);
        long at = arena.allocate(data.bytes);
        if (data.device == 0) {
            data.device = at;
        } else if (data.device != at) {
            throw new IllegalStateException("a recording's step data moved"); // the arena hands out the same first address
        }
        return data.stepFor(batch);
    }

    private record Captured(Tensor output, Graph graph) {
    }

    /** The work captured as a graph, its memory from the arena's mark on; its work log into log. */
    private Captured capture(long[] mark, CudaBackend.CudaStep step, TokenBatch batch, Function<TokenBatch, Tensor> work, List<Object> log) {
        arena.rewind(mark);
        Driver driver = backend.driver();
        driver.synchronize(backend.stream());
        driver.beginCapture(backend.stream());
        Tensor output = null;
        MemorySegment exec;
        try {
            output = backend.issuing(CudaBackend.Issue.CAPTURE, log, step, () -> work.apply(batch));
        } finally {
            exec = driver.endCapture(backend.stream());
        }
        return new Captured(output, new Graph(exec));
    }

    private StepData stepData(TokenBatch batch, int maxBlocks) {
        return stepData.computeIfAbsent(shapeOf(batch, maxBlocks), s -> new StepData(s.tokens(), s.sequences(), maxBlocks));
    }

    /**
     * An instantiated graph, destroyed once unreachable (by the cleaner's thread: an executable graph
     * still running is freed when it completes, and no stream is waited for, which would break a
     * capture under way on the engine's thread).
     */
    private final class Graph {
        final MemorySegment exec;

        Graph(MemorySegment exec) {
            this.exec = exec;
            Driver driver = backend.driver();
            MemorySegment context = backend.context();
            GRAPHS.register(this, () -> {
                driver.setCurrent(context);
                driver.destroyGraph(exec);
            });
        }
    }

    /** A step shape's data laid out as on the device (tokens, positions, sequences, slots, block tables), page-locked: one copy per step. */
    private final class StepData {
        final int tokens;
        final int sequences;
        final int maxBlocks;
        /** Bytes of each per-token array (16-byte aligned), then the block tables. */
        final long part;
        final long bytes;
        final MemorySegment host;
        long device;

        StepData(int tokens, int sequences, int maxBlocks) {
            this.tokens = tokens;
            this.sequences = sequences;
            this.maxBlocks = maxBlocks;
            this.part = (tokens * 4L + 15) / 16 * 16;
            this.bytes = 4 * part + (long) sequences * maxBlocks * 4;
            Driver driver = backend.driver();
            MemorySegment pinned = driver.allocHost(bytes);
            MemorySegment context = backend.context();
            this.host = pinned;
            GRAPHS.register(this, () -> {
                driver.setCurrent(context);
                driver.freeHost(pinned);
            });
        }

        CudaBackend.CudaStep stepFor(TokenBatch batch) {
            return new CudaBackend.CudaStep(batch, device, device + part, device + 2 * part, device + 3 * part, device + 4 * part, maxBlocks,
                    maxBlocks * batch.blockSize());
        }

        void upload(TokenBatch batch) {
            if (batch.numTokens() != tokens || batch.numSequences() != sequences) {
                throw new IllegalArgumentException("a step of " + batch.numTokens() + " tokens in " + batch.numSequences()
                        + " sequences replayed on a recording of " + tokens + " in " + sequences);
            }
            int[] tables = new int[sequences * maxBlocks];
            for (int s = 0; s < sequences; s++) {
                int[] table = batch.blockTables()[s];
                if (table.length > maxBlocks) {
                    throw new IllegalArgumentException("a block table of " + table.length + " blocks, recorded for " + maxBlocks);
                }
                System.arraycopy(table, 0, tables, s * maxBlocks, table.length);
            }
            // The stream is idle here (a replay begins a step, which waits for the last one), so the buffer is free.
            MemorySegment.copy(batch.tokens(), 0, host, ValueLayout.JAVA_INT, 0, tokens);
            MemorySegment.copy(batch.positions(), 0, host, ValueLayout.JAVA_INT, part, tokens);
            MemorySegment.copy(batch.seqOfToken(), 0, host, ValueLayout.JAVA_INT, 2 * part, tokens);
            MemorySegment.copy(batch.cacheSlots(), 0, host, ValueLayout.JAVA_INT, 3 * part, tokens);
            MemorySegment.copy(tables, 0, host, ValueLayout.JAVA_INT, 4 * part, tables.length);
            backend.upload(device, host, 4 * part + 4L * tables.length);
        }
    }
}
