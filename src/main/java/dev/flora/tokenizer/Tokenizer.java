package dev.flora.tokenizer;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.FloraException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A Hugging Face tokenizer.json through DJL's binding of the Rust {@code tokenizers} library,
 * configured as transformers uses it: no truncation and no padding (whatever tokenizer.json's
 * own sections say), special tokens added as its post-processor says.
 */
public final class Tokenizer implements AutoCloseable {
    static {
        // DJL must never try the network; its native library ships inside its jar.
        System.setProperty("DJL_OFFLINE", "true");
        System.setProperty("offline", "true");
    }

    private final HuggingFaceTokenizer tokenizer;
    private final Path path;

    private Tokenizer(HuggingFaceTokenizer tokenizer, Path path) {
        this.tokenizer = tokenizer;
        this.path = path;
    }

    public static Tokenizer load(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new FloraException(file + ": missing (a tokenizer.json is needed)");
        }
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new FloraException(file + ": not valid JSON (" + firstLine(e.getMessage()) + ")");
        }
        if (root == null || !root.isObject() || !root.has("model")) {
            throw new FloraException(file + ": not a Hugging Face tokenizer.json (no \"model\" section)");
        }
        try {
            HuggingFaceTokenizer tok = HuggingFaceTokenizer.builder()
                    .optTokenizerPath(file)
                    .optTruncation(false)
                    .optPadding(false)
                    .optAddSpecialTokens(true)
                    .build();
            return new Tokenizer(tok, file);
        } catch (IOException | RuntimeException e) {
            throw new FloraException(file + ": the tokenizers library cannot load it (" + firstLine(e.getMessage()) + ")");
        }
    }

    private static String firstLine(String s) {
        return s == null ? "no detail" : s.lines().findFirst().orElse("");
    }

    public Path path() {
        return path;
    }

    /** Token ids of a text; with {@code addSpecialTokens}, as the post-processor frames them (e.g. BOS first). */
    public int[] encode(String text, boolean addSpecialTokens) {
        Encoding e = tokenizer.encode(text, addSpecialTokens, false);
        long[] ids = e.getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] longs = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            longs[i] = ids[i];
        }
        return tokenizer.decode(longs, skipSpecialTokens);
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
