// CUDA on the CPU: the driver, NVRTC, cuBLAS and cuBLASLt calls Flora's CUDA backend makes
// (src/main/java/dev/flora/cuda: Driver, Nvrtc, Cublas, CublasLt), answered in one shared library
// whose kernels are kernels.cu compiled for the CPU by cuda_host.h (a block's CUDA threads fibers on
// the calling thread: EMU_FIBERS).
// With -Dflora.cuda.library=THIS.so the GPU tests (tag "gpu") run the Java side of the backend where
// no GPU is lent: argument marshalling, launch shapes, graph capture and replay, copies, the cuBLAS
// products' shapes and strides. Built by build-cuda-on-cpu.sh. It measures no speed.
//
// What it keeps of the GPU's rules, so that a mistake shows here as it would there:
//  - work is queued on streams and runs in order; a stream under capture records into a graph
//    (kernel arguments and cuBLAS scalars copied at the call, device memory read when the graph
//    runs), and synchronising it or allocating while a capture is open fails as the driver fails;
//  - device memory is bounded (FLORA_EMU_MEMORY bytes, default 4 GiB) and a fresh allocation holds
//    NaNs, not zeros, so a read of memory never written shows; cuBLAS never reads C when beta is 0;
//  - NVRTC "compiles" only for the defines the library was built with, and names them when asked
//    for others;
//  - a kernel argument is read at the size the kernel declares it (a Java int passed where the
//    kernel takes a long long brings stale bytes, as on the GPU).
// cuBLAS products sum in float32 in k order (fmaf), batched or not, so the same product gives the same
// bits either way; cuBLASLt offers no algorithm (the backend then takes its cuBLAS path).
#include "cuda_host.h"
#include "kernels.cu"

#include <map>
#include <mutex>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>

#ifndef EMU_DEFINES
#define EMU_DEFINES ""
#endif

