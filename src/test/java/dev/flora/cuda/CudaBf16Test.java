package dev.flora.cuda;

import dev.flora.model.Bf16RuleTest;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** On the GPU: bf16 weights (activations rounded to bf16 for the products) within DESIGN §5's rule. */
@Tag("gpu")
class CudaBf16Test {
    @Test
    void bf16WithinTheRule() {
        Bf16RuleTest.assertWithinTheRule(CudaBackend.open(0));
    }
}
