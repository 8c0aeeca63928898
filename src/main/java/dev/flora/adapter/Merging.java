package dev.flora.adapter;

import dev.flora.backend.Backend;
import dev.flora.backend.Tensor;
import dev.flora.model.Linear;

/** Merged weights for the MERGED strategy: a separate float32 copy of W (and b) with the adapter folded in. */
final class Merging {
    private Merging() {
    }

    /** {W', b'} with y = W' x + b' equal to the adapted layer. */
    static Tensor[] merge(Backend backend, Linear linear, AdapterModule module) {
        int out = linear.outFeatures();
        int in = linear.inFeatures();
        float[] w = backend.toHost(linear.weight());
        float[] b = linear.bias() == null ? new float[out] : backend.toHost(linear.bias());
        switch (module) {
            case AdapterModule.Lora lora -> {
                float[] a = backend.toHost(lora.a());
                float[] bb = backend.toHost(lora.b());
                int r = lora.rank();
                for (int o = 0; o < out; o++) {
                    for (int i = 0; i < in; i++) {
                        double delta = 0;
                        for (int j = 0; j < r; j++) {
                            delta += (double) bb[o * r + j] * a[j * in + i];
                        }
                        w[o * in + i] += (float) (lora.scale() * delta);
                    }
                }
                if (lora.bias() != null) {
                    float[] lb = backend.toHost(lora.bias());
                    for (int o = 0; o < out; o++) {
                        b[o] += lora.scale() * lb[o];
                    }
                }
            }
            case AdapterModule.Ia3 ia3 -> {
                float[] l = backend.toHost(ia3.scale());
                for (int o = 0; o < out; o++) {
                    for (int i = 0; i < in; i++) {
                        w[o * in + i] *= ia3.inputSide() ? l[i] : l[o];
                    }
                    if (!ia3.inputSide()) {
                        b[o] *= l[o];
                    }
                }
            }
            case AdapterModule.Flora flora -> {
                float[] a = backend.toHost(flora.a());
                float[] bt = backend.toHost(flora.bt());
                int r = flora.rank();
                for (int o = 0; o < out; o++) {
                    for (int i = 0; i < in; i++) {
                        double ba = 0;
                        for (int j = 0; j < r; j++) {
                            ba += (double) bt[j * out + o] * a[j * in + i];
                        }
                        w[o * in + i] = (float) (w[o * in + i] * ba / r);
                    }
                }
            }
        }
        Tensor bias = linear.bias() == null && !(module instanceof AdapterModule.Lora l && l.bias() != null) ? null : backend.weight(b, 1, out);
        return new Tensor[] {backend.weight(w, out, in), bias};
    }
}
