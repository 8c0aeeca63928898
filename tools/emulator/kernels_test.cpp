// Flora's CUDA kernels run on the CPU (cuda_host.h) against float64 and against the forms the H200 has
// already checked: the kernels built without a GPU (the fourth decode attention, the pipelined prefill
// tiles bit for bit against the first, the fused decode LoRA against lora_shrink + lora_expand, the
// skinny products, the stacked LoRA runs), and those of the default decode step, of LoRA and of fLoRA.
// Built and run by tools/kernels-emulate.sh [PART]; prints a line a check and exits 1 on any failure.
// The sizes are small: every CUDA thread is a host thread.
#include "cuda_host.h"
#include "kernels.cu" // the script's copy (of KERNELS, when given)

#include <functional>
#include <random>
#include <string>

static int failures = 0, cases = 0;

static std::string pass; // appended to every check's name: which way cp.async copies land, in the second pass

static void report(bool ok, const std::string& what, double err, double tol) {
    cases++;
    if (!ok) failures++;
    std::printf("%s  %-78s err %.3g (tol %.3g)\n", ok ? "ok  " : "FAIL", (what + pass).c_str(), err, tol);
    std::fflush(stdout);
}

// Largest |a - b| over max(1, |b|) scale; tol on that.
static void check(const std::string& what, const std::vector<float>& got, const std::vector<double>& want, double tol) {
    double err = 0;
    bool finite = true;
    for (size_t i = 0; i < want.size(); i++) {
        if (!std::isfinite(got[i])) finite = false;
        err = std::max(err, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
    }
    report(finite && err <= tol, what, err, tol);
}

static void sameBits(const std::string& what, const std::vector<float>& a, const std::vector<float>& b) {
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); i++) differ += std::memcmp(&a[i], &b[i], 4) != 0;
    report(differ == 0, what + " (bits: " + std::to_string(differ) + " of " + std::to_string(a.size()) + " differ)", (double) differ, 0);
}

static u16 to16(float f, int type) { return type == 1 ? f32_to_bf16(f) : f32_to_f16(f); }
static float from16(u16 h, int type) { return type == 1 ? bf16_to_f32(h) : f16_to_f32(h); }

// ---- decode attention: the second form (GPU-checked), the third and the fourth, against float64.
using AttentionKernel = void (*)(ATTENTION_ARGS);

struct DecodeCase {
    int type, D, heads, kvHeads, blockSize, window, minSplit, splits;
    std::vector<int> lengths; // a sequence's context (its decode token's position + 1)
};

static AttentionKernel attentionKernel(const std::string& form, int type, int D) {
    if (form == "v1") return type == 1 ? attention_bf16 : attention_f16;
    if (form == "v2") return type == 1 ? (D == 64 ? attention_v2_bf16_64 : attention_v2_bf16_128) : (D == 64 ? attention_v2_f16_64 : attention_v2_f16_128);
    if (form == "v3") return type == 1 ? (D == 64 ? attention_v3_bf16_64 : attention_v3_bf16_128) : (D == 64 ? attention_v3_f16_64 : attention_v3_f16_128);
    return type == 1 ? (D == 64 ? attention_v4_bf16_64 : attention_v4_bf16_128) : (D == 64 ? attention_v4_f16_64 : attention_v4_f16_128);
}

static void decodeAttention(const DecodeCase& c, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.f, 1.f);
    int T = (int) c.lengths.size(), qWidth = c.heads * c.D, kvWidth = c.kvHeads * c.D;
    int maxBlocks = 0;
    for (int len : c.lengths) maxBlocks = std::max(maxBlocks, (len + c.blockSize - 1) / c.blockSize);
    int physical = T * maxBlocks + 3;
    std::vector<int> order(physical);
    for (int i = 0; i < physical; i++) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int> tables(T * maxBlocks), positions(T), seqOfToken(T);
    for (int t = 0; t < T; t++) {
        seqOfToken[t] = t;
        positions[t] = c.lengths[t] - 1;
        for (int b = 0; b < maxBlocks; b++) tables[t * maxBlocks + b] = order[t * maxBlocks + b];
    }
    std::vector<u16> keys((size_t) physical * c.blockSize * kvWidth), values(keys.size());
    for (auto& k : keys) k = to16(normal(rng), c.type);
    for (auto& v : values) v = to16(normal(rng), c.type);
    std::vector<float> q((size_t) T * qWidth);
    for (auto& x : q) x = normal(rng);
    float scale = 1.f / std::sqrt((float) c.D);
    // float64, from the cache's values
    std::vector<double> want((size_t) T * qWidth);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < c.heads; h++) {
            int kvh = h / (c.heads / c.kvHeads), pos = positions[t];
            int first = c.window > 0 ? std::max(0, pos - c.window + 1) : 0;
            std::vector<double> s;
            double top = -INFINITY;
            for (int p = first; p <= pos; p++) {
                long long slot = (long long) tables[t * maxBlocks + p / c.blockSize] * c.blockSize + p % c.blockSize;
                double dot = 0;
                for (int d = 0; d < c.D; d++) dot += (double) q[(size_t) t * qWidth + h * c.D + d] * from16(keys[slot * kvWidth + kvh * c.D + d], c.type);
                s.push_back(dot * scale);
                top = std::max(top, s.back());
            }
            double sum = 0;
            for (double& e : s) sum += (e = std::exp(e - top));
            for (int d = 0; d < c.D; d++) {
                double o = 0;
                for (int p = first; p <= pos; p++) {
                    long long slot = (long long) tables[t * maxBlocks + p / c.blockSize] * c.blockSize + p % c.blockSize;
                    o += s[p - first] * from16(values[slot * kvWidth + kvh * c.D + d], c.type);
                }
                want[(size_t) t * qWidth + h * c.D + d] = o / sum;
            }
        }
    std::string shape = "D " + std::to_string(c.D) + (c.type == 1 ? " bf16" : " f16") + ", heads " + std::to_string(c.heads) + "/" +
                        std::to_string(c.kvHeads) + ", contexts";
    for (int len : c.lengths) shape += " " + std::to_string(len);
    shape += ", window " + std::to_string(c.window) + ", splits " + std::to_string(c.splits) + ", minSplit " + std::to_string(c.minSplit);
    std::vector<float> second;
    for (std::string form : {"v1", "v2", "v3", "v4"}) {
        int pairs = T * c.heads;
        std::vector<float> out((size_t) T * qWidth, NAN), partOut((size_t) pairs * c.splits * c.D), partMax(pairs * c.splits), partSum(pairs * c.splits);
        std::vector<int> counters(pairs, 0);
        emu::launch(dim3{(unsigned) pairs, (unsigned) c.splits, 1}, dim3{ATTN_THREADS, 1, 1}, 0, attentionKernel(form, c.type, c.D), q.data(),
                    (const void*) keys.data(), (const void*) values.data(), out.data(), partOut.data(), partMax.data(), partSum.data(),
                    positions.data(), seqOfToken.data(), tables.data(), maxBlocks, c.blockSize, c.heads, c.kvHeads, c.D, scale, c.window,
                    c.minSplit, c.splits, (const int*) nullptr, counters.data());
        check("attention " + form + ": " + shape, out, want, 1e-5);
        bool reset = std::all_of(counters.begin(), counters.end(), [](int n) { return n == 0; });
        report(reset, "attention " + form + ": counters left at 0", reset ? 0 : 1, 0);
        if (form == "v2") second = out;
        if (form == "v3") sameBits("attention v3 against v2", out, second);
        if (form == "v2" && c.splits > 1) { // without counters: attention_combine joins the splits, with the same sums
            std::vector<float> joined((size_t) T * qWidth, NAN);
            emu::launch(dim3{(unsigned) pairs, (unsigned) c.splits, 1}, dim3{ATTN_THREADS, 1, 1}, 0, attentionKernel(form, c.type, c.D), q.data(),
                        (const void*) keys.data(), (const void*) values.data(), joined.data(), partOut.data(), partMax.data(), partSum.data(),
                        positions.data(), seqOfToken.data(), tables.data(), maxBlocks, c.blockSize, c.heads, c.kvHeads, c.D, scale, c.window,
                        c.minSplit, c.splits, (const int*) nullptr, (int*) nullptr);
            emu::launch(dim3{(unsigned) pairs, 1, 1}, dim3{128, 1, 1}, 0, attention_combine, (const float*) partOut.data(), (const float*) partMax.data(),
                        (const float*) partSum.data(), joined.data(), positions.data(), c.heads, c.D, c.window, c.minSplit, c.splits, (const int*) nullptr);
            sameBits("attention_combine against the last split's join", joined, out);
        }
    }
}

// ---- prefill tiles: the pipelined form bit for bit against the first, both against float64.
using TilesKernel = void (*)(TILES_ARGS);

