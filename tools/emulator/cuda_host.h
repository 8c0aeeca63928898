// Just enough of CUDA to run Flora's kernels (src/main/resources/dev/flora/cuda/kernels.cu) on the
// CPU, for checking a kernel's logic where no GPU is lent: indices, bounds (built with AddressSanitizer),
// barriers, shuffles, the cp.async groups and the tensor-core fragments (tools/kernels-emulate.sh builds
// kernels_test.cpp with it; kernels.cu's inline PTX has FLORA_HOST_EMULATION branches calling the emu_
// functions here). Every CUDA thread of a block is a host thread (one per thread index for a whole
// launch); blocks run one after another, so a kernel's __shared__ variables are plain statics.
// __syncthreads is a barrier of the block, a shuffle a barrier of the warp, cp.async a copy deferred
// until the wait that covers its group, and ldmatrix / mma.sync the warp-wide data movements the PTX
// manual defines (mma sums in float32 in k order; the GPU's tensor cores keep more bits, so results
// are compared with tolerances, and two kernels' bits only with each other). Timing says nothing here.
#pragma once
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
struct __attribute__((aligned(8))) uint2 { unsigned x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }

#ifdef FLORA_KERNEL_LIST // build-cuda-on-cpu.sh lists the kernels from the preprocessed source
#define __global__ FLORA_KERNEL_MARK
#else
#define __global__
#endif
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static
#define FLORA_HOST_EMULATION 1

namespace emu {
struct Warp {
    std::barrier<> bar{32};
    alignas(16) unsigned char slot[32][64]; // a lane's published value (shuffles, fragments, addresses)
};
struct Block {
    explicit Block(int threads) : bar(threads), warps(threads / 32) {}
    std::barrier<> bar;
    std::vector<Warp> warps;
};
struct Copy {
    void* to;
    const void* from;
};
struct Lane {
    Block* block = nullptr;
    int thread = 0;
    std::vector<Copy> open;              // cp.async copies issued since the last commit
    std::vector<std::vector<Copy>> groups; // committed, not yet waited for (oldest first)
};
// A CUDA thread's own state: per host thread, or (EMU_FIBERS, all on one host thread) swapped in and
// out with the fiber.
#ifdef EMU_FIBERS
#define EMU_THREAD_LOCAL
#else
#define EMU_THREAD_LOCAL thread_local
#endif
inline EMU_THREAD_LOCAL Lane lane;
inline void swapLanes(Lane& a, Lane& b) { // no allocation: the fibers swap at every barrier
    std::swap(a.block, b.block);
    std::swap(a.thread, b.thread);
    a.open.swap(b.open);
    a.groups.swap(b.groups);
}
inline std::vector<unsigned char> dynamicShared;
}  // namespace emu

inline EMU_THREAD_LOCAL dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

inline emu::Warp& emu_warp() { return emu::lane.block->warps[emu::lane.thread / 32]; }

