package dev.flora.engine;

/** Why a sequence stopped, as OpenAI's finish_reason names it. */
public enum FinishReason {
    /** An end-of-sequence or stop token. */
    STOP,
    /** max tokens reached, or the model's context is full. */
    LENGTH;

    public String openAiName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
