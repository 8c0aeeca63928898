package dev.flora;

import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;

/**
 * Flora's JVM flags ({@code -Dflora.NAME=VALUE}, through {@code JAVA_OPTS}): the names Flora reads, and
 * a refusal of any other {@code flora.*} property. The JVM takes any property silently, so a misspelt
 * or retired flag (session notes name flags since removed) would otherwise change nothing without a word.
 */
public final class Flags {
    /** Every {@code flora.*} system property Flora reads (FlagsTest checks this against the sources). */
    public static final Set<String> KNOWN = Set.of(
            "flora.stepGraphs",
            "flora.cpu.kernels",
            "flora.cuda.attention",
            "flora.cuda.attentionMinSplit",
            "flora.cuda.attentionSplitBlocks",
            "flora.cuda.attentionTiles",
            "flora.cuda.defines",
            "flora.cuda.floraVectors",
            "flora.cuda.library",
            "flora.cuda.fuseFlora",
            "flora.cuda.fuseRotation",
            "flora.cuda.loraRuns",
            "flora.cuda.loraChunkExpand",
            "flora.cuda.loraChunkKernel",
            "flora.cuda.loraChunkRuns",
            "flora.cuda.loraChunkSplit",
            "flora.cuda.loraExpandColumns",
            "flora.cuda.loraFirst",
            "flora.cuda.loraFused",
            "flora.cuda.loraOverlap",
            "flora.cuda.loraStack",
            "flora.cuda.mlpHalf",
            "flora.cuda.floraRuns",
            "flora.cuda.batchedProducts",
            "flora.cuda.floraBatchedProducts",
            "flora.cuda.skinnyProducts",
            "flora.cuda.loraRunChunk",
            "flora.cuda.loraRunMin",
            "flora.cuda.overlap",
            "flora.cuda.overlapAttention",
            "flora.cuda.overlapSmall",
            "flora.cuda.profile",
            "flora.cuda.tiledLora",
            "flora.cuda.tunedProducts");

    private Flags() {
    }

    /** Refuses the first {@code flora.*} property among these that Flora does not read, naming the ones it does. */
    public static void checkKnown(Properties properties) {
        for (String name : new TreeSet<>(properties.stringPropertyNames())) {
            if (name.startsWith("flora.") && !KNOWN.contains(name)) {
                throw new FloraException("-D" + name + " is not a Flora flag (misspelt, or retired); Flora reads -D"
                        + String.join(", -D", new TreeSet<>(KNOWN)));
            }
        }
    }
}
