// Flora's CUDA kernels, compiled at run time by NVRTC for the device's architecture (see
// dev.flora.cuda.KernelModule). Activations are float32; weights are read in their checkpoint
// type: 0 = float32, 1 = bfloat16, 2 = float16 (the `type` arguments). Simple, exact versions:
// every reduction runs in float32 in a fixed order for a given shape.

typedef unsigned short u16;

__device__ __forceinline__ float bf16_to_f32(u16 h) { return __uint_as_float(((unsigned int) h) << 16); }

__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
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
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
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
// bandwidth is all that matters. One warp per pair of output rows; each lane streams 16-byte
// pieces of the weight rows past L1 (no_allocate keeps L1 for x); x is rounded to the weight's type
// first, as the cuBLAS path does, and products are summed in float32. TOKENS rows of x, in % 8 == 0.
#define GEMV_ROWS_PER_WARP 2
__device__ __forceinline__ uint4 ld_stream(const void* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
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

template <int TOKENS>
__device__ void gemv(const float* x, const u16* w, const void* bias, int biasType, float* out, int in, int outs, int bf16) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    int row0 = warp * GEMV_ROWS_PER_WARP;
    if (row0 >= outs) return;
    float acc[GEMV_ROWS_PER_WARP][TOKENS];
    #pragma unroll
    for (int r = 0; r < GEMV_ROWS_PER_WARP; r++)
        #pragma unroll
        for (int t = 0; t < TOKENS; t++) acc[r][t] = 0.f;
    for (int i = lane * 8; i < in; i += 256) {
        uint4 raw[GEMV_ROWS_PER_WARP];
        #pragma unroll
        for (int r = 0; r < GEMV_ROWS_PER_WARP; r++) {
            int row = min(row0 + r, outs - 1);
            raw[r] = ld_stream(w + (long long) row * in + i);
        }
        #pragma unroll
        for (int t = 0; t < TOKENS; t++) {
            float4 a = *(const float4*) (x + (long long) t * in + i);
            float4 b = *(const float4*) (x + (long long) t * in + i + 4);
            float xs[8] = {rounded(a.x, bf16), rounded(a.y, bf16), rounded(a.z, bf16), rounded(a.w, bf16),
                           rounded(b.x, bf16), rounded(b.y, bf16), rounded(b.z, bf16), rounded(b.w, bf16)};
            #pragma unroll
            for (int r = 0; r < GEMV_ROWS_PER_WARP; r++) {
                float f[8];
                unpack8(raw[r], bf16, f);
                #pragma unroll
                for (int k = 0; k < 8; k++) acc[r][t] = fmaf(xs[k], f[k], acc[r][t]);
            }
        }
    }
    #pragma unroll
    for (int r = 0; r < GEMV_ROWS_PER_WARP; r++) {
        #pragma unroll
        for (int t = 0; t < TOKENS; t++) {
            float v = acc[r][t];
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            int row = row0 + r;
            if (lane == 0 && row < outs) out[(long long) t * outs + row] = bias ? v + ld(bias, row, biasType) : v;
        }
    }
}

