package dev.flora.adapter;

import dev.flora.backend.Backend;
import dev.flora.backend.DType;
import dev.flora.backend.Tensor;
import dev.flora.backend.WeakDeviceCaches;
import dev.flora.model.Linear;
import dev.flora.safetensors.SafetensorsWriter;
import dev.flora.safetensors.TensorView;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * LoRA as the fLoRA paper's baseline ran it (torch.bmm in vLLM 0.1.3): every sequence's tokens
 * padded to the longest sequence of the step and every adapter's A and B zero-padded to the
 * largest rank, then the same batched products for each (padding costs work and changes nothing:
 * zero rows and ranks). The padded copies are made once per adapter module and rank and kept while
 * the adapter lives (weakly), as a bmm implementation keeps its stacked weights: only the padding
 * work itself is measured, not rebuilding it.
 */
final class PaddedLora {
    private static final Map<AdapterModule.Lora, Map<PadKey, Tensor[]>> PADDED = WeakDeviceCaches.create();

    private record PadKey(int rank, DType type) {
    }

    private PaddedLora() {
    }

    /**
     * out[rows] += scale · (B (A x) + bias) for every sequence's rows with its own adapter: one gather,
     * two batched products over all sequences, one scatter (per sequence when scales differ or
     * adapters have biases).
     */
    static void project(Backend backend, StepBuffers buffers, List<int[]> sequences, List<AdapterModule.Lora> adapters, Linear linear, Tensor x, Tensor out) {
        int longest = 0;
        int rank = 0;
        for (int g = 0; g < sequences.size(); g++) {
            longest = Math.max(longest, sequences.get(g).length);
            rank = Math.max(rank, adapters.get(g).rank());
        }
        int in = linear.inFeatures();
        int outs = linear.outFeatures();
        int b = sequences.size();
        // One batched tensor per operand, [b × longest, ·], as torch.bmm takes them; sequence g owns
        // rows [g · longest, (g + 1) · longest), the rows past its length copies of its first row
        // (their products are computed, as bmm's padding is, and never written back).
        int[] gather = new int[b * longest];
        Tensor[] as = new Tensor[b];
        Tensor[] bs = new Tensor[b];
        Tensor[] scaledBiases = new Tensor[b];
        boolean oneScale = true;
        boolean biases = false;
        for (int g = 0; g < b; g++) {
            int[] rows = sequences.get(g);
            for (int i = 0; i < longest; i++) {
                gather[g * longest + i] = rows[Math.min(i, rows.length - 1)];
            }
            AdapterModule.Lora lora = adapters.get(g);
            Tensor[] ab = padded(backend, lora, rank, in, outs, linear.weight().dtype());
            as[g] = ab[0];
            bs[g] = ab[1];
            scaledBiases[g] = ab[2];
            oneScale &= lora.scale() == adapters.get(0).scale();
            biases |= lora.bias() != null;
        }
        Tensor xp = buffers.get(StepBuffers.Use.PADDED_INPUT, b * longest, in);
        Tensor v = buffers.get(StepBuffers.Use.PADDED_SHRUNK, b * longest, rank);
        Tensor d = buffers.get(StepBuffers.Use.PADDED_OUTPUT, b * longest, outs);
        backend.gatherRows(x, gather, xp);
        backend.batchedLinear(xp, as, longest, v);
        backend.batchedLinear(v, bs, longest, d);
        if (oneScale && !biases) {
            int[] from = new int[x.rows()];
            int[] to = new int[x.rows()];
            int n = 0;
            for (int g = 0; g < b; g++) {
                for (int i = 0; i < sequences.get(g).length; i++, n++) {
                    from[n] = g * longest + i;
                    to[n] = sequences.get(g)[i];
                }
            }
            Tensor kept = buffers.get(StepBuffers.Use.PADDED_KEPT, n, outs);
            backend.gatherRows(d, java.util.Arrays.copyOf(from, n), kept);
            backend.scatterRows(kept, java.util.Arrays.copyOf(to, n), adapters.get(0).scale(), null, true, out);
            return;
        }
        for (int g = 0; g < b; g++) {
            int[] rows = sequences.get(g);
            AdapterModule.Lora lora = adapters.get(g);
            Tensor dg = backend.rows(d, g * longest, rows.length);
            backend.scatterRows(dg, rows, lora.scale(), scaledBiases[g], true, out);
        }
    }

