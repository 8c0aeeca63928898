package dev.flora.cuda;

import dev.flora.backend.DeviceMemoryFull;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

import static dev.flora.cuda.Native.INT;
import static dev.flora.cuda.Native.LONG;
import static dev.flora.cuda.Native.PTR;
import static dev.flora.cuda.Native.SIZE_T;

/**
 * The CUDA driver API through FFM: device, primary context, stream, memory, modules, launches and
 * events. Every call's status is checked and turned into the driver's own name and text.
 * Device pointers are plain longs (CUdeviceptr).
 */
public final class Driver {
    static final int ATTR_COMPUTE_MAJOR = 75;
    static final int ATTR_COMPUTE_MINOR = 76;
    static final int ATTR_SM_COUNT = 16;

    private final MethodHandle cuInit, cuDeviceGetCount, cuDeviceGet, cuDeviceGetName, cuDeviceGetAttribute, cuDeviceTotalMem;
    private final MethodHandle cuDevicePrimaryCtxRetain, cuCtxSetCurrent, cuStreamCreate, cuStreamSynchronize;
    private final MethodHandle cuMemHostAlloc, cuMemFreeHost;
    private final MethodHandle cuMemAlloc, cuMemFree, cuMemcpyHtoDAsync, cuMemcpyDtoHAsync, cuMemcpyDtoDAsync, cuMemsetD32Async, cuMemGetInfo;
    private final MethodHandle cuModuleLoadData, cuModuleGetFunction, cuLaunchKernel, cuLaunchKernelEx;
    private final MethodHandle cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime, cuEventDestroy;
    private final MethodHandle cuGetErrorName, cuGetErrorString, cuDriverGetVersion;
    private final MethodHandle cuStreamBeginCapture, cuStreamEndCapture, cuGraphInstantiate, cuGraphLaunch, cuGraphExecDestroy, cuGraphDestroy;

    private Driver(Native n) {
        cuInit = n.status("cuInit", INT);
        cuDriverGetVersion = n.status("cuDriverGetVersion", PTR);
        cuDeviceGetCount = n.status("cuDeviceGetCount", PTR);
        cuDeviceGet = n.status("cuDeviceGet", PTR, INT);
        cuDeviceGetName = n.status("cuDeviceGetName", PTR, INT, INT);
        cuDeviceGetAttribute = n.status("cuDeviceGetAttribute", PTR, INT, INT);
        cuDeviceTotalMem = n.status("cuDeviceTotalMem_v2", PTR, INT);
        cuDevicePrimaryCtxRetain = n.status("cuDevicePrimaryCtxRetain", PTR, INT);
        cuCtxSetCurrent = n.status("cuCtxSetCurrent", PTR);
        cuStreamCreate = n.status("cuStreamCreate", PTR, INT);
        cuStreamSynchronize = n.status("cuStreamSynchronize", PTR);
        cuMemAlloc = n.status("cuMemAlloc_v2", PTR, SIZE_T);
        cuMemFree = n.status("cuMemFree_v2", LONG);
        cuMemHostAlloc = n.status("cuMemHostAlloc", PTR, SIZE_T, INT);
        cuMemFreeHost = n.status("cuMemFreeHost", PTR);
        cuMemGetInfo = n.status("cuMemGetInfo_v2", PTR, PTR);
        cuMemcpyHtoDAsync = n.status("cuMemcpyHtoDAsync_v2", LONG, PTR, SIZE_T, PTR);
        cuMemcpyDtoHAsync = n.status("cuMemcpyDtoHAsync_v2", PTR, LONG, SIZE_T, PTR);
        cuMemcpyDtoDAsync = n.status("cuMemcpyDtoDAsync_v2", LONG, LONG, SIZE_T, PTR);
        cuMemsetD32Async = n.status("cuMemsetD32Async", LONG, INT, SIZE_T, PTR);
        cuModuleLoadData = n.status("cuModuleLoadData", PTR, PTR);
        cuModuleGetFunction = n.status("cuModuleGetFunction", PTR, PTR, PTR);
        cuLaunchKernel = n.status("cuLaunchKernel", PTR, INT, INT, INT, INT, INT, INT, INT, PTR, PTR, PTR);
        cuLaunchKernelEx = n.status("cuLaunchKernelEx", PTR, PTR, PTR, PTR);
        cuEventCreate = n.status("cuEventCreate", PTR, INT);
        cuEventRecord = n.status("cuEventRecord", PTR, PTR);
        cuEventDestroy = n.status("cuEventDestroy_v2", PTR);
        cuEventSynchronize = n.status("cuEventSynchronize", PTR);
        cuEventElapsedTime = n.status("cuEventElapsedTime", PTR, PTR, PTR);
        cuStreamBeginCapture = n.status("cuStreamBeginCapture_v2", PTR, INT);
        cuStreamEndCapture = n.status("cuStreamEndCapture", PTR, PTR);
        cuGraphInstantiate = n.status("cuGraphInstantiateWithFlags", PTR, PTR, LONG);
        cuGraphLaunch = n.status("cuGraphLaunch", PTR, PTR);
        cuGraphExecDestroy = n.status("cuGraphExecDestroy", PTR);
        cuGraphDestroy = n.status("cuGraphDestroy", PTR);
        cuGetErrorName = n.status("cuGetErrorName", INT, PTR);
        cuGetErrorString = n.status("cuGetErrorString", INT, PTR);
    }