namespace {

using Op = std::function<void()>;

// ---- kernels: name -> a binder that copies the arguments (at the kernel's declared types) now
// and returns the launch to run when the stream gets to it.
using Binder = Op (*)(dim3, dim3, size_t, void**);

// FLORA_EMU_PROFILE=1: each kernel's launches, blocks and seconds, printed to stderr at exit.
struct KernelTotals {
    long long launches = 0, blocks = 0;
    double seconds = 0;
};
std::map<std::string, KernelTotals>& totals() {
    static auto* t = new std::map<std::string, KernelTotals>(); // never destroyed: read by the atexit handler
    return *t;
}
const bool profiling = [] {
    const char* v = std::getenv("FLORA_EMU_PROFILE");
    if (v == nullptr || std::strcmp(v, "1") != 0) return false;
    std::atexit([] {
        for (const auto& [name, t] : totals())
            std::fprintf(stderr, "emu profile %-40s %8lld launches %10lld blocks %9.3f s\n", name.c_str(), t.launches, t.blocks, t.seconds);
    });
    return true;
}();
// The launch, timed into its kernel's totals when profiling.
Op profiled(const std::string& name, dim3 grid, Op launch) {
    if (!profiling) return launch;
    return [name, grid, launch] {
        auto start = std::chrono::steady_clock::now();
        launch();
        KernelTotals& t = totals()[name];
        t.launches++;
        t.blocks += (long long) grid.x * grid.y * grid.z;
        t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
}

template <auto F> struct Bind;
template <typename... A, void (*F)(A...)> struct Bind<F> {
    static Op bind(dim3 grid, dim3 block, size_t shared, void** params) {
        return bindAt(grid, block, shared, params, std::index_sequence_for<A...>{});
    }
    template <size_t... I> static Op bindAt(dim3 grid, dim3 block, size_t shared, void** params, std::index_sequence<I...>) {
        std::tuple<std::remove_cv_t<std::remove_reference_t<A>>...> args{*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(params[I])...};
        return [grid, block, shared, args] { emu::launch(grid, block, shared, F, std::get<I>(args)...); };
    }
};

const std::unordered_map<std::string, Binder>& kernels() {
    static const std::unordered_map<std::string, Binder> table = {
#define FLORA_KERNEL(name) {#name, &Bind<&name>::bind},
#include "kernel_names.inc"
#undef FLORA_KERNEL
    };
    return table;
}

struct Function {
    std::string name;
    Binder binder;
};

// ---- streams and graphs: everything runs on the calling thread, in order, at once, except what a
// capture records.
struct Graph {
    std::vector<Op> ops;
};
struct Stream {
    Graph* capture = nullptr;
};

std::recursive_mutex lock; // one device: every call in turn (the emulator's launch state is global)
Stream defaultStream;

Stream* streamOf(void* s) { return s ? static_cast<Stream*>(s) : &defaultStream; }

bool anyCapture = false; // a capture is open on some stream (thread-local mode: this process's only thread of work)

void submit(void* stream, Op op) {
    Stream* s = streamOf(stream);
    if (s->capture) s->capture->ops.push_back(std::move(op));
    else op();
}

// ---- memory
std::map<uintptr_t, size_t> allocations;
size_t used = 0;

size_t capacity() {
    static const size_t bytes = [] {
        const char* v = std::getenv("FLORA_EMU_MEMORY");
        return v ? (size_t) std::strtoull(v, nullptr, 10) : (size_t) 4 << 30;
    }();
    return bytes;
}

int smCount() {
    static const int n = [] {
        const char* v = std::getenv("FLORA_EMU_SMS");
        return v ? std::atoi(v) : 4;
    }();
    return n;
}

const char kCubin[] = "FLORA-CPU-EMULATION " EMU_DEFINES;

struct ErrorName {
    int code;
    const char* name;
    const char* text;
};
const ErrorName errors[] = {
    {0, "CUDA_SUCCESS", "no error"},
    {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {101, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {200, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {400, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {900, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"},
};

const ErrorName* errorOf(int code) {
    for (const ErrorName& e : errors)
        if (e.code == code) return &e;
    return nullptr;
}

struct Event {
    std::chrono::steady_clock::time_point at;
};

}  // namespace

extern "C" {

// ---------------------------------------------------------------- driver
int cuInit(unsigned) { return 0; }
int cuDriverGetVersion(int* v) { *v = 1; return 0; } // not a real driver's: the kernel cache keys on it
int cuDeviceGetCount(int* n) { *n = 1; return 0; }
int cuDeviceGet(int* d, int ordinal) { if (ordinal != 0) return 101; *d = 0; return 0; }
int cuDeviceGetName(char* name, int length, int) {
    std::snprintf(name, (size_t) length, "CUDA emulated on the CPU (%d multiprocessors)", smCount());
    return 0;
}
int cuDeviceGetAttribute(int* v, int attribute, int) {
    switch (attribute) {
        case 75: *v = 9; return 0;            // compute capability 9.0: the sm_90 paths (mma.sync, cp.async)
        case 76: *v = 0; return 0;
        case 16: *v = smCount(); return 0;
        default: return 1;
    }
}
int cuDeviceTotalMem_v2(size_t* bytes, int) { *bytes = capacity(); return 0; }
int cuDevicePrimaryCtxRetain(void** ctx, int) { static int context; *ctx = &context; return 0; }
int cuCtxSetCurrent(void*) { return 0; }
int cuStreamCreate(void** s, unsigned) { *s = new Stream(); return 0; }
int cuStreamSynchronize(void* s) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    return streamOf(s)->capture ? 900 : 0;
}

int cuMemAlloc_v2(unsigned long long* p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    if (anyCapture) return 900; // cuMemAlloc is not permitted while a thread-local capture is open
    if (bytes == 0) return 1;
    if (used + bytes > capacity()) return 2;
    size_t rounded = (bytes + 255) / 256 * 256;
    void* m = std::aligned_alloc(256, rounded);
    if (!m) return 2;
    std::memset(m, 0xff, rounded); // NaN in every float type: a read of what was never written shows
    allocations[(uintptr_t) m] = bytes;
    used += bytes;
    *p = (uintptr_t) m;
    return 0;
}
int cuMemFree_v2(unsigned long long p) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    if (anyCapture) return 900;
    auto it = allocations.find((uintptr_t) p);
    if (it == allocations.end()) return 1;
    used -= it->second;
    allocations.erase(it);
    std::free((void*) p);
    return 0;
}
int cuMemHostAlloc(void** p, size_t bytes, unsigned) { *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256); return *p ? 0 : 2; }
int cuMemFreeHost(void* p) { std::free(p); return 0; }
int cuMemGetInfo_v2(size_t* free, size_t* total) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    *free = capacity() - used;
    *total = capacity();
    return 0;
}

int cuMemcpyHtoDAsync_v2(unsigned long long dst, const void* src, size_t bytes, void* stream) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    submit(stream, [=] { std::memcpy((void*) dst, src, bytes); });
    return 0;
}
int cuMemcpyDtoHAsync_v2(void* dst, unsigned long long src, size_t bytes, void* stream) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    submit(stream, [=] { std::memcpy(dst, (const void*) src, bytes); });
    return 0;
}
int cuMemcpyDtoDAsync_v2(unsigned long long dst, unsigned long long src, size_t bytes, void* stream) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    submit(stream, [=] { std::memmove((void*) dst, (const void*) src, bytes); });
    return 0;
}
int cuMemsetD32Async(unsigned long long dst, unsigned value, size_t count, void* stream) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    submit(stream, [=] {
        unsigned* d = (unsigned*) dst;
        for (size_t i = 0; i < count; i++) d[i] = value;
    });
    return 0;
}

