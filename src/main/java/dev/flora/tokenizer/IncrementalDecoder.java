package dev.flora.tokenizer;

import java.util.Arrays;

/**
 * Turns a growing list of token ids into text pieces that are safe to print: text is emitted only
 * once it no longer ends in a partial UTF-8 character (byte-fallback tokens split characters),
 * and each piece is decoded with a few tokens of context so that decoders that strip or join
 * around word boundaries give the same text as decoding everything at once.
 */
public final class IncrementalDecoder {
    /** A character spans at most four byte tokens; allow for a few whole tokens before them. */
    private static final int MAX_PENDING_TOKENS = 8;
    private final Tokenizer tokenizer;
    private int[] ids;
    private int length;
    private int prefixOffset;
    private int readOffset;

    /** @param context tokens already present (the prompt); only their last few are used */
    public IncrementalDecoder(Tokenizer tokenizer, int[] context) {
        this.tokenizer = tokenizer;
        int keep = Math.min(context.length, 6);
        this.ids = Arrays.copyOfRange(context, context.length - keep, context.length + 16);
        this.length = keep;
        this.prefixOffset = 0;
        this.readOffset = keep;
    }

    /** Adds a token; returns the new text it completes (possibly empty). */
    public String add(int token) {
        if (length == ids.length) {
            ids = Arrays.copyOf(ids, ids.length * 2);
        }
        ids[length++] = token;
        String prefix = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset), true);
        String full = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, length), true);
        // Past MAX_PENDING_TOKENS the bytes can no longer complete a character: show them (as U+FFFD).
        boolean partial = full.endsWith("\uFFFD") && length - readOffset < MAX_PENDING_TOKENS;
        if (full.length() <= prefix.length() || partial) {
            return "";
        }
        int common = full.startsWith(prefix) ? prefix.length() : commonPrefix(prefix, full);
        prefixOffset = readOffset;
        readOffset = length;
        return full.substring(common);
    }

    /** Whatever text is still held back (an unfinished character at the end): all of it, now. */
    public String finish() {
        if (readOffset == length) {
            return "";
        }
        String prefix = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset), true);
        String full = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, length), true);
        prefixOffset = readOffset;
        readOffset = length;
        int common = full.startsWith(prefix) ? prefix.length() : commonPrefix(prefix, full);
        return full.substring(common);
    }

    private static int commonPrefix(String a, String b) {
        int n = Math.min(a.length(), b.length());
        int i = 0;
        while (i < n && a.charAt(i) == b.charAt(i)) {
            i++;
        }
        return i;
    }
}