    /** Loads libcuda and initialises the driver; a clear message when either is missing. */
    public static Driver load() {
        Driver d = new Driver(new Native(CudaLibraries.driver(), "libcuda"));
        d.check("cuInit", Native.call(d.cuInit, 0));
        return d;
    }

    void check(String what, Object status) {
        int code = (Integer) status;
        if (code != 0) {
            throw new CudaException(what + " failed: " + errorText(code));
        }
    }

    private String errorText(int code) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment name = arena.allocate(PTR);
            MemorySegment text = arena.allocate(PTR);
            Native.call(cuGetErrorName, code, name);
            Native.call(cuGetErrorString, code, text);
            return cString(name) + " (" + code + "): " + cString(text);
        }
    }

    private static String cString(MemorySegment pointerToString) {
        MemorySegment p = pointerToString.get(PTR, 0);
        return p.equals(MemorySegment.NULL) ? "unknown" : p.reinterpret(4096).getString(0);
    }

    public int version() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(INT);
            check("cuDriverGetVersion", Native.call(cuDriverGetVersion, v));
            return v.get(INT, 0);
        }
    }

    public int deviceCount() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment c = arena.allocate(INT);
            check("cuDeviceGetCount", Native.call(cuDeviceGetCount, c));
            return c.get(INT, 0);
        }
    }

    int device(int ordinal) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment d = arena.allocate(INT);
            check("cuDeviceGet", Native.call(cuDeviceGet, d, ordinal));
            return d.get(INT, 0);
        }
    }

    String deviceName(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(256);
            check("cuDeviceGetName", Native.call(cuDeviceGetName, s, 256, device));
            return s.getString(0);
        }
    }

    int attribute(int device, int attribute) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(INT);
            check("cuDeviceGetAttribute", Native.call(cuDeviceGetAttribute, v, attribute, device));
            return v.get(INT, 0);
        }
    }

    long totalMemory(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(SIZE_T);
            check("cuDeviceTotalMem", Native.call(cuDeviceTotalMem, v, device));
            return v.get(SIZE_T, 0);
        }
    }

    /** [free, total] bytes of the current context's device. */
    long[] memoryInfo() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(SIZE_T);
            MemorySegment total = arena.allocate(SIZE_T);
            check("cuMemGetInfo", Native.call(cuMemGetInfo, free, total));
            return new long[] {free.get(SIZE_T, 0), total.get(SIZE_T, 0)};
        }
    }

    /** Makes the device's primary context current on the calling thread. */
    MemorySegment retainPrimaryContext(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ctx = arena.allocate(PTR);
            check("cuDevicePrimaryCtxRetain", Native.call(cuDevicePrimaryCtxRetain, ctx, device));
            MemorySegment c = ctx.get(PTR, 0);
            setCurrent(c);
            return c;
        }
    }

    void setCurrent(MemorySegment context) {
        check("cuCtxSetCurrent", Native.call(cuCtxSetCurrent, context));
    }

    MemorySegment createStream() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(PTR);
            check("cuStreamCreate", Native.call(cuStreamCreate, s, 1)); // CU_STREAM_NON_BLOCKING
            return s.get(PTR, 0);
        }
    }

    void synchronize(MemorySegment stream) {
        check("cuStreamSynchronize", Native.call(cuStreamSynchronize, stream));
    }

    long alloc(long bytes) {
        long pointer = tryAlloc(bytes);
        if (pointer == 0) {
            long[] info = memoryInfo();
            throw new DeviceMemoryFull("out of GPU memory: " + bytes + " bytes asked, " + info[0] + " of " + info[1] + " free");
        }
        return pointer;
    }

    /** A device buffer, or 0 when the device is out of memory. */
    long tryAlloc(long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = arena.allocate(LONG);
            int status = (Integer) Native.call(cuMemAlloc, p, Math.max(bytes, 1));
            if (status == 2) { // CUDA_ERROR_OUT_OF_MEMORY
                return 0;
            }
            check("cuMemAlloc", status);
            return p.get(LONG, 0);
        }
    }

    void free(long pointer) {
        check("cuMemFree", Native.call(cuMemFree, pointer));
    }

    /** Page-locked host memory: copies from the device into it run at the bus's speed, without staging. */
    MemorySegment allocHost(long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = arena.allocate(PTR);
            check("cuMemHostAlloc", Native.call(cuMemHostAlloc, p, Math.max(bytes, 1), 0));
            return p.get(PTR, 0).reinterpret(Math.max(bytes, 1));
        }
    }

    void freeHost(MemorySegment pointer) {
        check("cuMemFreeHost", Native.call(cuMemFreeHost, pointer));
    }

    void copyToDevice(long dst, MemorySegment src, long bytes, MemorySegment stream) {
        check("cuMemcpyHtoDAsync", Native.call(cuMemcpyHtoDAsync, dst, src, bytes, stream));
    }

    void copyToHost(MemorySegment dst, long src, long bytes, MemorySegment stream) {
        check("cuMemcpyDtoHAsync", Native.call(cuMemcpyDtoHAsync, dst, src, bytes, stream));
    }

    void copyOnDevice(long dst, long src, long bytes, MemorySegment stream) {
        check("cuMemcpyDtoDAsync", Native.call(cuMemcpyDtoDAsync, dst, src, bytes, stream));
    }

    void fill32(long dst, int value, long count, MemorySegment stream) {
        check("cuMemsetD32Async", Native.call(cuMemsetD32Async, dst, value, count, stream));
    }

    MemorySegment loadModule(MemorySegment image) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = arena.allocate(PTR);
            check("cuModuleLoadData", Native.call(cuModuleLoadData, m, image));
            return m.get(PTR, 0);
        }
    }

    MemorySegment function(MemorySegment module, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment f = arena.allocate(PTR);
            check("cuModuleGetFunction(" + name + ")", Native.call(cuModuleGetFunction, f, module, arena.allocateFrom(name)));
            return f.get(PTR, 0);
        }
    }

    void launch(MemorySegment function, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ, int sharedBytes,
                MemorySegment stream, MemorySegment params, String name) {
        int status;
        try {
            status = (int) cuLaunchKernel.invokeExact(function, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes, stream, params,
                    MemorySegment.NULL);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (status != 0) {
            check("launch of " + name, status);
        }
    }

    /** cuLaunchKernelEx with a filled CUlaunchConfig (see KernelModule). */
    void launch(MemorySegment config, MemorySegment function, MemorySegment params, String name) {
        int status;
        try {
            status = (int) cuLaunchKernelEx.invokeExact(config, function, params, MemorySegment.NULL);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (status != 0) {
            check("launch of " + name, status);
        }
    }

    MemorySegment createEvent() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment e = arena.allocate(PTR);
            check("cuEventCreate", Native.call(cuEventCreate, e, 0));
            return e.get(PTR, 0);
        }
    }

    void destroyEvent(MemorySegment event) {
        check("cuEventDestroy", Native.call(cuEventDestroy, event));
    }

    void record(MemorySegment event, MemorySegment stream) {
        check("cuEventRecord", Native.call(cuEventRecord, event, stream));
    }

    /** Milliseconds between two recorded events (waits for the second). */
    float elapsed(MemorySegment start, MemorySegment end) {
        check("cuEventSynchronize", Native.call(cuEventSynchronize, end));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ms = arena.allocate(ValueLayout.JAVA_FLOAT);
            check("cuEventElapsedTime", Native.call(cuEventElapsedTime, ms, start, end));
            return ms.get(ValueLayout.JAVA_FLOAT, 0);
        }
    }

    // Streams being captured: they cannot be waited for until the capture ends.
    private final java.util.Set<Long> capturing = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /** Starts recording the stream's work into a graph instead of running it (thread-local capture mode). */
    void beginCapture(MemorySegment stream) {
        check("cuStreamBeginCapture", Native.call(cuStreamBeginCapture, stream, 1)); // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
        capturing.add(stream.address());
    }

    /** Whether a capture of this stream is under way. */
    boolean capturing(MemorySegment stream) {
        return capturing.contains(stream.address());
    }

    /** Ends the recording and instantiates it; the graph itself is released, the executable kept. */
    MemorySegment endCapture(MemorySegment stream) {
        capturing.remove(stream.address());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment graph = arena.allocate(PTR);
            check("cuStreamEndCapture", Native.call(cuStreamEndCapture, stream, graph));
            MemorySegment exec = arena.allocate(PTR);
            check("cuGraphInstantiate", Native.call(cuGraphInstantiate, exec, graph.get(PTR, 0), 0L));
            check("cuGraphDestroy", Native.call(cuGraphDestroy, graph.get(PTR, 0)));
            return exec.get(PTR, 0);
        }
    }

    void launchGraph(MemorySegment exec, MemorySegment stream) {
        check("cuGraphLaunch", Native.call(cuGraphLaunch, exec, stream));
    }

    void destroyGraph(MemorySegment exec) {
        check("cuGraphExecDestroy", Native.call(cuGraphExecDestroy, exec));
    }
}