static void prefillTiles(int type, int D, int heads, int kvHeads, int window, const std::vector<int>& prompts, const std::vector<int>& cached,
                         std::mt19937& rng) {
    std::normal_distribution<float> normal(0.f, 1.f);
    int S = (int) prompts.size(), blockSize = 16, qWidth = heads * D, kvWidth = kvHeads * D;
    int maxBlocks = 0, tokens = 0;
    for (int s = 0; s < S; s++) {
        maxBlocks = std::max(maxBlocks, (cached[s] + prompts[s] + blockSize - 1) / blockSize);
        tokens += prompts[s];
    }
    int physical = S * maxBlocks + 2;
    std::vector<int> order(physical);
    for (int i = 0; i < physical; i++) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int> tables(S * maxBlocks);
    for (int i = 0; i < S * maxBlocks; i++) tables[i] = order[i];
    std::vector<u16> keys((size_t) physical * blockSize * kvWidth), values(keys.size());
    for (auto& k : keys) k = to16(normal(rng), type);
    for (auto& v : values) v = to16(normal(rng), type);
    std::vector<float> q((size_t) tokens * qWidth);
    for (auto& x : q) x = normal(rng);
    // Tiles of up to FA_M tokens of one prompt; token t0 + r sits at position p0 + r.
    std::vector<int4> tiles;
    std::vector<int> seqOf(tokens), posOf(tokens);
    int t = 0;
    for (int s = 0; s < S; s++) {
        for (int r = 0; r < prompts[s]; r += FA_M) tiles.push_back({t + r, cached[s] + r, std::min(FA_M, prompts[s] - r), s});
        for (int r = 0; r < prompts[s]; r++) {
            seqOf[t + r] = s;
            posOf[t + r] = cached[s] + r;
        }
        t += prompts[s];
    }
    float scale = 1.f / std::sqrt((float) D);
    std::vector<double> want((size_t) tokens * qWidth);
    for (int k = 0; k < tokens; k++)
        for (int h = 0; h < heads; h++) {
            int kvh = h / (heads / kvHeads), pos = posOf[k], s = seqOf[k];
            int first = window > 0 ? std::max(0, pos - window + 1) : 0;
            std::vector<double> w;
            double top = -INFINITY, sum = 0;
            auto slot = [&](int p) { return (long long) tables[s * maxBlocks + p / blockSize] * blockSize + p % blockSize; };
            for (int p = first; p <= pos; p++) {
                double dot = 0;
                for (int d = 0; d < D; d++) dot += (double) from16(to16(q[(size_t) k * qWidth + h * D + d], type), type) * from16(keys[slot(p) * kvWidth + kvh * D + d], type);
                w.push_back(dot * scale);
                top = std::max(top, w.back());
            }
            for (double& e : w) sum += (e = std::exp(e - top));
            for (int d = 0; d < D; d++) {
                double o = 0;
                for (int p = first; p <= pos; p++) o += w[p - first] * from16(values[slot(p) * kvWidth + kvh * D + d], type);
                want[(size_t) k * qWidth + h * D + d] = o / sum;
            }
        }
    TilesKernel first = type == 1 ? (D == 64 ? attention_tiles_bf16_64 : attention_tiles_bf16_128) : (D == 64 ? attention_tiles_f16_64 : attention_tiles_f16_128);
    TilesKernel second = type == 1 ? (D == 64 ? attention_tiles2_bf16_64 : attention_tiles2_bf16_128) : (D == 64 ? attention_tiles2_f16_64 : attention_tiles2_f16_128);
    std::string shape = "D " + std::to_string(D) + (type == 1 ? " bf16" : " f16") + ", heads " + std::to_string(heads) + "/" + std::to_string(kvHeads) +
                        ", window " + std::to_string(window) + ", prompts";
    for (int s = 0; s < S; s++) shape += " " + std::to_string(cached[s]) + "+" + std::to_string(prompts[s]);
    std::vector<float> outs[2];
    for (int f = 0; f < 2; f++) {
        outs[f].assign((size_t) tokens * qWidth, NAN);
        emu::launch(dim3{(unsigned) tiles.size(), (unsigned) heads, 1}, dim3{128, 1, 1}, 0, f == 0 ? first : second, q.data(), keys.data(),
                    values.data(), outs[f].data(), tiles.data(), tables.data(), maxBlocks, blockSize, heads, kvHeads, scale, window);
        // probabilities are rounded to the cache's type for P·V (as transformers' 16-bit attention)
        check(std::string(f == 0 ? "tiles v1: " : "tiles v2: ") + shape, outs[f], want, type == 1 ? 2e-2 : 4e-3);
    }
    sameBits("tiles v2 against v1: " + shape, outs[1], outs[0]);
}

// ---- decode LoRA: lora_fused against lora_shrink + lora_expand (GPU-checked) and float64.
struct Adapter {
    int rank, type, outs;
    bool bias;
    float scale;
    std::vector<float> a, b, bv; // A [rank][in], B [outs][rank], bias [outs], as their type holds them
    std::vector<u16> a16, b16, bv16;
    const void* aPtr() const { return type == 0 ? (const void*) a.data() : (const void*) a16.data(); }
    const void* bPtr() const { return type == 0 ? (const void*) b.data() : (const void*) b16.data(); }
    const void* biasPtr() const { return !bias ? nullptr : type == 0 ? (const void*) bv.data() : (const void*) bv16.data(); }
};

static void fill(std::vector<float>& f, std::vector<u16>& h, size_t n, int type, std::mt19937& rng, float sd) {
    std::normal_distribution<float> normal(0.f, sd);
    f.resize(n);
    h.resize(n);
    for (size_t i = 0; i < n; i++) {
        float v = normal(rng);
        if (type != 0) {
            h[i] = to16(v, type);
            v = from16(h[i], type);
        }
        f[i] = v;
    }
}

static void decodeLora(int in, const std::vector<Adapter>& shapes, const std::vector<int>& groupOfToken, int fusedBlocks, std::mt19937& rng,
                       bool tiledToo = true) {
    std::vector<Adapter> ad = shapes;
    for (Adapter& g : ad) {
        fill(g.a, g.a16, (size_t) g.rank * in, g.type, rng, 0.05f);
        fill(g.b, g.b16, (size_t) g.outs * g.rank, g.type, rng, 0.05f);
        fill(g.bv, g.bv16, g.outs, g.type, rng, 0.05f);
    }
    int total = (int) groupOfToken.size(), groups = (int) ad.size();
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<float> x((size_t) total * in);
    for (auto& v : x) v = normal(rng);
    std::vector<int> rowOf(total), rank(groups), aType(groups), bType(groups), biasType(groups), outCols(groups);
    std::vector<long long> aPtr(groups), bPtr(groups), biasPtr(groups), outPtr(groups);
    std::vector<float> scale(groups);
    int maxRank = 0, maxOuts = 0;
    for (int g = 0; g < groups; g++) {
        rank[g] = ad[g].rank;
        aType[g] = bType[g] = biasType[g] = ad[g].type;
        outCols[g] = ad[g].outs;
        aPtr[g] = (long long) ad[g].aPtr();
        bPtr[g] = (long long) ad[g].bPtr();
        biasPtr[g] = (long long) ad[g].biasPtr();
        scale[g] = ad[g].scale;
        maxRank = std::max(maxRank, ad[g].rank);
        maxOuts = std::max(maxOuts, ad[g].outs);
    }
    for (int k = 0; k < total; k++) rowOf[k] = (k * 7) % total; // rows out of order: token k reads and writes row rowOf[k]
    // Each group writes its own output tensor, rows indexed like x's; starting values non-zero (the kernels add).
    auto start = [](size_t i) { return 0.25f * (float) ((int) (i % 13) - 6); };
    auto fresh = [&](std::vector<std::vector<float>>& outs) {
        outs.assign(groups, {});
        for (int g = 0; g < groups; g++) {
            outs[g].assign((size_t) total * ad[g].outs, 0.f);
            for (size_t i = 0; i < outs[g].size(); i++) outs[g][i] = start(i);
            outPtr[g] = (long long) outs[g].data();
        }
    };
    std::vector<std::vector<double>> want(groups);
    for (int g = 0; g < groups; g++) {
        want[g].assign((size_t) total * ad[g].outs, 0.0);
        for (size_t i = 0; i < want[g].size(); i++) want[g][i] = start(i);
    }
    for (int k = 0; k < total; k++) {
        const Adapter& g = ad[groupOfToken[k]];
        std::vector<double> v(g.rank, 0.0);
        for (int j = 0; j < g.rank; j++)
            for (int c = 0; c < in; c++) v[j] += (double) g.a[(size_t) j * in + c] * x[(size_t) rowOf[k] * in + c];
        for (int c = 0; c < g.outs; c++) {
            double d = g.bias ? g.bv[c] : 0.0;
            for (int j = 0; j < g.rank; j++) d += (double) g.b[(size_t) c * g.rank + j] * v[j];
            want[groupOfToken[k]][(size_t) rowOf[k] * g.outs + c] += g.scale * d;
        }
    }
    std::string shape = "in " + std::to_string(in) + ", " + std::to_string(total) + " tokens, adapters (rank/type/outs/bias)";
    for (const Adapter& g : ad) shape += " " + std::to_string(g.rank) + "/" + std::to_string(g.type) + "/" + std::to_string(g.outs) + (g.bias ? "/b" : "");
    // lora_shrink + lora_expand, as CudaBackend.loraByToken launches them
    std::vector<std::vector<float>> two, fused;
    fresh(two);
    int span = 256, spans = (in + span - 1) / span;
    std::vector<double> partial((size_t) total * spans * maxRank, NAN);
    emu::launch(dim3{(unsigned) total, (unsigned) spans, 1}, dim3{(unsigned) (32 * std::min(8, maxRank)), 1, 1}, 0, lora_shrink, x.data(),
                rowOf.data(), groupOfToken.data(), aPtr.data(), aType.data(), rank.data(), partial.data(), maxRank, in, span);
    size_t staged = (size_t) maxRank * (spans + 1) * 8;
    emu::launch(dim3{(unsigned) total, (unsigned) ((maxOuts + 1023) / 1024), 1}, dim3{256, 1, 1}, staged, lora_expand, partial.data(), rowOf.data(),
                groupOfToken.data(), bPtr.data(), bType.data(), biasPtr.data(), biasType.data(), rank.data(), scale.data(), outPtr.data(),
                outCols.data(), maxRank, spans, 1024, 1);
    for (int g = 0; g < groups; g++) check("lora shrink+expand, group " + std::to_string(g) + ": " + shape, two[g], want[g], 1e-5);
    if (tiledToo) { // the expand without staging its partials in shared memory (ranks × spans too many): the same sums
        std::vector<std::vector<float>> unstaged;
        fresh(unstaged);
        emu::launch(dim3{(unsigned) total, (unsigned) ((maxOuts + 1023) / 1024), 1}, dim3{256, 1, 1}, (size_t) maxRank * 8, lora_expand, partial.data(),
                    rowOf.data(), groupOfToken.data(), bPtr.data(), bType.data(), biasPtr.data(), biasType.data(), rank.data(), scale.data(),
                    outPtr.data(), outCols.data(), maxRank, spans, 1024, 0);
        for (int g = 0; g < groups; g++) sameBits("lora_expand unstaged against staged, group " + std::to_string(g), unstaged[g], two[g]);
    }
    // The tiled kernels (prompts): tiles of up to LT_TOKENS consecutive tokens of one group.
    if (tiledToo) {
        std::vector<int> tileFirst, tileCount;
        for (int k = 0; k < total;) {
            int n = 1;
            while (k + n < total && n < LT_TOKENS && groupOfToken[k + n] == groupOfToken[k]) n++;
            tileFirst.push_back(k);
            tileCount.push_back(n);
            k += n;
        }
        std::vector<std::vector<float>> tiled;
        fresh(tiled);
        int tiles = (int) tileFirst.size(), tiledSpans = (in + LT_SPAN - 1) / LT_SPAN;
        std::vector<double> parts((size_t) total * tiledSpans * maxRank, NAN);
        emu::launch(dim3{(unsigned) tiles, (unsigned) tiledSpans, 1}, dim3{256, 1, 1}, 0, lora_shrink_tiled, x.data(), rowOf.data(), groupOfToken.data(),
                    tileFirst.data(), tileCount.data(), aPtr.data(), aType.data(), rank.data(), parts.data(), maxRank, in);
        emu::launch(dim3{(unsigned) tiles, 3, 1}, dim3{256, 1, 1}, 0, lora_expand_tiled, (const double*) parts.data(), rowOf.data(),
                    groupOfToken.data(), tileFirst.data(), tileCount.data(), bPtr.data(), bType.data(), biasPtr.data(), biasType.data(), rank.data(),
                    scale.data(), outPtr.data(), outCols.data(), maxRank, tiledSpans);
        for (int g = 0; g < groups; g++)
            check("lora tiled (" + std::to_string(tiles) + " tiles), group " + std::to_string(g) + ": " + shape, tiled[g], want[g], 1e-5);
    }
    fresh(fused);
    int columns = (maxOuts + fusedBlocks - 1) / fusedBlocks;
    emu::launch(dim3{(unsigned) total, (unsigned) fusedBlocks, 1}, dim3{LORA_FUSED_THREADS, 1, 1}, 0, lora_fused, x.data(), rowOf.data(),
                groupOfToken.data(), rank.data(), aPtr.data(), aType.data(), bPtr.data(), bType.data(), biasPtr.data(), biasType.data(),
                scale.data(), outPtr.data(), outCols.data(), in, columns);
    for (int g = 0; g < groups; g++) {
        check("lora_fused x" + std::to_string(fusedBlocks) + ", group " + std::to_string(g) + ": " + shape, fused[g], want[g], 1e-5);
        std::vector<double> other(two[g].begin(), two[g].end());
        check("lora_fused x" + std::to_string(fusedBlocks) + " against shrink+expand, group " + std::to_string(g), fused[g], other, 1e-6);
    }
}