int cuModuleLoadData(void** module, const void* image) {
    if (std::strncmp((const char*) image, kCubin, sizeof kCubin) != 0) return 200;
    static int theModule;
    *module = &theModule;
    return 0;
}
int cuModuleGetFunction(void** f, void*, const char* name) {
    auto it = kernels().find(name);
    if (it == kernels().end()) return 500;
    *f = new Function{name, it->second};
    return 0;
}

int cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared, void* stream,
                   void** params, void** extra) {
    if (extra) return 1;
    if ((unsigned long long) bx * by * bz > 1024 || gy > 65535 || gz > 65535) return 1; // CUDA_ERROR_INVALID_VALUE, as the driver
    std::lock_guard<std::recursive_mutex> hold(lock);
    Function* fn = static_cast<Function*>(f);
    submit(stream, profiled(fn->name, dim3{gx, gy, gz}, fn->binder(dim3{gx, gy, gz}, dim3{bx, by, bz}, shared, params)));
    return 0;
}
// CUlaunchConfig: gridDim x, y, z, blockDim x, y, z, sharedMemBytes (unsigned ints), hStream (offset 32),
// attrs (40), numAttrs (48). The attributes (programmatic stream serialisation) change only timing.
int cuLaunchKernelEx(const void* config, void* f, void** params, void** extra) {
    const unsigned* d = (const unsigned*) config;
    void* stream;
    std::memcpy(&stream, (const char*) config + 32, sizeof stream);
    return cuLaunchKernel(f, d[0], d[1], d[2], d[3], d[4], d[5], d[6], stream, params, extra);
}

int cuEventCreate(void** e, unsigned) { *e = new Event(); return 0; }
int cuEventRecord(void* e, void* stream) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    if (streamOf(stream)->capture) return 900;
    static_cast<Event*>(e)->at = std::chrono::steady_clock::now();
    return 0;
}
int cuEventSynchronize(void*) { return 0; }
int cuEventDestroy_v2(void* e) { delete static_cast<Event*>(e); return 0; }
int cuEventElapsedTime(float* ms, void* start, void* end) {
    *ms = std::chrono::duration<float, std::milli>(static_cast<Event*>(end)->at - static_cast<Event*>(start)->at).count();
    return 0;
}

