package dev.flora.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class TokenizerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int BOS = 1;

    record Expected(String text, int[] ids, int[] idsNoSpecial, String decoded) {
    }

    private static Path tokenizerFile;
    private static Tokenizer tokenizer;
    private static List<Expected> expected;

    @TempDir
    Path dir;

    @BeforeAll
    static void load() throws Exception {
        tokenizerFile = Path.of(TokenizerTest.class.getResource("/fixtures/llama-tiny/model/tokenizer.json").toURI());
        tokenizer = Tokenizer.load(tokenizerFile);
        Path file = Path.of(TokenizerTest.class.getResource("/fixtures/llama-tiny/tokenizer_expected.json").toURI());
        expected = new ArrayList<>();
        for (JsonNode e : JSON.readTree(file.toFile())) {
            expected.add(new Expected(e.get("text").asText(), ints(e.get("ids")), ints(e.get("ids_no_special")), e.get("decoded").asText()));
        }
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    private static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    @Test
    void fixtureHasTheExpectedCases() {
        assertThat(expected).hasSizeGreaterThanOrEqualTo(8);
        // some texts need byte fallback (multi-byte characters), which the incremental decoder must handle
        assertThat(expected).anyMatch(e -> e.text().contains("🙂"));
        assertThat(expected).anyMatch(e -> e.text().contains("東京"));
        assertThat(tokenizer.path()).isEqualTo(tokenizerFile);
    }

    @Test
    void encodeMatchesHuggingFace() {
        for (Expected e : expected) {
            assertThat(tokenizer.encode(e.text(), true)).as("ids of %s", e.text()).containsExactly(e.ids());
            assertThat(tokenizer.encode(e.text(), false)).as("ids_no_special of %s", e.text()).containsExactly(e.idsNoSpecial());
            assertThat(e.ids()[0]).isEqualTo(BOS);
        }
    }

    @Test
    void decodeMatchesHuggingFace() {
        for (Expected e : expected) {
            assertThat(tokenizer.decode(e.ids(), false)).as("decode of %s", e.text()).isEqualTo(e.decoded());
        }
    }

    @Test
    void decodeSkippingSpecialTokensGivesTheText() {
        for (Expected e : expected) {
            String skipped = tokenizer.decode(e.ids(), true);
            assertThat(skipped).as("decode(ids, skip) of %s", e.text()).isEqualTo(tokenizer.decode(e.idsNoSpecial(), true));
            assertThat(skipped).doesNotContain("<s>");
        }
        // this tokenizer round-trips these texts exactly
        Expected hello = expected.stream().filter(e -> e.text().startsWith("Hello")).findFirst().orElseThrow();
        assertThat(tokenizer.decode(hello.idsNoSpecial(), true)).isEqualTo(hello.text());
    }

    @Test
    void truncationAndPaddingInTheFileAreIgnored() throws IOException {
        ObjectNode root = (ObjectNode) JSON.readTree(tokenizerFile.toFile());
        root.putObject("truncation").put("direction", "Right").put("max_length", 5).put("strategy", "LongestFirst").put("stride", 0);
        ObjectNode padding = root.putObject("padding");
        padding.putObject("strategy").put("Fixed", 64);
        padding.put("direction", "Right");
        padding.putNull("pad_to_multiple_of");
        padding.put("pad_id", 0);
        padding.put("pad_type_id", 0);
        padding.put("pad_token", "<unk>");
        Path copy = dir.resolve("tokenizer.json");
        Files.writeString(copy, JSON.writeValueAsString(root));

        Expected fib = expected.getFirst();
        assertThat(fib.ids().length).isBetween(6, 63); // truncation or padding would both show
        StringBuilder all = new StringBuilder();
        expected.forEach(e -> all.append(e.text()).append('\n'));
        String longText = all.toString();

        // sanity: the copy really does truncate when its own sections are honoured
        try (HuggingFaceTokenizer raw = HuggingFaceTokenizer.newInstance(copy)) {
            int honoured = raw.encode(fib.text()).getIds().length;
            assertThat(honoured).isNotEqualTo(fib.ids().length);
        }

        try (Tokenizer t = Tokenizer.load(copy)) {
            assertThat(t.encode(fib.text(), true)).containsExactly(fib.ids());
            assertThat(t.encode(fib.text(), false)).containsExactly(fib.idsNoSpecial());
            int[] longIds = t.encode(longText, true);
            assertThat(longIds.length).isGreaterThan(64);
            assertThat(longIds).containsExactly(tokenizer.encode(longText, true));
            assertThat(t.encode("a", true)).containsExactly(tokenizer.encode("a", true));
            assertThat(t.encode("a", true)).hasSizeLessThan(5);
        }
    }

    // ---------------------------------------------------------------- bad files

    @Test
    void notJson() throws IOException {
        Path p = dir.resolve("tokenizer.json");
        Files.writeString(p, "{\"model\": {\"type\": \"BPE\", ");
        assertThatThrownBy(() -> Tokenizer.load(p))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(p.toString())
                .hasMessageContaining("not valid JSON");
    }

    @Test
    void jsonWithoutAModelSection() throws IOException {
        Path p = dir.resolve("tokenizer.json");
        Files.writeString(p, "{\"version\": \"1.0\", \"added_tokens\": []}");
        assertThatThrownBy(() -> Tokenizer.load(p))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(p.toString())
                .hasMessageContaining("\"model\"");
        Files.writeString(p, "[1, 2, 3]");
        assertThatThrownBy(() -> Tokenizer.load(p))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(p.toString());
    }

    @Test
    void modelSectionTheLibraryCannotLoad() throws IOException {
        Path p = dir.resolve("tokenizer.json");
        Files.writeString(p, "{\"model\": {\"type\": \"NoSuchModel\"}}");
        assertThatThrownBy(() -> Tokenizer.load(p))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(p.toString());
    }

    @Test
    void missingFile() {
        Path p = dir.resolve("absent").resolve("tokenizer.json");
        assertThatThrownBy(() -> Tokenizer.load(p))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(p.toString())
                .hasMessageContaining("missing");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.toString());
    }

    // ---------------------------------------------------------------- incremental decoding

    private static String feed(int[] context, int[] ids, List<String> pieces) {
        IncrementalDecoder decoder = new IncrementalDecoder(tokenizer, context);
        StringBuilder out = new StringBuilder();
        for (int id : ids) {
            String piece = decoder.add(id);
            pieces.add(piece);
            out.append(piece);
        }
        return out.toString();
    }

    @Test
    void incrementalDecodingConcatenatesToTheFullDecode() {
        for (int[] context : new int[][] {{}, {BOS}}) {
            for (Expected e : expected) {
                String full = tokenizer.decode(e.idsNoSpecial(), true);
                assertThat(full).doesNotContain("\uFFFD");
                List<String> pieces = new ArrayList<>();
                String joined = feed(context, e.idsNoSpecial(), pieces);
                assertThat(joined).as("context %s, text %s, pieces %s", java.util.Arrays.toString(context), e.text(), pieces)
                        .isEqualTo(full);
                assertThat(pieces).as("pieces of %s", e.text()).noneMatch(p -> p.contains("\uFFFD"));
            }
        }
    }

    @Test
    void multiByteCharactersAreHeldBackUntilComplete() {
        Expected unicode = expected.stream().filter(e -> e.text().contains("🙂")).findFirst().orElseThrow();
        List<String> pieces = new ArrayList<>();
        feed(new int[0], unicode.idsNoSpecial(), pieces);
        // byte-fallback tokens split characters, so some tokens must complete no text on their own
        assertThat(pieces).contains("");
        assertThat(pieces).anyMatch(p -> p.contains("🙂"));
        for (String p : pieces) {
            // no piece ends in half a surrogate pair
            assertThat(p.isEmpty() || !Character.isHighSurrogate(p.charAt(p.length() - 1))).as(p).isTrue();
        }
    }

    @Test
    void incrementalDecodingWithAPromptContext() {
        // context: a whole prompt (more than the decoder keeps); continuation: another text
        Expected prompt = expected.get(1);
        for (Expected e : expected) {
            int[] context = prompt.ids();
            int[] all = new int[context.length + e.idsNoSpecial().length];
            System.arraycopy(context, 0, all, 0, context.length);
            System.arraycopy(e.idsNoSpecial(), 0, all, context.length, e.idsNoSpecial().length);
            String fullAll = tokenizer.decode(all, true);
            String fullPrompt = tokenizer.decode(context, true);
            assertThat(fullAll).startsWith(fullPrompt);
            List<String> pieces = new ArrayList<>();
            String joined = feed(context, e.idsNoSpecial(), pieces);
            assertThat(joined).as("continuation %s, pieces %s", e.text(), pieces).isEqualTo(fullAll.substring(fullPrompt.length()));
        }
    }

    private static String randomText(java.util.SplittableRandom rnd) {
        String[] atoms = {"the", "fox", " ", "  ", "\n", "\t", "é", "ü", "ß", "—", "東", "京", "🙂", "🚀", "𝔘", "1", "42", ".",
                "(", ")", "def", "self", "ñ", "\u0301", "Ω", "€", "😀😀", " x", "\u00a0", "<", "s", ">"};
        StringBuilder b = new StringBuilder();
        int n = rnd.nextInt(1, 25);
        for (int i = 0; i < n; i++) {
            b.append(atoms[rnd.nextInt(atoms.length)]);
        }
        return b.toString();
    }

    @Test
    void incrementalDecodingOfRandomTexts() {
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(20240601L);
        for (int trial = 0; trial < 300; trial++) {
            String text = randomText(rnd);
            int[] ids = tokenizer.encode(text, false);
            String full = tokenizer.decode(ids, true);
            assertThat(full).doesNotContain("\uFFFD");
            for (int[] context : new int[][] {{}, {BOS}, tokenizer.encode("Hello 東京", true)}) {
                List<String> pieces = new ArrayList<>();
                String joined = feed(context, ids, pieces);
                String expectedText = full;
                if (context.length > 1) {
                    int[] all = new int[context.length + ids.length];
                    System.arraycopy(context, 0, all, 0, context.length);
                    System.arraycopy(ids, 0, all, context.length, ids.length);
                    expectedText = tokenizer.decode(all, true).substring(tokenizer.decode(context, true).length());
                }
                assertThat(joined).as("text %s, context %s, pieces %s", text, java.util.Arrays.toString(context), pieces)
                        .isEqualTo(expectedText);
                assertThat(pieces).noneMatch(p -> p.contains("\uFFFD"));
            }
        }
    }
}