// ---- fLoRA's prompt path (the paper's method): flora_modulate stacks x ∘ A_g[j] (rounded to 16 bits for
// the one shared product, done here in float64), flora_demodulate sums the products ∘ Bᵀ_g[j] / r_g;
// the vector and scalar loops give the same bits; the whole against float64.
static void floraPrompt(int type, int in, int outs, const std::vector<int>& groupOfToken, const std::vector<int>& ranks, std::mt19937& rng) {
    int tokens = (int) groupOfToken.size(), groups = (int) ranks.size(), bf16 = type == 1;
    std::vector<float> x, wf, biasf;
    std::vector<u16> xh, w, bias;
    fill(x, xh, (size_t) tokens * in, 0, rng, 1.f);
    fill(wf, w, (size_t) outs * in, type, rng, 0.05f);
    fill(biasf, bias, outs, type, rng, 0.5f);
    std::vector<std::vector<float>> af(groups), btf(groups);
    std::vector<std::vector<u16>> ah(groups), bth(groups);
    std::vector<int> count(groups, 0), base(groups), indexOf(tokens), rowOf(tokens), aType(groups), btType(groups);
    std::vector<long long> aPtr(groups), btPtr(groups);
    for (int m = 0; m < tokens; m++) {
        indexOf[m] = count[groupOfToken[m]]++;
        rowOf[m] = (m * 3 + 1) % tokens;
    }
    int stackedRows = 0;
    for (int g = 0; g < groups; g++) {
        aType[g] = g % 3 == 2 ? 0 : type; // one group with float32 factors
        btType[g] = aType[g];
        fill(af[g], ah[g], (size_t) ranks[g] * in, aType[g], rng, 1.f);
        fill(btf[g], bth[g], (size_t) ranks[g] * outs, btType[g], rng, 1.f);
        aPtr[g] = (long long) (aType[g] == 0 ? (const void*) af[g].data() : (const void*) ah[g].data());
        btPtr[g] = (long long) (btType[g] == 0 ? (const void*) btf[g].data() : (const void*) bth[g].data());
        base[g] = stackedRows;
        stackedRows += ranks[g] * count[g];
    }
    std::vector<u16> stacked[2];
    std::vector<float> out[2];
    for (int vectors = 0; vectors < 2; vectors++) {
        stacked[vectors].assign((size_t) stackedRows * in, 0xffff);
        emu::launch(dim3{(unsigned) tokens, (unsigned) ((in + FLORA_COLUMNS - 1) / FLORA_COLUMNS), 1}, dim3{256, 1, 1}, 0, flora_modulate, x.data(),
                    rowOf.data(), groupOfToken.data(), indexOf.data(), base.data(), count.data(), aPtr.data(), aType.data(), ranks.data(),
                    (float*) nullptr, stacked[vectors].data(), bf16, in, vectors);
        std::vector<float> products((size_t) stackedRows * outs);
        for (int sr = 0; sr < stackedRows; sr++)
            for (int o = 0; o < outs; o++) {
                double p = 0;
                for (int k = 0; k < in; k++) p += (double) from16(stacked[vectors][(size_t) sr * in + k], type) * wf[(size_t) o * in + k];
                products[(size_t) sr * outs + o] = (float) p;
            }
        out[vectors].assign((size_t) tokens * outs, NAN);
        emu::launch(dim3{(unsigned) tokens, (unsigned) ((outs + FLORA_COLUMNS - 1) / FLORA_COLUMNS), 1}, dim3{256, 1, 1}, 0, flora_demodulate,
                    (const float*) products.data(), rowOf.data(), groupOfToken.data(), indexOf.data(), base.data(), count.data(), btPtr.data(),
                    btType.data(), ranks.data(), (const void*) bias.data(), type, out[vectors].data(), outs, vectors);
    }
    std::vector<double> want((size_t) tokens * outs);
    for (int m = 0; m < tokens; m++) {
        int g = groupOfToken[m];
        for (int o = 0; o < outs; o++) {
            double sum = 0;
            for (int j = 0; j < ranks[g]; j++) {
                double p = 0;
                for (int k = 0; k < in; k++) p += (double) from16(to16(x[(size_t) rowOf[m] * in + k] * af[g][(size_t) j * in + k], type), type) * wf[(size_t) o * in + k];
                sum += p * btf[g][(size_t) j * outs + o];
            }
            want[(size_t) rowOf[m] * outs + o] = sum / ranks[g] + biasf[o];
        }
    }
    std::string what = std::string("flora_modulate + flora_demodulate (") + (bf16 ? "bf16" : "f16") + ", in " + std::to_string(in) + ", outs " +
                       std::to_string(outs) + ", " + std::to_string(tokens) + " tokens, ranks";
    for (int r : ranks) what += " " + std::to_string(r);
    what += ")";
    check(what, out[1], want, 1e-5);
    bool same = stacked[0] == stacked[1];
    report(same, what + ": the stacked rows, vector loop against scalar", same ? 0 : 1, 0);
    sameBits(what + ": vector loop against scalar", out[1], out[0]);
}

// ---- skinny products: out (+)= x W^T by tensor-core tiles, split over the input, against float64.
using SkinnyKernel = void (*)(SKINNY_ARGS);
static SkinnyKernel skinnyKernel(bool bf16, int mt) {
    SkinnyKernel bf[] = {skinny_products_bf16_1, skinny_products_bf16_2, skinny_products_bf16_3, skinny_products_bf16_4,
                         skinny_products_bf16_5, skinny_products_bf16_6, skinny_products_bf16_7, skinny_products_bf16_8};
    SkinnyKernel f[] = {skinny_products_f16_1, skinny_products_f16_2, skinny_products_f16_3, skinny_products_f16_4,
                        skinny_products_f16_5, skinny_products_f16_6, skinny_products_f16_7, skinny_products_f16_8};
    return bf16 ? bf[mt - 1] : f[mt - 1];
}

static void skinny(int type, int rows, int in, int outs, int splitLen, int accumulate, std::mt19937& rng) {
    std::vector<float> xf, wf;
    std::vector<u16> x, w;
    fill(xf, x, (size_t) rows * in, type, rng, 1.f);
    fill(wf, w, (size_t) outs * in, type, rng, 0.05f);
    int splits = (in + splitLen - 1) / splitLen, tiles = (outs + SK_FEATURES - 1) / SK_FEATURES;
    std::vector<float> out((size_t) rows * outs), part((size_t) splits * rows * outs, NAN);
    std::vector<double> want(out.size());
    for (size_t i = 0; i < out.size(); i++) out[i] = want[i] = accumulate ? 0.5f * (float) ((int) (i % 7) - 3) : NAN;
    for (int t = 0; t < rows; t++)
        for (int o = 0; o < outs; o++) {
            double s = 0;
            for (int k = 0; k < in; k++) s += (double) xf[(size_t) t * in + k] * wf[(size_t) o * in + k];
            want[(size_t) t * outs + o] = accumulate ? want[(size_t) t * outs + o] + s : s;
        }
    std::vector<int> counters(tiles, 0);
    emu::launch(dim3{(unsigned) tiles, (unsigned) splits, 1}, dim3{128, 1, 1}, 0, skinnyKernel(type == 1, (rows + 7) / 8), x.data(), w.data(),
                out.data(), part.data(), counters.data(), rows, in, outs, splitLen, accumulate);
    std::string what = std::string("skinny ") + (type == 1 ? "bf16" : "f16") + ": rows " + std::to_string(rows) + ", in " + std::to_string(in) +
                       ", outs " + std::to_string(outs) + ", split " + std::to_string(splitLen) + (accumulate ? ", accumulate" : "");
    check(what, out, want, 1e-4);
    bool reset = std::all_of(counters.begin(), counters.end(), [](int n) { return n == 0; });
    report(reset, what + ": counters left at 0", reset ? 0 : 1, 0);
}

