// Flora's CUDA kernels, compiled at run time by NVRTC for the device's architecture (see
// dev.flora.cuda.KernelModule). Activations are float32; weights are read in their checkpoint
// type: 0 = float32, 1 = bfloat16, 2 = float16 (the `type` arguments). Simple, exact versions:
// every reduction runs in float32 in a fixed order for a given shape.
// tools/kernels-emulate.sh also compiles this file as C++ for the CPU (FLORA_HOST_EMULATION: the
// inline PTX below has host branches there) and checks the kernels against float64; see tools/emulator.

typedef unsigned short u16;

__device__ __forceinline__ float bf16_to_f32(u16 h) { return __uint_as_float(((unsigned int) h) << 16); }

__device__ __forceinline__ float f16_to_f32(u16 h) {
#ifdef FLORA_HOST_EMULATION // tools/emulator: the kernels on the CPU
    return emu_f16_to_f32(h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}

__device__ __forceinline__ float ld(const void* p, long long i, int type) {
    if (type == 0) return ((const float*) p)[i];
    if (type == 1) return bf16_to_f32(((const u16*) p)[i]);
    return f16_to_f32(((const u16*) p)[i]);
}

// Round to nearest even, as torch's .to(bfloat16) does; NaN stays NaN.
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    unsigned int b = __float_as_uint(f);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (u16) ((b >> 16) | 0x40);
    return (u16) ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ u16 f32_to_f16(float f) {
#ifdef FLORA_HOST_EMULATION
    return emu_f32_to_f16(f);
#else
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#endif
}

// Stores v at element i of a float32 (type 0), bf16 (1) or f16 (2) buffer.
__device__ __forceinline__ void kv_st(void* p, long long i, float v, int type) {
    if (type == 0) ((float*) p)[i] = v;
    else if (type == 1) ((u16*) p)[i] = f32_to_bf16(v);
    else ((u16*) p)[i] = f32_to_f16(v);
}

// Programmatic dependent launch (Hopper): a kernel launched with it (CudaBackend.launchOverlapped)
// may start while the one before it drains; it reads nothing the earlier kernels write, and writes
// nothing, before grid_wait(). Every decode kernel calls let_next_start() first, so that the next
// kernel's blocks can take free SMs and begin streaming their weights. Both are no-ops on older GPUs
// and in launches without the attribute.
__device__ __forceinline__ void grid_wait() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void let_next_start() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// Asks L2 for the bytes [p, p + bytes), one prefetch a 128-byte line, the lines dealt out to `count`
// threads from `index`: what a kernel launched overlapped reads after grid_wait() but no kernel writes
// (an adapter's factors) can stream in while the kernel before it drains. Addresses stay inside the
// range; on GPUs without programmatic dependent launch it is left out (nothing would overlap).
__device__ __forceinline__ void prefetch_l2(const void* p, long long bytes, int index, int count) {
#if __CUDA_ARCH__ >= 900
    const char* c = (const char*) p;
    for (long long o = 128LL * index; o < bytes + 127; o += 128LL * count)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(c + (o < bytes ? o : bytes - 1)));
#endif
}

// Sum over the block (float or double), every thread receives it. blockDim.x is a multiple of 32,
// at most 1024; scratch holds one value per warp.
template <typename T> __device__ T block_sum(T v, T* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    T s = 0;
    for (int w = 0; w < warps; w++) s += scratch[w];
    return s;
}

__device__ float block_max(float v, float* scratch) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float m = __int_as_float(0xff800000);
    for (int w = 0; w < warps; w++) m = fmaxf(m, scratch[w]);
    return m;
}

// Products of a few rows (decode) with a bf16 / f16 weight: reading the weight once at full memory
// bandwidth is all that matters. One block of GEMV_WARPS warps per GEMV_ROWS weight rows; the warps
// split each row's length (warp w, lane l take the 16-byte pieces (w·32 + l) + k·GEMV_WARPS·32),
// stream them past L1 (no_allocate keeps L1 for x), GEMV_UNROLL pieces per row issued before any is
// used. One piece per row (a thread's GEMV_ROWS loads in flight) is the fastest on the H200: the
// fewer registers let more blocks share an SM, which puts more bytes in flight than unrolling does
// (batch-1 decode +8%, 4 tokens +24% against 2 pieces; NOTES.md, session 8). x is rounded to the weight's
// type first, as the cuBLAS path does; products are summed in float32 in a fixed order (lanes, then
// warps in order), the same for any TOKENS: batch-invariant among these kernels. in % 8 == 0.
#define GEMV_ROWS 4
#define GEMV_WARPS 4
#define GEMV_THREADS (GEMV_WARPS * 32)
#ifndef GEMV_UNROLL // a tunable: -Dflora.cuda.defines=GEMV_UNROLL=N (CudaBackend, KernelModule.TUNABLES)
#define GEMV_UNROLL 1
#endif
#define GEMV_STEP (GEMV_WARPS * 256)
__device__ __forceinline__ uint4 ld_stream(const void* p) {
#ifdef FLORA_HOST_EMULATION
    return *(const uint4*) p;
#else
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
#endif
}

__device__ __forceinline__ float rounded(float x, int bf16) {
    return bf16 ? bf16_to_f32(f32_to_bf16(x)) : f16_to_f32(f32_to_f16(x));
}

__device__ __forceinline__ void unpack8(uint4 w, int bf16, float* f) {
    unsigned int u[4] = {w.x, w.y, w.z, w.w};
    #pragma unroll
    for (int k = 0; k < 4; k++) {
        f[2 * k] = bf16 ? bf16_to_f32((u16) (u[k] & 0xffffu)) : f16_to_f32((u16) (u[k] & 0xffffu));
        f[2 * k + 1] = bf16 ? bf16_to_f32((u16) (u[k] >> 16)) : f16_to_f32((u16) (u[k] >> 16));
    }
}

// The input of a GEMV: x itself, or (NORM) x RMS-normed on the fly, each block working out the
// rows' 1/rms itself (rms_norm's own sums, so the same bits) and block 0 writing the normed rows to
// h, where adapters and later kernels read them.
struct GemvInput {
    const float* x;
    const void* norm;
    int normType;
    float eps;
    float* h;
    // MOD (flora_gemv): input row t is x[meta[t].xRow] ∘ A row aRow[t] (FLORA_META ints a row in meta).
    const long long* aRow;
    const int* meta;
};

// 1 / sqrt(mean(row²) + eps) in float64, summed by a block of RMS_THREADS in a fixed order: rms_norm
// and the normed GEMVs share it, so their normed values agree to the bit.
#define RMS_THREADS 128
// A decode step's few rows make few blocks, so the loads go four columns at a time and several in
// flight per thread (one memory round trip, not one per column).
__device__ __forceinline__ bool rms_vector(const float* row, int cols) {
    return (cols & 3) == 0 && ((unsigned long long) row & 15) == 0;
}

__device__ __forceinline__ float inverse_rms(const float* row, int cols, float eps, double* scratch) {
    double s = 0.0;
    if (rms_vector(row, cols)) {
        const float4* r4 = (const float4*) row;
        #pragma unroll 8
        for (int c = threadIdx.x; c < cols / 4; c += RMS_THREADS) {
            float4 v = r4[c];
            s += (double) v.x * v.x;
            s += (double) v.y * v.y;
            s += (double) v.z * v.z;
            s += (double) v.w * v.w;
        }
    } else {
        for (int c = threadIdx.x; c < cols; c += RMS_THREADS) s += (double) row[c] * row[c];
    }
    float variance = (float) (block_sum(s, scratch) / cols);
    return (float) (1.0 / sqrt((double) (variance + eps)));
}

// acc[r][t] += x[t, i..i+8) · w[row r, i..i+8), in k order (x normed first when NORM).
template <int TOKENS, bool NORM, bool MOD>
__device__ __forceinline__ void gemv_piece(const GemvInput& input, const float* inv, int in, int i, const uint4* raw, int bf16,
                                           float (*acc)[TOKENS], const float* const* xRows, const void* const* aRows, const int* aTypes) {
    float nw[8];
    if (NORM) {
        #pragma unroll
        for (int k = 0; k < 8; k++) nw[k] = ld(input.norm, i + k, input.normType);
    }
    #pragma unroll
    for (int t = 0; t < TOKENS; t++) {
        const float* xRow = MOD ? xRows[t] : input.x + (long long) t * in;
        float4 a = *(const float4*) (xRow + i);
        float4 b = *(const float4*) (xRow + i + 4);
        float v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
        if (MOD) { // flora_modulate's product, before the rounding every GEMV input gets
            #pragma unroll
            for (int k = 0; k < 8; k++) v[k] = __fmul_rn(v[k], ld(aRows[t], i + k, aTypes[t]));
        }
        if (NORM) {
            #pragma unroll
            for (int k = 0; k < 8; k++) v[k] = v[k] * inv[t] * nw[k];
            if (blockIdx.x == 0) {
                float* h = input.h + (long long) t * in + i;
                *(float4*) h = make_float4(v[0], v[1], v[2], v[3]);
                *(float4*) (h + 4) = make_float4(v[4], v[5], v[6], v[7]);
            }
        }
        float xs[8];
        #pragma unroll
        for (int k = 0; k < 8; k++) xs[k] = rounded(v[k], bf16);
        #pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) {
            float f[8];
            unpack8(raw[r], bf16, f);
            #pragma unroll
            for (int k = 0; k < 8; k++) acc[r][t] = fmaf(xs[k], f[k], acc[r][t]);
        }
    }
}

// act: 0 silu, 1 gelu (erf), 2 gelu (tanh), 3 relu
__device__ __forceinline__ float activate(int act, float x) {
    if (act == 0) return x / (1.f + expf(-x));
    if (act == 1) return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    if (act == 2) return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    return fmaxf(x, 0.f);
}

// This thread's GEMV_UNROLL pieces from i of every row (those inside the row).
__device__ __forceinline__ void gemv_load(uint4 (*raw)[GEMV_ROWS], const u16* const* rows, int i, int in) {
    #pragma unroll
    for (int u = 0; u < GEMV_UNROLL; u++)
        #pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++)
            if (i + u * GEMV_STEP < in) raw[u][r] = ld_stream(rows[r] + i + u * GEMV_STEP);
}

// The sums x[t] · rows[r] for four weight rows, valid in thread 0 of the block. The first pieces
// of the weight are loaded before grid_wait(): they stream while the kernel before this one ends.
#define FLORA_META 5 // flora_gemv's ints per stacked row: x row, out row, A's type, Bᵀ's type, rank (at a token's first row, else 0)
template <int TOKENS, bool NORM, bool MOD = false>
__device__ __forceinline__ void gemv_rows(const GemvInput& input, const u16* const* rows, int in, int bf16, float (*acc)[TOKENS]) {
    __shared__ float partial[GEMV_WARPS][GEMV_ROWS][TOKENS];
    __shared__ double scratch[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    #pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++)
        #pragma unroll
        for (int t = 0; t < TOKENS; t++) acc[r][t] = 0.f;
    int i = (warp * 32 + lane) * 8;
    uint4 raw[GEMV_UNROLL][GEMV_ROWS];
    gemv_load(raw, rows, i, in);
    let_next_start();
    grid_wait();
    float inv[TOKENS];
    if (NORM) {
        #pragma unroll
        for (int t = 0; t < TOKENS; t++) inv[t] = inverse_rms(input.x + (long long) t * in, in, input.eps, scratch);
    }
    const float* xRows[TOKENS];
    const void* aRows[TOKENS];
    int aTypes[TOKENS];
    if (MOD) {
        #pragma unroll
        for (int t = 0; t < TOKENS; t++) {
            xRows[t] = input.x + (long long) input.meta[t * FLORA_META] * in;
            aRows[t] = (const void*) input.aRow[t];
            aTypes[t] = input.meta[t * FLORA_META + 2];
        }
    }
    for (; i < in; i += GEMV_UNROLL * GEMV_STEP) {
        #pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++)
            if (i + u * GEMV_STEP < in)
                gemv_piece<TOKENS, NORM, MOD>(input, inv, in, i + u * GEMV_STEP, raw[u], bf16, acc, xRows, aRows, aTypes);
        gemv_load(raw, rows, i + GEMV_UNROLL * GEMV_STEP, in);
    }
    #pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++)
        #pragma unroll
        for (int t = 0; t < TOKENS; t++) {
            for (int o = 16; o > 0; o >>= 1) acc[r][t] += __shfl_xor_sync(0xffffffffu, acc[r][t], o);
            if (lane == 0) partial[warp][r][t] = acc[r][t];
        }
    __syncthreads();
    if (threadIdx.x == 0) {
        #pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++)
            #pragma unroll
            for (int t = 0; t < TOKENS; t++) {
                float sum = partial[0][r][t];
                #pragma unroll
                for (int w = 1; w < GEMV_WARPS; w++) sum += partial[w][r][t];
                acc[r][t] = sum;
            }
    }
}

// out[t, row] (+)= x[t] · w[row] + bias[row] for rows [row0, row0 + GEMV_ROWS) of one weight.
template <int TOKENS, bool NORM>
__device__ __forceinline__ void gemv_block(const GemvInput& input, const u16* w, const void* bias, int biasType, float* out, int in,
                                           int outs, int bf16, int row0, int accumulate) {
    const u16* rows[GEMV_ROWS];
    #pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) rows[r] = w + (long long) min(row0 + r, outs - 1) * in;
    float acc[GEMV_ROWS][TOKENS];
    gemv_rows<TOKENS, NORM>(input, rows, in, bf16, acc);
    if (threadIdx.x != 0) return;
    #pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
        int row = row0 + r;
        if (row >= outs) continue;
        #pragma unroll
        for (int t = 0; t < TOKENS; t++) {
            float v = bias ? acc[r][t] + ld(bias, row, biasType) : acc[r][t];
            float* o = out + (long long) t * outs + row;
            *o = accumulate ? *o + v : v;
        }
    }
}

// Up to three weights sharing one input (q, k, v) in one launch: the blocks of segment 0, then 1, then 2.
template <int TOKENS, bool NORM>
__device__ void gemv_multi(const GemvInput& input, int in, int bf16, const u16* w0, const void* b0, int bt0, float* o0, int n0,
                           const u16* w1, const void* b1, int bt1, float* o1, int n1, const u16* w2, const void* b2, int bt2,
                           float* o2, int n2) {
    int block = blockIdx.x;
    int blocks0 = (n0 + GEMV_ROWS - 1) / GEMV_ROWS, blocks1 = (n1 + GEMV_ROWS - 1) / GEMV_ROWS;
    if (block < blocks0) gemv_block<TOKENS, NORM>(input, w0, b0, bt0, o0, in, n0, bf16, block * GEMV_ROWS, 0);
    else if (block < blocks0 + blocks1) gemv_block<TOKENS, NORM>(input, w1, b1, bt1, o1, in, n1, bf16, (block - blocks0) * GEMV_ROWS, 0);
    else gemv_block<TOKENS, NORM>(input, w2, b2, bt2, o2, in, n2, bf16, (block - blocks0 - blocks1) * GEMV_ROWS, 0);
}

// A gated MLP's two products and its activation: out[t, j] = act(x[t]·g[j] + bg[j]) · (x[t]·u[j] + bu[j]),
// two output rows per block (rows j, j+1 of both weights), the same sums as two separate products.
template <int TOKENS, bool NORM>
__device__ void gemv_gated(const GemvInput& input, int in, int bf16, const u16* wg, const void* bg, int btg, const u16* wu,
                           const void* bu, int btu, float* out, int outs, int act) {
    int j0 = blockIdx.x * 2;
    int j1 = min(j0 + 1, outs - 1);
    const u16* rows[GEMV_ROWS] = {wg + (long long) j0 * in, wg + (long long) j1 * in, wu + (long long) j0 * in,
                                  wu + (long long) j1 * in};
    float acc[GEMV_ROWS][TOKENS];
    gemv_rows<TOKENS, NORM>(input, rows, in, bf16, acc);
    if (threadIdx.x != 0) return;
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        int j = j0 + r;
        if (j >= outs) continue;
        #pragma unroll
        for (int t = 0; t < TOKENS; t++) {
            float g = bg ? acc[r][t] + ld(bg, j, btg) : acc[r][t];
            float u = bu ? acc[2 + r][t] + ld(bu, j, btu) : acc[2 + r][t];
            out[(long long) t * outs + j] = activate(act, g) * u;
        }
    }
}

// Each product of a few rows comes plain and with the RMSNorm of its input fused (_norm: x is
// normed by norm (type nt) with eps, h receives the normed rows).
#define GEMV_NORM_ARGS const void* norm, int nt, float eps, float* h
#define GEMV_KERNELS(T) \
__global__ void __launch_bounds__(GEMV_THREADS) gemv##T(const float* x, const u16* w, const void* bias, int bt, float* out, int in, \
        int outs, int bf16, int accumulate) { \
    gemv_block<T, false>(GemvInput{x}, w, bias, bt, out, in, outs, bf16, blockIdx.x * GEMV_ROWS, accumulate); } \
__global__ void __launch_bounds__(GEMV_THREADS) gemv_multi##T(const float* x, int in, int bf16, const u16* w0, const void* b0, \
        int bt0, float* o0, int n0, const u16* w1, const void* b1, int bt1, float* o1, int n1, const u16* w2, const void* b2, int bt2, \
        float* o2, int n2) { gemv_multi<T, false>(GemvInput{x}, in, bf16, w0, b0, bt0, o0, n0, w1, b1, bt1, o1, n1, w2, b2, bt2, o2, n2); } \
__global__ void __launch_bounds__(GEMV_THREADS) gemv_multi_norm##T(const float* x, GEMV_NORM_ARGS, int in, int bf16, const u16* w0, \
        const void* b0, int bt0, float* o0, int n0, const u16* w1, const void* b1, int bt1, float* o1, int n1, const u16* w2, \
        const void* b2, int bt2, float* o2, int n2) { \
    gemv_multi<T, true>(GemvInput{x, norm, nt, eps, h}, in, bf16, w0, b0, bt0, o0, n0, w1, b1, bt1, o1, n1, w2, b2, bt2, o2, n2); } \
__global__ void __launch_bounds__(GEMV_THREADS) gemv_gated##T(const float* x, int in, int bf16, const u16* wg, const void* bg, \
        int btg, const u16* wu, const void* bu, int btu, float* out, int outs, int act) { \
    gemv_gated<T, false>(GemvInput{x}, in, bf16, wg, bg, btg, wu, bu, btu, out, outs, act); } \
__global__ void __launch_bounds__(GEMV_THREADS) gemv_gated_norm##T(const float* x, GEMV_NORM_ARGS, int in, int bf16, const u16* wg, \
        const void* bg, int btg, const u16* wu, const void* bu, int btu, float* out, int outs, int act) { \
    gemv_gated<T, true>(GemvInput{x, norm, nt, eps, h}, in, bf16, wg, bg, btg, wu, bu, btu, out, outs, act); }