int cuStreamBeginCapture_v2(void* stream, int) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    Stream* s = streamOf(stream);
    if (!stream || s->capture) return 1; // the legacy stream cannot be captured
    s->capture = new Graph();
    anyCapture = true;
    return 0;
}
int cuStreamEndCapture(void* stream, void** graph) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    Stream* s = streamOf(stream);
    if (!s->capture) return 1;
    *graph = s->capture;
    s->capture = nullptr;
    anyCapture = false;
    return 0;
}
int cuGraphInstantiateWithFlags(void** exec, void* graph, unsigned long long) {
    *exec = new Graph(*static_cast<Graph*>(graph));
    return 0;
}
int cuGraphLaunch(void* exec, void* stream) {
    std::lock_guard<std::recursive_mutex> hold(lock);
    Graph* g = static_cast<Graph*>(exec);
    submit(stream, [g] { for (const Op& op : g->ops) op(); });
    return 0;
}
int cuGraphExecDestroy(void* exec) { delete static_cast<Graph*>(exec); return 0; }
int cuGraphDestroy(void* graph) { delete static_cast<Graph*>(graph); return 0; }

int cuGetErrorName(int code, const char** name) {
    const ErrorName* e = errorOf(code);
    *name = e ? e->name : nullptr;
    return e ? 0 : 1;
}
int cuGetErrorString(int code, const char** text) {
    const ErrorName* e = errorOf(code);
    *text = e ? e->text : nullptr;
    return e ? 0 : 1;
}

// ---------------------------------------------------------------- NVRTC
struct Program {
    std::string log;
};
int nvrtcVersion(int* major, int* minor) { *major = 0; *minor = 0; return 0; }
int nvrtcCreateProgram(void** p, const char*, const char*, int, const char* const*, const char* const*) { *p = new Program(); return 0; }
// The kernels were compiled into this library with EMU_DEFINES (space-separated NAME=VALUE): a
// compile asking for other -D options is refused with both lists.
int nvrtcCompileProgram(void* p, int count, const char* const* options) {
    std::string asked;
    for (int i = 0; i < count; i++) {
        if (std::strncmp(options[i], "-D", 2) == 0) asked += (asked.empty() ? "" : " ") + std::string(options[i] + 2);
    }
    if (asked != EMU_DEFINES) {
        static_cast<Program*>(p)->log = "this CPU emulation of CUDA was built with DEFINES=\"" EMU_DEFINES "\" and was asked for \"" + asked +
                                        "\": rebuild it (tools/emulator/build-cuda-on-cpu.sh) with DEFINES=\"" + asked + "\"";
        return 6; // NVRTC_ERROR_COMPILATION
    }
    return 0;
}
int nvrtcDestroyProgram(void** p) { delete static_cast<Program*>(*p); *p = nullptr; return 0; }
int nvrtcGetProgramLogSize(void* p, size_t* n) { *n = static_cast<Program*>(p)->log.size() + 1; return 0; }
int nvrtcGetProgramLog(void* p, char* log) { std::strcpy(log, static_cast<Program*>(p)->log.c_str()); return 0; }
int nvrtcGetCUBINSize(void*, size_t* n) { *n = sizeof kCubin; return 0; }
int nvrtcGetCUBIN(void*, char* cubin) { std::memcpy(cubin, kCubin, sizeof kCubin); return 0; }
const char* nvrtcGetErrorString(int code) { return code == 6 ? "NVRTC_ERROR_COMPILATION" : code == 0 ? "NVRTC_SUCCESS" : "NVRTC_ERROR"; }

