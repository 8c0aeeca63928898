package dev.flora.cuda;

import dev.flora.backend.DeviceMemoryFull;
import dev.flora.backend.WeakDeviceCaches;

import java.lang.foreign.MemorySegment;
import java.lang.ref.Cleaner;
import java.util.ArrayList;
import java.util.List;

/**
 * The backend's device memory. Long-lived buffers (weights, caches, anything allocated outside a
 * step) are freed when their tensors are collected. Within a step (from one
 * {@code Backend.prepare} to the next) activations come from a bump arena that is reset at the next
 * step: a step's tensors are valid until then.
 *
 * <p>A collected owner's buffer is not freed at once: work queued on the streams may still use it
 * (the owner can become unreachable while its kernel waits in the stream, or even before the launch
 * that uses its pointer). It is retired, and freed only after the backend has waited for its
 * streams ({@link #freeRetired}), or when an allocation finds the device full.
 */
final class DeviceMemory {
    private static final Cleaner CLEANER = Cleaner.create();
    private static final long ALIGN = 256;
    /** Bytes of each small upload while recording (allocateUpload): a step's adapter layouts fit. */
    static final long UPLOAD_SLOT = 16L << 10;

    private final Driver driver;
    private final List<long[]> chunks = new ArrayList<>(); // {pointer, size}
    private long used;
    private int current;
    private boolean inStep;
    private RecordingArena recording;
    private long generation; // changes whenever what allocate() hands out starts over or changes place
    private final java.util.concurrent.atomic.AtomicLong held = new java.util.concurrent.atomic.AtomicLong(); // permanent(), not yet freed
    // Page-locked host memory for a step's small uploads (stage()), handed out by bump and reset when a step begins.
    private final List<MemorySegment> pinned = new ArrayList<>();
    private int pinnedCurrent;
    private long pinnedUsed;
    private static final long PINNED_CHUNK = 8L << 20;

    // Buffers of collected owners, {pointer, bytes}: added by the cleaner's thread, freed by the backend's.
    private final java.util.Queue<long[]> retired = new java.util.concurrent.ConcurrentLinkedQueue<>();
    // The backend's: waits until every stream that may use this memory has finished; false when it cannot (a capture).
    private final java.util.function.BooleanSupplier waitForStreams;

    DeviceMemory(Driver driver, java.util.function.BooleanSupplier waitForStreams) {
        this.driver = driver;
        this.waitForStreams = waitForStreams;
    }

    /** A buffer retired once {@code owner} is unreachable, and freed at the next {@link #freeRetired}. */
    long permanent(long bytes, Object owner) {
        long allocated = allocCollecting(bytes);
        held.addAndGet(bytes);
        java.util.Queue<long[]> queue = retired;
        CLEANER.register(owner, () -> queue.add(new long[] {allocated, bytes}));
        return allocated;
    }

    /** Frees the retired buffers. The caller's thread has the context, and the streams have finished their work. */
    synchronized void freeRetired() {
        for (long[] r = retired.poll(); r != null; r = retired.poll()) {
            driver.free(r[0]);
            held.addAndGet(-r[1]);
        }
    }

    /** Buffers retired and not yet freed (tests). */
    int retiredCount() {
        return retired.size();
    }

    /** Step memory when a step is open (or a recording's memory while one is made), else a buffer owned by {@code owner}. */
    synchronized long allocate(long bytes, Object owner) {
        if (recording != null) {
            return recording.allocate(bytes);
        }
        if (!inStep) {
            return permanent(bytes, owner);
        }
        long size = (bytes + ALIGN - 1) / ALIGN * ALIGN;
        while (current < chunks.size() && used + size > chunks.get(current)[1]) {
            current++;
            used = 0;
        }
        if (current == chunks.size()) {
            // Twice the last chunk where the device has it (few chunks, merged at the next step), else just what is asked.
            long chunk = Math.max(size, Math.max(64L << 20, chunks.isEmpty() ? 0 : chunks.getLast()[1] * 2));
            long pointer = driver.tryAlloc(chunk);
            if (pointer == 0) {
                chunk = size;
                pointer = allocCollecting(chunk);
            }
            chunks.add(new long[] {pointer, chunk});
            used = 0;
        }
        long pointer = chunks.get(current)[0] + used;
        used += size;
        return pointer;
    }

