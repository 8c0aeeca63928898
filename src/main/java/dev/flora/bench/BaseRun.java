package dev.flora.bench;

/**
 * One run of {@code flora bench decode --json} without adapters, as the base report reads it.
 *
 * @param decode           tokens/s over the timed decode steps
 * @param endToEnd         output tokens/s with the prefill
 * @param rooflineFraction decode / roofline (the line's memoryFraction)
 * @param prefillFraction  the prefill step's matrix-product flops per second over the measured bf16 rate (NaN in lines
 *                         from before it was reported)
 */
public record BaseRun(String model, String kernels, int batch, int promptTokens, double decode, double endToEnd,
                      double roofline, double rooflineFraction, double bytesPerSecond, double flopsPerSecond, double prefillFraction) {
}