    /**
     * Makes the adapters' padded copies at each module's own rank ahead of their first step, as a bmm
     * server stacks an adapter's weights when it loads it: otherwise the first step to use one reads
     * its A and B back from the device for every layer, stalling the stream inside a timed run. The
     * read-backs and uploads stay on this thread; the padding and rounding between them run on every
     * core, a window of modules at a time.
     */
    static void prepare(Backend backend, List<Adapter> adapters, Map<String, Linear> linears) {
        record Work(AdapterModule.Lora lora, int in, int outs, DType type) {
        }
        List<Work> work = new java.util.ArrayList<>();
        for (Adapter adapter : adapters) {
            for (var e : adapter.modules().entrySet()) {
                Linear linear = linears.get(e.getKey());
                if (e.getValue() instanceof AdapterModule.Lora lora && linear != null && !isPadded(lora, lora.rank(), linear.weight().dtype())) {
                    work.add(new Work(lora, linear.inFeatures(), linear.outFeatures(), padType(linear.weight().dtype())));
                }
            }
        }
        int window = 4 * Math.max(1, Runtime.getRuntime().availableProcessors());
        for (int from = 0; from < work.size(); from += window) {
            List<Work> part = work.subList(from, Math.min(work.size(), from + window));
            List<float[][]> host = new java.util.ArrayList<>();
            for (Work w : part) {
                host.add(new float[][] {backend.toHost(w.lora().a()), backend.toHost(w.lora().b()),
                        w.lora().bias() == null ? null : backend.toHost(w.lora().bias())});
            }
            List<HostPads> pads = java.util.stream.IntStream.range(0, part.size()).parallel().mapToObj(i -> {
                Work w = part.get(i);
                return hostPads(w.lora(), host.get(i), w.lora().rank(), w.in(), w.outs(), w.type());
            }).toList();
            for (int i = 0; i < part.size(); i++) {
                HostPads h = pads.get(i);
                PADDED.computeIfAbsent(part.get(i).lora(), l -> new ConcurrentHashMap<>()).putIfAbsent(new PadKey(h.rank(), h.type()), upload(backend, h));
            }
        }
    }

    /** Whether this module's padded copies at this rank and type are made (tests). */
    static boolean isPadded(AdapterModule.Lora lora, int rank, DType type) {
        Map<PadKey, Tensor[]> pads = PADDED.get(lora);
        return pads != null && pads.containsKey(new PadKey(rank, padType(type)));
    }

    /**
     * {A padded to [rank, in], B padded to [out, rank], the bias times the scale (or null)}, made once
     * per module, rank and type: in the base layer's type where that is 16-bit (torch.bmm runs in the
     * model's type), else float32.
     */
    private static Tensor[] padded(Backend backend, AdapterModule.Lora lora, int rank, int in, int outs, DType type) {
        DType padType = padType(type);
        return PADDED.computeIfAbsent(lora, l -> new ConcurrentHashMap<>()).computeIfAbsent(new PadKey(rank, padType), key -> {
            float[][] host = {backend.toHost(lora.a()), backend.toHost(lora.b()), lora.bias() == null ? null : backend.toHost(lora.bias())};
            return upload(backend, hostPads(lora, host, rank, in, outs, padType));
        });
    }

    private static DType padType(DType type) {
        return type == DType.BF16 || type == DType.F16 ? type : DType.F32;
    }

    /** A module's padded copies on the host: A [rank, in] and B [out, rank] as floats or 16-bit data, the bias times the scale. */
    private record HostPads(int rank, int in, int outs, DType type, Object a, Object b, float[] scaledBias) {
    }

    /** The padding and rounding, from the module's {A, B, bias} read back: no device work. */
    private static HostPads hostPads(AdapterModule.Lora lora, float[][] host, int rank, int in, int outs, DType type) {
        int own = lora.rank();
        float[] pb = new float[outs * rank];
        for (int o = 0; o < outs; o++) {
            System.arraycopy(host[1], o * own, pb, o * rank, own);
        }
        float[] scaledBias = null;
        if (host[2] != null) {
            scaledBias = host[2].clone();
            for (int o = 0; o < scaledBias.length; o++) {
                scaledBias[o] *= lora.scale();
            }
        }
        return new HostPads(rank, in, outs, type, rounded(Arrays.copyOf(host[0], rank * in), type), rounded(pb, type), scaledBias);
    }

    private static Tensor[] upload(Backend backend, HostPads h) {
        return new Tensor[] {weight(backend, h.a(), h.rank(), h.in(), h.type()), weight(backend, h.b(), h.outs(), h.rank(), h.type()),
                h.scaledBias() == null ? null : backend.weight(h.scaledBias(), 1, h.scaledBias().length)};
    }

    /** The values as they are for float32, or rounded to bf16 / f16 data. */
    private static Object rounded(float[] values, DType type) {
        if (type == DType.F32) {
            return values;
        }
        MemorySegment data = Arena.ofAuto().allocate(values.length * 2L, 2);
        for (int i = 0; i < values.length; i++) {
            short h = type == DType.BF16 ? SafetensorsWriter.toBf16(values[i]) : Float.floatToFloat16(values[i]);
            data.setAtIndex(ValueLayout.JAVA_SHORT, i, h);
        }
        return data;
    }

    /** A weight of float32 values or of 16-bit data (rounded()). */
    private static Tensor weight(Backend backend, Object values, int rows, int cols, DType type) {
        if (values instanceof float[] f) {
            return backend.weight(f, rows, cols);
        }
        return backend.weight(new TensorView("padded lora", type, new long[] {rows, cols}, (MemorySegment) values, null), rows, cols);
    }
}