// ---- the prompt runs' float32 shrink in chunks (lora_shrink_chunks) against float64, and each entry
// launched alone (a group of one, one warp a block) bit for bit against the entries joined: a row's sums
// never depend on the rows or entries beside it.
static void chunkShrink(int in, int rank, int groups, int entriesPerGroup, int chunk, int lastRows, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.f, 1.f);
    int T = groups * chunk + 5;
    std::vector<float> x((size_t) T * in);
    for (auto& e : x) e = normal(rng);
    int entries = groups * entriesPerGroup;
    std::vector<std::vector<float>> a(entries), v(entries), alone(entries);
    std::vector<int> chunkFirst(groups), chunkRows(groups), entryStart(groups), entryCount(groups);
    for (int s = 0; s < groups; s++) {
        chunkFirst[s] = 3 + s * chunk; // rows 0-2 belong to no chunk
        chunkRows[s] = s == groups - 1 ? lastRows : chunk;
        entryStart[s] = s * entriesPerGroup;
        entryCount[s] = entriesPerGroup;
    }
    std::vector<long long> aPtr(entries), vPtr(entries), alonePtr(entries);
    for (int e = 0; e < entries; e++) {
        a[e].resize((size_t) rank * in);
        for (auto& w : a[e]) w = normal(rng) * 0.05f;
        v[e].assign((size_t) chunk * rank, -7.f); // rows past a short chunk keep -7
        alone[e].assign(v[e].size(), -7.f);
        aPtr[e] = (long long) a[e].data();
        vPtr[e] = (long long) v[e].data();
        alonePtr[e] = (long long) alone[e].data();
    }
    int octets = (entriesPerGroup * rank + 7) / 8, warps = std::max(LC_MIN_WARPS, std::min(LC_MAX_WARPS, octets)), rowTiles = (chunk + LC_ROWS - 1) / LC_ROWS;
    int octetBlocks = (octets + warps - 1) / warps;
    emu::launch(dim3{(unsigned) groups, (unsigned) (rowTiles * octetBlocks), 1}, dim3{(unsigned) (32 * warps), 1, 1}, 0, lora_shrink_chunks,
                x.data(), in, chunkFirst.data(), chunkRows.data(), entryStart.data(), entryCount.data(), aPtr.data(), vPtr.data(), rank, rowTiles);
    std::string shape = std::to_string(groups) + " chunks of " + std::to_string(chunk) + " (last " + std::to_string(lastRows) + "), " +
                        std::to_string(entriesPerGroup) + " entries of rank " + std::to_string(rank) + ", in " + std::to_string(in);
    std::vector<float> got, joined, single;
    std::vector<double> want;
    for (int s = 0; s < groups; s++)
        for (int m = 0; m < entriesPerGroup; m++) {
            int e = s * entriesPerGroup + m;
            for (int i = 0; i < chunk; i++)
                for (int j = 0; j < rank; j++) {
                    double sum = 0;
                    if (i < chunkRows[s])
                        for (int c = 0; c < in; c++) sum += (double) x[(size_t) (chunkFirst[s] + i) * in + c] * a[e][(size_t) j * in + c];
                    got.push_back(v[e][(size_t) i * rank + j]);
                    want.push_back(i < chunkRows[s] ? sum : -7.0);
                }
        }
    check("lora_shrink_chunks: " + shape, got, want, 1e-6); // float32 stage sums: ~3e-7 here
    // Each entry alone: a group of its own, its octets in blocks of their own.
    for (int e = 0; e < entries; e++) {
        int s = e / entriesPerGroup, one = (rank + 7) / 8, w1 = std::max(LC_MIN_WARPS, std::min(LC_MAX_WARPS, one)), start = e, count = 1;
        emu::launch(dim3{1, (unsigned) (rowTiles * ((one + w1 - 1) / w1)), 1}, dim3{(unsigned) (32 * w1), 1, 1}, 0, lora_shrink_chunks, x.data(), in,
                    &chunkFirst[s], &chunkRows[s], &start, &count, aPtr.data(), alonePtr.data(), rank, rowTiles);
        joined.insert(joined.end(), v[e].begin(), v[e].end());
        single.insert(single.end(), alone[e].begin(), alone[e].end());
    }
    sameBits("lora_shrink_chunks, each entry alone against joined: " + shape, single, joined);
}

// ---- the chunks' float32 expand (lora_expand_chunks8/16/32) against float64: entries of different widths (one not a
// block's multiple), rows and scales, into one output at different row offsets; the rows past each entry's untouched.
static void chunkExpand(int rank, int kernelRank, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.f, 1.f);
    struct Entry { int rows, outs, first; float scale; };
    std::vector<Entry> entries = {{64, 300, 0, 0.5f}, {37, 300, 70, -2.f}, {128, 256, 0, 1.25f}, {1, 520, 3, 3.f}};
    int T = 200;
    std::vector<std::vector<float>> v(entries.size()), b(entries.size()), out(entries.size());
    std::vector<long long> vPtr, bPtr, outPtr;
    std::vector<int> outCols, rows;
    std::vector<float> scale;
    for (size_t e = 0; e < entries.size(); e++) {
        v[e].resize((size_t) entries[e].rows * rank);
        b[e].resize((size_t) entries[e].outs * rank);
        out[e].resize((size_t) T * entries[e].outs);
        for (auto& x : v[e]) x = normal(rng);
        for (auto& x : b[e]) x = normal(rng);
        for (auto& x : out[e]) x = normal(rng);
        vPtr.push_back((long long) v[e].data());
        bPtr.push_back((long long) b[e].data());
        outPtr.push_back((long long) (out[e].data() + (size_t) entries[e].first * entries[e].outs));
        outCols.push_back(entries[e].outs);
        rows.push_back(entries[e].rows);
        scale.push_back(entries[e].scale);
    }
    std::vector<std::vector<float>> before = out;
    auto kernel = kernelRank == 8 ? lora_expand_chunks8 : kernelRank == 16 ? lora_expand_chunks16 : lora_expand_chunks32;
    emu::launch(dim3{(unsigned) entries.size(), (unsigned) ((520 + LE_COLS - 1) / LE_COLS), 1}, dim3{LE_COLS, 1, 1}, 0, kernel, vPtr.data(),
                bPtr.data(), outPtr.data(), outCols.data(), rows.data(), scale.data(), rank);
    std::vector<float> got;
    std::vector<double> want;
    for (size_t e = 0; e < entries.size(); e++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < entries[e].outs; c++) {
                size_t at = (size_t) t * entries[e].outs + c;
                int i = t - entries[e].first;
                double w = before[e][at];
                if (i >= 0 && i < entries[e].rows) {
                    double sum = 0;
                    for (int j = 0; j < rank; j++) sum += (double) b[e][(size_t) c * rank + j] * v[e][(size_t) i * rank + j];
                    w += entries[e].scale * sum;
                }
                got.push_back(out[e][at]);
                want.push_back(w);
            }
    check("lora_expand_chunks" + std::to_string(kernelRank) + ": rank " + std::to_string(rank) + ", 4 entries", got, want, 2e-6);
}

// ---- stacked LoRA runs (session 16): the factors laid side by side and the mask between the products,
// against the plain per-row computation (LoraStack.Pass.keeps on the Java side).
static void stacked(int classes, int rows, int type, std::mt19937& rng) {
    std::uniform_int_distribution<int> pick(0, 1 << 20);
    // Each class: runs of rows (sorted, disjoint, gaps between some), each run a group; columns per class.
    std::vector<int> classRuns{0}, runFirst, runEnd, runGroup, columnClass, columnGroup;
    std::vector<float> columnScale;
    for (int c = 0; c < classes; c++) {
        int row = pick(rng) % 3, groups = 1 + pick(rng) % 4;
        while (row < rows) {
            int len = 1 + pick(rng) % 7;
            runFirst.push_back(row);
            runEnd.push_back(std::min(rows, row + len));
            runGroup.push_back(pick(rng) % groups);
            row += len + pick(rng) % 3; // sometimes a gap: rows of no run in this class
        }
        classRuns.push_back((int) runFirst.size());
        for (int g = 0; g < groups; g++)
            for (int j = 0, r = 1 + pick(rng) % 3; j < r; j++) {
                columnClass.push_back(c);
                columnGroup.push_back(g);
                columnScale.push_back(0.5f + (float) (pick(rng) % 4));
            }
    }
    int columns = (int) columnClass.size();
    std::vector<int> rowOf(rows);
    for (int i = 0; i < rows; i++) rowOf[i] = (i * 5 + 3) % rows;
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<float> v((size_t) rows * columns);
    for (auto& e : v) e = normal(rng);
    std::vector<u16> out((size_t) rows * columns, 0xffff);
    emu::launch(dim3{(unsigned) rows, 1, 1}, dim3{64, 1, 1}, 0, lora_stack_mask, v.data(), out.data(), columns, rowOf.data(), columnClass.data(),
                columnGroup.data(), columnScale.data(), classRuns.data(), runFirst.data(), runEnd.data(), runGroup.data(), classes, type == 1 ? 1 : 0);
    size_t wrong = 0;
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < columns; k++) {
            int c = columnClass[k], mine = -1;
            for (int r = classRuns[c]; r < classRuns[c + 1]; r++)
                if (runFirst[r] <= rowOf[i] && rowOf[i] < runEnd[r]) mine = runGroup[r];
            u16 want = mine == columnGroup[k] ? to16(v[(size_t) i * columns + k] * columnScale[k], type) : (u16) 0;
            wrong += out[(size_t) i * columns + k] != want;
        }
    report(wrong == 0, "lora_stack_mask: " + std::to_string(classes) + " classes, " + std::to_string(rows) + " rows, " + std::to_string(columns) +
                           " columns (" + std::to_string(wrong) + " wrong)", (double) wrong, 0);
}

