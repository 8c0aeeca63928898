package dev.flora.adapter;

import dev.flora.backend.Backend;
import dev.flora.backend.DType;
import dev.flora.backend.Tensor;
import dev.flora.model.Linear;
import dev.flora.safetensors.SafetensorsWriter;
import dev.flora.safetensors.TensorView;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;
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
    private static final Map<AdapterModule.Lora, Map<PadKey, Tensor[]>> PADDED = Collections.synchronizedMap(new WeakHashMap<>());

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
     * Makes an adapter's padded copies at its own rank ahead of its first step, as a bmm server stacks
     * an adapter's weights when it loads it: otherwise the first step to use it reads A and B back
     * from the device for every layer, which stalls the stream in the middle of a timed run.
     */
    static void prepare(Backend backend, Adapter adapter, Map<String, Linear> linears) {
        for (var e : adapter.modules().entrySet()) {
            Linear linear = linears.get(e.getKey());
            if (e.getValue() instanceof AdapterModule.Lora lora && linear != null) {
                padded(backend, lora, lora.rank(), linear.inFeatures(), linear.outFeatures(), linear.weight().dtype());
            }
        }
    }

    /** Whether this module's padded copies at this rank and type are made (tests). */
    static boolean isPadded(AdapterModule.Lora lora, int rank, DType type) {
        Map<PadKey, Tensor[]> pads = PADDED.get(lora);
        return pads != null && pads.containsKey(new PadKey(rank, type == DType.BF16 || type == DType.F16 ? type : DType.F32));
    }

    /**
     * {A padded to [rank, in], B padded to [out, rank], the bias times the scale (or null)}, made once
     * per module, rank and type: in the base layer's type where that is 16-bit (torch.bmm runs in the
     * model's type), else float32.
     */
    private static Tensor[] padded(Backend backend, AdapterModule.Lora lora, int rank, int in, int outs, DType type) {
        DType padType = type == DType.BF16 || type == DType.F16 ? type : DType.F32;
        return PADDED.computeIfAbsent(lora, l -> new ConcurrentHashMap<>()).computeIfAbsent(new PadKey(rank, padType), key -> {
            float[] a = backend.toHost(lora.a());
            float[] b = backend.toHost(lora.b());
            int own = lora.rank();
            float[] pb = new float[outs * rank];
            for (int o = 0; o < outs; o++) {
                System.arraycopy(b, o * own, pb, o * rank, own);
            }
            Tensor scaledBias = null;
            if (lora.bias() != null) {
                float[] bias = backend.toHost(lora.bias());
                for (int o = 0; o < bias.length; o++) {
                    bias[o] *= lora.scale();
                }
                scaledBias = backend.weight(bias, 1, bias.length);
            }
            return new Tensor[] {weight(backend, Arrays.copyOf(a, rank * in), rank, in, padType), weight(backend, pb, outs, rank, padType),
                    scaledBias};
        });
    }

    /** A weight of these values in float32, or rounded to bf16 / f16. */
    private static Tensor weight(Backend backend, float[] values, int rows, int cols, DType type) {
        if (type == DType.F32) {
            return backend.weight(values, rows, cols);
        }
        MemorySegment data = Arena.ofAuto().allocate(values.length * 2L, 2);
        for (int i = 0; i < values.length; i++) {
            short h = type == DType.BF16 ? SafetensorsWriter.toBf16(values[i]) : Float.floatToFloat16(values[i]);
            data.setAtIndex(ValueLayout.JAVA_SHORT, i, h);
        }
        return backend.weight(new TensorView("padded lora", type, new long[] {rows, cols}, data, null), rows, cols);
    }
}
