package dev.flora.backend;

import java.util.function.Function;

/**
 * Records a step's GPU work once and replays it for later steps of the same shape (CUDA graphs):
 * a decode step is hundreds of small kernels, and launching each from the host costs more than
 * running it. Only the step's data (tokens, positions, slots, block tables) changes between
 * replays of record's recordings; steps with adapters go to replayAdapted.
 */
public interface StepRecorder {
    /**
     * Records {@code work} for steps with this batch's numbers of tokens and sequences and block
     * tables up to {@code maxBlocks} wide, running it on this batch; the result is valid until the
     * next step.
     */
    Recording record(TokenBatch batch, int maxBlocks, Function<TokenBatch, Tensor> work);

    /**
     * A step with adapters, whose work depends on more than the step data (which token takes which
     * adapter, and the adapters' places): its result (valid until the next step) from a recording of
     * exactly this work, recorded now where the same adapters came before; null where none is kept,
     * and then the caller runs the step directly. {@code adapters}: equal for two steps of equal
     * shape exactly when their adapter work is the same (every token's adapter, by identity, and how
     * adapters are computed), so that a step like the last one replayed needs nothing new uploaded.
     * The default replays no adapted step.
     */
    default Tensor replayAdapted(TokenBatch batch, int maxBlocks, Object adapters, Function<TokenBatch, Tensor> work) {
        return null;
    }

    /** Recorded work, kept with its own memory until collected. */
    interface Recording {
        /** Runs the recorded work on {@code batch}'s data; the result is valid until the next step. */
        Tensor replay(TokenBatch batch);
    }
}