// lora_stack_rows: row k of the stack is the row src[k] points at; lora_stack_columns: column k is src[k][j · stride[k]].
static void stackedFactors() {
    for (int cols : {64, 36}) {
        std::vector<u16> a((size_t) 5 * cols);
        for (size_t i = 0; i < a.size(); i++) a[i] = (u16) (i * 2654435761u >> 16);
        std::vector<long long> src = {(long long) (a.data() + 3 * cols), (long long) a.data(), (long long) (a.data() + 4 * cols)};
        std::vector<u16> dst(3 * cols + 8, 7);
        emu::launch(dim3{3, 1, 1}, dim3{32, 1, 1}, 0, lora_stack_rows, src.data(), dst.data(), cols);
        bool ok = std::memcmp(dst.data(), a.data() + 3 * cols, cols * 2) == 0 && std::memcmp(dst.data() + cols, a.data(), cols * 2) == 0 &&
                  std::memcmp(dst.data() + 2 * cols, a.data() + 4 * cols, cols * 2) == 0 && dst[3 * cols] == 7;
        report(ok, "lora_stack_rows: rows of " + std::to_string(cols), ok ? 0 : 1, 0);
    }
    {
        int bRows = 10;
        std::vector<u16> b1(bRows * 4), b2(bRows * 2);
        for (size_t i = 0; i < b1.size(); i++) b1[i] = (u16) (100 + i);
        for (size_t i = 0; i < b2.size(); i++) b2[i] = (u16) (500 + i);
        // the stack's columns: b1's columns 1 and 3, b2's column 0 (B's rows hold rank values: stride)
        std::vector<long long> src = {(long long) (b1.data() + 1), (long long) (b1.data() + 3), (long long) b2.data()};
        std::vector<int> stride = {4, 4, 2};
        std::vector<u16> dst(bRows * 3, 0);
        emu::launch(dim3{(unsigned) bRows, 1, 1}, dim3{32, 1, 1}, 0, lora_stack_columns, src.data(), stride.data(), dst.data(), bRows, 3);
        size_t bad = 0;
        for (int j = 0; j < bRows; j++) bad += dst[j * 3] != b1[j * 4 + 1] || dst[j * 3 + 1] != b1[j * 4 + 3] || dst[j * 3 + 2] != b2[j * 2];
        report(bad == 0, "lora_stack_columns", (double) bad, 0);
    }
}

// ---- a decode step's other kernels: the RMSNorm (and its 16-bit copy), RoPE with the cache write, the logits' summary.
static void rmsNorm(int rows, int cols, int type, std::mt19937& rng) {
    std::vector<float> x, wf;
    std::vector<u16> xh, w;
    fill(x, xh, (size_t) rows * cols, 0, rng, 2.f);
    fill(wf, w, cols, type, rng, 1.f);
    float eps = 1e-6f;
    std::vector<float> out((size_t) rows * cols, NAN);
    std::vector<u16> h((size_t) rows * cols, 0xffff);
    emu::launch(dim3{(unsigned) rows, 1, 1}, dim3{RMS_THREADS, 1, 1}, 0, rms_norm, x.data(), (const void*) w.data(), type, eps, out.data(), cols,
                h.data(), type == 1 ? 1 : 0);
    std::vector<double> want(out.size());
    size_t badRounding = 0;
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int c = 0; c < cols; c++) ss += (double) x[(size_t) r * cols + c] * x[(size_t) r * cols + c];
        double inv = 1.0 / std::sqrt(ss / cols + eps);
        for (int c = 0; c < cols; c++) want[(size_t) r * cols + c] = x[(size_t) r * cols + c] * inv * wf[c];
    }
    for (size_t i = 0; i < out.size(); i++) badRounding += h[i] != to16(out[i], type);
    std::string what = "rms_norm: " + std::to_string(rows) + " x " + std::to_string(cols) + (type == 1 ? ", bf16" : ", f16");
    check(what, out, want, 1e-6);
    report(badRounding == 0, what + ": the 16-bit copy is the output rounded (" + std::to_string(badRounding) + " not)", (double) badRounding, 0);
    std::vector<u16> alone(h.size(), 0xffff); // no float32 rows: the 16-bit copy alone, the same bits
    emu::launch(dim3{(unsigned) rows, 1, 1}, dim3{RMS_THREADS, 1, 1}, 0, rms_norm, x.data(), (const void*) w.data(), type, eps, (float*) nullptr, cols,
                alone.data(), type == 1 ? 1 : 0);
    report(alone == h, what + ": without the float32 rows, the same 16-bit copy", alone == h ? 0 : 1, 0);
}

static void rotaryWriteKv(int type, int heads, int kvHeads, int headDim, const std::vector<int>& positions, const std::vector<int>& slots, int parts,
                          std::mt19937& rng) {
    int T = (int) positions.size(), qWidth = heads * headDim, kvWidth = kvHeads * headDim, half = headDim / 2;
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<float> q((size_t) T * qWidth), k((size_t) T * kvWidth), v((size_t) T * kvWidth), invFreq(half);
    for (auto& e : q) e = normal(rng);
    for (auto& e : k) e = normal(rng);
    for (auto& e : v) e = normal(rng);
    for (int j = 0; j < half; j++) invFreq[j] = (float) std::pow(10000.0, -2.0 * j / headDim);
    int cacheSlots = 64, bytes = type == 0 ? 4 : 2;
    std::vector<unsigned char> cacheK((size_t) cacheSlots * kvWidth * bytes, 0xab), cacheV(cacheK.size(), 0xab);
    std::vector<float> q0 = q, k0 = k;
    emu::launch(dim3{(unsigned) T, (unsigned) parts, 1}, dim3{128, 1, 1}, 0, rotary_write_kv, q.data(), qWidth, k.data(), (const float*) v.data(),
                kvWidth, headDim, invFreq.data(), positions.data(), (void*) cacheK.data(), (void*) cacheV.data(), slots.data(), type);
    std::vector<double> wantQ(q.size()), wantK(k.size());
    auto rotate = [&](const std::vector<float>& x, std::vector<double>& out, int width) {
        for (int t = 0; t < T; t++)
            for (int h = 0; h < width / headDim; h++)
                for (int j = 0; j < half; j++) {
                    double angle = (double) (float) ((float) positions[t] * invFreq[j]); // the kernel's float angle
                    double c = std::cos(angle), s = std::sin(angle);
                    size_t at = (size_t) t * width + h * headDim + j;
                    out[at] = x[at] * c - x[at + half] * s;
                    out[at + half] = x[at + half] * c + x[at] * s;
                }
    };
    rotate(q0, wantQ, qWidth);
    rotate(k0, wantK, kvWidth);
    std::string what = std::string("rotary_write_kv (") + (type == 0 ? "f32" : type == 1 ? "bf16" : "f16") + " cache, heads " + std::to_string(heads) +
                       "/" + std::to_string(kvHeads) + ", " + std::to_string(parts) + (parts == 1 ? " part" : " parts") + " a token)";
    check(what + ": q", q, wantQ, 2e-6);
    check(what + ": k", k, wantK, 2e-6);
    // The cache: each token's rotated k and its v at its slot, in the cache's type; other slots untouched.
    size_t wrong = 0;
    std::vector<int> owner(cacheSlots, -1);
    for (int t = 0; t < T; t++)
        if (slots[t] >= 0) owner[slots[t]] = t;
    for (int sl = 0; sl < cacheSlots; sl++)
        for (int c = 0; c < kvWidth; c++) {
            size_t at = (size_t) sl * kvWidth + c;
            for (int which = 0; which < 2; which++) {
                const unsigned char* cache = which == 0 ? cacheK.data() : cacheV.data();
                unsigned char want[4] = {0xab, 0xab, 0xab, 0xab};
                if (owner[sl] >= 0) {
                    float value = which == 0 ? k[(size_t) owner[sl] * kvWidth + c] : v[(size_t) owner[sl] * kvWidth + c];
                    if (type == 0) std::memcpy(want, &value, 4);
                    else {
                        u16 h = to16(value, type);
                        std::memcpy(want, &h, 2);
                    }
                }
                wrong += std::memcmp(cache + at * bytes, want, bytes) != 0;
            }
        }
    report(wrong == 0, what + ": the cache (" + std::to_string(wrong) + " values wrong)", (double) wrong, 0);
}

static void logitSummary(int rows, int vocab, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.f, 3.f);
    std::vector<float> logits((size_t) rows * vocab);
    for (auto& e : logits) e = normal(rng);
    // row 1: the maximum twice (the first index wins); row 2: every value the same
    if (rows > 2) {
        logits[(size_t) vocab + 17] = logits[(size_t) vocab + vocab - 3] = 40.f;
        std::fill(logits.begin() + 2 * vocab, logits.begin() + 3 * vocab, -1.5f);
    }
    std::vector<double> lse(rows, NAN);
    std::vector<float> top(rows, NAN);
    std::vector<int> arg(rows, -1);
    emu::launch(dim3{(unsigned) rows, 1, 1}, dim3{1024, 1, 1}, 0, logit_summary, logits.data(), vocab, lse.data(), top.data(), arg.data());
    bool ok = true;
    double err = 0;
    for (int r = 0; r < rows; r++) {
        const float* row = logits.data() + (size_t) r * vocab;
        int best = (int) (std::max_element(row, row + vocab) - row); // the first of equal maxima
        double s = 0;
        for (int i = 0; i < vocab; i++) s += std::exp((double) row[i] - row[best]);
        double want = row[best] + std::log(s);
        err = std::max(err, std::abs(lse[r] - want) / std::max(1.0, std::abs(want)));
        ok &= arg[r] == best && top[r] == row[best];
    }
    report(ok && err < 1e-12, "logit_summary: " + std::to_string(rows) + " rows of " + std::to_string(vocab) + " (ties: the first index)", err, 1e-12);
}

static double silu(double x) { return x / (1.0 + std::exp(-x)); }

