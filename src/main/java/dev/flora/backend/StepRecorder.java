package dev.flora.backend;

import java.util.function.Function;

/**
 * Records a step's GPU work once and replays it for later steps of the same shape (CUDA graphs):
 * a decode step is hundreds of small kernels, and launching each from the host costs more than
 * running it. Only the step's data (tokens, positions, slots, block tables) changes between
 * replays; the work must not depend on anything else that varies (no host data, no adapters).
 */
public interface StepRecorder {
    /**
     * Records {@code work} for steps with this batch's numbers of tokens and sequences and block
     * tables up to {@code maxBlocks} wide, running it on this batch; the result is valid until the
     * next step.
     */
    Recording record(TokenBatch batch, int maxBlocks, Function<TokenBatch, Tensor> work);

    /** Recorded work, kept with its own memory until collected. */
    interface Recording {
        /** Runs the recorded work on {@code batch}'s data; the result is valid until the next step. */
        Tensor replay(TokenBatch batch);
    }
}
