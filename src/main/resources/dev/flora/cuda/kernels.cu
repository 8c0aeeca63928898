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

// One block per (token, query head), four warps. Scores: one warp per position, its lanes over the
// head dimension (coalesced reads of the key row), kept in shared memory (dynamic, one float per
// visible position). Softmax over them. Output: each warp sums its share of the positions, each
// lane its dimensions (coalesced reads of the value rows), then the four partial sums are added in
// warp order. Sums in float64: exact to float32 rounding whatever the context length.
#define ATTN_WARPS 4
#define ATTN_MAX_HEAD_DIM 256
__global__ void attention(const float* q, const float* cacheK, const float* cacheV, float* out, const int* positions,
                          const int* seqOfToken, const int* blockTables, int maxBlocks, int blockSize, int heads, int kvHeads,
                          int headDim, float scale, int window) {
    extern __shared__ float scores[];
    __shared__ float scratch[32];
    __shared__ double sumScratch[32];
    __shared__ float qs[ATTN_MAX_HEAD_DIM];
    __shared__ double partial[ATTN_WARPS][ATTN_MAX_HEAD_DIM];
    int t = blockIdx.x / heads, h = blockIdx.x % heads;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int kvh = h / (heads / kvHeads);
    int qWidth = heads * headDim, kvWidth = kvHeads * headDim;
    int pos = positions[t];
    const int* table = blockTables + (long long) seqOfToken[t] * maxBlocks;
    int first = window > 0 ? max(0, pos - window + 1) : 0;
    int n = pos - first + 1;
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) qs[d] = q[(long long) t * qWidth + h * headDim + d];
    __syncthreads();
    float localMax = __int_as_float(0xff800000);
    for (int j = warp; j < n; j += ATTN_WARPS) {
        int p = first + j;
        long long slot = (long long) table[p / blockSize] * blockSize + p % blockSize;
        const float* key = cacheK + slot * kvWidth + kvh * headDim;
        double s = 0.0;
        for (int d = lane; d < headDim; d += 32) s += (double) qs[d] * key[d];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        float score = (float) s * scale;
        if (lane == 0) scores[j] = score;
        localMax = fmaxf(localMax, score);
    }
    float m = block_max(localMax, scratch);
    double localSum = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float e = expf(scores[j] - m);
        scores[j] = e;
        localSum += e;
    }
    double sum = block_sum(localSum, sumScratch);
    __syncthreads();
    double acc[ATTN_MAX_HEAD_DIM / 32];
    for (int k = 0; k < ATTN_MAX_HEAD_DIM / 32; k++) acc[k] = 0.0;
    for (int j = warp; j < n; j += ATTN_WARPS) {
        int p = first + j;
        long long slot = (long long) table[p / blockSize] * blockSize + p % blockSize;
        const float* value = cacheV + slot * kvWidth + kvh * headDim;
        float e = scores[j];
        #pragma unroll
        for (int k = 0; k < ATTN_MAX_HEAD_DIM / 32; k++) {
            int d = lane + 32 * k;
            if (d < headDim) acc[k] += (double) e * value[d];
        }
    }
    #pragma unroll
    for (int k = 0; k < ATTN_MAX_HEAD_DIM / 32; k++) {
        int d = lane + 32 * k;
        if (d < headDim) partial[warp][d] = acc[k];
    }
    __syncthreads();
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
        double total = 0.0;
        for (int w = 0; w < ATTN_WARPS; w++) total += partial[w][d];
        out[(long long) t * qWidth + h * headDim + d] = (float) (total / sum);
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