#ifdef EMU_FIBERS
// Fibers (cuda_on_cpu.cpp, where the GPU tests' many launches would otherwise spend their time
// starting host threads and waking them at every barrier): a block's CUDA threads are contexts on
// one host thread, each run until it ends or waits at a barrier, the barrier released when every
// thread of the block (or warp) still running has reached it. threadIdx and the lane's state are
// swapped in and out with the context. The same order of events as host threads may take, so the
// same results; ThreadSanitizer and AddressSanitizer runs keep host threads (kernels-emulate.sh).
// A switch saves the callee-saved registers on the stack it leaves (x86-64 System V): no system call,
// where ucontext's swapcontext makes one to save the signal mask (a barrier of 128 threads is 128 switches).
#if !defined(__x86_64__)
#error "EMU_FIBERS switches stacks with x86-64 code; elsewhere build without it (host threads)"
#endif
#include <sys/mman.h>
extern "C" void emu_fiber_switch(void** save, void* load);
asm(R"(
    .text
    .globl emu_fiber_switch
    .hidden emu_fiber_switch
    .type emu_fiber_switch, @function
emu_fiber_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_fiber_switch, .-emu_fiber_switch
)");
namespace emu {
enum class Wait { None, Block, Warp, Done };
struct Fiber {
    void* stack = nullptr; // the saved stack pointer while it does not run
    Lane saved;            // this thread's lane state while another thread runs
    dim3 index;
    Wait wait = Wait::None;
};
struct FiberBlock {
    std::vector<Fiber> fibers;
    void* scheduler = nullptr;
    int current = 0, alive = 0, atBlock = 0;
    std::vector<int> warpAlive, atWarp;
    void (*body)(void*) = nullptr;
    void* argument = nullptr;
};
inline FiberBlock* fiberBlock = nullptr;
constexpr size_t kFiberStack = 256 << 10; // reserved, not committed: pages are touched as used
inline char* fiberStacks(int threads) {
    static char* base = nullptr;
    static int reserved = 0;
    if (threads > reserved) {
        if (base) munmap(base, kFiberStack * reserved);
        void* m = mmap(nullptr, kFiberStack * threads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) { std::fprintf(stderr, "emu: no memory for %d fiber stacks\n", threads); std::abort(); }
        base = (char*) m;
        reserved = threads;
    }
    return base;
}
inline void releaseWaiting(Wait kind, int warp) {
    FiberBlock& b = *fiberBlock;
    for (size_t i = 0; i < b.fibers.size(); i++) {
        if (b.fibers[i].wait == kind && (kind == Wait::Block || (int) i / 32 == warp)) b.fibers[i].wait = Wait::None;
    }
    if (kind == Wait::Block) b.atBlock = 0;
    else b.atWarp[warp] = 0;
}
// The next thread after `after` (in index order, wrapping) that can run, or -1.
inline int nextRunnable(int after) {
    FiberBlock& b = *fiberBlock;
    int n = (int) b.fibers.size();
    for (int k = 1; k <= n; k++) {
        int i = (after + k) % n;
        if (b.fibers[i].wait == Wait::None) return i;
    }
    return -1;
}
// Runs thread `to` from where it stopped, the running stack's pointer saved in *save.
inline void resume(int to, void** save) {
    FiberBlock& b = *fiberBlock;
    swapLanes(lane, b.fibers[to].saved);
    threadIdx = b.fibers[to].index;
    b.current = to;
    emu_fiber_switch(save, b.fibers[to].stack);
}
// Leaves thread `from` for thread `to`, straight from one to the other (half the switches of going
// through the scheduler), or for the scheduler when `to` is -1.
inline void switchThreads(int from, int to, void** save) {
    swapLanes(lane, fiberBlock->fibers[from].saved);
    if (to < 0) emu_fiber_switch(save, fiberBlock->scheduler);
    else resume(to, save);
}
inline void fiberWait(Wait kind) {
    FiberBlock& b = *fiberBlock;
    int me = b.current, warp = me / 32;
    Fiber& f = b.fibers[me];
    f.wait = kind;
    if (kind == Wait::Block ? ++b.atBlock == b.alive : ++b.atWarp[warp] == b.warpAlive[warp]) {
        releaseWaiting(kind, warp); // the last to arrive: everyone goes on, this thread first
        return;
    }
    switchThreads(me, nextRunnable(me), &f.stack); // none runnable: the scheduler names the deadlock
}
// A thread that ends no longer holds up the barriers (as on the GPU); its stack is not returned to.
[[noreturn]] inline void fiberStart() {
    FiberBlock& b = *fiberBlock;
    b.body(b.argument);
    int me = b.current, warp = me / 32;
    b.fibers[me].wait = Wait::Done;
    b.alive--;
    b.warpAlive[warp]--;
    if (b.atBlock > 0 && b.atBlock == b.alive) releaseWaiting(Wait::Block, warp);
    if (b.atWarp[warp] > 0 && b.atWarp[warp] == b.warpAlive[warp]) releaseWaiting(Wait::Warp, warp);
    void* discarded;
    switchThreads(me, nextRunnable(me), &discarded);
    __builtin_unreachable();
}
// A fresh stack as emu_fiber_switch leaves one: six zeroed registers, then fiberStart as the return
// address, entered with the stack 8 bytes off 16 as a call leaves it.
// The tops are staggered (thread i's by i % 64 cache lines and pages): stacks a power of two apart
// would all fall on the same cache sets, and every barrier touches every thread's top of stack.
inline void* fiberEntry(char* stackBase, int thread) {
    uintptr_t top = ((uintptr_t) (stackBase + kFiberStack - (thread % 64) * (4096 + 64))) & ~(uintptr_t) 15;
    void** sp = (void**) (top - 64);
    for (int i = 0; i < 6; i++) sp[i] = nullptr;
    sp[6] = (void*) &fiberStart;
    sp[7] = nullptr;
    return sp;
}
}  // namespace emu
inline void __syncthreads() { emu::fiberWait(emu::Wait::Block); }
inline void emu_warp_wait(emu::Warp&) { emu::fiberWait(emu::Wait::Warp); }
#else
inline void __syncthreads() { emu::lane.block->bar.arrive_and_wait(); }
inline void emu_warp_wait(emu::Warp& w) { w.bar.arrive_and_wait(); }
#endif
inline void __syncwarp(unsigned = 0xffffffffu) { emu_warp_wait(emu_warp()); }