    /**
     * Device memory, running the collector before reporting the device full: memory of unreachable
     * tensors (a dropped engine's KV cache, say) is freed only when their cleaners run.
     */
    private long allocCollecting(long bytes) {
        if (!inStep && recording == null && !retired.isEmpty() && waitForStreams.getAsBoolean()) {
            // Outside steps (loading, calibration, tests) nothing else frees them; inside, beginStep does,
            // without a wait in the middle of the step.
            freeRetired();
        }
        long pointer = driver.tryAlloc(bytes);
        for (int attempt = 0; pointer == 0 && attempt < 3; attempt++) {
            System.gc();
            WeakDeviceCaches.expunge(); // copies of collected adapters: freed by the next round's collection
            try {
                Thread.sleep(100L << attempt);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            if (waitForStreams.getAsBoolean()) {
                freeRetired();
            }
            pointer = driver.tryAlloc(bytes);
        }
        return pointer != 0 ? pointer : alloc(bytes);
    }

    /** driver.alloc, its out-of-memory message saying what Flora holds (to tell a leak from a large step). */
    private long alloc(long bytes) {
        try {
            return driver.alloc(bytes);
        } catch (DeviceMemoryFull e) {
            long step = 0;
            for (long[] c : chunks) {
                step += c[1];
            }
            throw new DeviceMemoryFull(e.getMessage() + "; Flora holds " + held.get() + " bytes of weights, caches and recordings and "
                    + step + " of step memory in " + chunks.size() + " chunks");
        }
    }

    /** Opens a new step: the previous step's memory is reused (the stream has finished with it). */
    synchronized void beginStep() {
        if (!waitForStreams.getAsBoolean()) {
            throw new IllegalStateException("a step begun while a capture is under way");
        }
        freeRetired();
        if (chunks.size() > 1) {
            long total = 0;
            for (long[] c : chunks) {
                total += c[1];
                driver.free(c[0]);
            }
            chunks.clear();
            chunks.add(new long[] {allocCollecting(total), total});
        }
        current = 0;
        used = 0;
        inStep = true;
        generation++;
        pinnedCurrent = 0; // the stream has finished the last step's copies from it
        pinnedUsed = 0;
    }

    /**
     * Page-locked host memory for one upload of the open step, valid until the next step begins; null
     * outside a step. A copy from pageable memory may make the host wait for the stream (the driver
     * stages it); from page-locked memory it never does. (A graph's capture stages nothing: the dry run
     * before each replay copies its uploads.)
     */
    synchronized MemorySegment stage(long bytes) {
        if (!inStep || bytes <= 0) {
            return null;
        }
        long size = (bytes + ALIGN - 1) / ALIGN * ALIGN;
        while (pinnedCurrent < pinned.size() && pinnedUsed + size > pinned.get(pinnedCurrent).byteSize()) {
            pinnedCurrent++;
            pinnedUsed = 0;
        }
        if (pinnedCurrent == pinned.size()) {
            pinned.add(driver.allocHost(Math.max(size, PINNED_CHUNK)));
            pinnedUsed = 0;
        }
        MemorySegment slice = pinned.get(pinnedCurrent).asSlice(pinnedUsed, bytes);
        pinnedUsed += size;
        return slice;
    }

    /**
     * Memory for one upload of small arrays: as {@link #allocate}, but while recording every upload of
     * up to {@link #UPLOAD_SLOT} bytes takes that much, so that the addresses of a recording's
     * allocations do not depend on how many adapters its steps had (a replay needs them all equal).
     */
    synchronized long allocateUpload(long bytes, Object owner) {
        return allocate(recording != null && bytes <= UPLOAD_SLOT ? UPLOAD_SLOT : bytes, owner);
    }

    /** Changes at every step, recording and their ends: memory from allocate() is valid while it stays the same. */
    synchronized long generation() {
        return generation;
    }

    /**
     * Sends every allocation to {@code arena} until {@link #endRecording}: a recorded graph keeps
     * the addresses it was recorded with, so its memory is its own, never reused by other steps.
     */
    synchronized void beginRecording(RecordingArena arena) {
        recording = arena;
        generation++;
    }

    synchronized void endRecording() {
        recording = null;
        generation++;
    }

    /** Memory owned by one recording: chunks freed when {@code owner} is collected, never moved or merged. */
    final class RecordingArena {
        /** The mark of an arena's beginning. */
        static final long[] START = {0, 0};

        private final Object owner;
        private final List<long[]> own = new ArrayList<>();
        private int at;
        private long usedHere;

        RecordingArena(Object owner) {
            this.owner = owner;
        }

        /** Starts over from {@code mark} (a value of {@link #mark}): the next allocations reuse the same addresses. */
        void rewind(long[] mark) {
            at = (int) mark[0];
            usedHere = mark[1];
            synchronized (DeviceMemory.this) {
                generation++; // what was handed out past the mark is handed out again
            }
        }

        long[] mark() {
            return new long[] {at, usedHere};
        }

        long allocate(long bytes) {
            long size = (bytes + ALIGN - 1) / ALIGN * ALIGN;
            while (at < own.size() && usedHere + size > own.get(at)[1]) {
                at++;
                usedHere = 0;
            }
            if (at == own.size()) {
                long chunk = Math.max(size, 16L << 20);
                own.add(new long[] {permanent(chunk, owner), chunk});
                usedHere = 0;
            }
            long pointer = own.get(at)[0] + usedHere;
            usedHere += size;
            return pointer;
        }
    }

    synchronized void close() {
        freeRetired();
        for (long[] c : chunks) {
            driver.free(c[0]);
        }
        chunks.clear();
        for (MemorySegment p : pinned) {
            driver.freeHost(p);
        }
        pinned.clear();
        inStep = false;
        generation++;
    }
}