// fLoRA's whole layer for a few stacked rows (CudaBackend.floraLinear; -Dflora.cuda.fuseFlora=false: three kernels):
// flora_modulate's products on the way into the GEMV and flora_demodulate's sums on the way out, in
// one launch. Stacked row t is x[xRow] ∘ A_g[j]; a token's r rows are consecutive, the first holding
// r. Every value is rounded as in the three kernels (the modulation before the input's rounding, the
// demodulation's products and sums in j order), so the bits are theirs.
template <int S>
__device__ void flora_gemv_block(const GemvInput& input, const long long* btRow, const u16* w, const void* bias, int biasType,
                                 float* out, int in, int outs, int bf16, int row0) {
    const u16* rows[GEMV_ROWS];
    #pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) rows[r] = w + (long long) min(row0 + r, outs - 1) * in;
    float acc[GEMV_ROWS][S];
    gemv_rows<S, false, true>(input, rows, in, bf16, acc);
    if (threadIdx.x != 0) return;
    #pragma unroll
    for (int s = 0; s < S; s++) {
        int rank = input.meta[s * FLORA_META + 4];
        if (rank == 0) continue; // not a token's first row
        float scale = 1.f / rank;
        float* o = out + (long long) input.meta[s * FLORA_META + 1] * outs;
        #pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) {
            int row = row0 + r;
            if (row >= outs) continue;
            float sum = 0.f;
            #pragma unroll
            for (int j = 0; s + j < S; j++)
                if (j < rank) sum = __fadd_rn(sum, __fmul_rn(acc[r][s + j], ld((const void*) btRow[s + j], row, input.meta[(s + j) * FLORA_META + 3])));
            float v = __fmul_rn(scale, sum);
            if (bias) v = __fadd_rn(v, ld(bias, row, biasType));
            o[row] = v;
        }
    }
}

extern "C" {
GEMV_KERNELS(1)
GEMV_KERNELS(2)
GEMV_KERNELS(3)
GEMV_KERNELS(4)

#define FLORA_GEMV_KERNEL(S) \
__global__ void __launch_bounds__(GEMV_THREADS) flora_gemv##S(const float* x, const long long* aRow, const long long* btRow, \
        const int* meta, const u16* w, const void* bias, int biasType, float* out, int in, int outs, int bf16) { \
    flora_gemv_block<S>(GemvInput{x, nullptr, 0, 0.f, nullptr, aRow, meta}, btRow, w, bias, biasType, out, in, outs, bf16, \
                        blockIdx.x * GEMV_ROWS); }
FLORA_GEMV_KERNEL(1)
FLORA_GEMV_KERNEL(2)
FLORA_GEMV_KERNEL(3)
FLORA_GEMV_KERNEL(4)
}

extern "C" {

__global__ void embed(const void* table, int type, const int* tokens, float* out, int cols) {
    int t = blockIdx.x;
    long long row = (long long) tokens[t] * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) out[(long long) t * cols + i] = ld(table, row + i, type);
}

__global__ void add_rows_of(const void* table, int type, const int* index, float* x, int cols) {
    int t = blockIdx.x;
    long long row = (long long) index[t] * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) x[(long long) t * cols + i] += ld(table, row + i, type);
}

__global__ void split_qkv(const float* fused, float* q, float* k, float* v, int qw, int kw, int headDim, int perHead) {
    int t = blockIdx.x;
    int width = qw + 2 * kw;
    const float* src = fused + (long long) t * width;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        float value = src[i];
        if (perHead) {
            int h = i / (3 * headDim), r = i % (3 * headDim), part = r / headDim, d = r % headDim;
            float* dst = part == 0 ? q : part == 1 ? k : v;
            dst[(long long) t * qw + h * headDim + d] = value;
        } else if (i < qw) {
            q[(long long) t * qw + i] = value;
        } else if (i < qw + kw) {
            k[(long long) t * kw + i - qw] = value;
        } else {
            v[(long long) t * kw + i - qw - kw] = value;
        }
    }
}

__global__ void gather_rows(const float* x, const int* rows, float* out, int cols) {
    int i = blockIdx.x;
    const float* src = x + (long long) rows[i] * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) out[(long long) i * cols + c] = src[c];
}

__global__ void scatter_rows(const float* src, const int* rows, float scale, const void* bias, int biasType, int accumulate,
                             float* dst, int cols) {
    int i = blockIdx.x;
    float* to = dst + (long long) rows[i] * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = scale * src[(long long) i * cols + c];
        if (bias) v += ld(bias, c, biasType);
        to[c] = accumulate ? to[c] + v : v;
    }
}

// rows == null: row i itself.
__global__ void mul_rows(float* x, const int* rows, const void* vectors, int type, int vectorRow, int cols) {
    int i = blockIdx.x;
    float* row = x + (long long) (rows ? rows[i] : i) * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) row[c] *= ld(vectors, (long long) vectorRow * cols + c, type);
}

// mul_rows for every group at once (IA3, one scale vector per adapter): block k scales row rowOf[k]
// by its group's vector.
__global__ void mul_rows_grouped(float* x, const int* rowOf, const int* groupOf, const long long* vectorPtr, const int* vectorType,
                                 int cols) {
    int k = blockIdx.x, g = groupOf[k];
    float* row = x + (long long) rowOf[k] * cols;
    const void* v = (const void*) vectorPtr[g];
    for (int c = threadIdx.x; c < cols; c += blockDim.x) row[c] *= ld(v, c, vectorType[g]);
}

// RMS_PREFETCH (1 by default since session 26; -Dflora.cuda.defines=RMS_PREFETCH=0 turns it off): rms_norm asks
// L2 for its weight row before grid_wait(), so that the weight loads after the row's sum (a decode step's 64
// blocks all miss it otherwise: the step's products stream gigabytes through L2 between two uses) wait on L2
// rather than memory. The same bits. On an H100 (session 26) the PEFT workload decoded 0.3-0.4% faster and
// ran 0.4% faster end to end, both rounds above both default rounds.
#ifndef RMS_PREFETCH // a tunable: -Dflora.cuda.defines=RMS_PREFETCH=0 (KernelModule.TUNABLES)
#define RMS_PREFETCH 1
#endif
// Sums in float64, as the CPU backend does: the norms are where float32 rounding would show.
// RMS_THREADS threads a row (inverse_rms). rounded (when not null) also receives the normed rows
// rounded to the weights' 16-bit type (bf16: 1, f16: 0), the input of the cuBLAS products after it;
// out may then be null, where nothing reads the float32 rows (no adapter on the products after it:
// at a 16,384-token prompt step 268 MB a norm not written).
__global__ void __launch_bounds__(RMS_THREADS) rms_norm(const float* x, const void* weight, int type, float eps, float* out, int cols,
                                                        u16* rounded16, int bf16) {
    __shared__ double scratch[32];
    let_next_start();
#if RMS_PREFETCH
    prefetch_l2(weight, (long long) cols * (type == 0 ? 4 : 2), threadIdx.x, blockDim.x);
#endif
    grid_wait(); // launched overlapped (CudaBackend.OVERLAPPED_SMALL)
    const float* row = x + (long long) blockIdx.x * cols;
    float inv = inverse_rms(row, cols, eps, scratch);
    float* o = out ? out + (long long) blockIdx.x * cols : nullptr;
    u16* h = rounded16 ? rounded16 + (long long) blockIdx.x * cols : nullptr;
    if (rms_vector(row, cols) && ((unsigned long long) o & 15) == 0 && ((unsigned long long) h & 7) == 0) {
        #pragma unroll 4
        for (int c4 = threadIdx.x; c4 < cols / 4; c4 += blockDim.x) {
            float4 a = ((const float4*) row)[c4];
            int c = 4 * c4;
            float4 v = make_float4(a.x * inv * ld(weight, c, type), a.y * inv * ld(weight, c + 1, type),
                                   a.z * inv * ld(weight, c + 2, type), a.w * inv * ld(weight, c + 3, type));
            if (o) ((float4*) o)[c4] = v;
            if (h) {
                u16 r[4] = {bf16 ? f32_to_bf16(v.x) : f32_to_f16(v.x), bf16 ? f32_to_bf16(v.y) : f32_to_f16(v.y),
                            bf16 ? f32_to_bf16(v.z) : f32_to_f16(v.z), bf16 ? f32_to_bf16(v.w) : f32_to_f16(v.w)};
                ((uint2*) h)[c4] = make_uint2(r[0] | ((unsigned int) r[1] << 16), r[2] | ((unsigned int) r[3] << 16));
            }
        }
        return;
    }
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = row[c] * inv * ld(weight, c, type);
        if (o) o[c] = v;
        if (h) h[c] = bf16 ? f32_to_bf16(v) : f32_to_f16(v);
    }
}

__global__ void layer_norm(const float* x, const void* weight, int wType, const void* bias, int bType, float eps, float* out, int cols) {
    __shared__ double scratch[32];
    const float* row = x + (long long) blockIdx.x * cols;
    double s = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += row[c];
    double mean = block_sum(s, scratch) / cols;
    double q = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) { double d = row[c] - mean; q += d * d; }
    double inv = 1.0 / sqrt(block_sum(q, scratch) / cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = (float) ((row[c] - mean) * inv) * ld(weight, c, wType);
        out[(long long) blockIdx.x * cols + c] = bias ? v + ld(bias, c, bType) : v;
    }
}

// One rotate-half RoPE pair (a, b) at a cosine c and sine s, rounded after every operation as
// transformers' float32 q·cos + rotate_half(q)·sin is (no fused multiply-add): every kernel that
// rotates calls these, so that they agree to the bit.
__device__ __forceinline__ void rope_angle(float position, float invFreq, float* c, float* s) {
    float angle = __fmul_rn(position, invFreq);
    *c = cosf(angle);
    *s = sinf(angle);
}

__device__ __forceinline__ void rope_pair(float a, float b, float c, float s, float* ra, float* rb) {
    *ra = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    *rb = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

// Rotate-half RoPE in place; the angle in float32 as transformers computes it.
__global__ void rotary(float* x, int width, int headDim, const float* invFreq, const int* positions) {
    int t = blockIdx.x, half = headDim / 2;
    float pos = (float) positions[t];
    for (int i = threadIdx.x; i < width / 2; i += blockDim.x) {
        int h = i / half, j = i % half;
        float c, s;
        rope_angle(pos, invFreq[j], &c, &s);
        float* base = x + (long long) t * width + h * headDim;
        rope_pair(base[j], base[j + half], c, s, &base[j], &base[j + half]);
    }
}

#define ROTARY_MAX_HALF 256

// Token blockIdx.x's q and k pairs rotated in place, each angle's cosine and sine once (shared
// memory); with cacheK, the rotated k also stored at cache slot (when slot >= 0) in the cache's type.
#ifndef ROTATE_BATCH // a tunable: -Dflora.cuda.defines=ROTATE_BATCH=N (CudaBackend, KernelModule.TUNABLES)
#define ROTATE_BATCH 8
#endif
// Pair i of token t's q pairs, then k's: the head's row in q or k, its head h and index j < headDim / 2.
__device__ __forceinline__ float* rotary_pair(float* q, int qWidth, float* k, int kWidth, int headDim, int t, int i, int* h, int* j) {
    int half = headDim / 2, qPairs = qWidth / 2;
    bool isQ = i < qPairs;
    int pair = isQ ? i : i - qPairs, width = isQ ? qWidth : kWidth;
    *h = pair / half;
    *j = pair % half;
    return (isQ ? q : k) + (long long) t * width + *h * headDim;
}

__device__ __forceinline__ void rotate_qk(float* q, int qWidth, float* k, int kWidth, int headDim, const float* invFreq, int position,
                                          void* cacheK, long long slot, int type) {
    __shared__ float cosOf[ROTARY_MAX_HALF], sinOf[ROTARY_MAX_HALF];
    int t = blockIdx.x, half = headDim / 2;
    float pos = (float) position;
    for (int j = threadIdx.x; j < half; j += blockDim.x) rope_angle(pos, invFreq[j], &cosOf[j], &sinOf[j]);
    __syncthreads();
    // ROTATE_BATCH pairs a thread loaded before any is stored: the stores could alias the loads, so
    // otherwise every pair would wait a memory round trip of its own.
    // Block (t, y) takes part y of token t's pairs: a decode step's few tokens still spread over SMs.
    int qPairs = qWidth / 2, all = (qWidth + kWidth) / 2, per = (all + gridDim.y - 1) / gridDim.y;
    int from = blockIdx.y * per, pairs = min(all, from + per);
    for (int i0 = from + threadIdx.x; i0 < pairs; i0 += ROTATE_BATCH * blockDim.x) {
        float a[ROTATE_BATCH], b[ROTATE_BATCH];
        #pragma unroll
        for (int u = 0; u < ROTATE_BATCH; u++) {
            int i = i0 + u * blockDim.x, h, j;
            if (i < pairs) {
                const float* base = rotary_pair(q, qWidth, k, kWidth, headDim, t, i, &h, &j);
                a[u] = base[j];
                b[u] = base[j + half];
            }
        }
        #pragma unroll
        for (int u = 0; u < ROTATE_BATCH; u++) {
            int i = i0 + u * blockDim.x, h, j;
            if (i < pairs) {
                float* base = rotary_pair(q, qWidth, k, kWidth, headDim, t, i, &h, &j);
                float ra, rb;
                rope_pair(a[u], b[u], cosOf[j], sinOf[j], &ra, &rb);
                base[j] = ra;
                base[j + half] = rb;
                if (i >= qPairs && cacheK && slot >= 0) {
                    long long at = slot * kWidth + h * headDim + j;
                    kv_st(cacheK, at, ra, type);
                    kv_st(cacheK, at + half, rb, type);
                }
            }
        }
    }
}

// The same rotation of q [T, qWidth] and k [T, kWidth] in one launch: each angle's cosine and sine
// once per token (shared memory), then every head's pairs; the same values as rotary.
__global__ void rotary_qk(float* q, int qWidth, float* k, int kWidth, int headDim, const float* invFreq, const int* positions) {
    let_next_start();
    rotate_qk(q, qWidth, k, kWidth, headDim, invFreq, positions[blockIdx.x], nullptr, -1, 0);
}

}  // extern "C"

// ---- the paged KV cache: float32 (float32 models, exact) or the weights' 16-bit type (bf16 / f16
// models, as transformers keeps it): TYPE 0 = float32, 1 = bfloat16, 2 = float16 ----

template <int TYPE> __device__ __forceinline__ float kv_ld(const void* p, long long i) {
    if (TYPE == 0) return ((const float*) p)[i];
    if (TYPE == 1) return bf16_to_f32(((const u16*) p)[i]);
    return f16_to_f32(((const u16*) p)[i]);
}

// Four values from i (a multiple of 4): one 16-byte load in float32, one 8-byte load in 16 bits.
template <int TYPE> __device__ __forceinline__ float4 kv_ld4(const void* p, long long i) {
    if (TYPE == 0) return *(const float4*) ((const float*) p + i);
    uint2 u = *(const uint2*) ((const u16*) p + i);
    if (TYPE == 1) return make_float4(bf16_to_f32((u16) (u.x & 0xffffu)), bf16_to_f32((u16) (u.x >> 16)),
                                      bf16_to_f32((u16) (u.y & 0xffffu)), bf16_to_f32((u16) (u.y >> 16)));
    return make_float4(f16_to_f32((u16) (u.x & 0xffffu)), f16_to_f32((u16) (u.x >> 16)),
                       f16_to_f32((u16) (u.y & 0xffffu)), f16_to_f32((u16) (u.y >> 16)));
}

template <int TYPE> __device__ void write_kv_impl(const float* k, const float* v, void* cacheK, void* cacheV, const int* slots, int kvWidth) {
    int t = blockIdx.x;
    long long slot = slots[t];
    if (slot < 0) return; // a recorded step's padding
    for (int c = threadIdx.x; c < kvWidth; c += blockDim.x) {
        long long to = slot * kvWidth + c, from = (long long) t * kvWidth + c;
        if (TYPE == 0) {
            ((float*) cacheK)[to] = k[from];
            ((float*) cacheV)[to] = v[from];
        } else if (TYPE == 1) {
            ((u16*) cacheK)[to] = f32_to_bf16(k[from]);
            ((u16*) cacheV)[to] = f32_to_bf16(v[from]);
        } else {
            ((u16*) cacheK)[to] = f32_to_f16(k[from]);
            ((u16*) cacheV)[to] = f32_to_f16(v[from]);
        }
    }
}

// Attention over the paged cache, split over the context (flash-decoding): block (token t, head h,
// split s) covers positions [first + s·L, first + (s+1)·L) of t's visible context, L = max(minSplit,
// ⌈len / splits⌉) computed here from the token's own length (so a captured graph serves any
// context, and short contexts use few splits), in chunks of ATTN_CHUNK with an online softmax. Each
// chunk's cache slots are looked up once into shared memory. Scores: eight lanes per position;
// values: each lane four consecutive dimensions, warps over positions, four positions' loads in
// flight. The softmax sum and the weighted values add up in float64. A token whose context needs
// one split writes its output here; otherwise each split writes its normalised output, maximum and
// sum for attention_combine. With a token list, block x serves token list[x / heads] (the others are
// prefill tiles, attention_tiles).
#define ATTN_THREADS 128
#define ATTN_WARPS (ATTN_THREADS / 32)
// Positions a chunk: at most ATTN_THREADS (the softmax gives each thread one), whole rounds of the
// second and third forms' loads, which share it so that they give the same bits (auto takes either,
// by the step's blocks). The third form stages a chunk's rows in shared memory: at 128 positions of
// head size 128 (32 KB) and 81 registers it held 5 blocks a multiprocessor (Nsight Compute, session
// 23); at 64 positions with registers for ATTN_MIN_BLOCKS = 8 blocks (64 registers, 26 KB) more blocks
// have their loads in flight: decode +1.2-2.0% at 64 sequences on the H100 in 4 of 4 rounds (session
// 24), so the default. The bound is the third form's alone: the second spills under it (f16).
#ifndef ATTN_CHUNK // a tunable: -Dflora.cuda.defines=ATTN_CHUNK=N (CudaBackend, KernelModule.TUNABLES)
#define ATTN_CHUNK 64
#endif
static_assert(ATTN_CHUNK <= ATTN_THREADS && ATTN_CHUNK % 32 == 0, "ATTN_CHUNK: a multiple of 32, at most ATTN_THREADS");
// The blocks a multiprocessor the third form asks registers for (__launch_bounds__'s minimum; 1: no bound).
#ifndef ATTN_MIN_BLOCKS // a tunable: -Dflora.cuda.defines=ATTN_MIN_BLOCKS=N (CudaBackend, KernelModule.TUNABLES)
#define ATTN_MIN_BLOCKS 8
#endif
#if ATTN_MIN_BLOCKS > 1
#define ATTN_V3_BOUNDS __launch_bounds__(ATTN_THREADS, ATTN_MIN_BLOCKS)
#else
#define ATTN_V3_BOUNDS __launch_bounds__(ATTN_THREADS)
#endif
#define ATTN_MAX_HEAD_DIM 256
#define ATTN_MAX_SPLITS 64 // CudaBackend.ATTENTION_MAX_SPLITS

