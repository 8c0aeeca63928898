package dev.flora.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.FloraException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * The UTF-8 bytes each token stands for (OpenAI's logprobs "bytes"), read from tokenizer.json:
 * byte-level vocabularies (GPT-2, Llama-3, Qwen) map each character back to its byte; SentencePiece
 * vocabularies turn ▁ into a space and {@code <0xNN>} byte-fallback tokens into that byte; added
 * tokens are their text. A token that is only part of a character has only those bytes, so the
 * bytes of a completion's tokens, joined, are its text's bytes.
 */
public final class TokenBytes {
    private final Map<Integer, String> vocabulary = new HashMap<>();
    private final Map<Integer, String> added = new HashMap<>();
    private final boolean byteLevel;
    private final boolean byteFallback;
    private final String spaceMarker;

    private TokenBytes(boolean byteLevel, boolean byteFallback, String spaceMarker) {
        this.byteLevel = byteLevel;
        this.byteFallback = byteFallback;
        this.spaceMarker = spaceMarker;
    }

    public static TokenBytes load(Path tokenizerJson) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(tokenizerJson.toFile());
        } catch (IOException e) {
            throw new FloraException(tokenizerJson + ": not valid JSON (" + e.getMessage() + ")");
        }
        JsonNode decoder = root.path("decoder");
        String marker = findMarker(decoder);
        TokenBytes t = new TokenBytes(hasDecoder(decoder, "ByteLevel"), hasDecoder(decoder, "ByteFallback"), marker);
        JsonNode vocab = root.path("model").path("vocab");
        if (vocab.isObject()) {
            for (Map.Entry<String, JsonNode> e : vocab.properties()) {
                t.vocabulary.put(e.getValue().asInt(), e.getKey());
            }
        } else if (vocab.isArray()) { // Unigram: [[piece, score], ...]
            for (int id = 0; id < vocab.size(); id++) {
                t.vocabulary.put(id, vocab.get(id).get(0).asText());
            }
        }
        for (JsonNode a : root.path("added_tokens")) {
            t.added.put(a.path("id").asInt(), a.path("content").asText());
        }
        return t;
    }

    private static boolean hasDecoder(JsonNode decoder, String type) {
        if (type.equals(decoder.path("type").asText())) {
            return true;
        }
        for (JsonNode d : decoder.path("decoders")) {
            if (hasDecoder(d, type)) {
                return true;
            }
        }
        return false;
    }

    /** The character the decoder turns into a space: Metaspace's replacement, or a Replace of it with " ". */
    private static String findMarker(JsonNode decoder) {
        String type = decoder.path("type").asText();
        if (type.equals("Metaspace")) {
            return decoder.path("replacement").asText("\u2581");
        }
        if (type.equals("Replace") && " ".equals(decoder.path("content").asText()) && decoder.path("pattern").path("String").isTextual()) {
            return decoder.path("pattern").path("String").asText();
        }
        for (JsonNode d : decoder.path("decoders")) {
            String m = findMarker(d);
            if (m != null) {
                return m;
            }
        }
        return null;
    }

    public byte[] bytes(int id) {
        String text = added.get(id);
        if (text != null) {
            return text.getBytes(StandardCharsets.UTF_8);
        }
        String token = vocabulary.get(id);
        if (token == null) {
            return new byte[0];
        }
        if (byteFallback && token.length() == 6 && token.startsWith("<0x") && token.endsWith(">")) {
            return new byte[] {(byte) Integer.parseInt(token.substring(3, 5), 16)};
        }
        if (byteLevel) {
            byte[] out = new byte[token.length()];
            int n = 0;
            for (int i = 0; i < token.length(); i++) {
                int b = UNICODE_TO_BYTE.getOrDefault(token.charAt(i), -1);
                if (b < 0) {
                    return token.getBytes(StandardCharsets.UTF_8);
                }
                out[n++] = (byte) b;
            }
            return java.util.Arrays.copyOf(out, n);
        }
        if (spaceMarker != null) {
            token = token.replace(spaceMarker, " ");
        }
        return token.getBytes(StandardCharsets.UTF_8);
    }

    /** GPT-2's bytes_to_unicode, inverted: printable bytes stand for themselves, the others for 256 + their rank. */
    private static final Map<Character, Integer> UNICODE_TO_BYTE = new HashMap<>();

    static {
        int next = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            UNICODE_TO_BYTE.put((char) (printable ? b : 256 + next++), b);
        }
    }
}
