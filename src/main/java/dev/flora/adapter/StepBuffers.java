package dev.flora.adapter;

import dev.flora.backend.Backend;
import dev.flora.backend.Tensor;

import java.util.HashMap;
import java.util.Map;

/**
 * Work buffers that the adapted layers of one step reuse, one per use and width, grown as needed:
 * the layers of a step run one after another, and a buffer's contents never outlive the layer
 * call that wrote them. Fresh memory costs more than it seems (zeroing, and on some machines a
 * page fault per 4 KiB touched first), and a step would otherwise allocate two per adapted layer.
 * Contents are stale: every user writes all the rows it reads.
 */
final class StepBuffers {
    /** What a buffer holds; two uses of the same width never share one. */
    enum Use { STACKED_INPUT, STACKED_OUTPUT, KEPT_INPUT, KEPT_OUTPUT, PADDED_INPUT, PADDED_SHRUNK, PADDED_OUTPUT, PADDED_KEPT }

    private record Key(Use use, int cols) {
    }

    private final Backend backend;
    private final Map<Key, Tensor> buffers = new HashMap<>();

    StepBuffers(Backend backend) {
        this.backend = backend;
    }

    /** A [rows, cols] view of this use's buffer, with stale contents. */
    Tensor get(Use use, int rows, int cols) {
        Key key = new Key(use, cols);
        Tensor b = buffers.get(key);
        if (b == null || b.rows() < rows) {
            b = backend.allocate(Math.max(rows, b == null ? 0 : 2 * b.rows()), cols);
            buffers.put(key, b);
        }
        return backend.rows(b, 0, rows);
    }
}