__device__ __forceinline__ int attention_first(int pos, int window) { return window > 0 ? max(0, pos - window + 1) : 0; }

// The split length of a context of len positions: the same here and in attention_combine.
__device__ __forceinline__ int attention_split(int len, int minSplit, int splits) { return max(minSplit, (len + splits - 1) / splits); }

// Joins the used splits of (token t, head h), the pair-th (token, head) of the launch: weights
// sum_s · exp(max_s − max), in split order. Every split's maximum and sum are loaded at once (a thread
// each) and each output dimension's parts in batches of COMBINE_BATCH, so that the join waits a few
// memory round trips, not one per split; the sums still run in split order.
// Reads past L1 (__ldcg): other blocks of the same kernel may have written the parts.
#ifndef COMBINE_BATCH // a tunable: -Dflora.cuda.defines=COMBINE_BATCH=N (CudaBackend, KernelModule.TUNABLES)
#define COMBINE_BATCH 8
#endif
__device__ void combine_splits(const float* partOut, const float* partMax, const float* partSum, float* out, int pair, int t, int h,
                               int heads, int headDim, int splits, int used) {
    __shared__ double weight[ATTN_MAX_SPLITS];
    __shared__ float maxOf[ATTN_MAX_SPLITS];
    __shared__ double total;
    long long part = (long long) pair * splits;
    for (int s = threadIdx.x; s < used; s += blockDim.x) {
        maxOf[s] = __ldcg(partMax + part + s);
        weight[s] = (double) __ldcg(partSum + part + s);
    }
    __syncthreads();
    float top = __int_as_float(0xff800000);
    for (int s = 0; s < used; s++) top = fmaxf(top, maxOf[s]);
    for (int s = threadIdx.x; s < used; s += blockDim.x) weight[s] *= exp((double) maxOf[s] - top);
    __syncthreads();
    if (threadIdx.x == 0) {
        double den = 0.0;
        for (int s = 0; s < used; s++) den += weight[s];
        total = den;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
        double num = 0.0;
        for (int s0 = 0; s0 < used; s0 += COMBINE_BATCH) {
            float parts[COMBINE_BATCH];
            #pragma unroll
            for (int u = 0; u < COMBINE_BATCH; u++)
                if (s0 + u < used) parts[u] = __ldcg(partOut + (part + s0 + u) * headDim + d);
            #pragma unroll
            for (int u = 0; u < COMBINE_BATCH; u++)
                if (s0 + u < used) num += weight[s0 + u] * parts[u];
        }
        out[(long long) t * heads * headDim + h * headDim + d] = (float) (num / total);
    }
}

// Which token t and head h a decode attention block serves, its split of the context and how many
// splits the context uses (a block past them has nothing to do), and the positions [begin, end) it takes.
struct AttentionSpan {
    int t, h, split, used, begin, end;
};

__device__ __forceinline__ AttentionSpan attention_span(const int* positions, const int* tokenList, int heads, int window, int minSplit,
                                                        int splits) {
    AttentionSpan a;
    a.t = blockIdx.x / heads;
    a.h = blockIdx.x % heads;
    a.split = blockIdx.y;
    if (tokenList) a.t = tokenList[a.t];
    int pos = positions[a.t];
    int first = attention_first(pos, window);
    int len = pos - first + 1;
    int splitLen = attention_split(len, minSplit, splits);
    a.used = (len + splitLen - 1) / splitLen;
    a.begin = first + a.split * splitLen;
    a.end = min(pos + 1, a.begin + splitLen);
    return a;
}

// The online softmax over one chunk's scores sc (ATTN_CHUNK of them, -inf past the chunk's end):
// the running maximum m and sum l updated, sc turned into the weights exp(score − m); returns the
// factor the running output is to be scaled by.
__device__ __forceinline__ float attention_chunk_softmax(float* sc, float* maxScratch, double* sumScratch, float& m, double& l) {
    float chunkMax = block_max(sc[threadIdx.x % ATTN_CHUNK], maxScratch);
    float next = fmaxf(m, chunkMax);
    float factor = m == next ? 1.f : expf(m - next);
    m = next;
    float e = 0.f;
    if (threadIdx.x < ATTN_CHUNK) e = expf(sc[threadIdx.x] - m);
    double chunkSum = block_sum((double) e, sumScratch);
    if (threadIdx.x < ATTN_CHUNK) sc[threadIdx.x] = e;
    __syncthreads();
    l = l * factor + chunkSum;
    return factor;
}

// The end of a decode attention block: the output Σ_rows partial[row][d] / l of its split (rows of
// stride doubles, summed in row order); the token's output where one split holds its whole context,
// else the split's part, and the last split of (t, h) to finish joins them (counters[pair] counts the
// finished splits and is left at 0 for the next launch: no attention_combine launch; without
// counters attention_combine joins them).
__device__ void attention_finish(const double* partial, int rows, int stride, float m, double l, int t, int h, int heads, int headDim,
                                 int splits, int split, int used, float* out, float* partOut, float* partMax, float* partSum, int* counters) {
    int pair = blockIdx.x; // the listed (token, head) pair: listed token · heads + h
    long long part = (long long) pair * splits + split; // parts by listed pair, not by token: few tokens listed, few parts
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
        double total = 0.0;
        for (int w = 0; w < rows; w++) total += partial[w * stride + d];
        if (used == 1) out[(long long) t * heads * headDim + h * headDim + d] = (float) (total / l);
        else partOut[part * headDim + d] = (float) (total / l);
    }
    if (used == 1) return;
    if (threadIdx.x == 0) {
        partMax[part] = m;
        partSum[part] = (float) l;
    }
    if (!counters) return;
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int* counter = counters + pair;
        last = atomicAdd(counter, 1) == used - 1;
        if (last) *counter = 0;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    combine_splits(partOut, partMax, partSum, out, pair, t, h, heads, headDim, splits, used);
}

template <int TYPE>
__device__ void attention_impl(const float* q, const void* cacheK, const void* cacheV, float* out, float* partOut, float* partMax,
                               float* partSum, const int* positions, const int* seqOfToken, const int* blockTables, int maxBlocks,
                               int blockSize, int heads, int kvHeads, int headDim, float scale, int window, int minSplit, int splits,
                               const int* tokenList, int* counters) {
    __shared__ __align__(16) float qs[ATTN_MAX_HEAD_DIM];
    __shared__ float sc[ATTN_CHUNK];
    __shared__ int slotOf[ATTN_CHUNK];
    __shared__ float maxScratch[32];
    __shared__ double sumScratch[32];
    __shared__ double partial[ATTN_WARPS][ATTN_MAX_HEAD_DIM];
    let_next_start();
    AttentionSpan span = attention_span(positions, tokenList, heads, window, minSplit, splits);
    if (span.split >= span.used) return;
    int t = span.t, h = span.h, split = span.split, used = span.used, begin = span.begin, end = span.end;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int kvh = h / (heads / kvHeads);
    int qWidth = heads * headDim, kvWidth = kvHeads * headDim;
    const int* table = blockTables + (long long) seqOfToken[t] * maxBlocks;
    grid_wait(); // the span and the table are the step's uploads; q and this step's keys come from the kernels before
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) qs[d] = q[(long long) t * qWidth + h * headDim + d];
    float m = __int_as_float(0xff800000);
    double l = 0.0;
    double acc[ATTN_MAX_HEAD_DIM / 32];
    #pragma unroll
    for (int k = 0; k < ATTN_MAX_HEAD_DIM / 32; k++) acc[k] = 0.0;
    int group = lane >> 3, sub = lane & 7;
    bool vector = (headDim & 3) == 0 && (kvWidth & 3) == 0;
    for (int c0 = begin; c0 < end; c0 += ATTN_CHUNK) {
        int n = min(ATTN_CHUNK, end - c0);
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            int p = c0 + j;
            slotOf[j] = table[p / blockSize] * blockSize + p % blockSize;
        }
        __syncthreads();
        for (int j = warp * 4 + group; j < ATTN_CHUNK; j += ATTN_WARPS * 4) {
            double s = 0.0; // float64: large q·k (Qwen2's biases) would show float32 rounding after the exp
            if (j < n) {
                long long key = (long long) slotOf[j] * kvWidth + kvh * headDim;
                if (vector) {
                    for (int d = sub * 4; d < headDim; d += 32) {
                        float4 kv = kv_ld4<TYPE>(cacheK, key + d);
                        s += (double) qs[d] * kv.x + (double) qs[d + 1] * kv.y + (double) qs[d + 2] * kv.z + (double) qs[d + 3] * kv.w;
                    }
                } else {
                    for (int d = sub; d < headDim; d += 8) s += (double) qs[d] * kv_ld<TYPE>(cacheK, key + d);
                }
            }
            s += __shfl_xor_sync(0xffffffffu, s, 4);
            s += __shfl_xor_sync(0xffffffffu, s, 2);
            s += __shfl_xor_sync(0xffffffffu, s, 1);
            if (sub == 0) sc[j] = j < n ? (float) s * scale : __int_as_float(0xff800000);
        }
        __syncthreads();
        float factor = attention_chunk_softmax(sc, maxScratch, sumScratch, m, l);
        #pragma unroll
        for (int k = 0; k < ATTN_MAX_HEAD_DIM / 32; k++) acc[k] *= factor;
        if (vector) {
            // acc[4k + e] holds dimension 4·lane + 128·k + e; four positions (j, j + 4, ...) per pass.
            for (int j = warp; j < n; j += 4 * ATTN_WARPS) {
                float4 v[4][2];
                #pragma unroll
                for (int u = 0; u < 4; u++) {
                    int jj = j + u * ATTN_WARPS;
                    long long row = (long long) slotOf[min(jj, n - 1)] * kvWidth + kvh * headDim;
                    #pragma unroll
                    for (int k = 0; k < 2; k++) {
                        int d = 4 * lane + 128 * k;
                        v[u][k] = jj < n && d < headDim ? kv_ld4<TYPE>(cacheV, row + d) : make_float4(0.f, 0.f, 0.f, 0.f);
                    }
                }
                #pragma unroll
                for (int u = 0; u < 4; u++) {
                    int jj = j + u * ATTN_WARPS;
                    double w = jj < n ? sc[jj] : 0.0;
                    #pragma unroll
                    for (int k = 0; k < 2; k++) {
                        acc[4 * k] += w * v[u][k].x;
                        acc[4 * k + 1] += w * v[u][k].y;
                        acc[4 * k + 2] += w * v[u][k].z;
                        acc[4 * k + 3] += w * v[u][k].w;
                    }
                }
            }
        } else {
            // acc[k] holds dimension lane + 32·k.
            for (int j = warp; j < n; j += ATTN_WARPS) {
                long long row = (long long) slotOf[j] * kvWidth + kvh * headDim;
                double w = sc[j];
                #pragma unroll
                for (int k = 0; k < ATTN_MAX_HEAD_DIM / 32; k++) {
                    int d = lane + 32 * k;
                    if (d < headDim) acc[k] += w * kv_ld<TYPE>(cacheV, row + d);
                }
            }
        }
        __syncthreads();
    }
    #pragma unroll
    for (int k = 0; k < ATTN_MAX_HEAD_DIM / 32; k++) {
        int d = vector ? 4 * lane + 128 * (k / 4) + (k % 4) : lane + 32 * k;
        if (d < headDim) partial[warp][d] = acc[k];
    }
    __syncthreads();
    attention_finish(&partial[0][0], ATTN_WARPS, ATTN_MAX_HEAD_DIM, m, l, t, h, heads, headDim, splits, split, used, out, partOut, partMax,
                     partSum, counters);
}

// cp.async: a 16-byte copy from global to shared memory that does not pass through registers; the
// copies issued since the last wait are waited for together.
#ifdef FLORA_HOST_EMULATION
__device__ __forceinline__ void copy_async16(void* shared, const void* global) { emu_copy_async16(shared, global); }
__device__ __forceinline__ void copy_async_commit() { emu_copy_async_commit(); }
__device__ __forceinline__ void copy_async_wait() { emu_copy_async_wait(0); }
__device__ __forceinline__ void copy_async_wait_all_but_last() { emu_copy_async_wait(1); }
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned* r, const void* shared) { emu_ldmatrix_x4_trans(r, shared); }
#else
__device__ __forceinline__ void copy_async16(void* shared, const void* global) {
    unsigned int to;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(to) : "l"(shared));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(to), "l"(global) : "memory");
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void copy_async_wait() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }
// Waits until at most one group of copies (the last committed) is still in flight.
__device__ __forceinline__ void copy_async_wait_all_but_last() { asm volatile("cp.async.wait_group 1;" ::: "memory"); }
// Four 8x8 16-bit matrices from shared memory, transposed (ldmatrix .trans): lanes 8i..8i+7 give the
// row addresses of matrix i, and each lane receives, of every matrix, the elements at rows 2(lane % 4)
// and 2(lane % 4) + 1 of column lane / 4 (the first in the low half): an mma's B fragment of a
// row-major [k][n] tile.
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned* r, const void* shared) {
    unsigned int at;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(at) : "l"(shared));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(at));
}
#endif

// ---- prefill attention on the tensor cores (16-bit caches): flash-attention over tiles of up to
// FA_M consecutive tokens of one sequence (a prompt chunk); block (tile, head), 4 warps of 16 query
// rows each. Q and the key / value tiles in the cache's type, scores and the output accumulated in
// float32 by mma.sync m16n8k16, probabilities rounded to the cache's type for P·V (as transformers'
// bf16 attention does); online softmax in base 2. tiles[i] = {first token, its position, tokens, sequence}.
// (Decode tokens as tiles of one ran at 0.6x the per-token kernel's speed at 64 sequences on the H200.)
// PIPELINED (attention_tiles2_*, -Dflora.cuda.attentionTiles=v2; session 17, not yet measured): the
// same sums in the same order, so the same bits, with the loads rearranged. The first form loads a key
// tile and a value tile through registers (a block-table lookup before every 16 bytes) and computes
// only once both are in shared memory; at 64 x 256-token prompts it ran at about 36 TFLOP/s (1.2 ms a
// Llama-2-7B layer, session 3). The second looks the tile's slots up once, copies with cp.async, and
// overlaps: the next key tile loads during the softmax and P.V, the next value tile during the next
// Q.K^T; P.V reads V's fragments with ldmatrix .trans rather than 16 bits at a time, and Q comes in
// 16-byte loads.
#define FA_M 64
#define FA_N 64
#define FA_PAD 8

template <bool BF16> __device__ __forceinline__ unsigned pack_half2(float lo, float hi) {
    u16 a = BF16 ? f32_to_bf16(lo) : f32_to_f16(lo);
    u16 b = BF16 ? f32_to_bf16(hi) : f32_to_f16(hi);
    return (unsigned) a | ((unsigned) b << 16);
}

template <bool BF16> __device__ __forceinline__ void mma16816(float* c, const unsigned* a, unsigned b0, unsigned b1) {
#ifdef FLORA_HOST_EMULATION
    emu_mma16816<BF16>(c, a, b0, b1);
#else
    if (BF16) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
#endif
}

