package dev.flora.adapter;

/** The adapter kinds Flora serves (DESIGN.md §1). */
public enum AdapterKind {
    /** PEFT LoRA: y = W0 x + b0 + s B (A x). */
    LORA,
    /** PEFT IA3: y = l ∘ (W0 x + b0), or for feed-forward modules y = W0 (l ∘ x) + b0. */
    IA3,
    /** fLoRA: y = (W0 ∘ (B A) / r) x + b0. */
    FLORA
}