extern "C" {
__global__ void gemv1(const float* x, const u16* w, const void* bias, int bt, float* out, int in, int outs, int bf16) { gemv<1>(x, w, bias, bt, out, in, outs, bf16); }
__global__ void gemv2(const float* x, const u16* w, const void* bias, int bt, float* out, int in, int outs, int bf16) { gemv<2>(x, w, bias, bt, out, in, outs, bf16); }
__global__ void gemv3(const float* x, const u16* w, const void* bias, int bt, float* out, int in, int outs, int bf16) { gemv<3>(x, w, bias, bt, out, in, outs, bf16); }
__global__ void gemv4(const float* x, const u16* w, const void* bias, int bt, float* out, int in, int outs, int bf16) { gemv<4>(x, w, bias, bt, out, in, outs, bf16); }
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

// Sums in float64, as the CPU backend does: the norms are where float32 rounding would show.
__global__ void rms_norm(const float* x, const void* weight, int type, float eps, float* out, int cols) {
    __shared__ double scratch[32];
    const float* row = x + (long long) blockIdx.x * cols;
    double s = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += (double) row[c] * row[c];
    float variance = (float) (block_sum(s, scratch) / cols);
    float inv = (float) (1.0 / sqrt((double) (variance + eps)));
    for (int c = threadIdx.x; c < cols; c += blockDim.x) out[(long long) blockIdx.x * cols + c] = row[c] * inv * ld(weight, c, type);
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

// Rotate-half RoPE in place; the angle in float32 as transformers computes it.
__global__ void rotary(float* x, int width, int headDim, const float* invFreq, const int* positions) {
    int t = blockIdx.x, half = headDim / 2;
    float pos = (float) positions[t];
    for (int i = threadIdx.x; i < width / 2; i += blockDim.x) {
        int h = i / half, j = i % half;
        float angle = pos * invFreq[j];
        float c = cosf(angle), s = sinf(angle);
        float* base = x + (long long) t * width + h * headDim;
        float a = base[j], b = base[j + half];
        base[j] = a * c - b * s;
        base[j + half] = b * c + a * s;
    }
}

__global__ void write_kv(const float* k, const float* v, float* cacheK, float* cacheV, const int* slots, int kvWidth) {
    int t = blockIdx.x;
    long long slot = slots[t];
    for (int c = threadIdx.x; c < kvWidth; c += blockDim.x) {
        cacheK[slot * kvWidth + c] = k[(long long) t * kvWidth + c];
        cacheV[slot * kvWidth + c] = v[(long long) t * kvWidth + c];
    }
}


// Attention over the paged cache, split over the context (flash-decoding): block (token t, head h,
// split s) covers positions [first + s·splitLen, ...) of t's visible context in chunks of
// ATTN_CHUNK, with an online softmax. Scores: eight lanes per position, each reading 16-byte pieces
// of the key row; values: lanes over the head dimension, warps over positions. The softmax sum and
// the weighted values add up in float64. A token whose context fits one split writes its output
// here; otherwise each split writes its normalised output, maximum and sum for attention_combine.
// Per-token lengths come from device data only, so a captured graph serves any context.
#define ATTN_THREADS 128
#define ATTN_WARPS (ATTN_THREADS / 32)
#define ATTN_CHUNK 128
#define ATTN_MAX_HEAD_DIM 256

__device__ __forceinline__ int attention_first(int pos, int window) { return window > 0 ? max(0, pos - window + 1) : 0; }

__global__ void attention(const float* q, const float* cacheK, const float* cacheV, float* out, float* partOut, float* partMax,
                          float* partSum, const int* positions, const int* seqOfToken, const int* blockTables, int maxBlocks,
                          int blockSize, int heads, int kvHeads, int headDim, float scale, int window, int splitLen, int splits) {
    __shared__ float qs[ATTN_MAX_HEAD_DIM];
    __shared__ float sc[ATTN_CHUNK];
    __shared__ float maxScratch[32];
    __shared__ double sumScratch[32];
    __shared__ double partial[ATTN_WARPS][ATTN_MAX_HEAD_DIM];
    int t = blockIdx.x / heads, h = blockIdx.x % heads, split = blockIdx.y;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int pos = positions[t];
    int first = attention_first(pos, window);
    int len = pos - first + 1;
    int used = (len + splitLen - 1) / splitLen;
    if (split >= used) return;
    int begin = first + split * splitLen, end = min(pos + 1, begin + splitLen);
    int kvh = h / (heads / kvHeads);
    int qWidth = heads * headDim, kvWidth = kvHeads * headDim;
    const int* table = blockTables + (long long) seqOfToken[t] * maxBlocks;
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) qs[d] = q[(long long) t * qWidth + h * headDim + d];
    __syncthreads();
    float m = __int_as_float(0xff800000);
    double l = 0.0;
    double acc[ATTN_MAX_HEAD_DIM / 32];
    #pragma unroll
    for (int k = 0; k < ATTN_MAX_HEAD_DIM / 32; k++) acc[k] = 0.0;
    int group = lane >> 3, sub = lane & 7;
    bool vector = (headDim & 3) == 0 && (kvWidth & 3) == 0;
    for (int c0 = begin; c0 < end; c0 += ATTN_CHUNK) {
        for (int j = warp * 4 + group; j < ATTN_CHUNK; j += ATTN_WARPS * 4) {
            int p = c0 + j;
            double s = 0.0; // float64: large q·k (Qwen2's biases) would show float32 rounding after the exp
            if (p < end) {
                long long slot = (long long) table[p / blockSize] * blockSize + p % blockSize;
                const float* key = cacheK + slot * kvWidth + kvh * headDim;
                if (vector) {
                    for (int d = sub * 4; d < headDim; d += 32) {
                        float4 kv = *(const float4*) (key + d);
                        s += (double) qs[d] * kv.x + (double) qs[d + 1] * kv.y + (double) qs[d + 2] * kv.z + (double) qs[d + 3] * kv.w;
                    }
                } else {
                    for (int d = sub; d < headDim; d += 8) s += (double) qs[d] * key[d];
                }
            }
            s += __shfl_xor_sync(0xffffffffu, s, 4);
            s += __shfl_xor_sync(0xffffffffu, s, 2);
            s += __shfl_xor_sync(0xffffffffu, s, 1);
            if (sub == 0) sc[j] = p < end ? (float) s * scale : __int_as_float(0xff800000);
        }
        __syncthreads();
        float chunkMax = block_max(sc[threadIdx.x % ATTN_CHUNK], maxScratch);
        float next = fmaxf(m, chunkMax);
        float factor = m == next ? 1.f : expf(m - next);
        m = next;
        float e = 0.f;
        if (threadIdx.x < ATTN_CHUNK) {
            e = expf(sc[threadIdx.x] - m);
        }
        double chunkSum = block_sum((double) e, sumScratch);
        if (threadIdx.x < ATTN_CHUNK) sc[threadIdx.x] = e;
        __syncthreads();
        l = l * factor + chunkSum;
        #pragma unroll
        for (int k = 0; k < ATTN_MAX_HEAD_DIM / 32; k++) acc[k] *= factor;
        int n = min(ATTN_CHUNK, end - c0);
        for (int j = warp; j < n; j += ATTN_WARPS) {
            int p = c0 + j;
            long long slot = (long long) table[p / blockSize] * blockSize + p % blockSize;
            const float* value = cacheV + slot * kvWidth + kvh * headDim;
            double w = sc[j];
            #pragma unroll
            for (int k = 0; k < ATTN_MAX_HEAD_DIM / 32; k++) {
                int d = lane + 32 * k;
                if (d < headDim) acc[k] += w * value[d];
            }
        }
        __syncthreads();
    }
    #pragma unroll
    for (int k = 0; k < ATTN_MAX_HEAD_DIM / 32; k++) {
        int d = lane + 32 * k;
        if (d < headDim) partial[warp][d] = acc[k];
    }
    __syncthreads();
    long long part = ((long long) t * heads + h) * splits + split;
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
        double total = 0.0;
        for (int w = 0; w < ATTN_WARPS; w++) total += partial[w][d];
        if (used == 1) out[(long long) t * qWidth + h * headDim + d] = (float) (total / l);
        else partOut[part * headDim + d] = (float) (total / l);
    }
    if (used > 1 && threadIdx.x == 0) {
        partMax[part] = m;
        partSum[part] = (float) l;
    }
}

