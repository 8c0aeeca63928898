package dev.flora.bench;

import java.util.List;

/**
 * One line of tools/peer/transformers_bench.py: the output tokens/s of each of its timed runs
 * (batch × new tokens / seconds).
 *
 * @param shape the name of the directory of the config it ran
 */
public record PeerRun(String shape, String peer, String gpu, int batch, int promptTokens, List<Double> tokensPerSecond) {
}
