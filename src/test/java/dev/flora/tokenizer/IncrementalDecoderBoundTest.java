package dev.flora.tokenizer;

import dev.flora.Fixtures;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class IncrementalDecoderBoundTest {
    @Test
    void invalidBytesAreShownInsteadOfHeldForever() {
        try (Tokenizer tok = Tokenizer.load(Fixtures.llamaTinyModel().resolve("tokenizer.json"))) {
            IncrementalDecoder decoder = new IncrementalDecoder(tok, new int[] {1});
            // <0x80> (id 3 + 0x80) is a lone UTF-8 continuation byte: it never completes a character.
            StringBuilder text = new StringBuilder();
            for (int i = 0; i < 12; i++) {
                text.append(decoder.add(3 + 0x80));
            }
            assertThat(text.toString()).contains("\uFFFD");
            for (int id : tok.encode("x", false)) {
                text.append(decoder.add(id));
            }
            assertThat(text.toString()).endsWith("x");
        }
    }
}