// ---- StarCoder's norm, the prompt's RoPE, the fused q/k/v split, the 16-bit copies, the gated activation.
static void misc(std::mt19937& rng) {
    std::normal_distribution<float> normal(0.f, 1.f);
    { // layer_norm: (x - mean) / sqrt(var + eps) * w + b, mean and variance in float64
        int rows = 3, cols = 777;
        std::vector<float> x((size_t) rows * cols), wf, bf, out((size_t) rows * cols, NAN);
        std::vector<u16> w, b;
        for (auto& e : x) e = 3.f + normal(rng);
        fill(wf, w, cols, 1, rng, 1.f);
        fill(bf, b, cols, 1, rng, 1.f);
        emu::launch(dim3{(unsigned) rows, 1, 1}, dim3{128, 1, 1}, 0, layer_norm, x.data(), (const void*) w.data(), 1, (const void*) b.data(), 1, 1e-5f,
                    out.data(), cols);
        std::vector<double> want(out.size());
        for (int r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (int c = 0; c < cols; c++) mean += x[(size_t) r * cols + c];
            mean /= cols;
            for (int c = 0; c < cols; c++) var += (x[(size_t) r * cols + c] - mean) * (x[(size_t) r * cols + c] - mean);
            double inv = 1.0 / std::sqrt(var / cols + 1e-5);
            for (int c = 0; c < cols; c++) want[(size_t) r * cols + c] = (x[(size_t) r * cols + c] - mean) * inv * wf[c] + bf[c];
        }
        check("layer_norm: 3 x 777, bf16 weight and bias", out, want, 1e-6);
    }
    { // rotary_qk (q and k in one launch) gives rotary's values, q's and k's launched apart
        int T = 3, headDim = 64, qWidth = 4 * headDim, kWidth = 2 * headDim;
        std::vector<float> q((size_t) T * qWidth), k((size_t) T * kWidth), invFreq(headDim / 2);
        for (auto& e : q) e = normal(rng);
        for (auto& e : k) e = normal(rng);
        for (int j = 0; j < headDim / 2; j++) invFreq[j] = (float) std::pow(500000.0, -2.0 * j / headDim);
        std::vector<int> positions = {0, 41, 4097};
        std::vector<float> q2 = q, k2 = k;
        emu::launch(dim3{(unsigned) T, 1, 1}, dim3{128, 1, 1}, 0, rotary_qk, q.data(), qWidth, k.data(), kWidth, headDim, invFreq.data(),
                    (const int*) positions.data());
        emu::launch(dim3{(unsigned) T, 1, 1}, dim3{128, 1, 1}, 0, rotary, q2.data(), qWidth, headDim, (const float*) invFreq.data(), (const int*) positions.data());
        emu::launch(dim3{(unsigned) T, 1, 1}, dim3{128, 1, 1}, 0, rotary, k2.data(), kWidth, headDim, (const float*) invFreq.data(), (const int*) positions.data());
        sameBits("rotary_qk against rotary: q", q, q2);
        sameBits("rotary_qk against rotary: k", k, k2);
    }
    for (int perHead : {0, 1}) { // split_qkv: [q | k | v] or, per head, [q_h k_h v_h] (Falcon-like)
        int T = 2, headDim = 8, heads = 3, qw = heads * headDim, kw = qw * perHead + (1 - perHead) * 2 * headDim, width = qw + 2 * kw;
        std::vector<float> fused((size_t) T * width), q((size_t) T * qw, NAN), k((size_t) T * kw, NAN), v((size_t) T * kw, NAN);
        for (size_t i = 0; i < fused.size(); i++) fused[i] = (float) i;
        emu::launch(dim3{(unsigned) T, 1, 1}, dim3{32, 1, 1}, 0, split_qkv, (const float*) fused.data(), q.data(), k.data(), v.data(), qw, kw, headDim, perHead);
        size_t wrong = 0;
        for (int t = 0; t < T; t++)
            for (int i = 0; i < width; i++) {
                float got;
                if (perHead) {
                    int h = i / (3 * headDim), part = i % (3 * headDim) / headDim, d = i % headDim;
                    got = (part == 0 ? q : part == 1 ? k : v)[(size_t) t * qw + h * headDim + d];
                } else {
                    got = i < qw ? q[(size_t) t * qw + i] : i < qw + kw ? k[(size_t) t * kw + i - qw] : v[(size_t) t * kw + i - qw - kw];
                }
                wrong += got != fused[(size_t) t * width + i];
            }
        report(wrong == 0, std::string("split_qkv") + (perHead ? " (per head)" : "") + " (" + std::to_string(wrong) + " wrong)", (double) wrong, 0);
    }
    for (int bf16 : {0, 1}) { // to_half: 8 a load and the tail, round to nearest even (NaN, infinities, ties)
        long long n = 1003;
        std::vector<float> x(n);
        for (auto& e : x) e = 100.f * normal(rng);
        x[3] = NAN;
        x[4] = INFINITY;
        x[5] = -INFINITY;
        x[6] = 1e6f;         // past f16's range: infinity
        x[7] = 1.f + 1.f / 256; // a bf16 tie: rounds to even
        std::vector<u16> h[2];
        for (int vec = 0; vec < 2; vec++) {
            h[vec].assign(n, 0);
            emu::launch(dim3{2, 1, 1}, dim3{64, 1, 1}, 0, to_half, (const float*) x.data(), h[vec].data(), n, vec, bf16);
        }
        // bf16 by its definition, not by the kernels' f32_to_bf16: the nearer of the two neighbours, ties to even.
        auto bf16Of = [](float f) -> u16 {
            if (std::isnan(f)) return 0x7fc0;
            unsigned b = __float_as_uint(f);
            u16 down = (u16) (b >> 16), up = (u16) (down + 1);
            double below = std::abs((double) __uint_as_float((unsigned) down << 16) - f), above = std::abs((double) __uint_as_float((unsigned) up << 16) - f);
            if ((b & 0xffffu) == 0) return down;
            return below < above ? down : above < below ? up : (down & 1) ? up : down;
        };
        size_t wrong = 0;
        for (long long i = 0; i < n; i++) {
            u16 want = bf16 ? bf16Of(x[i]) : to16(x[i], 2);
            bool nan = std::isnan(x[i]) && std::isnan(from16(h[1][i], bf16 ? 1 : 2));
            wrong += (h[1][i] != want && !nan) || h[0][i] != h[1][i];
        }
        report(wrong == 0, std::string("to_half (") + (bf16 ? "bf16" : "f16") + "): vector and scalar loops, " + std::to_string(wrong) + " wrong", (double) wrong, 0);
    }
    for (int act = 0; act < 4; act++) { // gated_activation: act(gate) · up, four a load and the tail
        long long n = 517;
        std::vector<float> g(n), u(n), out[2];
        for (long long i = 0; i < n; i++) {
            g[i] = 4.f * normal(rng);
            u[i] = normal(rng);
        }
        for (int vec = 0; vec < 2; vec++) {
            out[vec].assign(n, NAN);
            emu::launch(dim3{3, 1, 1}, dim3{32, 1, 1}, 0, gated_activation, act, (const float*) g.data(), (const float*) u.data(), out[vec].data(), n, vec);
        }
        std::vector<double> want(n);
        for (long long i = 0; i < n; i++) {
            double x = g[i], a = act == 0 ? silu(x) : act == 1 ? 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)))
                                 : act == 2 ? 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))) : std::max(x, 0.0);
            want[i] = a * u[i];
        }
        const char* names[] = {"silu", "gelu", "gelu (tanh)", "relu"};
        check(std::string("gated_activation ") + names[act], out[1], want, 2e-6);
        sameBits(std::string("gated_activation ") + names[act] + ": vector loop against scalar", out[1], out[0]);
        for (int bf16 = 0; bf16 < 2; bf16++) { // gated_activation_half: gated_activation then to_half, bit for bit
            std::vector<u16> rounded(n), half[2];
            emu::launch(dim3{3, 1, 1}, dim3{32, 1, 1}, 0, to_half, (const float*) out[1].data(), rounded.data(), n, 1, bf16);
            for (int vec = 0; vec < 2; vec++) {
                half[vec].assign(n, 0xffffu);
                emu::launch(dim3{3, 1, 1}, dim3{32, 1, 1}, 0, gated_activation_half, act, (const float*) g.data(), (const float*) u.data(),
                            half[vec].data(), n, vec, bf16);
            }
            size_t wrong = 0;
            for (long long i = 0; i < n; i++) wrong += half[0][i] != rounded[i] || half[1][i] != rounded[i];
            report(wrong == 0, std::string("gated_activation_half ") + names[act] + (bf16 ? " (bf16)" : " (f16)") + ": gated_activation then to_half, "
                   + std::to_string(wrong) + " differ", (double) wrong, 0);
        }
    }
}

// ---- the decode GEMVs (the default decode step's products; checked on the H200 since session 3):
// plain with a bias and accumulating, q/k/v in one launch with the RMSNorm fused, the gated MLP with it,
// and fLoRA's fused GEMV, against float64 of the inputs as the kernels round them.
template <int T> struct Gemv {
    static constexpr auto plain = T == 1 ? gemv1 : T == 2 ? gemv2 : T == 3 ? gemv3 : gemv4;
    static constexpr auto multiNorm = T == 1 ? gemv_multi_norm1 : T == 2 ? gemv_multi_norm2 : T == 3 ? gemv_multi_norm3 : gemv_multi_norm4;
    static constexpr auto gatedNorm = T == 1 ? gemv_gated_norm1 : T == 2 ? gemv_gated_norm2 : T == 3 ? gemv_gated_norm3 : gemv_gated_norm4;
};

