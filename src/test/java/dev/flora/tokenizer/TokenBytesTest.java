package dev.flora.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.Fixtures;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.text.Normalizer;

import static org.assertj.core.api.Assertions.assertThat;

/** Each token's bytes, joined over an encoding, are the bytes of the text the tokens stand for. */
class TokenBytesTest {
    @ParameterizedTest
    @ValueSource(strings = {"llama2", "llama3", "gpt2", "qwen3"})
    void joinedBytesAreTheText(String name) throws IOException {
        Path file = RealTokenizersTest.cache().resolve(name).resolve("tokenizer.json");
        assertThat(file).as("%s is missing: run tools/fetch-tokenizers.sh (./flora test does)", file).exists();
        JsonNode texts = new ObjectMapper().readTree(Fixtures.llamaTiny().resolveSibling("tokenizers").resolve(name + ".json").toFile());
        TokenBytes bytes = TokenBytes.load(file);
        try (Tokenizer tok = Tokenizer.load(file)) {
            for (JsonNode e : texts) {
                String text = e.get("text").asText();
                int[] ids = tok.encode(text, false);
                ByteArrayOutputStream joined = new ByteArrayOutputStream();
                for (int id : ids) {
                    joined.writeBytes(bytes.bytes(id));
                }
                String expected = switch (name) {
                    // SentencePiece: ▁ is a space, and the normaliser put one before the text (decode strips it).
                    case "llama2" -> ids.length == 0 ? "" : " " + tok.decode(ids, false);
                    case "qwen3" -> Normalizer.normalize(text, Normalizer.Form.NFC); // its normaliser
                    default -> text;
                };
                assertThat(joined.toString(StandardCharsets.UTF_8)).as("%s: %s", name, text).isEqualTo(expected);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama2", "qwen3"})
    void aCharacterSplitOverTokensGivesEachTokenItsOwnBytes(String name) {
        Path file = RealTokenizersTest.cache().resolve(name).resolve("tokenizer.json");
        TokenBytes bytes = TokenBytes.load(file);
        try (Tokenizer tok = Tokenizer.load(file)) {
            int[] ids = tok.encode("𝄞", false); // U+1D11E: four UTF-8 bytes, rare enough to be split
            assertThat(ids.length).isGreaterThan(1);
            int total = 0;
            for (int id : ids) {
                total += bytes.bytes(id).length;
            }
            assertThat(total).isEqualTo(name.equals("llama2") ? 5 : 4); // llama2: plus its leading space
        }
    }
}