template <int D, bool BF16, bool PIPELINED>
__device__ void attention_tiles_impl(const float* q, const u16* cacheK, const u16* cacheV, float* out, const int4* tiles,
                                     const int* blockTables, int maxBlocks, int blockSize, int heads, int kvHeads, float scale, int window) {
    __shared__ __align__(16) u16 Ks[FA_N][D + FA_PAD];
    __shared__ __align__(16) u16 Vs[FA_N][D + FA_PAD];
    __shared__ int slotOf[PIPELINED ? 2 : 1][FA_N]; // PIPELINED: this tile's cache slots and the next's (-1 past the tile's end)
    const int4 tile = tiles[blockIdx.x];
    const int t0 = tile.x, p0 = tile.y, count = tile.z;
    const int h = blockIdx.y, kvh = h / (heads / kvHeads);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const int qWidth = heads * D, kvWidth = kvHeads * D;
    const int* table = blockTables + (long long) tile.w * maxBlocks;
    // Q through shared memory (Ks as staging) into this warp's A fragments.
    if (PIPELINED) {
        for (int i = threadIdx.x; i < FA_M * (D / 4); i += blockDim.x) {
            int r = i / (D / 4), c = (i % (D / 4)) * 4;
            float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
            if (r < count) a = *(const float4*) (q + (long long) (t0 + r) * qWidth + h * D + c);
            *(uint2*) &Ks[r][c] = make_uint2(pack_half2<BF16>(a.x, a.y), pack_half2<BF16>(a.z, a.w));
        }
    } else {
        for (int i = threadIdx.x; i < FA_M * (D / 2); i += blockDim.x) {
            int r = i / (D / 2), c = (i % (D / 2)) * 2;
            float a = 0.f, b = 0.f;
            if (r < count) {
                const float* src = q + (long long) (t0 + r) * qWidth + h * D + c;
                a = src[0];
                b = src[1];
            }
            *(unsigned*) &Ks[r][c] = pack_half2<BF16>(a, b);
        }
    }
    __syncthreads();
    const int r0 = warp * 16;
    unsigned qa[D / 16][4];
    #pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        qa[kk][0] = *(const unsigned*) &Ks[r0 + g][kk * 16 + 2 * tq];
        qa[kk][1] = *(const unsigned*) &Ks[r0 + g + 8][kk * 16 + 2 * tq];
        qa[kk][2] = *(const unsigned*) &Ks[r0 + g][kk * 16 + 2 * tq + 8];
        qa[kk][3] = *(const unsigned*) &Ks[r0 + g + 8][kk * 16 + 2 * tq + 8];
    }
    __syncthreads();
    float o[D / 8][4];
    #pragma unroll
    for (int j = 0; j < D / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    const float NEG = __int_as_float(0xff800000);
    float m[2] = {NEG, NEG}, l[2] = {0.f, 0.f};
    const int pos[2] = {p0 + r0 + g, p0 + r0 + g + 8};
    const int lastPos = p0 + count - 1;
    const float scale2 = scale * 1.4426950408889634f; // scores in base 2
    // PIPELINED: the slots of the tile of keys k0.. and the copies of one of its halves (keys or values).
    auto tileSlots = [&](int k0, int* slot) {
        for (int r = threadIdx.x; r < FA_N; r += blockDim.x) {
            int p = k0 + r;
            slot[r] = p <= lastPos ? table[p / blockSize] * blockSize + p % blockSize : -1;
        }
    };
    auto stageTile = [&](const u16* cache, u16 (*tile)[D + FA_PAD], const int* slot) {
        for (int i = threadIdx.x; i < FA_N * (D / 8); i += blockDim.x) {
            int r = i / (D / 8), c = (i % (D / 8)) * 8;
            if (slot[r] >= 0) copy_async16(&tile[r][c], cache + (long long) slot[r] * kvWidth + kvh * D + c);
            else *(uint4*) &tile[r][c] = make_uint4(0, 0, 0, 0);
        }
        copy_async_commit();
    };
    const int kFirst = attention_first(p0, window);
    int buffer = 0;
    if (PIPELINED) {
        tileSlots(kFirst, slotOf[0]);
        __syncthreads();
        stageTile(cacheK, Ks, slotOf[0]);
        stageTile(cacheV, Vs, slotOf[0]);
    }
    for (int k0 = kFirst; k0 <= lastPos; k0 += FA_N) {
        const bool more = k0 + FA_N <= lastPos;
        if (PIPELINED) {
            if (more) tileSlots(k0 + FA_N, slotOf[buffer ^ 1]);
            copy_async_wait_all_but_last(); // this key tile (its value tile may still be in flight)
        } else {
            for (int i = threadIdx.x; i < FA_N * (D / 8); i += blockDim.x) {
                int r = i / (D / 8), c = (i % (D / 8)) * 8, p = k0 + r;
                uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
                if (p <= lastPos) {
                    long long at = ((long long) table[p / blockSize] * blockSize + p % blockSize) * kvWidth + kvh * D + c;
                    kv = *(const uint4*) (cacheK + at);
                    vv = *(const uint4*) (cacheV + at);
                }
                *(uint4*) &Ks[r][c] = kv;
                *(uint4*) &Vs[r][c] = vv;
            }
        }
        __syncthreads();
        float s[FA_N / 8][4];
        #pragma unroll
        for (int j = 0; j < FA_N / 8; j++) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
            #pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                mma16816<BF16>(s[j], qa[kk], *(const unsigned*) &Ks[j * 8 + g][kk * 16 + 2 * tq],
                               *(const unsigned*) &Ks[j * 8 + g][kk * 16 + 2 * tq + 8]);
            }
        }
        if (PIPELINED) {
            __syncthreads(); // every warp is done with the key tile: the next one loads during the softmax and P.V
            if (more) stageTile(cacheK, Ks, slotOf[buffer ^ 1]);
            else copy_async_commit(); // an empty group keeps the count of groups in flight the same
        }
        float mx[2] = {NEG, NEG};
        #pragma unroll
        for (int j = 0; j < FA_N / 8; j++) {
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                int row = e >> 1, key = k0 + j * 8 + 2 * tq + (e & 1);
                bool ok = key <= pos[row] && key <= lastPos && (window <= 0 || key > pos[row] - window);
                s[j][e] = ok ? s[j][e] * scale2 : NEG;
                mx[row] = fmaxf(mx[row], s[j][e]);
            }
        }
        float alpha[2], base[2];
        #pragma unroll
        for (int row = 0; row < 2; row++) {
            mx[row] = fmaxf(mx[row], __shfl_xor_sync(0xffffffffu, mx[row], 1));
            mx[row] = fmaxf(mx[row], __shfl_xor_sync(0xffffffffu, mx[row], 2));
            float next = fmaxf(m[row], mx[row]);
            base[row] = next == NEG ? 0.f : next; // a row with nothing visible yet: exp2(-inf - 0) = 0
            alpha[row] = exp2f(m[row] - base[row]);
            m[row] = next;
            l[row] *= alpha[row];
        }
        #pragma unroll
        for (int j = 0; j < D / 8; j++) {
            o[j][0] *= alpha[0];
            o[j][1] *= alpha[0];
            o[j][2] *= alpha[1];
            o[j][3] *= alpha[1];
        }
        #pragma unroll
        for (int j = 0; j < FA_N / 8; j++) {
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                s[j][e] = exp2f(s[j][e] - base[e >> 1]);
                l[e >> 1] += s[j][e];
            }
        }
        if (PIPELINED) {
            copy_async_wait_all_but_last(); // this value tile (the next key tile may still be in flight)
            __syncthreads();
        }
        #pragma unroll
        for (int kk = 0; kk < FA_N / 16; kk++) {
            unsigned pa[4] = {pack_half2<BF16>(s[2 * kk][0], s[2 * kk][1]), pack_half2<BF16>(s[2 * kk][2], s[2 * kk][3]),
                              pack_half2<BF16>(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_half2<BF16>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
            const int key = kk * 16 + 2 * tq;
            if (PIPELINED) {
                // Matrices: keys kk·16 + 0..7 and + 8..15 of dimensions j·8.., then of (j + 1)·8..: b0, b1 of j and of j + 1.
                const int vRow = kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
                #pragma unroll
                for (int j = 0; j < D / 8; j += 2) {
                    unsigned b[4];
                    ldmatrix_x4_trans(b, &Vs[vRow][(j + (lane >> 4)) * 8]);
                    mma16816<BF16>(o[j], pa, b[0], b[1]);
                    mma16816<BF16>(o[j + 1], pa, b[2], b[3]);
                }
            } else {
                #pragma unroll
                for (int j = 0; j < D / 8; j++) {
                    int d = j * 8 + g;
                    unsigned b0 = (unsigned) Vs[key][d] | ((unsigned) Vs[key + 1][d] << 16);
                    unsigned b1 = (unsigned) Vs[key + 8][d] | ((unsigned) Vs[key + 9][d] << 16);
                    mma16816<BF16>(o[j], pa, b0, b1);
                }
            }
        }
        __syncthreads();
        if (PIPELINED) {
            if (more) stageTile(cacheV, Vs, slotOf[buffer ^ 1]); // during the next Q.K^T
            else copy_async_commit();
            buffer ^= 1;
        }
    }
    if (PIPELINED) copy_async_wait();
    #pragma unroll
    for (int row = 0; row < 2; row++) {
        l[row] += __shfl_xor_sync(0xffffffffu, l[row], 1);
        l[row] += __shfl_xor_sync(0xffffffffu, l[row], 2);
    }
    #pragma unroll
    for (int row = 0; row < 2; row++) {
        int r = r0 + g + 8 * row;
        if (r >= count) continue;
        float inv = 1.f / l[row];
        float* dst = out + (long long) (t0 + r) * qWidth + h * D + 2 * tq;
        #pragma unroll
        for (int j = 0; j < D / 8; j++) *(float2*) (dst + j * 8) = make_float2(o[j][2 * row] * inv, o[j][2 * row + 1] * inv);
    }
}

// gemv_multi_norm of q, k and v and rotary_write_kv in one launch (CudaBackend's
// -Dflora.cuda.fuseRotation=true; a decode step of one token, 16-bit weights): a q or k block takes
// rows j, j + 1, j + half, j + half + 1 of one head, so that its thread 0 holds both halves of two
// rotation pairs; it rotates them (rope_pair), stores them and writes k's to the cache. v's blocks
// are gemv_block's, their rows written to the cache too. Each row's sum is gemv_multi's (a row's
// sum does not depend on the rows beside it) and each rotation rotate_qk's, so the bits are those of
// the two kernels. qWidth and kvWidth are whole heads; headDim % 4 == 0.
template <int TOKENS>
__device__ void gemv_qkv_rope(const GemvInput& input, int in, int bf16, const u16* wq, const void* bq, int btq, float* q, int qWidth,
                              const u16* wk, const void* bk, int btk, float* k, const u16* wv, const void* bv, int btv, float* v,
                              int kvWidth, int headDim, const float* invFreq, const int* positions, const int* slots, void* cacheK,
                              void* cacheV, int type) {
    int quarter = headDim / 4, half = headDim / 2;
    int qBlocks = qWidth / 4, kBlocks = kvWidth / 4;
    int block = blockIdx.x;
    if (block < qBlocks + kBlocks) {
        bool isQ = block < qBlocks;
        int b = isQ ? block : block - qBlocks;
        const u16* w = isQ ? wq : wk;
        const void* bias = isQ ? bq : bk;
        int biasType = isQ ? btq : btk, width = isQ ? qWidth : kvWidth;
        float* out = isQ ? q : k;
        int base = (b / quarter) * headDim, j = (b % quarter) * 2;
        int row[GEMV_ROWS] = {base + j, base + j + 1, base + j + half, base + j + half + 1};
        const u16* rows[GEMV_ROWS];
        #pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) rows[r] = w + (long long) row[r] * in;
        float acc[GEMV_ROWS][TOKENS];
        gemv_rows<TOKENS, true>(input, rows, in, bf16, acc);
        if (threadIdx.x != 0) return;
        #pragma unroll
        for (int t = 0; t < TOKENS; t++) {
            float val[GEMV_ROWS];
            #pragma unroll
            for (int r = 0; r < GEMV_ROWS; r++) val[r] = bias ? acc[r][t] + ld(bias, row[r], biasType) : acc[r][t];
            float position = (float) positions[t];
            long long slot = slots[t];
            #pragma unroll
            for (int e = 0; e < 2; e++) {
                float c, sn, ra, rb;
                rope_angle(position, invFreq[j + e], &c, &sn);
                rope_pair(val[e], val[2 + e], c, sn, &ra, &rb);
                float* o = out + (long long) t * width;
                o[row[e]] = ra;
                o[row[2 + e]] = rb;
                if (!isQ && slot >= 0) {
                    kv_st(cacheK, slot * kvWidth + row[e], ra, type);
                    kv_st(cacheK, slot * kvWidth + row[2 + e], rb, type);
                }
            }
        }
        return;
    }
    // v: gemv_block's rows and stores, then thread 0 copies its own stores to the cache.
    int row0 = (block - qBlocks - kBlocks) * GEMV_ROWS;
    gemv_block<TOKENS, true>(input, wv, bv, btv, v, in, kvWidth, bf16, row0, 0);
    if (threadIdx.x != 0) return;
    #pragma unroll
    for (int t = 0; t < TOKENS; t++) {
        long long slot = slots[t];
        if (slot < 0) continue;
        #pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++)
            if (row0 + r < kvWidth) kv_st(cacheV, slot * kvWidth + row0 + r, v[(long long) t * kvWidth + row0 + r], type);
    }
}

#define GEMV_QKV_ROPE_KERNEL(T) \
__global__ void __launch_bounds__(GEMV_THREADS, 6) gemv_qkv_rope_norm##T(const float* x, GEMV_NORM_ARGS, int in, int bf16, const u16* wq, \
        const void* bq, int btq, float* q, int qWidth, const u16* wk, const void* bk, int btk, float* k, const u16* wv, const void* bv, \
        int btv, float* v, int kvWidth, int headDim, const float* invFreq, const int* positions, const int* slots, void* cacheK, \
        void* cacheV, int type) { \
    gemv_qkv_rope<T>(GemvInput{x, norm, nt, eps, h}, in, bf16, wq, bq, btq, q, qWidth, wk, bk, btk, k, wv, bv, btv, v, kvWidth, headDim, \
                     invFreq, positions, slots, cacheK, cacheV, type); }