template <int T> static void gemvs(int type, int in, std::mt19937& rng) {
    int bf16 = type == 1;
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<float> x((size_t) T * in);
    for (auto& v : x) v = normal(rng);
    auto weight = [&](int rows, std::vector<float>& f, std::vector<u16>& h) { fill(f, h, (size_t) rows * in, type, rng, 0.05f); };
    auto rnd = [&](float v) { return (double) from16(to16(v, type), type); };
    std::string tag = std::string(bf16 ? "bf16" : "f16") + ", " + std::to_string(T) + " tokens, in " + std::to_string(in);
    // plain: out (+)= x W^T + bias, 37 rows (a partial block of 4)
    {
        int outs = 37;
        std::vector<float> wf, bf;
        std::vector<u16> w, b;
        weight(outs, wf, w);
        fill(bf, b, outs, type, rng, 0.5f);
        for (int accumulate : {0, 1}) {
            std::vector<float> out((size_t) T * outs);
            std::vector<double> want(out.size());
            for (size_t i = 0; i < out.size(); i++) out[i] = want[i] = accumulate ? 0.5f * (float) ((int) (i % 5) - 2) : NAN;
            for (int t = 0; t < T; t++)
                for (int o = 0; o < outs; o++) {
                    double s = bf[o];
                    for (int k = 0; k < in; k++) s += rnd(x[(size_t) t * in + k]) * wf[(size_t) o * in + k];
                    want[(size_t) t * outs + o] = accumulate ? want[(size_t) t * outs + o] + s : s;
                }
            emu::launch(dim3{(unsigned) ((outs + GEMV_ROWS - 1) / GEMV_ROWS), 1, 1}, dim3{GEMV_THREADS, 1, 1}, 0, Gemv<T>::plain, x.data(), w.data(),
                        (const void*) b.data(), type, out.data(), in, outs, bf16, accumulate);
            check("gemv" + std::to_string(T) + (accumulate ? " accumulating: " : ": ") + tag, out, want, 2e-5);
        }
    }
    // RMSNorm fused: h = x / rms(x) * norm, then q, k, v (3 outputs of 16, 8, 9 rows) from h rounded
    std::vector<float> nf;
    std::vector<u16> nh;
    fill(nf, nh, in, type, rng, 1.f);
    float eps = 1e-5f;
    std::vector<double> hd((size_t) T * in);
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int k = 0; k < in; k++) ss += (double) x[(size_t) t * in + k] * x[(size_t) t * in + k];
        double inv = 1.0 / std::sqrt(ss / in + eps);
        for (int k = 0; k < in; k++) hd[(size_t) t * in + k] = x[(size_t) t * in + k] * inv * nf[k];
    }
    {
        int n[3] = {16, 8, 9};
        std::vector<float> wf[3], bf[3], out[3];
        std::vector<u16> w[3], b[3];
        for (int s = 0; s < 3; s++) {
            weight(n[s], wf[s], w[s]);
            fill(bf[s], b[s], n[s], type, rng, 0.5f);
            out[s].assign((size_t) T * n[s], NAN);
        }
        std::vector<float> h((size_t) T * in, NAN);
        int blocks = 0;
        for (int s = 0; s < 3; s++) blocks += (n[s] + GEMV_ROWS - 1) / GEMV_ROWS;
        emu::launch(dim3{(unsigned) blocks, 1, 1}, dim3{GEMV_THREADS, 1, 1}, 0, Gemv<T>::multiNorm, x.data(), (const void*) nh.data(), type, eps,
                    h.data(), in, bf16, w[0].data(), (const void*) b[0].data(), type, out[0].data(), n[0], w[1].data(), (const void*) nullptr, 0,
                    out[1].data(), n[1], w[2].data(), (const void*) b[2].data(), type, out[2].data(), n[2]);
        check("gemv_multi_norm" + std::to_string(T) + ", the normed rows h: " + tag, h, hd, 2e-6);
        for (int s = 0; s < 3; s++) {
            std::vector<double> want((size_t) T * n[s]);
            for (int t = 0; t < T; t++)
                for (int o = 0; o < n[s]; o++) {
                    double v = s == 1 ? 0.0 : bf[s][o];
                    for (int k = 0; k < in; k++) v += rnd((float) hd[(size_t) t * in + k]) * wf[s][(size_t) o * in + k];
                    want[(size_t) t * n[s] + o] = v;
                }
            // a normed value next to a rounding boundary may round the other way: a looser tolerance than the plain GEMV's
            check("gemv_multi_norm" + std::to_string(T) + ", output " + std::to_string(s) + ": " + tag, out[s], want, 2e-3);
        }
    }
    // the gated MLP: act(h·g + bg) · (h·u), silu, 11 outputs (a partial block of 2)
    {
        int outs = 11;
        std::vector<float> gf, uf, bgf, unused;
        std::vector<u16> g, u, bg, unused16;
        weight(outs, gf, g);
        weight(outs, uf, u);
        fill(bgf, bg, outs, type, rng, 0.5f);
        std::vector<float> out((size_t) T * outs, NAN), h((size_t) T * in, NAN);
        emu::launch(dim3{(unsigned) ((outs + 1) / 2), 1, 1}, dim3{GEMV_THREADS, 1, 1}, 0, Gemv<T>::gatedNorm, x.data(), (const void*) nh.data(), type,
                    eps, h.data(), in, bf16, g.data(), (const void*) bg.data(), type, u.data(), (const void*) nullptr, 0, out.data(), outs, 0);
        std::vector<double> want(out.size());
        for (int t = 0; t < T; t++)
            for (int j = 0; j < outs; j++) {
                double a = bgf[j], b = 0;
                for (int k = 0; k < in; k++) {
                    double xv = rnd((float) hd[(size_t) t * in + k]);
                    a += xv * gf[(size_t) j * in + k];
                    b += xv * uf[(size_t) j * in + k];
                }
                want[(size_t) t * outs + j] = silu(a) * b;
            }
        check("gemv_gated_norm" + std::to_string(T) + " (silu): " + tag, out, want, 2e-3);
    }
}

// The batch-1 decode step's fused kernel (gemv_qkv_rope_norm1: norm, q/k/v, RoPE, the cache write)
// against its two kernels (gemv_multi_norm1, then rotary_write_kv): the same bits, as its comment says.
static void qkvRope(int type, int in, int heads, int kvHeads, int headDim, int slot, std::mt19937& rng) {
    int bf16 = type == 1, qWidth = heads * headDim, kvWidth = kvHeads * headDim, half = headDim / 2;
    std::vector<float> x, nf, wf[3], bfv[3];
    std::vector<u16> xh, nh, w[3], b[3];
    fill(x, xh, in, 0, rng, 1.f);
    fill(nf, nh, in, type, rng, 1.f);
    int n[3] = {qWidth, kvWidth, kvWidth};
    for (int i = 0; i < 3; i++) {
        fill(wf[i], w[i], (size_t) n[i] * in, type, rng, 0.05f);
        fill(bfv[i], b[i], n[i], type, rng, 0.5f);
    }
    std::vector<float> invFreq(half);
    for (int j = 0; j < half; j++) invFreq[j] = (float) std::pow(10000.0, -2.0 * j / headDim);
    std::vector<int> positions = {777}, slots = {slot};
    float eps = 1e-5f;
    int cacheSlots = 8;
    struct Result {
        std::vector<float> h, q, k, v;
        std::vector<u16> cacheK, cacheV;
    } r[2];
    for (Result& e : r) {
        e.h.assign(in, NAN);
        e.q.assign(qWidth, NAN);
        e.k.assign(kvWidth, NAN);
        e.v.assign(kvWidth, NAN);
        e.cacheK.assign((size_t) cacheSlots * kvWidth, 0x5555);
        e.cacheV = e.cacheK;
    }
    const void* bq = b[0].data();
    const void* bk = nullptr; // k without a bias, as Llama; q and v with one, as Qwen2
    const void* bv = b[2].data();
    int blocks = qWidth / GEMV_ROWS + kvWidth / GEMV_ROWS + (kvWidth + GEMV_ROWS - 1) / GEMV_ROWS;
    emu::launch(dim3{(unsigned) blocks, 1, 1}, dim3{GEMV_THREADS, 1, 1}, 0, gemv_qkv_rope_norm1, x.data(), (const void*) nh.data(), type, eps,
                r[0].h.data(), in, bf16, w[0].data(), bq, type, r[0].q.data(), qWidth, w[1].data(), bk, 0, r[0].k.data(), w[2].data(), bv, type,
                r[0].v.data(), kvWidth, headDim, invFreq.data(), positions.data(), slots.data(), (void*) r[0].cacheK.data(),
                (void*) r[0].cacheV.data(), type);
    emu::launch(dim3{(unsigned) blocks, 1, 1}, dim3{GEMV_THREADS, 1, 1}, 0, gemv_multi_norm1, x.data(), (const void*) nh.data(), type, eps,
                r[1].h.data(), in, bf16, w[0].data(), bq, type, r[1].q.data(), qWidth, w[1].data(), bk, 0, r[1].k.data(), kvWidth, w[2].data(), bv,
                type, r[1].v.data(), kvWidth);
    emu::launch(dim3{1, 2, 1}, dim3{128, 1, 1}, 0, rotary_write_kv, r[1].q.data(), qWidth, r[1].k.data(), (const float*) r[1].v.data(), kvWidth,
                headDim, invFreq.data(), positions.data(), (void*) r[1].cacheK.data(), (void*) r[1].cacheV.data(), slots.data(), type);
    std::string what = std::string("gemv_qkv_rope_norm1 against gemv_multi_norm1 + rotary_write_kv (") + (bf16 ? "bf16" : "f16") + ", heads " +
                       std::to_string(heads) + "/" + std::to_string(kvHeads) + ", head " + std::to_string(headDim) + ", slot " + std::to_string(slot) + ")";
    sameBits(what + ": h", r[0].h, r[1].h);
    sameBits(what + ": q", r[0].q, r[1].q);
    sameBits(what + ": k", r[0].k, r[1].k);
    sameBits(what + ": v", r[0].v, r[1].v);
    bool cache = r[0].cacheK == r[1].cacheK && r[0].cacheV == r[1].cacheV;
    report(cache, what + ": the cache", cache ? 0 : 1, 0);
}