// ---------------------------------------------------------------- cuBLAS
struct Blas {
    void* stream = nullptr;
};
int cublasCreate_v2(void** h) { *h = new Blas(); return 0; }
int cublasSetStream_v2(void* h, void* stream) { static_cast<Blas*>(h)->stream = stream; return 0; }
int cublasSetWorkspace_v2(void*, void*, size_t) { return 0; }
int cublasGetVersion_v2(void*, int* v) { *v = 0; return 0; }
const char* cublasGetStatusString(int code) {
    switch (code) {
        case 0: return "CUBLAS_STATUS_SUCCESS";
        case 7: return "CUBLAS_STATUS_INVALID_VALUE";
        case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
        default: return "CUBLAS_STATUS_INTERNAL_ERROR";
    }
}

}  // extern "C"

namespace {
// cudaDataType: 0 float32, 2 float16, 14 bfloat16.
float element(const void* m, int type, long long i) {
    switch (type) {
        case 0: return ((const float*) m)[i];
        case 2: return f16_to_f32(((const u16*) m)[i]);
        default: return bf16_to_f32(((const u16*) m)[i]);
    }
}
bool knownType(int t) { return t == 0 || t == 2 || t == 14; }

// Column-major C (m x n) = alpha op(A) op(B) + beta C, C float32; A is m x k after op, B k x n. The
// operands are first widened to float32 rows of k (op(A)'s rows, op(B)'s columns), then each output is
// summed in k order with fmaf: the same bits for the same product, whichever call makes it.
// rows x k float32 from column-major M (leading dimension ld): row r is M's column r when
// kAlongColumns, else M's row r.
std::vector<float> widen(const void* M, int type, int ld, bool kAlongColumns, int rows, int k) {
    std::vector<float> out((size_t) rows * k);
    for (int r = 0; r < rows; r++)
        for (int p = 0; p < k; p++) out[(size_t) r * k + p] = element(M, type, kAlongColumns ? (long long) r * ld + p : (long long) p * ld + r);
    return out;
}
void gemm(int ta, int tb, int m, int n, int k, float alpha, const void* A, int at, int lda, const void* B, int bt, int ldb, float beta,
          float* C, int ldc) {
    std::vector<float> a = widen(A, at, lda, ta != 0, m, k), b = widen(B, bt, ldb, tb == 0, n, k);
    for (int j = 0; j < n; j++) {
        const float* bj = &b[(size_t) j * k];
        for (int i = 0; i < m; i++) {
            const float* ai = &a[(size_t) i * k];
            float s = 0.f;
            for (int p = 0; p < k; p++) s = fmaf(ai[p], bj[p], s);
            float& c = C[(long long) j * ldc + i];
            c = beta == 0.f ? alpha * s : alpha * s + beta * c;
        }
    }
}

int checkGemm(int ta, int tb, int m, int n, int k, int at, int lda, int bt, int ldb, int ct, int ldc, int compute) {
    if (ta > 1 || tb > 1 || m < 0 || n < 0 || k < 0) return 7;
    if (!knownType(at) || !knownType(bt) || ct != 0 || (compute != 68 && compute != 69)) return 15;
    if (lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m)) return 7;
    return 0;
}
}  // namespace