// Joins the splits of tokens whose context needed more than one: weights sum_s · exp(max_s − max).
__global__ void attention_combine(const float* partOut, const float* partMax, const float* partSum, float* out,
                                  const int* positions, int heads, int headDim, int window, int splitLen, int splits) {
    int t = blockIdx.x / heads, h = blockIdx.x % heads;
    int pos = positions[t];
    int len = pos - attention_first(pos, window) + 1;
    int used = (len + splitLen - 1) / splitLen;
    if (used <= 1) return;
    long long part = ((long long) t * heads + h) * splits;
    float top = __int_as_float(0xff800000);
    for (int s = 0; s < used; s++) top = fmaxf(top, partMax[part + s]);
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
        double num = 0.0, den = 0.0;
        for (int s = 0; s < used; s++) {
            double w = (double) partSum[part + s] * exp((double) partMax[part + s] - top);
            num += w * partOut[(part + s) * headDim + d];
            den += w;
        }
        out[(long long) t * heads * headDim + h * headDim + d] = (float) (num / den);
    }
}

// act: 0 silu, 1 gelu (erf), 2 gelu (tanh), 3 relu
__device__ __forceinline__ float activate(int act, float x) {
    if (act == 0) return x / (1.f + expf(-x));
    if (act == 1) return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    if (act == 2) return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    return fmaxf(x, 0.f);
}

__global__ void gated_activation(int act, const float* gate, const float* up, float* out, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x)
        out[i] = activate(act, gate[i]) * up[i];
}

__global__ void activation(int act, float* x, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x)
        x[i] = activate(act, x[i]);
}

__global__ void add_in_place(float* x, const float* y, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x)
        x[i] += y[i];
}

__global__ void add_bias(float* out, const void* bias, int type, int cols) {
    for (int c = threadIdx.x; c < cols; c += blockDim.x) out[(long long) blockIdx.x * cols + c] += ld(bias, c, type);
}