// fLoRA's fused GEMV: stacked row s = x[xRow] ∘ A_g[j] (a token's r rows consecutive, the first holding r);
// out[outRow][o] = (1/r) Σ_j (round(x ∘ a_j) · W[o]) Bᵀ_j[o] + bias[o].
static void floraGemv(int type, int in, std::mt19937& rng) {
    constexpr int S = 4; // two tokens: ranks 3 and 1
    int outs = 21, bf16 = type == 1;
    std::vector<float> xf, wf, biasf;
    std::vector<u16> xh, w, bias;
    fill(xf, xh, (size_t) 3 * in, 0, rng, 1.f);
    fill(wf, w, (size_t) outs * in, type, rng, 0.05f);
    fill(biasf, bias, outs, type, rng, 0.5f);
    std::vector<float> af[S], btf[S];
    std::vector<u16> ah[S], bth[S];
    int aType[S] = {type, type, type, 0}, btType[S] = {0, type, type, type};
    for (int s = 0; s < S; s++) {
        fill(af[s], ah[s], in, aType[s], rng, 1.f);
        fill(btf[s], bth[s], outs, btType[s], rng, 1.f);
    }
    int xRow[S] = {2, 2, 2, 0}, outRow[S] = {1, 0, 0, 0}, rank[S] = {3, 0, 0, 1};
    std::vector<int> meta(S * FLORA_META);
    std::vector<long long> aRow(S), btRow(S);
    for (int s = 0; s < S; s++) {
        int m[FLORA_META] = {xRow[s], outRow[s], aType[s], btType[s], rank[s]};
        std::copy(m, m + FLORA_META, meta.begin() + s * FLORA_META);
        aRow[s] = (long long) (aType[s] == 0 ? (const void*) af[s].data() : (const void*) ah[s].data());
        btRow[s] = (long long) (btType[s] == 0 ? (const void*) btf[s].data() : (const void*) bth[s].data());
    }
    std::vector<float> out((size_t) 2 * outs, NAN);
    emu::launch(dim3{(unsigned) ((outs + GEMV_ROWS - 1) / GEMV_ROWS), 1, 1}, dim3{GEMV_THREADS, 1, 1}, 0, flora_gemv4, xf.data(), aRow.data(),
                btRow.data(), meta.data(), w.data(), (const void*) bias.data(), type, out.data(), in, outs, bf16);
    std::vector<double> want(out.size());
    for (int s = 0; s < S; s++) {
        if (rank[s] == 0) continue;
        for (int o = 0; o < outs; o++) {
            double sum = 0;
            for (int j = 0; j < rank[s]; j++) {
                double p = 0;
                for (int k = 0; k < in; k++) p += (double) from16(to16(xf[(size_t) xRow[s] * in + k] * af[s + j][k], type), type) * wf[(size_t) o * in + k];
                sum += p * btf[s + j][o];
            }
            want[(size_t) outRow[s] * outs + o] = sum / rank[s] + biasf[o];
        }
    }
    check(std::string("flora_gemv4 (ranks 3 and 1): ") + (bf16 ? "bf16" : "f16") + ", in " + std::to_string(in), out, want, 2e-3);
}

int main(int argc, char** argv) {
    // The parts to run: one, or several joined by commas (none: all of them).
    const std::vector<std::string> parts = {"attention", "tiles", "lora", "flora", "stack", "step", "gemv", "skinny"};
    std::vector<std::string> chosen;
    if (argc > 1) {
        std::string list = argv[1];
        for (size_t at = 0; at <= list.size();) {
            size_t comma = std::min(list.find(',', at), list.size());
            chosen.push_back(list.substr(at, comma - at));
            at = comma + 1;
        }
    }
    for (const std::string& c : chosen) {
        if (argc > 2 || std::find(parts.begin(), parts.end(), c) == parts.end()) {
            std::string names;
            for (const std::string& p : parts) names += (names.empty() ? "" : ", ") + p;
            std::fprintf(stderr, "kernels-emulate: no part '%s'; the parts are %s, one or several joined by commas (none: all of them)\n",
                         argc > 2 ? argv[2] : c.c_str(), names.c_str());
            return 2;
        }
    }
    auto want = [&](const char* part) { return chosen.empty() || std::find(chosen.begin(), chosen.end(), part) != chosen.end(); };
    std::mt19937 rng(20261205);
    if (want("attention")) {
        // contexts across chunk and slot-batch edges; one split and several; minSplit 300 and 600 make a
        // block take several batches of ATTN_V4_SLOTS; a window; grouped-query heads.
        decodeAttention({1, 64, 4, 2, 16, 0, 32, 4, {1, 17, 130, 300}}, rng);
        decodeAttention({2, 128, 2, 1, 16, 0, 32, 1, {5, 129, 257, 520}}, rng);
        decodeAttention({1, 128, 2, 2, 16, 0, 300, 2, {700, 33}}, rng);
        decodeAttention({1, 64, 2, 1, 16, 0, 600, 1, {1100, 600, 601}}, rng);
        decodeAttention({2, 64, 4, 4, 16, 100, 32, 3, {250, 99, 101}}, rng);
    }
    if (want("tiles")) {
        prefillTiles(1, 64, 2, 1, 0, {64, 37, 130}, {0, 5, 0}, rng);
        prefillTiles(2, 128, 2, 2, 0, {70, 16}, {30, 200}, rng);
        prefillTiles(1, 128, 4, 2, 50, {100}, {20}, rng);
        prefillTiles(2, 64, 2, 1, 0, {1, 65}, {0, 63}, rng);
    }
    if (want("lora")) {
        auto ad = [](int rank, int type, int outs, bool bias, float scale) { return Adapter{rank, type, outs, bias, scale, {}, {}, {}, {}, {}, {}}; };
        std::vector<Adapter> mixed = {ad(8, 1, 512, false, 2.f), ad(1, 1, 512, true, 0.5f), ad(64, 2, 384, false, 1.f), ad(3, 0, 200, true, 4.f),
                                      ad(16, 1, 96, false, 0.25f)};
        std::vector<int> tokens = {0, 1, 2, 3, 4, 0, 2, 4, 1, 3};
        for (int blocks : {1, 3, 4}) decodeLora(512, mixed, tokens, blocks, rng, blocks == 1);
        decodeLora(300, {ad(8, 1, 300, true, 2.f), ad(24, 2, 128, false, 1.f)}, {1, 0, 1}, 2, rng); // in % 8 != 0: the scalar shrink
        // float32 factors (as PEFT saves them): 16-byte loads (LORA_WIDE_LOADS=1, the default) where the rank allows (3 does not)
        decodeLora(512, {ad(8, 0, 512, false, 2.f), ad(4, 0, 384, true, 0.5f), ad(12, 0, 200, false, 1.f), ad(3, 0, 96, true, 4.f)},
                   {0, 1, 2, 3, 0, 2, 1}, 2, rng, false);
        std::vector<int> runs(45, 0); // a prompt's tokens: 40 of one adapter (tiles of 32 and 8), then 5 of another
        std::fill(runs.begin() + 40, runs.end(), 1);
        decodeLora(1100, {ad(16, 1, 300, true, 2.f), ad(64, 2, 1100, false, 0.5f)}, runs, 2, rng); // two spans of the tiled shrink
        // the prompt runs' float32 shrink in chunks: q, k, v joined (3 octets), ranks not a multiple of 8, a short
        // last chunk, a width not a multiple of a stage, more octets than a block's warps (rank 64 x 3: 24 > 16)
        chunkShrink(256, 8, 3, 3, 64, 64, rng);
        chunkShrink(100, 5, 2, 3, 40, 33, rng);
        chunkShrink(70, 64, 2, 3, 32, 7, rng);
        chunkShrink(64, 8, 4, 1, 50, 1, rng);
        chunkExpand(8, 8, rng);
        chunkExpand(5, 8, rng);
        chunkExpand(16, 16, rng);
        chunkExpand(11, 32, rng);
        chunkExpand(32, 32, rng);
    }
    if (want("flora")) {
        floraPrompt(1, 1032, 72, {0, 1, 0, 2, 2, 1, 0}, {1, 4, 2}, rng);
        floraPrompt(2, 64, 1030, {1, 0}, {3, 8}, rng); // outputs past one block's 1,024 columns
    }
    if (want("stack")) {
        stacked(1, 40, 1, rng);
        stacked(5, 64, 2, rng);
        stacked(16, 33, 1, rng);
        stackedFactors();
    }
    if (want("step")) {
        rmsNorm(3, 1000, 1, rng);
        rmsNorm(2, 1001, 2, rng); // not a multiple of 4: the scalar loop
        rotaryWriteKv(1, 4, 2, 64, {0, 5, 1999, 300}, {3, -1, 40, 7}, 3, rng);
        rotaryWriteKv(2, 2, 2, 128, {17, 18}, {10, 11}, 1, rng);
        rotaryWriteKv(0, 4, 1, 64, {1000}, {63}, 2, rng);
        logitSummary(3, 5000, rng);
        misc(rng);
    }
    if (want("gemv")) {
        gemvs<1>(1, 512, rng);
        gemvs<2>(2, 1024, rng);
        gemvs<3>(1, 2056, rng); // not a multiple of a block's 1,024-column step
        gemvs<4>(2, 256, rng);
        qkvRope(1, 512, 4, 2, 64, 5, rng);
        qkvRope(2, 264, 2, 2, 128, -1, rng); // a recorded step's padding: no cache write
        floraGemv(1, 512, rng);
        floraGemv(2, 1032, rng);
    }
    if (want("skinny")) {
        skinny(1, 1, 256, 128, 256, 0, rng);
        skinny(1, 5, 512, 200, 128, 0, rng);
        skinny(2, 64, 256, 256, 64, 1, rng);
        skinny(1, 17, 384, 130, 96, 1, rng);
        skinny(2, 9, 64, 300, 32, 0, rng);
    }
    // The kernels that stage with cp.async once more, their copies landing at issue rather than at the
    // wait that covers them: a copy into a buffer that other threads still read, with no barrier
    // between, then changes what they read (the hardware may land a copy at either time).
    if (!emu_copy_eager) {
        emu_copy_eager = true;
        pass = " [copies at issue]";
        if (want("attention")) decodeAttention({1, 128, 2, 2, 16, 0, 300, 2, {700, 33}}, rng);
        if (want("tiles")) {
            prefillTiles(1, 64, 2, 1, 0, {64, 37, 130}, {0, 5, 0}, rng);
            prefillTiles(1, 128, 4, 2, 50, {100}, {20}, rng);
        }
        if (want("skinny")) {
            skinny(1, 5, 512, 200, 128, 0, rng);
            skinny(2, 64, 256, 256, 64, 1, rng);
        }
    }
    std::printf("%d of %d checks failed\n", failures, cases);
    return failures == 0 ? 0 : 1;
}