template <typename T> T __shfl_xor_sync(unsigned, T v, int o) {
    static_assert(sizeof(T) <= 64, "a lane's slot");
    emu::Warp& w = emu_warp();
    int me = emu::lane.thread & 31;
    std::memcpy(w.slot[me], &v, sizeof(T));
    emu_warp_wait(w);
    T r;
    std::memcpy(&r, w.slot[me ^ o], sizeof(T));
    emu_warp_wait(w);
    return r;
}

inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
template <typename T> T __ldcg(const T* p) {
    T r;
    __atomic_load(p, &r, __ATOMIC_SEQ_CST);
    return r;
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned min(int a, unsigned b) { return (unsigned) a < b ? (unsigned) a : b; }
inline unsigned min(unsigned a, int b) { return a < (unsigned) b ? a : (unsigned) b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline long long min(int a, long long b) { return a < b ? a : b; }
inline long long min(long long a, int b) { return a < b ? a : b; }
inline long long max(int a, long long b) { return a > b ? a : b; }
inline long long max(long long a, int b) { return a > b ? a : b; }

// IEEE half <-> float, round to nearest even (the PTX cvt.rn.f16.f32 and cvt.f32.f16).
inline float emu_f16_to_f32(unsigned short h) {
    _Float16 v;
    std::memcpy(&v, &h, 2);
    return (float) v;
}
inline unsigned short emu_f32_to_f16(float f) {
    _Float16 v = (_Float16) f;
    unsigned short h;
    std::memcpy(&h, &v, 2);
    return h;
}

// cp.async: the hardware may land a copy at any time between its issue and the wait that covers its
// group. By default the copy is deferred to that wait (a read before the wait sees stale data); with
// EMU_CP_ASYNC=eager it lands at issue (a copy into a buffer that other threads still read, with no
// barrier between, overwrites what they read: ThreadSanitizer names the race). kernels_test.cpp also
// sets it for a second pass over the kernels that copy this way.
inline bool emu_copy_eager = [] {
    const char* mode = std::getenv("EMU_CP_ASYNC");
    return mode != nullptr && std::strcmp(mode, "eager") == 0;
}();
inline void emu_copy_async16(void* to, const void* from) {
    if (emu_copy_eager) std::memcpy(to, from, 16);
    else emu::lane.open.push_back({to, from});
}
inline void emu_copy_async_commit() {
    emu::lane.groups.push_back(std::move(emu::lane.open));
    emu::lane.open.clear();
}
inline void emu_copy_async_wait(int pending) {
    while ((int) emu::lane.groups.size() > pending) {
        for (const emu::Copy& c : emu::lane.groups.front()) std::memcpy(c.to, c.from, 16);
        emu::lane.groups.erase(emu::lane.groups.begin());
    }
}

// ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16: lanes 8i..8i+7 give the rows of matrix i; lane l
// receives of matrix i the elements (row 2(l % 4), column l / 4) and (row 2(l % 4) + 1, column l / 4).
inline void emu_ldmatrix_x4_trans(unsigned* r, const void* at) {
    emu::Warp& w = emu_warp();
    int me = emu::lane.thread & 31;
    if ((reinterpret_cast<uintptr_t>(at) & 15) != 0) {
        std::fprintf(stderr, "ldmatrix: lane %d's row address is not 16-byte aligned\n", me);
        std::abort();
    }
    std::memcpy(w.slot[me], &at, sizeof at);
    emu_warp_wait(w);
    for (int i = 0; i < 4; i++) {
        const unsigned short* row0;
        const unsigned short* row1;
        std::memcpy(&row0, w.slot[8 * i + 2 * (me % 4)], sizeof row0);
        std::memcpy(&row1, w.slot[8 * i + 2 * (me % 4) + 1], sizeof row1);
        r[i] = (unsigned) row0[me / 4] | ((unsigned) row1[me / 4] << 16);
    }
    emu_warp_wait(w);
}

// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: D = A (16x16) B (16x8) + C, fragments as the PTX
// manual lays them out (g = lane / 4, t = lane % 4): a0 A[g][2t..], a1 A[g+8][2t..], a2 A[g][2t+8..],
// a3 A[g+8][2t+8..]; b0 B[2t..][g], b1 B[2t+8..][g]; c0 C[g][2t], c1 C[g][2t+1], c2 C[g+8][2t], c3 C[g+8][2t+1].
template <bool BF16> float emu_half(unsigned short h) {
    return BF16 ? __uint_as_float(((unsigned) h) << 16) : emu_f16_to_f32(h);
}
template <bool BF16> void emu_mma16816(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    struct Fragment {
        unsigned a[4], b[2];
    };
    emu::Warp& w = emu_warp();
    int me = emu::lane.thread & 31;
    Fragment mine{{a[0], a[1], a[2], a[3]}, {b0, b1}};
    std::memcpy(w.slot[me], &mine, sizeof mine);
    emu_warp_wait(w);
    Fragment all[32];
    for (int l = 0; l < 32; l++) std::memcpy(&all[l], w.slot[l], sizeof(Fragment));
    emu_warp_wait(w);
    auto half = [](unsigned word, int hi) { return (unsigned short) (hi ? word >> 16 : word & 0xffffu); };
    auto A = [&](int row, int k) { // the lane holding A[row][k]: g = row % 8, t = (k % 8) / 2
        int l = (row % 8) * 4 + (k % 8) / 2, reg = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
        return emu_half<BF16>(half(all[l].a[reg], k & 1));
    };
    auto B = [&](int k, int col) {
        int l = col * 4 + (k % 8) / 2, reg = k >= 8 ? 1 : 0;
        return emu_half<BF16>(half(all[l].b[reg], k & 1));
    };
    int g = me / 4, t = me % 4;
    int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int e = 0; e < 4; e++) {
        float s = 0.f;
        for (int k = 0; k < 16; k++) s += A(rows[e], k) * B(k, cols[e]);
        c[e] += s;
    }
}

namespace emu {
// Thread i of a block, and block n of a grid, as CUDA numbers them (x fastest).
inline dim3 threadIndex(int i, dim3 block) {
    return {(unsigned) (i % block.x), (unsigned) (i / block.x % block.y), (unsigned) (i / (block.x * block.y))};
}
inline dim3 blockIndex(unsigned n, dim3 grid) { return {n % grid.x, n / grid.x % grid.y, n / (grid.x * grid.y)}; }
// A thread must wait for every cp.async copy it issued before it ends.
inline void checkCopiesWaited() {
    if (!lane.open.empty() || !lane.groups.empty()) {
        std::fprintf(stderr, "block (%u, %u, %u): thread %d ended with cp.async copies never waited for\n", blockIdx.x, blockIdx.y,
                     blockIdx.z, lane.thread);
        std::abort();
    }
}
inline int stuckSeconds() {
    const char* s = std::getenv("EMU_STUCK_SECONDS");
    return s ? std::atoi(s) : 60;
}
// Runs kernel(args...) over grid × block threads, a block at a time, with dynamicBytes of extern shared memory.
template <typename Kernel, typename... Args>
void launch(dim3 grid, dim3 block, size_t dynamicBytes, Kernel kernel, Args... args) {
    gridDim = grid;
    blockDim = block;
    int threads = (int) (block.x * block.y * block.z);
    if (threads % 32 != 0) {
        std::fprintf(stderr, "emu::launch: %d threads a block, not whole warps\n", threads);
        std::abort();
    }
    dynamicShared.assign(dynamicBytes + 16, 0);
    unsigned blocks = grid.x * grid.y * grid.z;
#ifdef EMU_FIBERS
    char* stacks = fiberStacks(threads);
    auto body = [&] {
        kernel(args...);
        checkCopiesWaited();
    };
    Block shared(threads); // its warps' slots; the fibers need none of its barriers
    FiberBlock b;
    b.body = [](void* f) { (*static_cast<decltype(body)*>(f))(); };
    b.argument = &body;
    b.fibers.resize(threads);
    for (unsigned n = 0; n < blocks; n++) {
        b.alive = threads;
        b.atBlock = 0;
        b.warpAlive.assign(threads / 32, 32);
        b.atWarp.assign(threads / 32, 0);
        fiberBlock = &b;
        blockIdx = blockIndex(n, grid);
        for (int i = 0; i < threads; i++) {
            Fiber& f = b.fibers[i];
            f.index = threadIndex(i, block);
            f.saved.block = &shared;
            f.saved.thread = i;
            f.saved.open.clear();
            f.saved.groups.clear();
            f.wait = Wait::None;
            f.stack = fiberEntry(stacks + kFiberStack * i, i);
        }
        // The threads pass control among themselves; back here when all have ended, or when none can run.
        while (b.alive > 0) {
            int i = nextRunnable(threads - 1);
            if (i < 0) {
                std::fprintf(stderr, "block (%u, %u, %u): %d of %d threads wait at a barrier or shuffle that the others never reach\n",
                             blockIdx.x, blockIdx.y, blockIdx.z, b.alive, threads);
                std::_Exit(3);
            }
            resume(i, &b.scheduler);
        }
        fiberBlock = nullptr;
    }
    return;
#endif
    // One host thread per CUDA thread for the whole launch; the blocks one after another. Two gates a
    // block: at the first the block's barriers are ready, at the second every thread is done with them.
    std::unique_ptr<Block> current;
    std::barrier<> gate(threads + 1);
    std::mutex mutex;
    std::condition_variable allEnded;
    int ended = 0;
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (int i = 0; i < threads; i++) {
        pool.emplace_back([&, i] {
            lane.thread = i;
            threadIdx = threadIndex(i, block);
            for (unsigned n = 0; n < blocks; n++) {
                gate.arrive_and_wait();
                Block& b = *current;
                lane.block = &b;
                lane.open.clear();
                lane.groups.clear();
                blockIdx = blockIndex(n, grid);
                kernel(args...);
                checkCopiesWaited();
                // An ended thread no longer holds up the barriers (as on the GPU).
                b.warps[i / 32].bar.arrive_and_drop();
                b.bar.arrive_and_drop();
                {
                    std::lock_guard<std::mutex> hold(mutex);
                    if (++ended == threads) allEnded.notify_one();
                }
                gate.arrive_and_wait();
            }
        });
    }
    for (unsigned n = 0; n < blocks; n++) {
        current = std::make_unique<Block>(threads);
        ended = 0;
        gate.arrive_and_wait();
        // A thread waiting at a barrier that others never reach (a __syncthreads or shuffle in divergent
        // code) would hang the run: stop it, naming the block.
        {
            std::unique_lock<std::mutex> hold(mutex);
            if (!allEnded.wait_for(hold, std::chrono::seconds(stuckSeconds()), [&] { return ended == threads; })) {
                dim3 at = blockIndex(n, grid);
                std::fprintf(stderr, "block (%u, %u, %u): %d of %d threads still running after %d s: a barrier or shuffle that not every "
                             "thread reaches?\n", at.x, at.y, at.z, threads - ended, threads, stuckSeconds());
                std::_Exit(3);
            }
        }
        gate.arrive_and_wait();
    }
    for (std::thread& t : pool) t.join();
}
}  // namespace emu