__global__ void to_bf16(const float* x, u16* out, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x)
        out[i] = f32_to_bf16(x[i]);
}

__global__ void to_f16(const float* x, u16* out, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x)
        out[i] = f32_to_f16(x[i]);
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

// fLoRA modulation, every group of the step at once: one block per adapted token m (group g,
// index i of n_g): stacked[base_g + j n_g + i] = x[row_m] ∘ A_g[j] for j < r_g.
__global__ void flora_modulate(const float* x, const int* rowOf, const int* groupOf, const int* indexOf, const int* base,
                               const int* count, const long long* aPtr, const int* aType, const int* rank, float* stacked, int in) {
    int m = blockIdx.x, g = groupOf[m], i = indexOf[m], n = count[g];
    const float* row = x + (long long) rowOf[m] * in;
    const void* a = (const void*) aPtr[g];
    for (int j = 0; j < rank[g]; j++) {
        float* dst = stacked + (long long) (base[g] + j * n + i) * in;
        for (int c = threadIdx.x; c < in; c += blockDim.x) dst[c] = __fmul_rn(row[c], ld(a, (long long) j * in + c, aType[g]));
    }
}

// fLoRA demodulation, the inverse layout: out[row_m] = (1 / r_g) Σ_j products[base_g + j n_g + i] ∘ B_g^T[j]
// (+ bias), each product rounded before it is added, in j order: the CPU's arithmetic bit for bit.
__global__ void flora_demodulate(const float* products, const int* rowOf, const int* groupOf, const int* indexOf, const int* base,
                                 const int* count, const long long* btPtr, const int* btType, const int* rank, const void* bias,
                                 int biasType, float* out, int outs) {
    int m = blockIdx.x, g = groupOf[m], i = indexOf[m], n = count[g], r = rank[g];
    const void* bt = (const void*) btPtr[g];
    float scale = 1.f / r;
    float* o = out + (long long) rowOf[m] * outs;
    for (int c = threadIdx.x; c < outs; c += blockDim.x) {
        float s = 0.f;
        for (int j = 0; j < r; j++) {
            s = __fadd_rn(s, __fmul_rn(products[(long long) (base[g] + j * n + i) * outs + c], ld(bt, (long long) j * outs + c, btType[g])));
        }
        float v = __fmul_rn(scale, s);
        o[c] = bias ? __fadd_rn(v, ld(bias, c, biasType)) : v;
    }
}

// LoRA shrink and expand sum in float64: the adapter's scale (rsLoRA's alpha / sqrt(r), say) can
// magnify rounding. These simple versions serve exactness; fast ones replace them where it pays.
// LoRA shrink, every adapted token of every adapter at once: one block per (token k, rank j):
// v[k, j] = A_g[j] · x[row_k], g = group of token k. Pointers and types per group.
__global__ void lora_shrink(const float* x, const int* rowOf, const int* groupOf, const long long* aPtr, const int* aType,
                            const int* rank, float* v, int maxRank, int in) {
    __shared__ double scratch[32];
    int k = blockIdx.x, j = blockIdx.y, g = groupOf[k];
    if (j >= rank[g]) return;
    const void* a = (const void*) aPtr[g];
    const float* row = x + (long long) rowOf[k] * in;
    double s = 0.0;
    for (int c = threadIdx.x; c < in; c += blockDim.x) s += (double) ld(a, (long long) j * in + c, aType[g]) * row[c];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) v[(long long) k * maxRank + j] = (float) s;
}

// LoRA expand: out[row_k, c] += scale_g · (Σ_j B_g[c, j] v[k, j] + bias_g[c]).
__global__ void lora_expand(const float* v, const int* rowOf, const int* groupOf, const long long* bPtr, const int* bType,
                            const long long* biasPtr, const int* biasType, const int* rank, const float* scale, float* out,
                            int maxRank, int outs) {
    int k = blockIdx.x, g = groupOf[k], r = rank[g];
    const void* b = (const void*) bPtr[g];
    const void* bias = (const void*) biasPtr[g];
    float* o = out + (long long) rowOf[k] * outs;
    for (int c = threadIdx.x; c < outs; c += blockDim.x) {
        double d = 0.0;
        for (int j = 0; j < r; j++) d += (double) ld(b, (long long) c * r + j, bType[g]) * v[(long long) k * maxRank + j];
        if (bias) d += ld(bias, c, biasType[g]);
        o[c] += scale[g] * (float) d;
    }
}

}
