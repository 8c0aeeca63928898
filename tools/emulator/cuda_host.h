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
#include <deque>
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

#define __global__
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
    std::deque<std::vector<Copy>> groups; // committed, not yet waited for
};
inline thread_local Lane lane;
inline std::vector<unsigned char> dynamicShared;
}  // namespace emu

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

inline void __syncthreads() { emu::lane.block->bar.arrive_and_wait(); }
inline emu::Warp& emu_warp() { return emu::lane.block->warps[emu::lane.thread / 32]; }
inline void __syncwarp(unsigned = 0xffffffffu) { emu_warp().bar.arrive_and_wait(); }

template <typename T> T __shfl_xor_sync(unsigned, T v, int o) {
    static_assert(sizeof(T) <= 64, "a lane's slot");
    emu::Warp& w = emu_warp();
    int me = emu::lane.thread & 31;
    std::memcpy(w.slot[me], &v, sizeof(T));
    w.bar.arrive_and_wait();
    T r;
    std::memcpy(&r, w.slot[me ^ o], sizeof(T));
    w.bar.arrive_and_wait();
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
        emu::lane.groups.pop_front();
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
    w.bar.arrive_and_wait();
    for (int i = 0; i < 4; i++) {
        const unsigned short* row0;
        const unsigned short* row1;
        std::memcpy(&row0, w.slot[8 * i + 2 * (me % 4)], sizeof row0);
        std::memcpy(&row1, w.slot[8 * i + 2 * (me % 4) + 1], sizeof row1);
        r[i] = (unsigned) row0[me / 4] | ((unsigned) row1[me / 4] << 16);
    }
    w.bar.arrive_and_wait();
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
    w.bar.arrive_and_wait();
    Fragment all[32];
    for (int l = 0; l < 32; l++) std::memcpy(&all[l], w.slot[l], sizeof(Fragment));
    w.bar.arrive_and_wait();
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
    // One host thread per CUDA thread for the whole launch; the blocks one after another. Two gates a
    // block: at the first the block's barriers are ready, at the second every thread is done with them.
    unsigned blocks = grid.x * grid.y * grid.z;
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
            threadIdx = {(unsigned) (i % block.x), (unsigned) (i / block.x % block.y), (unsigned) (i / (block.x * block.y))};
            for (unsigned n = 0; n < blocks; n++) {
                gate.arrive_and_wait();
                Block& b = *current;
                lane.block = &b;
                lane.open.clear();
                lane.groups.clear();
                blockIdx = {n % grid.x, n / grid.x % grid.y, n / (grid.x * grid.y)};
                kernel(args...);
                if (!lane.open.empty() || !lane.groups.empty()) {
                    std::fprintf(stderr, "block (%u, %u, %u): thread %d ended with cp.async copies never waited for\n", blockIdx.x,
                                 blockIdx.y, blockIdx.z, i);
                    std::abort();
                }
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
                std::fprintf(stderr, "block (%u, %u, %u): %d of %d threads still running after %d s: a barrier or shuffle that not every "
                             "thread reaches?\n", n % grid.x, n / grid.x % grid.y, n / (grid.x * grid.y), threads - ended, threads, stuckSeconds());
                std::_Exit(3);
            }
        }
        gate.arrive_and_wait();
    }
    for (std::thread& t : pool) t.join();
}
}  // namespace emu
