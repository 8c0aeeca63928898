package dev.flora.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.Fixtures;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Real vocabularies (Llama-2/Mistral, Llama-3, GPT-2, Qwen-3 tokenizer.json files, fetched by
 * tools/fetch-tokenizers.sh, which `./flora test` runs first) against encodings made by Hugging
 * Face tokenizers 0.23 over hard texts (tools/reference/make_tokenizer_references.py).
 */
class RealTokenizersTest {
    static Path cache() {
        String env = System.getenv("FLORA_CACHE");
        Path base = env != null && !env.isBlank() ? Path.of(env) : Path.of(System.getProperty("user.home"), ".cache", "flora");
        return base.resolve("tokenizers");
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama2", "llama3", "gpt2", "qwen3"})
    void idsAndDecodingMatchTokenizers(String name) throws IOException {
        Path file = cache().resolve(name).resolve("tokenizer.json");
        assertThat(file).as("%s is missing: run tools/fetch-tokenizers.sh (./flora test does)", file).exists();
        JsonNode expected = new ObjectMapper().readTree(Fixtures.llamaTiny().resolveSibling("tokenizers").resolve(name + ".json").toFile());
        assertThat(expected.size()).isGreaterThan(20);
        int longest = 0;
        try (Tokenizer tok = Tokenizer.load(file)) {
            for (JsonNode e : expected) {
                String text = e.get("text").asText();
                int[] ids = tok.encode(text, true);
                longest = Math.max(longest, ids.length);
                assertThat(ids).as("%s ids of %s", name, abbreviate(text)).containsExactly(Fixtures.ints(e.get("ids")));
                assertThat(tok.encode(text, false)).as("%s ids_no_special of %s", name, abbreviate(text))
                        .containsExactly(Fixtures.ints(e.get("ids_no_special")));
                assertThat(tok.decode(ids, false)).as("%s decoded %s", name, abbreviate(text)).isEqualTo(e.get("decoded").asText());
            }
        }
        assertThat(longest).as("a text longer than 512 tokens (no truncation)").isGreaterThan(512);
    }

    private static String abbreviate(String s) {
        return s.length() > 40 ? s.substring(0, 40) + "..." : s;
    }
}
