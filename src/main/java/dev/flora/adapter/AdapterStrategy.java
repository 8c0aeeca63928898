package dev.flora.adapter;

import dev.flora.FloraException;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * How the adapted layers of a step are computed (DESIGN.md §2). All compute the same function;
 * they differ in cost.
 */
public enum AdapterStrategy {
    /** Row groups per adapter slot around the base product; fLoRA as r full products per slot. */
    EXACT,
    /** fLoRA: every fLoRA token's r modulated copies stacked into ONE product with W0 (the paper's eq. 6). */
    FLORA,
    /** LoRA: shrink v = A[slot] x and expand y += s B[slot] v token by token, mixed ranks unpadded (Punica/S-LoRA). */
    GATHERED,
    /** LoRA: each sequence's A and B padded to the batch's longest sequence and largest rank, batched products (the paper's baseline). */
    BMM,
    /** Every kind: each slot's rows through a merged copy of the weight (W0 + s B A, W0 ∘ (B A) / r, diag(l) W0), made once and kept. */
    MERGED,
    /** Per kind, layer and step the measured-cheapest of the others ({@link CostModel}); without a calibration fLoRA fused, LoRA gathered, IA3 exact. */
    AUTO;

    public static AdapterStrategy parse(String name) {
        try {
            return valueOf(name.toUpperCase(Locale.ROOT).replace('-', '_'));
        } catch (IllegalArgumentException e) {
            throw new FloraException("--strategy '" + name + "' is not a strategy (supported: "
                    + Arrays.stream(values()).map(s -> s.name().toLowerCase(Locale.ROOT)).collect(Collectors.joining(", ")) + ")");
        }
    }

    public String cliName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