extern "C" {

GEMV_QKV_ROPE_KERNEL(1) // one token: with more, 80 registers (6 blocks an SM, as gemv_multi_norm) would spill

__global__ void write_kv(const float* k, const float* v, void* cacheK, void* cacheV, const int* slots, int kvWidth, int type) {
    if (type == 0) write_kv_impl<0>(k, v, cacheK, cacheV, slots, kvWidth);
    else if (type == 1) write_kv_impl<1>(k, v, cacheK, cacheV, slots, kvWidth);
    else write_kv_impl<2>(k, v, cacheK, cacheV, slots, kvWidth);
}

// rotary_qk and write_kv in one launch: q and k rotated in place (the same values as rotary_qk),
// the rotated k and v stored at the token's cache slot in the cache's type.
__global__ void rotary_write_kv(float* q, int qWidth, float* k, const float* v, int kvWidth, int headDim, const float* invFreq,
                                const int* positions, void* cacheK, void* cacheV, const int* slots, int type) {
    let_next_start();
    int t = blockIdx.x;
    long long slot = slots[t];
    int position = positions[t];
    grid_wait(); // slots and positions are the step's uploads; q, k and v come from the kernel before
    rotate_qk(q, qWidth, k, kvWidth, headDim, invFreq, position, cacheK, slot, type);
    if (slot < 0) return; // a recorded step's padding
    // As rotate_qk: a batch of loads, then their stores.
    const float* vt = v + (long long) t * kvWidth;
    int per = (kvWidth + gridDim.y - 1) / gridDim.y, to = min(kvWidth, (blockIdx.y + 1) * per);
    for (int c0 = blockIdx.y * per + threadIdx.x; c0 < to; c0 += ROTATE_BATCH * blockDim.x) {
        float w[ROTATE_BATCH];
        #pragma unroll
        for (int u = 0; u < ROTATE_BATCH; u++) {
            int c = c0 + u * blockDim.x;
            if (c < to) w[u] = vt[c];
        }
        #pragma unroll
        for (int u = 0; u < ROTATE_BATCH; u++) {
            int c = c0 + u * blockDim.x;
            if (c < to) kv_st(cacheV, slot * kvWidth + c, w[u], type);
        }
    }
}

#define ATTENTION_ARGS const float* q, const void* cacheK, const void* cacheV, float* out, float* partOut, float* partMax, \
    float* partSum, const int* positions, const int* seqOfToken, const int* blockTables, int maxBlocks, int blockSize, int heads, \
    int kvHeads, int headDim, float scale, int window, int minSplit, int splits, const int* tokenList, int* counters
#define ATTENTION_PASS q, cacheK, cacheV, out, partOut, partMax, partSum, positions, seqOfToken, blockTables, maxBlocks, blockSize, \
    heads, kvHeads, headDim, scale, window, minSplit, splits, tokenList, counters
__global__ void __launch_bounds__(ATTN_THREADS) attention(ATTENTION_ARGS) { attention_impl<0>(ATTENTION_PASS); }
__global__ void __launch_bounds__(ATTN_THREADS) attention_bf16(ATTENTION_ARGS) { attention_impl<1>(ATTENTION_PASS); }
__global__ void __launch_bounds__(ATTN_THREADS) attention_f16(ATTENTION_ARGS) { attention_impl<2>(ATTENTION_PASS); }

#define TILES_ARGS const float* q, const u16* cacheK, const u16* cacheV, float* out, const int4* tiles, const int* blockTables, \
    int maxBlocks, int blockSize, int heads, int kvHeads, float scale, int window
#define TILES_PASS q, cacheK, cacheV, out, tiles, blockTables, maxBlocks, blockSize, heads, kvHeads, scale, window
__global__ void __launch_bounds__(128) attention_tiles_bf16_64(TILES_ARGS) { attention_tiles_impl<64, true, false>(TILES_PASS); }
__global__ void __launch_bounds__(128) attention_tiles_bf16_128(TILES_ARGS) { attention_tiles_impl<128, true, false>(TILES_PASS); }
__global__ void __launch_bounds__(128) attention_tiles_f16_64(TILES_ARGS) { attention_tiles_impl<64, false, false>(TILES_PASS); }
__global__ void __launch_bounds__(128) attention_tiles_f16_128(TILES_ARGS) { attention_tiles_impl<128, false, false>(TILES_PASS); }
__global__ void __launch_bounds__(128) attention_tiles2_bf16_64(TILES_ARGS) { attention_tiles_impl<64, true, true>(TILES_PASS); }
__global__ void __launch_bounds__(128) attention_tiles2_bf16_128(TILES_ARGS) { attention_tiles_impl<128, true, true>(TILES_PASS); }
__global__ void __launch_bounds__(128) attention_tiles2_f16_64(TILES_ARGS) { attention_tiles_impl<64, false, true>(TILES_PASS); }
__global__ void __launch_bounds__(128) attention_tiles2_f16_128(TILES_ARGS) { attention_tiles_impl<128, false, true>(TILES_PASS); }

// Decode attention, second form (CudaBackend's default for 16-bit caches and head sizes 64 and 128;
// -Dflora.cuda.attention=v1 takes attention_impl instead): as attention_impl, but a position's key or value row is read by LANES = D / 8 lanes,
// 16 bytes (8 dimensions) each, so a warp reads 32 / LANES positions a load and each lane has
// ATTN_V2_LOADS loads in flight (attention_impl: 8 lanes a position, 8 bytes a load, one at a time).
// Two loads beat four on the H200 (+3-4% decode at 64 sequences, NOTES.md session 8): a round covers
// fewer positions, so a split's last round wastes less, and fewer registers fit more blocks.
// Scores and the weighted values add up in float64 as there (unless ATTN_LANE_SUMS is 32, the default, below); only their order differs.
#ifndef ATTN_V2_LOADS // a tunable: -Dflora.cuda.defines=ATTN_V2_LOADS=N (CudaBackend, KernelModule.TUNABLES)
#define ATTN_V2_LOADS 2
#endif
// The second and third forms' lane sums (a lane's part of a score, its weighted values within a chunk):
// 32 (the default since session 23), float32, each lane's values added into the float64 output once a
// chunk, so that a position costs no float64 conversions (256 a position at head size 128, 16 a clock per
// multiprocessor: about 35 µs of the 117 that attention took of a 64-sequence Llama-2-7B decode layer's
// 272 on the H200, NOTES.md session 21). On an H100 it gave +4.0% decode and +2.3% end to end at
// 64 x (256 + 64) without adapters, +1.8% on the PEFT workload, and the attention ran at 74.6% of DRAM's
// peak; the emulator finds it within 1.7e-7 of float64. 64 (-Dflora.cuda.defines=ATTN_LANE_SUMS=64)
// sums in float64 as the other forms.
#ifndef ATTN_LANE_SUMS // a tunable: -Dflora.cuda.defines=ATTN_LANE_SUMS=64 (CudaBackend, KernelModule.TUNABLES)
#define ATTN_LANE_SUMS 32
#endif
#if ATTN_LANE_SUMS == 32
typedef float attn_lane_sum;
#else
typedef double attn_lane_sum;
#endif

extern "C++" {
template <int TYPE> __device__ __forceinline__ void unpack8(uint4 w, float* f) {
    unsigned int u[4] = {w.x, w.y, w.z, w.w};
    #pragma unroll
    for (int k = 0; k < 4; k++) {
        u16 lo = (u16) (u[k] & 0xffffu), hi = (u16) (u[k] >> 16);
        f[2 * k] = TYPE == 1 ? bf16_to_f32(lo) : f16_to_f32(lo);
        f[2 * k + 1] = TYPE == 1 ? bf16_to_f32(hi) : f16_to_f32(hi);
    }
}

// The cache slots of positions [c0, c0 + n) of a sequence whose block table is table, into slotOf.
__device__ __forceinline__ void attention_slots(const int* table, int blockSize, int c0, int n, int* slotOf) {
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        int p = c0 + j;
        slotOf[j] = table[p / blockSize] * blockSize + p % blockSize;
    }
}

// A lane's loads of one round: rows j, j + STEP, ... (those below n) of the cache at their slots.
template <int STEP>
__device__ __forceinline__ void attention_v2_round(const u16* cache, const int* slotOf, int kvWidth, int j, int n, uint4* into) {
    #pragma unroll
    for (int u = 0; u < ATTN_V2_LOADS; u++) {
        if (j + u * STEP < n) into[u] = *(const uint4*) (cache + (long long) slotOf[j + u * STEP] * kvWidth);
    }
}

// The rows of positions [0, n) of a chunk (slots slotOf) of one key/value head (cache already at its
// column) into stage[j][0..D), 16 bytes a copy, every thread of the block a share: all in flight at once.
template <int D>
__device__ __forceinline__ void attention_stage_rows(const u16* cache, const int* slotOf, int kvWidth, int n, u16* stage) {
    constexpr int PIECES = D / 8;
    for (int p = threadIdx.x; p < n * PIECES; p += blockDim.x) {
        int j = p / PIECES, part = p % PIECES;
        copy_async16(stage + j * D + part * 8, cache + (long long) slotOf[j] * kvWidth + part * 8);
    }
    copy_async_commit();
}

// As attention_v2_round, from a staged chunk: rows j, j + STEP, ... (those below n), at the lane's column.
template <int STEP, int D>
__device__ __forceinline__ void attention_v2_round_staged(const u16* stage, int column, int j, int n, uint4* into) {
    #pragma unroll
    for (int u = 0; u < ATTN_V2_LOADS; u++) {
        if (j + u * STEP < n) into[u] = *(const uint4*) (stage + (j + u * STEP) * D + column);
    }
}

// The second form; STAGE (the third, attention_v3_*): a chunk's key rows, then its value rows, copied
// into shared memory all at once (cp.async) before they are used, the values' copies in flight during
// the softmax, so a chunk waits two memory round trips, not one per round of loads. The sums are the
// same, so are the bits. CudaBackend takes the third where a step has blocks enough to hide its waits.
template <int TYPE, int D, bool STAGE>
__device__ void attention_v2_impl(ATTENTION_ARGS) {
    constexpr int LANES = D / 8;                  // lanes reading one position's row
    constexpr int PER_WARP = 32 / LANES;          // positions a warp reads a load
    constexpr int STEP = PER_WARP * ATTN_WARPS;   // positions the block reads a load
    constexpr int ROUND = STEP * ATTN_V2_LOADS;   // positions a round of loads covers
    static_assert(ATTN_CHUNK % ROUND == 0, "a chunk is whole rounds");
    __shared__ float sc[ATTN_CHUNK];
    __shared__ int slotOf[ATTN_CHUNK];
    __shared__ float maxScratch[32];
    __shared__ double sumScratch[32];
    __shared__ double partial[STEP][D];
    __shared__ __align__(16) u16 stage[STAGE ? ATTN_CHUNK * D : 8];
    let_next_start();
    AttentionSpan span = attention_span(positions, tokenList, heads, window, minSplit, splits);
    if (span.split >= span.used) return;
    int t = span.t, h = span.h, split = span.split, used = span.used, begin = span.begin, end = span.end;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = lane % LANES, row = warp * PER_WARP + lane / LANES;
    int kvh = h / (heads / kvHeads);
    int kvWidth = kvHeads * D;
    const int* table = blockTables + (long long) seqOfToken[t] * maxBlocks;
    // The first chunk's slots come from the step's uploads, so they are read before grid_wait().
    attention_slots(table, blockSize, begin, min(ATTN_CHUNK, end - begin), slotOf);
    grid_wait(); // as attention_impl
    float qv[8];
    const float* qrow = q + (long long) t * heads * D + h * D + sub * 8;
    #pragma unroll
    for (int e = 0; e < 8; e++) qv[e] = qrow[e];
    const u16* keyHead = (const u16*) cacheK + kvh * D;   // the head's columns (staged whole)
    const u16* valueHead = (const u16*) cacheV + kvh * D;
    const u16* keys = keyHead + sub * 8;                  // the lane's 8 of them
    const u16* values = valueHead + sub * 8;
    float m = __int_as_float(0xff800000);
    double l = 0.0;
    double acc[8];
    #pragma unroll
    for (int e = 0; e < 8; e++) acc[e] = 0.0;
    for (int c0 = begin; c0 < end; c0 += ATTN_CHUNK) {
        int n = min(ATTN_CHUNK, end - c0);
        if (c0 != begin) attention_slots(table, blockSize, c0, n, slotOf);
        __syncthreads();
        // Scores: position j = row + u * STEP of each round; the LANES lanes of a position sum their parts.
        // Only the rounds that hold positions run (a short split has one or two); the rest of the
        // chunk's scores are -inf for the softmax.
        int rounds = (n + ROUND - 1) / ROUND * ROUND;
        for (int j = rounds + threadIdx.x; j < ATTN_CHUNK; j += blockDim.x) sc[j] = __int_as_float(0xff800000);
        if (STAGE) {
            attention_stage_rows<D>(keyHead, slotOf, kvWidth, n, stage);
            copy_async_wait();
            __syncthreads();
        }
        for (int r0 = 0; r0 < rounds; r0 += ROUND) {
            uint4 k[ATTN_V2_LOADS];
            if (STAGE) attention_v2_round_staged<STEP, D>(stage, sub * 8, r0 + row, n, k);
            else attention_v2_round<STEP>(keys, slotOf, kvWidth, r0 + row, n, k);
            #pragma unroll
            for (int u = 0; u < ATTN_V2_LOADS; u++) {
                int j = r0 + row + u * STEP;
                attn_lane_sum s = 0.0;
                if (j < n) {
                    float kf[8];
                    unpack8<TYPE>(k[u], kf);
                    #pragma unroll
                    for (int e = 0; e < 8; e++) s += (attn_lane_sum) qv[e] * kf[e];
                }
                #pragma unroll
                for (int o = LANES / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
                if (sub == 0) sc[j] = j < n ? (float) s * scale : __int_as_float(0xff800000);
            }
        }
        __syncthreads();
        if (STAGE) attention_stage_rows<D>(valueHead, slotOf, kvWidth, n, stage); // the keys are read: in flight during the softmax
        float factor = attention_chunk_softmax(sc, maxScratch, sumScratch, m, l);
        #pragma unroll
        for (int d = 0; d < 8; d++) acc[d] *= factor;
        if (STAGE) {
            copy_async_wait();
            __syncthreads();
        }
        // Values: the same positions per lane as the scores; each lane its 8 dimensions.
#if ATTN_LANE_SUMS == 32
        float chunkAcc[8];
        #pragma unroll
        for (int d = 0; d < 8; d++) chunkAcc[d] = 0.f;
#endif
        for (int r0 = 0; r0 < n; r0 += ROUND) {
            uint4 v[ATTN_V2_LOADS];
            if (STAGE) attention_v2_round_staged<STEP, D>(stage, sub * 8, r0 + row, n, v);
            else attention_v2_round<STEP>(values, slotOf, kvWidth, r0 + row, n, v);
            #pragma unroll
            for (int u = 0; u < ATTN_V2_LOADS; u++) {
                int j = r0 + row + u * STEP;
                if (j < n) {
                    float vf[8];
                    unpack8<TYPE>(v[u], vf);
#if ATTN_LANE_SUMS == 32
                    float w = sc[j];
                    #pragma unroll
                    for (int d = 0; d < 8; d++) chunkAcc[d] = fmaf(w, vf[d], chunkAcc[d]);
#else
                    double w = sc[j];
                    #pragma unroll
                    for (int d = 0; d < 8; d++) acc[d] += w * vf[d];
#endif
                }
            }
        }
#if ATTN_LANE_SUMS == 32
        #pragma unroll
        for (int d = 0; d < 8; d++) acc[d] += chunkAcc[d];
#endif
        __syncthreads();
    }
    #pragma unroll
    for (int d = 0; d < 8; d++) partial[row][sub * 8 + d] = acc[d];
    __syncthreads();
    attention_finish(&partial[0][0], STEP, D, m, l, t, h, heads, D, splits, split, used, out, partOut, partMax, partSum, counters);
}

}  // extern "C++"

__global__ void __launch_bounds__(ATTN_THREADS) attention_v2_bf16_64(ATTENTION_ARGS) { attention_v2_impl<1, 64, false>(ATTENTION_PASS); }
__global__ void __launch_bounds__(ATTN_THREADS) attention_v2_bf16_128(ATTENTION_ARGS) { attention_v2_impl<1, 128, false>(ATTENTION_PASS); }
__global__ void __launch_bounds__(ATTN_THREADS) attention_v2_f16_64(ATTENTION_ARGS) { attention_v2_impl<2, 64, false>(ATTENTION_PASS); }
__global__ void __launch_bounds__(ATTN_THREADS) attention_v2_f16_128(ATTENTION_ARGS) { attention_v2_impl<2, 128, false>(ATTENTION_PASS); }
__global__ void ATTN_V3_BOUNDS attention_v3_bf16_64(ATTENTION_ARGS) { attention_v2_impl<1, 64, true>(ATTENTION_PASS); }
__global__ void ATTN_V3_BOUNDS attention_v3_bf16_128(ATTENTION_ARGS) { attention_v2_impl<1, 128, true>(ATTENTION_PASS); }
__global__ void ATTN_V3_BOUNDS attention_v3_f16_64(ATTENTION_ARGS) { attention_v2_impl<2, 64, true>(ATTENTION_PASS); }
__global__ void ATTN_V3_BOUNDS attention_v3_f16_128(ATTENTION_ARGS) { attention_v2_impl<2, 128, true>(ATTENTION_PASS); }

// Decode attention, fourth form (-Dflora.cuda.attention=v4; built in session 17 without a GPU, off
// until measured). The second and third forms take a chunk at a time with the whole block: slots,
// keys, scores, a block-wide softmax, values, each step waiting for the one before (two memory round
// trips and several barriers a chunk); at 64 sequences a split is about one chunk, so a block has
// loads in flight for only part of its life and the cache streams at about half of what HBM gives.
// Here each lane group (LANES lanes, one position's row) keeps its own online softmax over its own
// positions (every ROWS-th of the split) in rounds of ATTN_V4_LOADS positions, each round's keys and
// values loaded a round ahead (two register buffers), so that a lane always has loads in flight,
// with no barrier until the groups join at the end: their maxima to the block's, their sums and
// outputs rescaled to it and added in group order. Scores are the second form's bits; the softmax
// runs position by position, so the output differs from the other forms' in the last bits
// (CudaKernelsTest checks it against float64). Its lane sums follow ATTN_LANE_SUMS as the second and
// third forms' do (session 23: v4 lost 3.1% to v3 in session 19 with both summing in float64, the
// conversions that float32 lane sums took out of v3; not yet timed with them).
#ifndef ATTN_V4_LOADS // a tunable: -Dflora.cuda.defines=ATTN_V4_LOADS=N (CudaBackend, KernelModule.TUNABLES)
#define ATTN_V4_LOADS 2
#endif
#define ATTN_V4_SLOTS 256 // positions whose slots a block holds at once

extern "C++" {
template <int TYPE, int D>
__device__ void attention_v4_impl(ATTENTION_ARGS) {
    constexpr int LANES = D / 8;                  // lanes reading one position's row
    constexpr int PER_WARP = 32 / LANES;          // lane groups a warp
    constexpr int ROWS = PER_WARP * ATTN_WARPS;   // lane groups a block: group r takes positions r, r + ROWS, ...
    constexpr int ROUND = ROWS * ATTN_V4_LOADS;   // positions a round of loads covers
    __shared__ int slotOf[ATTN_V4_SLOTS];
    __shared__ double partial[ROWS][D];
    __shared__ float groupMax[ROWS];
    __shared__ double groupSum[ROWS];
    let_next_start();
    AttentionSpan span = attention_span(positions, tokenList, heads, window, minSplit, splits);
    if (span.split >= span.used) return;
    int t = span.t, h = span.h, split = span.split, used = span.used, begin = span.begin, end = span.end;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = lane % LANES, row = warp * PER_WARP + lane / LANES;
    int kvh = h / (heads / kvHeads);
    int kvWidth = kvHeads * D;
    const int* table = blockTables + (long long) seqOfToken[t] * maxBlocks;
    attention_slots(table, blockSize, begin, min(ATTN_V4_SLOTS, end - begin), slotOf); // the step's uploads: before grid_wait()
    grid_wait();
    float qv[8];
    const float* qrow = q + (long long) t * heads * D + h * D + sub * 8;
    #pragma unroll
    for (int e = 0; e < 8; e++) qv[e] = qrow[e];
    const u16* keys = (const u16*) cacheK + kvh * D + sub * 8;
    const u16* values = (const u16*) cacheV + kvh * D + sub * 8;
    const float none = __int_as_float(0xff800000);
    float m = none;
    double l = 0.0;
    double acc[8];
    #pragma unroll
    for (int e = 0; e < 8; e++) acc[e] = 0.0;
    for (int c0 = begin; c0 < end; c0 += ATTN_V4_SLOTS) {
        int n = min(ATTN_V4_SLOTS, end - c0);
        if (c0 != begin) {
            __syncthreads(); // every group is done with the slots before
            attention_slots(table, blockSize, c0, n, slotOf);
        }
        __syncthreads();
#if ATTN_LANE_SUMS == 32
        // The chunk's weighted values in float32 (at most ATTN_V4_SLOTS / ROWS positions a lane), into acc at its end.
        float chunkAcc[8];
        #pragma unroll
        for (int e = 0; e < 8; e++) chunkAcc[e] = 0.f;
#endif
        // A round: positions r0 + row + u·ROWS of the chunk (those below n), their keys and values.
        auto load = [&](int r0, uint4* k, uint4* v) {
            #pragma unroll
            for (int u = 0; u < ATTN_V4_LOADS; u++) {
                int j = r0 + row + u * ROWS;
                if (j < n) {
                    long long at = (long long) slotOf[j] * kvWidth;
                    k[u] = *(const uint4*) (keys + at);
                    v[u] = *(const uint4*) (values + at);
                }
            }
        };
        // A round's positions into the group's running maximum, sum and output. Every lane calls it for
        // every round (the shuffles need the whole warp), positions or not.
        auto take = [&](int r0, const uint4* k, const uint4* v) {
            #pragma unroll
            for (int u = 0; u < ATTN_V4_LOADS; u++) {
                int j = r0 + row + u * ROWS;
                attn_lane_sum s = 0.0;
                if (j < n) {
                    float kf[8];
                    unpack8<TYPE>(k[u], kf);
                    #pragma unroll
                    for (int e = 0; e < 8; e++) s += (attn_lane_sum) qv[e] * kf[e];
                }
                #pragma unroll
                for (int o = LANES / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
                if (j < n) {
                    float score = (float) s * scale;
                    if (score > m) { // a new maximum: what was summed is rescaled to it
                        float factor = m == none ? 0.f : expf(m - score);
                        l *= factor;
                        #pragma unroll
                        for (int e = 0; e < 8; e++) acc[e] *= factor;
#if ATTN_LANE_SUMS == 32
                        #pragma unroll
                        for (int e = 0; e < 8; e++) chunkAcc[e] *= factor;
#endif
                        m = score;
                    }
                    float p = expf(score - m);
                    float vf[8];
                    unpack8<TYPE>(v[u], vf);
                    l += p;
#if ATTN_LANE_SUMS == 32
                    #pragma unroll
                    for (int e = 0; e < 8; e++) chunkAcc[e] = fmaf(p, vf[e], chunkAcc[e]);
#else
                    double w = p;
                    #pragma unroll
                    for (int e = 0; e < 8; e++) acc[e] += w * vf[e];
#endif
                }
            }
        };
        // Two register buffers: each round's loads are issued a round ahead, in flight while the round
        // before is taken.
        uint4 ka[ATTN_V4_LOADS], va[ATTN_V4_LOADS], kb[ATTN_V4_LOADS], vb[ATTN_V4_LOADS];
        load(0, ka, va);
        for (int r0 = 0; r0 < n; r0 += 2 * ROUND) { // the same rounds for every lane
            load(r0 + ROUND, kb, vb);
            take(r0, ka, va);
            load(r0 + 2 * ROUND, ka, va);
            take(r0 + ROUND, kb, vb);
        }
#if ATTN_LANE_SUMS == 32
        #pragma unroll
        for (int e = 0; e < 8; e++) acc[e] += chunkAcc[e];
#endif
    }
    // The groups join: the block's maximum, each group's sum and output rescaled to it (a group without
    // positions adds nothing), the sums added in group order.
    if (sub == 0) groupMax[row] = m;
    __syncthreads();
    float top = none;
    #pragma unroll
    for (int r = 0; r < ROWS; r++) top = fmaxf(top, groupMax[r]);
    float factor = m == none ? 0.f : expf(m - top);
    #pragma unroll
    for (int e = 0; e < 8; e++) partial[row][sub * 8 + e] = acc[e] * factor;
    if (sub == 0) groupSum[row] = l * factor;
    __syncthreads();
    double total = 0.0;
    #pragma unroll
    for (int r = 0; r < ROWS; r++) total += groupSum[r];
    attention_finish(&partial[0][0], ROWS, D, top, total, t, h, heads, D, splits, split, used, out, partOut, partMax, partSum, counters);
}
}  // extern "C++"

__global__ void __launch_bounds__(ATTN_THREADS) attention_v4_bf16_64(ATTENTION_ARGS) { attention_v4_impl<1, 64>(ATTENTION_PASS); }
__global__ void __launch_bounds__(ATTN_THREADS) attention_v4_bf16_128(ATTENTION_ARGS) { attention_v4_impl<1, 128>(ATTENTION_PASS); }
__global__ void __launch_bounds__(ATTN_THREADS) attention_v4_f16_64(ATTENTION_ARGS) { attention_v4_impl<2, 64>(ATTENTION_PASS); }
__global__ void __launch_bounds__(ATTN_THREADS) attention_v4_f16_128(ATTENTION_ARGS) { attention_v4_impl<2, 128>(ATTENTION_PASS); }

// Joins the splits of tokens whose context needed more than one (when attention had no counters).
__global__ void attention_combine(const float* partOut, const float* partMax, const float* partSum, float* out,
                                  const int* positions, int heads, int headDim, int window, int minSplit, int splits,
                                  const int* tokenList) {
    let_next_start();
    int t = blockIdx.x / heads, h = blockIdx.x % heads;
    if (tokenList) t = tokenList[t];
    int pos = positions[t];
    int len = pos - attention_first(pos, window) + 1;
    int splitLen = attention_split(len, minSplit, splits);
    int used = (len + splitLen - 1) / splitLen;
    if (used <= 1) return;
    combine_splits(partOut, partMax, partSum, out, blockIdx.x, t, h, heads, headDim, splits, used);
}

// Keeps the GPU busy for the given nanoseconds (one thread): work queued behind it is timed on the
// GPU without the host's queueing time (CudaBackend.deviceMicros).
__global__ void hold(long long nanos) {
#ifndef FLORA_HOST_EMULATION // a GPU clock: nothing to hold on the CPU
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < (unsigned long long) nanos);
#endif
}

// Per row of logits: the largest value and its index (the first on ties, as torch.argmax), and
// log Σ exp(x − max) + max summed in float64; written as lse[rows] (double), max[rows], argmax[rows].
// One block of LOGIT_THREADS per row: greedy decoding copies back these 16 bytes, not the row.
#define LOGIT_THREADS 1024
__global__ void logit_summary(const float* logits, int vocab, double* lse, float* maxOut, int* argmaxOut) {
    __shared__ float topValue[32];
    __shared__ int topIndex[32];
    __shared__ double scratch[32];
    const float* row = logits + (long long) blockIdx.x * vocab;
    float best = __int_as_float(0xff800000);
    int index = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        float x = row[i];
        if (x > best || index == 0x7fffffff) { best = x; index = i; }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ob = __shfl_xor_sync(0xffffffffu, best, o);
        int oi = __shfl_xor_sync(0xffffffffu, index, o);
        if (ob > best || (ob == best && oi < index)) { best = ob; index = oi; }
    }
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    if (lane == 0) { topValue[warp] = best; topIndex[warp] = index; }
    __syncthreads();
    best = topValue[0];
    index = topIndex[0];
    for (int w = 1; w < warps; w++) {
        if (topValue[w] > best || (topValue[w] == best && topIndex[w] < index)) { best = topValue[w]; index = topIndex[w]; }
    }
    double s = 0.0;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) s += exp((double) row[i] - best);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) {
        lse[blockIdx.x] = best + log(s);
        maxOut[blockIdx.x] = best;
        argmaxOut[blockIdx.x] = index;
    }
}