extern "C" {
int cublasGemmEx(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const void* A, int at, int lda, const void* B, int bt,
                 int ldb, const float* beta, void* C, int ct, int ldc, int compute, int) {
    int status = checkGemm(ta, tb, m, n, k, at, lda, bt, ldb, ct, ldc, compute);
    if (status) return status;
    float a = *alpha, b = *beta; // host pointer mode: read at the call
    std::lock_guard<std::recursive_mutex> hold(lock);
    submit(static_cast<Blas*>(h)->stream, [=] { gemm(ta, tb, m, n, k, a, A, at, lda, B, bt, ldb, b, (float*) C, ldc); });
    return 0;
}
int cublasGemmBatchedEx(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const void* const* As, int at, int lda,
                        const void* const* Bs, int bt, int ldb, const float* beta, void* const* Cs, int ct, int ldc, int count, int compute, int) {
    int status = checkGemm(ta, tb, m, n, k, at, lda, bt, ldb, ct, ldc, compute);
    if (status) return status;
    if (count < 0) return 7;
    float a = *alpha, b = *beta;
    std::lock_guard<std::recursive_mutex> hold(lock);
    // The pointer arrays are device memory: read when the product runs, as the GPU reads them.
    submit(static_cast<Blas*>(h)->stream, [=] {
        for (int g = 0; g < count; g++) gemm(ta, tb, m, n, k, a, As[g], at, lda, Bs[g], bt, ldb, b, (float*) Cs[g], ldc);
    });
    return 0;
}

// ---------------------------------------------------------------- cuBLASLt: plain products only
// One algorithm is offered for a descriptor with host alpha and beta (CudaTunedProducts' plain products), run as
// cublasGemmEx's emulation runs them; none for any other pointer mode (fLoRA's per-output alpha: the callers
// then take their other path, as on a GPU where cuBLASLt has no such product).
struct LtDesc { int compute, transa = 0, transb = 0, pointerMode = 0; };
struct LtLayout { int type; unsigned long long rows, cols; long long ld; };
int cublasLtCreate(void** h) { static int handle; *h = &handle; return 0; }
int cublasLtMatmulDescCreate(void** d, int compute, int) { *d = new LtDesc{compute}; return 0; }
int cublasLtMatmulDescSetAttribute(void* d, int attribute, const void* value, size_t) {
    LtDesc* desc = static_cast<LtDesc*>(d);
    int v;
    std::memcpy(&v, value, sizeof v);
    if (attribute == 2) desc->pointerMode = v;
    else if (attribute == 3) desc->transa = v;
    else if (attribute == 4) desc->transb = v;
    return 0;
}
int cublasLtMatrixLayoutCreate(void** l, int type, unsigned long long rows, unsigned long long cols, long long ld) {
    *l = new LtLayout{type, rows, cols, ld};
    return 0;
}
int cublasLtMatmulPreferenceCreate(void** p) { static int preference; *p = &preference; return 0; }
int cublasLtMatmulPreferenceSetAttribute(void*, int, const void*, size_t) { return 0; }
int cublasLtMatmulAlgoGetHeuristic(void*, void* desc, void*, void*, void*, void*, void*, int requested, void* results, int* count) {
    *count = 0;
    if (static_cast<LtDesc*>(desc)->pointerMode != 0 || requested < 1) return 0;
    std::memset(results, 0, 96); // cublasLtMatmulHeuristicResult_t: an algorithm of zeros, no workspace, state 0
    *count = 1;
    return 0;
}
int cublasLtMatmul(void*, void* d, const void* alpha, const void* A, void* aDesc, const void* B, void* bDesc, const void* beta, const void* C,
                   void*, void* D, void* dDesc, const void*, void*, size_t, void* stream) {
    const LtDesc* desc = static_cast<const LtDesc*>(d);
    const LtLayout* a = static_cast<const LtLayout*>(aDesc);
    const LtLayout* b = static_cast<const LtLayout*>(bDesc);
    const LtLayout* o = static_cast<const LtLayout*>(dDesc);
    if (desc->pointerMode != 0 || C != D) return 15;
    int m = (int) o->rows, n = (int) o->cols, k = (int) (desc->transa ? a->rows : a->cols);
    int status = checkGemm(desc->transa, desc->transb, m, n, k, a->type, (int) a->ld, b->type, (int) b->ld, o->type, (int) o->ld, desc->compute);
    if (status) return status;
    float al = *(const float*) alpha, be = *(const float*) beta; // host pointer mode: read at the call
    int ta = desc->transa, tb = desc->transb, at = a->type, bt = b->type, lda = (int) a->ld, ldb = (int) b->ld, ldc = (int) o->ld;
    std::lock_guard<std::recursive_mutex> hold(lock);
    submit(stream, [=] { gemm(ta, tb, m, n, k, al, A, at, lda, B, bt, ldb, be, (float*) D, ldc); });
    return 0;
}
}  // extern "C"