// Element-wise kernels: with vec (every pointer 16-byte aligned, set by the host) each thread takes
// 4 or 8 elements per access, the rest one by one; the same values either way.
#define GRID_STRIDE(i, from, n) for (long long i = (from) + blockIdx.x * (long long) blockDim.x + threadIdx.x; i < (n); \
                                     i += (long long) gridDim.x * blockDim.x)

__global__ void gated_activation(int act, const float* gate, const float* up, float* out, long long n, int vec) {
    let_next_start();
    grid_wait(); // launched overlapped: CudaBackend.OVERLAPPED_SMALL lists the kernels that are (each waits first)
    long long n4 = vec ? n / 4 : 0;
    GRID_STRIDE(i, 0, n4) {
        float4 g = ((const float4*) gate)[i], u = ((const float4*) up)[i];
        ((float4*) out)[i] = make_float4(activate(act, g.x) * u.x, activate(act, g.y) * u.y, activate(act, g.z) * u.z,
                                         activate(act, g.w) * u.w);
    }
    GRID_STRIDE(i, n4 * 4, n) out[i] = activate(act, gate[i]) * up[i];
}

// gated_activation's values rounded to 16 bits as to_half rounds them (bf16 = 1, else float16): the input
// of the down projection's cuBLAS product written directly, so the float32 rows are neither stored nor
// read back (the same bits as the two kernels). 8 elements, one 16-byte store, a step.
__global__ void gated_activation_half(int act, const float* gate, const float* up, u16* out, long long n, int vec, int bf16) {
    let_next_start();
    grid_wait();
    long long n8 = vec ? n / 8 : 0;
    GRID_STRIDE(i, 0, n8) {
        float4 g0 = ((const float4*) gate)[2 * i], g1 = ((const float4*) gate)[2 * i + 1];
        float4 u0 = ((const float4*) up)[2 * i], u1 = ((const float4*) up)[2 * i + 1];
        float g[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
        float u[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
        unsigned int h[8];
        #pragma unroll
        for (int k = 0; k < 8; k++) {
            float v = activate(act, g[k]) * u[k];
            h[k] = bf16 ? f32_to_bf16(v) : f32_to_f16(v);
        }
        ((uint4*) out)[i] = make_uint4(h[0] | (h[1] << 16), h[2] | (h[3] << 16), h[4] | (h[5] << 16), h[6] | (h[7] << 16));
    }
    GRID_STRIDE(i, n8 * 8, n) {
        float v = activate(act, gate[i]) * up[i];
        out[i] = bf16 ? f32_to_bf16(v) : f32_to_f16(v);
    }
}

__global__ void activation(int act, float* x, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x)
        x[i] = activate(act, x[i]);
}

__global__ void add_in_place(float* x, const float* y, long long n, int vec) {
    let_next_start();
    grid_wait();
    long long n4 = vec ? n / 4 : 0;
    GRID_STRIDE(i, 0, n4) {
        float4 a = ((float4*) x)[i], b = ((const float4*) y)[i];
        ((float4*) x)[i] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
    }
    GRID_STRIDE(i, n4 * 4, n) x[i] += y[i];
}

__global__ void add_bias(float* out, const void* bias, int type, int cols) {
    for (int c = threadIdx.x; c < cols; c += blockDim.x) out[(long long) blockIdx.x * cols + c] += ld(bias, c, type);
}

// float32 to bfloat16 (bf16 = 1) or float16, rounding to nearest even; 8 elements, one 16-byte store, per step.
__global__ void to_half(const float* x, u16* out, long long n, int vec, int bf16) {
    let_next_start();
    grid_wait();
    long long n8 = vec ? n / 8 : 0;
    GRID_STRIDE(i, 0, n8) {
        float4 a = ((const float4*) x)[2 * i], b = ((const float4*) x)[2 * i + 1];
        float f[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
        unsigned int h[8];
        #pragma unroll
        for (int k = 0; k < 8; k++) h[k] = bf16 ? f32_to_bf16(f[k]) : f32_to_f16(f[k]);
        ((uint4*) out)[i] = make_uint4(h[0] | (h[1] << 16), h[2] | (h[3] << 16), h[4] | (h[5] << 16), h[6] | (h[7] << 16));
    }
    GRID_STRIDE(i, n8 * 8, n) out[i] = bf16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
}

// Seeded pseudo-random weights (TensorView.randomValue: the same splitmix64 hash, bit for bit).
__global__ void fill_random(void* out, int type, long long n, unsigned long long seed, int vector) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        unsigned long long z = seed + (unsigned long long) (i + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z = z ^ (z >> 31);
        float u = (float) (z >> 40) * 5.9604644775390625e-8f;
        float v = (u - 0.5f) * 0.04f;
        if (vector) v = 1.f + v;
        if (type == 0) ((float*) out)[i] = v;
        else if (type == 1) ((u16*) out)[i] = f32_to_bf16(v);
        else ((u16*) out)[i] = f32_to_f16(v);
    }
}

// Columns per block of flora_modulate / flora_demodulate (blockIdx.y): a decode step's few tokens
// still make enough blocks to keep memory busy (CudaBackend.FLORA_COLUMNS).
#define FLORA_COLUMNS 1024
#ifndef FLORA_BATCH // a tunable: -Dflora.cuda.defines=FLORA_BATCH=N (CudaBackend, KernelModule.TUNABLES)
#define FLORA_BATCH 4
#endif

__device__ __forceinline__ bool aligned_to(const void* p, unsigned int bytes) { return ((unsigned long long) p & (bytes - 1)) == 0; }

// Four values of a float32 (0), bf16 (1) or f16 (2) buffer from element i: one 16- or 8-byte load.
__device__ __forceinline__ float4 ld4(const void* p, long long i, int type) {
    return type == 0 ? kv_ld4<0>(p, i) : type == 1 ? kv_ld4<1>(p, i) : kv_ld4<2>(p, i);
}

// Whether four elements from any multiple of 4 can be one access: the row width a multiple of 4 and
// the buffer 16-byte (float32) or 8-byte (16-bit) aligned.
__device__ __forceinline__ bool rows_of_vectors(const void* p, int type, int width) {
    return (width & 3) == 0 && aligned_to(p, type == 0 ? 16 : 8);
}

// With vectors (CudaBackend's -Dflora.cuda.floraVectors) the two kernels below take four columns a
// thread where the rows allow one access per operand, with the per-element arithmetic of their loops.
// fLoRA modulation, every group of the step at once: one block per adapted token m (group g,
// index i of n_g): stacked[base_g + j n_g + i] = x[row_m] ∘ A_g[j] for j < r_g; into half (rounded
// to bf16 or f16, what cuBLAS reads) instead when it is not null.
__global__ void flora_modulate(const float* x, const int* rowOf, const int* groupOf, const int* indexOf, const int* base,
                               const int* count, const long long* aPtr, const int* aType, const int* rank, float* stacked, u16* half,
                               int bf16, int in, int vectors) {
    int m = blockIdx.x, g = groupOf[m], i = indexOf[m], n = count[g], r = rank[g], type = aType[g], first = base[g];
    const float* row = x + (long long) rowOf[m] * in;
    const void* a = (const void*) aPtr[g];
    int end = min(in, (blockIdx.y + 1) * FLORA_COLUMNS);
    if (vectors && rows_of_vectors(x, 0, in) && rows_of_vectors(a, type, in) && (half ? rows_of_vectors(half, 1, in) : rows_of_vectors(stacked, 0, in))) {
        // Four columns a thread, each load and store one access; the arithmetic below element for element.
        for (int c = blockIdx.y * FLORA_COLUMNS + 4 * threadIdx.x; c < end; c += 4 * blockDim.x) {
            float4 xv = *(const float4*) (row + c);
            for (int j = 0; j < r; j++) {
                float4 av = ld4(a, (long long) j * in + c, type);
                float4 v = make_float4(__fmul_rn(xv.x, av.x), __fmul_rn(xv.y, av.y), __fmul_rn(xv.z, av.z), __fmul_rn(xv.w, av.w));
                long long at = (long long) (first + j * n + i) * in + c;
                if (half) {
                    unsigned int h0 = bf16 ? f32_to_bf16(v.x) : f32_to_f16(v.x), h1 = bf16 ? f32_to_bf16(v.y) : f32_to_f16(v.y);
                    unsigned int h2 = bf16 ? f32_to_bf16(v.z) : f32_to_f16(v.z), h3 = bf16 ? f32_to_bf16(v.w) : f32_to_f16(v.w);
                    *(uint2*) (half + at) = make_uint2(h0 | (h1 << 16), h2 | (h3 << 16));
                } else {
                    *(float4*) (stacked + at) = v;
                }
            }
        }
        return;
    }
    // FLORA_BATCH columns a thread: their loads before any store (a store could alias them, and each
    // column would wait a memory round trip of its own).
    for (int c0 = blockIdx.y * FLORA_COLUMNS + threadIdx.x; c0 < end; c0 += FLORA_BATCH * blockDim.x) {
        float xs[FLORA_BATCH];
        #pragma unroll
        for (int u = 0; u < FLORA_BATCH; u++) {
            int c = c0 + u * blockDim.x;
            if (c < end) xs[u] = row[c];
        }
        for (int j = 0; j < r; j++) {
            float v[FLORA_BATCH];
            #pragma unroll
            for (int u = 0; u < FLORA_BATCH; u++) {
                int c = c0 + u * blockDim.x;
                if (c < end) v[u] = __fmul_rn(xs[u], ld(a, (long long) j * in + c, type));
            }
            long long at = (long long) (first + j * n + i) * in;
            #pragma unroll
            for (int u = 0; u < FLORA_BATCH; u++) {
                int c = c0 + u * blockDim.x;
                if (c >= end) continue;
                if (half) half[at + c] = bf16 ? f32_to_bf16(v[u]) : f32_to_f16(v[u]);
                else stacked[at + c] = v[u];
            }
        }
    }
}

// fLoRA demodulation, the inverse layout: out[row_m] = (1 / r_g) Σ_j products[base_g + j n_g + i] ∘ B_g^T[j]
// (+ bias), each product rounded before it is added, in j order: the CPU's arithmetic bit for bit.
__global__ void flora_demodulate(const float* products, const int* rowOf, const int* groupOf, const int* indexOf, const int* base,
                                 const int* count, const long long* btPtr, const int* btType, const int* rank, const void* bias,
                                 int biasType, float* out, int outs, int vectors) {
    int m = blockIdx.x, g = groupOf[m], i = indexOf[m], n = count[g], r = rank[g], type = btType[g], first = base[g];
    const void* bt = (const void*) btPtr[g];
    float scale = 1.f / r;
    float* o = out + (long long) rowOf[m] * outs;
    int end = min(outs, (blockIdx.y + 1) * FLORA_COLUMNS);
    if (vectors && rows_of_vectors(products, 0, outs) && rows_of_vectors(out, 0, outs) && rows_of_vectors(bt, type, outs)
        && (!bias || aligned_to(bias, biasType == 0 ? 16 : 8))) {
        // Four columns a thread, each load and store one access; the arithmetic below element for element.
        for (int c = blockIdx.y * FLORA_COLUMNS + 4 * threadIdx.x; c < end; c += 4 * blockDim.x) {
            float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
            for (int j = 0; j < r; j++) {
                float4 p = *(const float4*) (products + (long long) (first + j * n + i) * outs + c);
                float4 b = ld4(bt, (long long) j * outs + c, type);
                s = make_float4(__fadd_rn(s.x, __fmul_rn(p.x, b.x)), __fadd_rn(s.y, __fmul_rn(p.y, b.y)), __fadd_rn(s.z, __fmul_rn(p.z, b.z)),
                                __fadd_rn(s.w, __fmul_rn(p.w, b.w)));
            }
            float4 v = make_float4(__fmul_rn(scale, s.x), __fmul_rn(scale, s.y), __fmul_rn(scale, s.z), __fmul_rn(scale, s.w));
            if (bias) {
                float4 bb = ld4(bias, c, biasType);
                v = make_float4(__fadd_rn(v.x, bb.x), __fadd_rn(v.y, bb.y), __fadd_rn(v.z, bb.z), __fadd_rn(v.w, bb.w));
            }
            *(float4*) (o + c) = v;
        }
        return;
    }
    for (int c0 = blockIdx.y * FLORA_COLUMNS + threadIdx.x; c0 < end; c0 += FLORA_BATCH * blockDim.x) {
        float v[FLORA_BATCH]; // as flora_modulate: every load before the stores
        #pragma unroll
        for (int u = 0; u < FLORA_BATCH; u++) {
            int c = c0 + u * blockDim.x;
            if (c >= end) continue;
            float s = 0.f;
            for (int j = 0; j < r; j++) {
                s = __fadd_rn(s, __fmul_rn(products[(long long) (first + j * n + i) * outs + c], ld(bt, (long long) j * outs + c, type)));
            }
            v[u] = __fmul_rn(scale, s);
            if (bias) v[u] = __fadd_rn(v[u], ld(bias, c, biasType));
        }
        #pragma unroll
        for (int u = 0; u < FLORA_BATCH; u++) {
            int c = c0 + u * blockDim.x;
            if (c < end) o[c] = v[u];
        }
    }
}

// fLoRA's demodulation as cuBLASLt's per-output alpha (CudaFloraRuns): vector k = Bᵀ row btRow[k] (of
// type btType[k]) times factor[k] (1 / r), in float32.
__global__ void flora_scales(const long long* btRow, const int* btType, const float* factor, float* out, int outs) {
    int k = blockIdx.x, type = btType[k];
    const void* b = (const void*) btRow[k];
    float f = factor[k];
    for (int c = threadIdx.x; c < outs; c += blockDim.x) out[(long long) k * outs + c] = __fmul_rn(ld(b, c, type), f);
}

// LoRA shrink and expand sum in float64: the adapter's scale (rsLoRA's alpha / sqrt(r), say) can
// magnify rounding.
// LORA_WIDE_LOADS (1 by default since session 25: with the kernels launched overlapped, the PEFT workload on an
// H100 +0.5% decode and +0.4% end to end, both rounds; in session 23, before the overlap, it tied;
// -Dflora.cuda.defines=LORA_WIDE_LOADS=0 turns it off): float32 factors (PEFT saves LoRA in float32, and so do
// Flora's random adapters) read 16 bytes a load, as 16-bit ones are, rather than a float32 A 4 bytes a lane
// and a B row rank by rank: the shrink then takes 8 columns a lane a load as for 16-bit A (another order of
// its float64 sums), and lora_expand reads B's rows 4 float32 ranks (or 8 16-bit ones) a load, the same
// products in the same order, so the same bits.
#ifndef LORA_WIDE_LOADS // a tunable: -Dflora.cuda.defines=LORA_WIDE_LOADS=0 (CudaBackend, KernelModule.TUNABLES)
#define LORA_WIDE_LOADS 1
#endif
// LoRA shrink, every adapted token of every adapter at once, split over the input: block (k, s)
// takes token k's input columns [s·span, (s+1)·span), and its warp w the ranks j ≡ w (mod warps):
// partial[k, s, j] = Σ over the span of A_g[j, c] x[row_k, c] (g = group of token k), a warp-sum of
// float64 products. A decode step's few tokens still make thousands of warps, each with one or two
// loads in flight per lane, so the shrink is as short as memory's latency (one block per token and
// rank, each walking the whole row, was latency-bound). Pointers and types per group.
__global__ void lora_shrink(const float* x, const int* rowOf, const int* groupOf, const long long* aPtr, const int* aType,
                            const int* rank, double* partial, int maxRank, int in, int span) {
    let_next_start();
    int k = blockIdx.x, s = blockIdx.y, g = groupOf[k], r = rank[g], type = aType[g];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const void* a = (const void*) aPtr[g];
    int from = s * span, to = min(in, from + span);
    // Launched overlapped (CudaBackend's loraOverlap): the block's slice of A before grid_wait(), x after.
    int bytes = type == 0 ? 4 : 2;
    for (int j = warp; j < r; j += warps)
        prefetch_l2((const char*) a + ((long long) j * in + from) * bytes, (long long) (to - from) * bytes, lane, 32);
    grid_wait();
    const float* row = x + (long long) rowOf[k] * in;
    // 8 columns per load where rows are 8-aligned (16-bit A: one 16-byte load; x: two).
    bool vec = (in & 7) == 0 && type != 0;
#if LORA_WIDE_LOADS
    bool vec32 = (in & 7) == 0 && type == 0 && aligned_to(a, 16) && aligned_to(row, 16); // float32 A: two 16-byte loads
#endif
    for (int j = warp; j < r; j += warps) {
        double sum = 0.0;
        const u16* aj = (const u16*) a + (long long) j * in;
#if LORA_WIDE_LOADS
        if (vec32) {
            const float* af = (const float*) a + (long long) j * in;
            for (int c = from + 8 * lane; c < to; c += 256) {
                float4 a0 = *(const float4*) (af + c), a1 = *(const float4*) (af + c + 4);
                float4 x0 = *(const float4*) (row + c), x1 = *(const float4*) (row + c + 4);
                float as[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
                float xs[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                #pragma unroll
                for (int e = 0; e < 8; e++) sum += (double) as[e] * xs[e];
            }
        } else
#endif
        if (vec) {
            for (int c = from + 8 * lane; c < to; c += 256) {
                uint4 w = *(const uint4*) (aj + c);
                float4 x0 = *(const float4*) (row + c), x1 = *(const float4*) (row + c + 4);
                unsigned int h[4] = {w.x, w.y, w.z, w.w};
                float xs[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                #pragma unroll
                for (int e = 0; e < 8; e++) {
                    u16 bits = (u16) (e & 1 ? h[e >> 1] >> 16 : h[e >> 1] & 0xffffu);
                    sum += (double) (type == 1 ? bf16_to_f32(bits) : f16_to_f32(bits)) * xs[e];
                }
            }
        } else {
            for (int c = from + lane; c < to; c += 32) sum += (double) ld(a, (long long) j * in + c, type) * row[c];
        }
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (lane == 0) partial[((long long) k * gridDim.y + s) * maxRank + j] = sum;
    }
}

// LoRA for steps whose adapters each hold many tokens (prompts), SGMV-like: a tile is up to LT_TOKENS
// consecutive packed tokens of one group (CudaBackend lays a group's tokens out together), so A and B
// are read once per tile rather than once per token, as the narrow kernels above must. Float64 sums as
// there (their order differs, so the bits may too); the partials keep the narrow layout, spans of
// LT_SPAN input columns, so either expand reads either shrink's.
#define LT_TOKENS 32  // tokens per tile
#define LT_RANKS 64   // the largest rank the tiled kernels take
#define LT_COLS 32    // input columns (shrink) or output columns (expand) staged per round
#define LT_SPAN 1024  // input columns per shrink block: partial's spans
// Shrink, block (b, s): tile b's tokens over input span s, all their ranks: partial[k, s, j] =
// Σ over the span of A_g[j, c] x[row_k, c]. Thread: token tid % 32, ranks tid / 32 + 8i.
__global__ void __launch_bounds__(256) lora_shrink_tiled(const float* x, const int* rowOf, const int* groupOf, const int* tileFirst,
                                                         const int* tileCount, const long long* aPtr, const int* aType, const int* rank,
                                                         double* partial, int maxRank, int in) {
    __shared__ double xs[LT_TOKENS][LT_COLS + 1];
    __shared__ double as[LT_RANKS][LT_COLS + 1];
    int first = tileFirst[blockIdx.x], count = tileCount[blockIdx.x], g = groupOf[first], r = rank[g], type = aType[g];
    const void* a = (const void*) aPtr[g];
    int t = threadIdx.x & 31, jb = threadIdx.x >> 5;
    int from = blockIdx.y * LT_SPAN, to = min(in, from + LT_SPAN);
    double acc[LT_RANKS / 8];
    #pragma unroll
    for (int i = 0; i < LT_RANKS / 8; i++) acc[i] = 0.0;
    for (int c0 = from; c0 < to; c0 += LT_COLS) {
        int c = c0 + t;
        for (int k = jb; k < LT_TOKENS; k += 8)
            xs[k][t] = k < count && c < to ? (double) x[(long long) rowOf[first + k] * in + c] : 0.0;
        for (int j = jb; j < r; j += 8) as[j][t] = c < to ? (double) ld(a, (long long) j * in + c, type) : 0.0;
        __syncthreads();
        #pragma unroll 4
        for (int cc = 0; cc < LT_COLS; cc++) {
            double xv = xs[t][cc];
            #pragma unroll
            for (int i = 0; i < LT_RANKS / 8; i++)
                if (jb + 8 * i < r) acc[i] += as[jb + 8 * i][cc] * xv;
        }
        __syncthreads();
    }
    if (t < count) {
        double* p = partial + ((long long) (first + t) * gridDim.y + blockIdx.y) * maxRank;
        #pragma unroll
        for (int i = 0; i < LT_RANKS / 8; i++)
            if (jb + 8 * i < r) p[jb + 8 * i] = acc[i];
    }
}

// Expand, block (b, y): tile b's tokens, output columns [y·LT_COLS, ...) and every gridDim.y-th
// column tile after: out_g[row_k, c] += scale_g · (Σ_j B_g[c, j] v[k, j] + bias_g[c]) with v[k, j]
// the partials summed in span order, staged once for all the block's columns. Thread: column
// tid % 32, tokens tid / 32 + 8i.
__global__ void __launch_bounds__(256) lora_expand_tiled(const double* partial, const int* rowOf, const int* groupOf, const int* tileFirst,
                                                         const int* tileCount, const long long* bPtr, const int* bType, const long long* biasPtr,
                                                         const int* biasType, const int* rank, const float* scale, const long long* outPtr,
                                                         const int* outCols, int maxRank, int spans) {
    __shared__ double vs[LT_TOKENS][LT_RANKS + 1];
    __shared__ double bs[LT_COLS][LT_RANKS + 1];
    int first = tileFirst[blockIdx.x], count = tileCount[blockIdx.x], g = groupOf[first], r = rank[g], type = bType[g];
    int outs = outCols[g];
    const void* b = (const void*) bPtr[g];
    const void* bias = (const void*) biasPtr[g];
    int biasKind = bias ? biasType[g] : 0;
    float sc = scale[g];
    float* out = (float*) outPtr[g];
    int c = threadIdx.x & 31, kb = threadIdx.x >> 5;
    for (int idx = threadIdx.x; idx < LT_TOKENS * r; idx += blockDim.x) {
        int k = idx / r, j = idx % r;
        double s = 0.0;
        if (k < count)
            for (int p = 0; p < spans; p++) s += partial[((long long) (first + k) * spans + p) * maxRank + j];
        vs[k][j] = s;
    }
    for (int c0 = blockIdx.y * LT_COLS; c0 < outs; c0 += gridDim.y * LT_COLS) {
        __syncthreads(); // vs written (first round), bs free (later ones)
        for (int idx = threadIdx.x; idx < LT_COLS * r; idx += blockDim.x) {
            int cc = idx / r, j = idx % r;
            bs[cc][j] = c0 + cc < outs ? (double) ld(b, (long long) (c0 + cc) * r + j, type) : 0.0;
        }
        __syncthreads();
        double d[LT_TOKENS / 8];
        #pragma unroll
        for (int i = 0; i < LT_TOKENS / 8; i++) d[i] = 0.0;
        for (int j = 0; j < r; j++) {
            double bv = bs[c][j];
            #pragma unroll
            for (int i = 0; i < LT_TOKENS / 8; i++) d[i] += bv * vs[kb + 8 * i][j];
        }
        int col = c0 + c;
        if (col < outs) {
            float bc = bias ? ld(bias, col, biasKind) : 0.f;
            float* o[LT_TOKENS / 8];
            float old[LT_TOKENS / 8];
            #pragma unroll
            for (int i = 0; i < LT_TOKENS / 8; i++) { // every load before the stores, as lora_expand
                int k = kb + 8 * i;
                o[i] = k < count ? out + (long long) rowOf[first + k] * outs + col : nullptr;
                old[i] = o[i] ? *o[i] : 0.f;
            }
            #pragma unroll
            for (int i = 0; i < LT_TOKENS / 8; i++)
                if (o[i]) *o[i] = old[i] + sc * (float) (bias ? d[i] + bc : d[i]);
        }
    }
}

// LoRA expand: out_g[row_k, c] += scale_g · (Σ_j B_g[c, j] v[k, j] + bias_g[c]), v[k, j] = Σ_s
// partial[k, s, j] (the shrink's spans, summed in order); block (k, y) takes columns
// [y·columns, (y+1)·columns) of its group's output (outPtr_g, outCols_g columns). Dynamic shared
// memory: maxRank doubles, and with staged maxRank · spans more: every partial is loaded at once
// (one memory round trip, not one per span), then each rank's added in span order as without.
extern "C++" {
// lora_expand's columns [from, end) of one token's output row o: o[c] += sc · (Σ_j B[c, j] v[j] + bias[c]),
// every column's loads before the stores (as flora_modulate). B's row c is read rank by rank, or with
// ROWS16 (16-bit B, r a multiple of 8, 16-byte aligned) 8 ranks a load: the same products added in the
// same order, so the same bits.
template <bool ROWS16, bool ROWS32 = false>
__device__ __forceinline__ void lora_expand_columns(const double* v, int r, const void* b, int type, const void* bias, int biasType, float sc,
                                                    float* o, int from, int end) {
    for (int c0 = from + threadIdx.x; c0 < end; c0 += FLORA_BATCH * blockDim.x) {
        float old[FLORA_BATCH], add[FLORA_BATCH];
        #pragma unroll
        for (int u = 0; u < FLORA_BATCH; u++) {
            int c = c0 + u * blockDim.x;
            if (c >= end) continue;
            double d = 0.0;
            if (ROWS16) {
                const uint4* row = (const uint4*) ((const u16*) b + (long long) c * r);
                for (int j8 = 0; j8 < r / 8; j8++) {
                    float bf[8];
                    unpack8(row[j8], type == 1, bf);
                    #pragma unroll
                    for (int e = 0; e < 8; e++) d += (double) bf[e] * v[j8 * 8 + e];
                }
            } else if (ROWS32) { // float32 B, r a multiple of 4, 16-byte aligned: 4 ranks a load
                const float4* row = (const float4*) ((const float*) b + (long long) c * r);
                for (int j4 = 0; j4 < r / 4; j4++) {
                    float4 w = row[j4];
                    d += (double) w.x * v[j4 * 4];
                    d += (double) w.y * v[j4 * 4 + 1];
                    d += (double) w.z * v[j4 * 4 + 2];
                    d += (double) w.w * v[j4 * 4 + 3];
                }
            } else {
                #pragma unroll 8
                for (int j = 0; j < r; j++) d += (double) ld(b, (long long) c * r + j, type) * v[j];
            }
            if (bias) d += ld(bias, c, biasType);
            add[u] = sc * (float) d;
            old[u] = o[c];
        }
        #pragma unroll
        for (int u = 0; u < FLORA_BATCH; u++) {
            int c = c0 + u * blockDim.x;
            if (c < end) o[c] = old[u] + add[u];
        }
    }
}
}  // extern "C++"

__global__ void lora_expand(const double* partial, const int* rowOf, const int* groupOf, const long long* bPtr, const int* bType,
                            const long long* biasPtr, const int* biasType, const int* rank, const float* scale, const long long* outPtr,
                            const int* outCols, int maxRank, int spans, int columns, int staged) {
#ifdef FLORA_HOST_EMULATION
    double* v = (double*) emu::dynamicShared.data(); // the launch's extern shared memory
#else
    extern __shared__ double v[];
#endif
    let_next_start();
    int k = blockIdx.x, g = groupOf[k], r = rank[g], type = bType[g], outs = outCols[g];
    if (blockIdx.y * columns >= outs) return;
    const void* b = (const void*) bPtr[g];
    int from = blockIdx.y * columns, end = min(outs, from + columns);
    // Launched overlapped (CudaBackend's loraOverlap): B's rows of the block's columns before grid_wait(),
    // while the shrink drains; its partials and the outputs after.
    prefetch_l2((const char*) b + (long long) from * r * (type == 0 ? 4 : 2), (long long) (end - from) * r * (type == 0 ? 4 : 2),
                threadIdx.x, blockDim.x);
    grid_wait();
    float* out = (float*) outPtr[g];
    if (staged) {
        double* parts = v + maxRank;
        for (int idx = threadIdx.x; idx < spans * r; idx += blockDim.x) {
            int p = idx / r, j = idx % r;
            parts[j * spans + p] = partial[((long long) k * spans + p) * maxRank + j];
        }
        __syncthreads();
        for (int j = threadIdx.x; j < r; j += blockDim.x) {
            double s = 0.0;
            for (int p = 0; p < spans; p++) s += parts[j * spans + p];
            v[j] = s;
        }
    } else {
        for (int j = threadIdx.x; j < r; j += blockDim.x) {
            double s = 0.0;
            for (int p = 0; p < spans; p++) s += partial[((long long) k * spans + p) * maxRank + j];
            v[j] = s;
        }
    }
    __syncthreads();
    const void* bias = (const void*) biasPtr[g];
    float* o = out + (long long) rowOf[k] * outs;
    float sc = scale[g];
    int bType2 = bias ? biasType[g] : 0;
#if LORA_WIDE_LOADS
    if (type != 0 && (r & 7) == 0 && aligned_to(b, 16)) {
        lora_expand_columns<true>(v, r, b, type, bias, bType2, sc, o, from, end);
        return;
    }
    if (type == 0 && (r & 3) == 0 && aligned_to(b, 16)) {
        lora_expand_columns<false, true>(v, r, b, type, bias, bType2, sc, o, from, end);
        return;
    }
#endif
    lora_expand_columns<false>(v, r, b, type, bias, bType2, sc, o, from, end);
}

// LoRA for steps of few tokens (decode), -Dflora.cuda.loraFused=N (session 17, off until measured): block
// (k, y) takes adapted token k (of one group): its shrink, then its expand over output columns
// [y·columns, (y+1)·columns) (N blocks a token; each redoes the shrink, A and x then mostly from L2,
// for more blocks in flight where a step has few tokens), so a call is one launch with
// no partial sums through memory and every block streams its adapter's A and B with many loads in
// flight (a decode step's lora_shrink and lora_expand, four launches a layer, took about 36 µs a layer
// at 64 sequences of rank 8 on the H200, session 15, where the factors' 34 MB allow 8). The shrink holds
// LORA_FUSED_PASS ranks' float64 sums a thread, adds a warp's lanes by xor shuffles and the warps in
// order (deterministic; another order than lora_shrink's spans, so the last bits may differ); the
// expand is lora_expand's own (lora_expand_columns) over the block's columns, B's rows 16 bytes a load
// where they allow it. x must not overlap the outputs: one block may write its columns while another
// still reads x (the two kernels finished every shrink first).
#define LORA_FUSED_RANKS 64  // CudaBackend.LORA_FUSED_MAX_RANK
#define LORA_FUSED_PASS 8
#define LORA_FUSED_THREADS 256
__global__ void __launch_bounds__(LORA_FUSED_THREADS) lora_fused(const float* x, const int* rowOf, const int* groupOf, const int* rank,
                                                                 const long long* aPtr, const int* aType, const long long* bPtr,
                                                                 const int* bType, const long long* biasPtr, const int* biasType,
                                                                 const float* scale, const long long* outPtr, const int* outCols, int in,
                                                                 int columns) {
    __shared__ double v[LORA_FUSED_RANKS];
    __shared__ double warpSums[LORA_FUSED_THREADS / 32][LORA_FUSED_PASS];
    int k = blockIdx.x, g = groupOf[k], r = rank[g], type = aType[g], outs = outCols[g];
    int from = blockIdx.y * columns, end = min(outs, from + columns); // this block's output columns
    if (from >= outs) return; // the whole block: a narrower output than the call's widest
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const void* a = (const void*) aPtr[g];
    const float* row = x + (long long) rowOf[k] * in;
    bool vec = (in & 7) == 0 && type != 0; // as lora_shrink: 8 columns a load of 16-bit A and two of x
    // The block's rows of B into L2 while the shrink runs, so that the expand's loads wait for L2, not for memory.
#ifndef FLORA_HOST_EMULATION
    {
        int bytes = bType[g] == 0 ? 4 : 2;
        const char* bFrom = (const char*) bPtr[g] + (long long) from * r * bytes;
        long long bBytes = (long long) (end - from) * r * bytes;
        for (long long off = (long long) threadIdx.x * 128; off < bBytes; off += 128LL * LORA_FUSED_THREADS)
            asm volatile("prefetch.global.L2 [%0];" :: "l"(bFrom + off));
    }
#endif
    for (int j0 = 0; j0 < r; j0 += LORA_FUSED_PASS) {
        int nj = min(LORA_FUSED_PASS, r - j0);
        double acc[LORA_FUSED_PASS];
        #pragma unroll
        for (int jj = 0; jj < LORA_FUSED_PASS; jj++) acc[jj] = 0.0;
        if (vec) {
            for (int c = 8 * threadIdx.x; c < in; c += 8 * LORA_FUSED_THREADS) {
                float4 x0 = *(const float4*) (row + c), x1 = *(const float4*) (row + c + 4);
                float xs[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                uint4 w[LORA_FUSED_PASS];
                #pragma unroll
                for (int jj = 0; jj < LORA_FUSED_PASS; jj++) // every rank's load before any is used
                    if (jj < nj) w[jj] = *(const uint4*) ((const u16*) a + (long long) (j0 + jj) * in + c);
                #pragma unroll
                for (int jj = 0; jj < LORA_FUSED_PASS; jj++) {
                    if (jj >= nj) continue;
                    float af[8];
                    unpack8(w[jj], type == 1, af);
                    #pragma unroll
                    for (int e = 0; e < 8; e++) acc[jj] += (double) af[e] * xs[e];
                }
            }
        } else {
            for (int c = threadIdx.x; c < in; c += LORA_FUSED_THREADS) {
                float xv = row[c];
                #pragma unroll
                for (int jj = 0; jj < LORA_FUSED_PASS; jj++)
                    if (jj < nj) acc[jj] += (double) ld(a, (long long) (j0 + jj) * in + c, type) * xv;
            }
        }
        #pragma unroll
        for (int jj = 0; jj < LORA_FUSED_PASS; jj++) {
            if (jj >= nj) break; // nj is the block's: every lane stops together
            double sum = acc[jj];
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            if (lane == 0) warpSums[warp][jj] = sum;
        }
        __syncthreads();
        if (threadIdx.x < nj) {
            double sum = 0.0;
            #pragma unroll
            for (int w = 0; w < LORA_FUSED_THREADS / 32; w++) sum += warpSums[w][threadIdx.x];
            v[j0 + threadIdx.x] = sum;
        }
        __syncthreads();
    }
    const void* b = (const void*) bPtr[g];
    const void* bias = (const void*) biasPtr[g];
    int bt = bType[g];
    float* o = (float*) outPtr[g] + (long long) rowOf[k] * outs;
    if (bt != 0 && (r & 7) == 0 && aligned_to(b, 16))
        lora_expand_columns<true>(v, r, b, bt, bias, bias ? biasType[g] : 0, scale[g], o, from, end);
    else
        lora_expand_columns<false>(v, r, b, bt, bias, bias ? biasType[g] : 0, scale[g], o, from, end);
}

// LoRA's stacked runs (CudaLoraStack, LoraStack): every run row against every stacked adapter in one
// dense product each way. These lay the factors side by side and keep each row's own columns.
// Row k of the stacked A is the row src[k] points at (a row of its group's A): block k copies it.
__global__ void lora_stack_rows(const long long* src, u16* dst, int cols) {
    const u16* from = (const u16*) src[blockIdx.x];
    u16* to = dst + (long long) blockIdx.x * cols;
    if ((cols & 7) == 0 && (src[blockIdx.x] & 15) == 0 && (((unsigned long long) dst) & 15) == 0) {
        for (int c = threadIdx.x * 8; c < cols; c += blockDim.x * 8) *(uint4*) (to + c) = *(const uint4*) (from + c);
    } else {
        for (int c = threadIdx.x; c < cols; c += blockDim.x) to[c] = from[c];
    }
}

// A class's stacked B (rows × columns): column k is the column src[k] starts, of a group's B whose
// rows hold stride[k] values, so dst[j, k] = src[k][j · stride[k]]. Block j: row j.
__global__ void lora_stack_columns(const long long* src, const int* stride, u16* dst, int rows, int columns) {
    long long j = blockIdx.x;
    for (int k = threadIdx.x; k < columns; k += blockDim.x) dst[j * columns + k] = ((const u16*) src[k])[j * stride[k]];
}

// v's row i (x's row rowOf[i]) over the stacked columns, into out in B's 16-bit type: kept (times the
// column's scale, then rounded) where the column belongs to the row's own group in the column's class,
// else 0, so the expand adds nothing from other adapters. A row's group in a class (an output): the
// class's runs (classRuns[c] .. classRuns[c + 1] - 1, sorted by first row, disjoint) searched for the
// one holding it (LoraStack.Pass.groupAt).
#define LORA_STACK_CLASSES 16  // LoraStack.MAX_CLASSES
__global__ void lora_stack_mask(const float* v, u16* out, int columns, const int* rowOf, const int* columnClass, const int* columnGroup,
                                const float* columnScale, const int* classRuns, const int* runFirst, const int* runEnd, const int* runGroup, int classes, int bf16) {
    __shared__ int mine[LORA_STACK_CLASSES];
    long long i = blockIdx.x;
    int row = rowOf[i];
    for (int c = threadIdx.x; c < classes; c += blockDim.x) {
        int lo = classRuns[c], hi = classRuns[c + 1] - 1, found = -1;
        while (lo <= hi) { // the last run that starts at or before the row
            int mid = (lo + hi) >> 1;
            if (runFirst[mid] <= row) {
                found = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        mine[c] = found >= 0 && row < runEnd[found] ? runGroup[found] : -1;
    }
    __syncthreads();
    for (int k = threadIdx.x; k < columns; k += blockDim.x) {
        float x = v[i * columns + k] * columnScale[k];
        out[i * columns + k] = mine[columnClass[k]] == columnGroup[k] ? (bf16 ? f32_to_bf16(x) : f32_to_f16(x)) : (u16) 0;
    }
}

// The prompt runs' chunks of float32 LoRA, their shrink by a kernel in place of cuBLAS's batched one
// (-Dflora.cuda.loraChunkKernel; CudaLoraRuns.byChunk): v_e = x[chunk] A_e^T for the entries e of a
// chunk group s, the entries that share the chunk's rows (a fused call's q, k and v of one adapter), so
// x's rows are read once for all of them, not once an entry. cuBLAS's batched shrink took 597 µs a call
// on an H100 (session 26) for 3.2 GFLOP, its 8-wide outputs filling little of each tile.
// Block (s, y): rows [32·(y mod rowTiles), +32) of group s's chunk and the block's octets of the entries'
// ranks laid end to end (j = e·rank + i), y / rowTiles giving which; warp w one octet, lane one row.
// Stages of 32 columns: x's tile and the block's rows of A through shared memory (the next stage's
// loads in registers while this one's products run), each lane 8 float32 FMA chains of a stage's 32
// products, each stage's sums then added in float64, in column order: the order depends on the row
// alone, never on the step's other rows.
#define LC_ROWS 32        // rows a block (a lane each)
#define LC_COLS 32        // columns a stage
#define LC_MAX_WARPS 16   // octets of ranks a block (CudaLoraRuns.CHUNK_KERNEL_WARPS)
#define LC_MIN_WARPS 4    // warps a block at least (CudaLoraRuns.CHUNK_KERNEL_MIN_WARPS): those past the ranks only load
#define LC_X_LOADS (LC_ROWS * LC_COLS / (32 * LC_MIN_WARPS))  // x's loads a thread a stage
__global__ void __launch_bounds__(LC_MAX_WARPS * 32) lora_shrink_chunks(const float* x, int in, const int* chunkFirst, const int* chunkRows,
                                                                       const int* entryStart, const int* entryCount, const long long* aPtr,
                                                                       const long long* vPtr, int rank, int rowTiles) {
    __shared__ float xs[LC_ROWS][LC_COLS + 1];
    __shared__ float as[LC_MAX_WARPS * 8][LC_COLS + 1];
    int s = blockIdx.x, warps = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int r0 = (blockIdx.y % rowTiles) * LC_ROWS, jBase = (blockIdx.y / rowTiles) * warps * 8;
    int rows = min(LC_ROWS, chunkRows[s] - r0), first = entryStart[s], total = entryCount[s] * rank;
    if (rows <= 0 || jBase >= total) return; // the whole block: no barrier waits on it
    int ranks = min(warps * 8, total - jBase);
    const float* x0 = x + ((long long) chunkFirst[s] + r0) * in;
    float px[LC_X_LOADS], pa[8];
    // Stage c0's loads into registers: x's tile row-major (a warp reads a row's 32 columns), A's rows likewise.
    auto load = [&](int c0) {
        #pragma unroll
        for (int u = 0; u < LC_X_LOADS; u++) {
            int i = threadIdx.x + u * blockDim.x, rr = i / LC_COLS, c = c0 + i % LC_COLS;
            px[u] = i < LC_ROWS * LC_COLS && rr < rows && c < in ? x0[(long long) rr * in + c] : 0.f;
        }
        #pragma unroll
        for (int u = 0; u < 8; u++) {
            int i = threadIdx.x + u * blockDim.x, jj = i / LC_COLS, c = c0 + i % LC_COLS, j = jBase + jj;
            pa[u] = jj < ranks && c < in ? ((const float*) aPtr[first + j / rank])[(long long) (j % rank) * in + c] : 0.f;
        }
    };
    double sum[8];
    #pragma unroll
    for (int e = 0; e < 8; e++) sum[e] = 0.0;
    load(0);
    for (int c0 = 0; c0 < in; c0 += LC_COLS) {
        #pragma unroll
        for (int u = 0; u < LC_X_LOADS; u++) {
            int i = threadIdx.x + u * blockDim.x;
            if (i < LC_ROWS * LC_COLS) xs[i / LC_COLS][i % LC_COLS] = px[u];
        }
        #pragma unroll
        for (int u = 0; u < 8; u++) {
            int i = threadIdx.x + u * blockDim.x;
            as[i / LC_COLS][i % LC_COLS] = pa[u];
        }
        __syncthreads();
        if (c0 + LC_COLS < in) load(c0 + LC_COLS);
        if (warp * 8 < ranks) { // (warp-uniform) a block has at least LC_MIN_WARPS warps, octets of ranks or not
            float acc[8];
            #pragma unroll
            for (int e = 0; e < 8; e++) acc[e] = 0.f;
            #pragma unroll 8
            for (int cc = 0; cc < LC_COLS; cc++) {
                float xv = xs[lane][cc];
                #pragma unroll
                for (int e = 0; e < 8; e++) acc[e] = fmaf(xv, as[warp * 8 + e][cc], acc[e]);
            }
            #pragma unroll
            for (int e = 0; e < 8; e++) sum[e] += (double) acc[e];
        }
        __syncthreads();
    }
    if (lane >= rows || warp * 8 >= ranks) return;
    #pragma unroll
    for (int e = 0; e < 8; e++) {
        int j = jBase + warp * 8 + e;
        if (warp * 8 + e < ranks) ((float*) vPtr[first + j / rank])[((long long) r0 + lane) * rank + j % rank] = (float) sum[e];
    }
}

// The chunks' expand of float32 B by a kernel in place of cuBLAS's batched product (-Dflora.cuda.loraChunkExpand;
// CudaLoraRuns.byChunk): out_e[row_e + i, c] += scale_e · Σ_j B_e[c, j] v_e[i, j] for entry e's rows i < rows_e
// (v_e the shrink's [rows, rank] float32 rows), ranks up to 32. Block (e, y): entry e's output columns
// [LE_COLS·y, +LE_COLS), a thread a column with B's row c in registers (lora_expand_chunks8, 16 and 32 take ranks
// up to that), over the entry's rows LE_ROWS_AHEAD at a time (their loads of out in flight together), v's rows
// through shared memory. A column's sum is in float64 in rank order (float32 products exact), then out + scale ·
// sum rounded: an order that depends on the row alone. Its bytes are the outputs read and written (at a 16,384-token step about 360 µs a call
// on an H100 where cuBLAS took 508, session 27).
#define LE_COLS 256       // output columns a block (its threads)
#define LE_MAX_ROWS 128   // rows an entry at most (v's rows in shared memory; CudaLoraRuns.CHUNK_EXPAND_MAX_ROWS)
#define LE_ROWS_AHEAD 8   // rows whose outputs a thread loads before it adds to any
extern "C++" {
// R: the ranks a launch takes at most (8, 16 or 32: B's row in R registers).
template <int R>
__device__ __forceinline__ void lora_expand_chunks_impl(const long long* vPtr, const long long* bPtr, const long long* outPtr,
                                                        const int* outCols, const int* entryRows, const float* scale, int rank) {
    __shared__ float vs[LE_MAX_ROWS][R];
    int e = blockIdx.x, outs = outCols[e], rows = entryRows[e], c = blockIdx.y * LE_COLS + threadIdx.x;
    if (blockIdx.y * LE_COLS >= outs) return; // the whole block
    const float* v = (const float*) vPtr[e];
    for (int i = threadIdx.x; i < rows * rank; i += blockDim.x) vs[i / rank][i % rank] = v[i];
    float b[R];
    const float* bRow = (const float*) bPtr[e] + (long long) c * rank;
    #pragma unroll
    for (int j = 0; j < R; j++) b[j] = j < rank && c < outs ? bRow[j] : 0.f;
    __syncthreads();
    if (c >= outs) return;
    float sc = scale[e];
    float* out = (float*) outPtr[e] + c;
    for (int i0 = 0; i0 < rows; i0 += LE_ROWS_AHEAD) {
        float old[LE_ROWS_AHEAD];
        #pragma unroll
        for (int u = 0; u < LE_ROWS_AHEAD; u++)
            if (i0 + u < rows) old[u] = out[(long long) (i0 + u) * outs];
        #pragma unroll
        for (int u = 0; u < LE_ROWS_AHEAD; u++) {
            int i = i0 + u;
            if (i >= rows) break;
            double sum = 0.0;
            #pragma unroll
            for (int j = 0; j < R; j++)
                if (j < rank) sum += (double) b[j] * vs[i][j];
            out[(long long) i * outs] = old[u] + sc * (float) sum;
        }
    }
}
}  // extern "C++"
#define LORA_EXPAND_CHUNKS(R) \
__global__ void __launch_bounds__(LE_COLS) lora_expand_chunks##R(const long long* vPtr, const long long* bPtr, const long long* outPtr, \
                                                                 const int* outCols, const int* entryRows, const float* scale, int rank) { \
    lora_expand_chunks_impl<R>(vPtr, bPtr, outPtr, outCols, entryRows, scale, rank); \
}
LORA_EXPAND_CHUNKS(8)
LORA_EXPAND_CHUNKS(16)
LORA_EXPAND_CHUNKS(32)

// Products of 1..64 rows by a 16-bit weight (CudaSkinnyProducts, -Dflora.cuda.skinnyProducts): out[t][o]
// (+)= Σ_k x[t][k] W[o][k], x already rounded to the weight's type. cuBLAS streams the weight at 2.5-3.3
// TB/s at 64 rows (session 6), where the bytes allow about 4.2. Block (f, s): output features
// [128f, 128f + 128) (32 a warp: two of the tensor cores' M tiles, so that each x fragment serves two
// products and x's reads from L2 are half of W's bytes at 64 rows) for every row (8 a tile: N, MT tiles)
// over split s of the input; W's and x's chunks of SK_KC columns copied into shared memory
// SK_STAGES - 1 chunks ahead (cp.async). With one split the block writes out; with more, each writes its partial sums and the
// last split of a feature tile to finish adds them in split order (deterministic), as attention_finish
// joins its splits, leaving the tile's counter at 0.
#define SK_KC 32
#define SK_STAGES 3
#define SK_FEATURES 128 // CudaSkinnyProducts.FEATURES: 4 warps of 32
#define SK_ROW (SK_KC + 8) // padded: a warp's fragment loads fall in 32 different banks
extern "C++" {
template <int MT, bool BF16>
__device__ void skinny_products_impl(const u16* x, const u16* w, float* out, float* part, int* counters, int rows, int in, int outs,
                                     int splitLen, int accumulate) {
    constexpr int TILE_ROWS = SK_FEATURES + 8 * MT;
    __shared__ __align__(16) u16 sk[SK_STAGES][TILE_ROWS][SK_ROW];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const int f0 = blockIdx.x * SK_FEATURES;
    const int split = blockIdx.y, splits = gridDim.y;
    const int k0 = split * splitLen, k1 = min(in, k0 + splitLen);
    const int chunks = (k1 - k0) / SK_KC;
    float acc[2][MT][4];
    #pragma unroll
    for (int mt = 0; mt < 2; mt++)
        #pragma unroll
        for (int nt = 0; nt < MT; nt++) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.f;
    // Stage a chunk: W's rows f0.. (past outs: the last row, never stored) and x's rows (past rows: the last, never stored).
    for (int c = 0; c < SK_STAGES - 1; c++) {
        if (c < chunks) {
            for (int i = threadIdx.x; i < TILE_ROWS * (SK_KC / 8); i += blockDim.x) {
                int r = i / (SK_KC / 8), col = (i % (SK_KC / 8)) * 8, kc = k0 + c * SK_KC + col;
                const u16* src = r < SK_FEATURES ? w + (long long) min(f0 + r, outs - 1) * in + kc : x + (long long) min(r - SK_FEATURES, rows - 1) * in + kc;
                copy_async16(&sk[c][r][col], src);
            }
        }
        copy_async_commit();
    }
    for (int c = 0; c < chunks; c++) {
#ifdef FLORA_HOST_EMULATION
        emu_copy_async_wait(SK_STAGES - 2);
#else
        asm volatile("cp.async.wait_group %0;" ::"n"(SK_STAGES - 2) : "memory"); // chunk c's copies are done
#endif
        __syncthreads(); // ... for every thread, and every warp is done with the stage refilled below
        int next = c + SK_STAGES - 1;
        if (next < chunks) {
            int stage = next % SK_STAGES;
            for (int i = threadIdx.x; i < TILE_ROWS * (SK_KC / 8); i += blockDim.x) {
                int r = i / (SK_KC / 8), col = (i % (SK_KC / 8)) * 8, kc = k0 + next * SK_KC + col;
                const u16* src = r < SK_FEATURES ? w + (long long) min(f0 + r, outs - 1) * in + kc : x + (long long) min(r - SK_FEATURES, rows - 1) * in + kc;
                copy_async16(&sk[stage][r][col], src);
            }
        }
        copy_async_commit();
        const int stage = c % SK_STAGES;
        #pragma unroll
        for (int kk = 0; kk < SK_KC / 16; kk++) {
            unsigned a[2][4];
            #pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                const u16* wr = &sk[stage][warp * 32 + mt * 16 + g][kk * 16 + 2 * tq];
                a[mt][0] = *(const unsigned*) wr;
                a[mt][1] = *(const unsigned*) (wr + 8 * SK_ROW);
                a[mt][2] = *(const unsigned*) (wr + 8);
                a[mt][3] = *(const unsigned*) (wr + 8 * SK_ROW + 8);
            }
            #pragma unroll
            for (int nt = 0; nt < MT; nt++) {
                const u16* xr = &sk[stage][SK_FEATURES + nt * 8 + g][kk * 16 + 2 * tq];
                unsigned b0 = *(const unsigned*) xr, b1 = *(const unsigned*) (xr + 8);
                mma16816<BF16>(acc[0][nt], a[0], b0, b1);
                mma16816<BF16>(acc[1][nt], a[1], b0, b1);
            }
        }
    }
    copy_async_wait();
    // acc[mt][nt]: features f0 + 32·warp + 16·mt + g (0, 1) and + 8 (2, 3); rows 8·nt + 2·tq (0, 2) and + 1 (1, 3).
    #pragma unroll
    for (int mt = 0; mt < 2; mt++) {
        const int fa = f0 + warp * 32 + mt * 16 + g, fb = fa + 8;
        #pragma unroll
        for (int nt = 0; nt < MT; nt++) {
            int ta = nt * 8 + 2 * tq, tb = ta + 1;
            int f[4] = {fa, fa, fb, fb}, t[4] = {ta, tb, ta, tb};
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                if (f[e] >= outs || t[e] >= rows) continue;
                if (splits == 1) {
                    float* o = out + (long long) t[e] * outs + f[e];
                    *o = accumulate ? *o + acc[mt][nt][e] : acc[mt][nt][e];
                } else {
                    part[((long long) split * rows + t[e]) * outs + f[e]] = acc[mt][nt][e];
                }
            }
        }
    }
    if (splits == 1) return;
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int* counter = counters + blockIdx.x;
        last = atomicAdd(counter, 1) == splits - 1;
        if (last) *counter = 0;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int e = threadIdx.x; e < SK_FEATURES * 8 * MT; e += blockDim.x) {
        int f = f0 + e % SK_FEATURES, t = e / SK_FEATURES;
        if (f >= outs || t >= rows) continue;
        float sum = 0.f;
        for (int s = 0; s < splits; s++) sum += __ldcg(part + ((long long) s * rows + t) * outs + f);
        float* o = out + (long long) t * outs + f;
        *o = accumulate ? *o + sum : sum;
    }
}
}  // extern "C++"

#define SKINNY_ARGS const u16* x, const u16* w, float* out, float* part, int* counters, int rows, int in, int outs, int splitLen, int accumulate
#define SKINNY_PASS x, w, out, part, counters, rows, in, outs, splitLen, accumulate
#define SKINNY(MT) \
__global__ void __launch_bounds__(128) skinny_products_bf16_##MT(SKINNY_ARGS) { skinny_products_impl<MT, true>(SKINNY_PASS); } \
__global__ void __launch_bounds__(128) skinny_products_f16_##MT(SKINNY_ARGS) { skinny_products_impl<MT, false>(SKINNY_PASS); }
SKINNY(1) SKINNY(2) SKINNY(3) SKINNY(4) SKINNY(5) SKINNY(6) SKINNY(7) SKINNY(8)

}
