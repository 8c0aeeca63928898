package dev.flora.chat.jinja;

import java.util.ArrayList;
import java.util.List;

/**
 * Splits a template into text and tags as Jinja2's lexer does with transformers' settings
 * (trim_blocks and lstrip_blocks on, newlines normalised to \n, one trailing newline dropped):
 * {@code {%- -%}} and {@code {{- -}}} strip whitespace beside them, a block or comment tag alone
 * on its line takes that line's indentation with it, and the newline after a block tag is dropped.
 */
final class Lexer {
    /** A piece of the template: literal text, or the tokens of a {{ }} (output) or {% %} (statement) tag. */
    sealed interface Segment {
        int line();
    }

    record Text(String text, int line) implements Segment {
    }

    record Tag(boolean output, List<Token> tokens, int line) implements Segment {
    }

    private static final String[] OPERATORS = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")",
            "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"};

    private final String source;
    private int pos;
    private int line = 1;
    private boolean lineStarting = true;
    private final List<Segment> segments = new ArrayList<>();

    private Lexer(String source) {
        this.source = source;
    }

    static List<Segment> lex(String template) {
        String normalized = template.replace("\r\n", "\n").replace('\r', '\n');
        if (normalized.endsWith("\n")) {
            normalized = normalized.substring(0, normalized.length() - 1); // keep_trailing_newline=False
        }
        Lexer lexer = new Lexer(normalized);
        lexer.run();
        return lexer.segments;
    }

    private TemplateError error(String message) {
        return new TemplateError(TemplateError.Kind.SYNTAX, "line " + line + ": " + message);
    }

    private void run() {
        while (pos < source.length()) {
            int open = nextOpening(pos);
            if (open < 0) {
                text(source.substring(pos));
                pos = source.length();
                break;
            }
            char kind = source.charAt(open + 1);
            int afterOpen = open + 2;
            char sign = afterOpen < source.length() && (source.charAt(afterOpen) == '-' || source.charAt(afterOpen) == '+')
                    ? source.charAt(afterOpen) : 0;
            int rawEnd = kind == '%' ? rawBegin(open) : -1;
            String text = source.substring(pos, open);
            if (sign == '-') {
                text = PyStrings.strip(text, null, false, true);
            } else if (sign != '+' && kind != '{') {
                text = lstrip(text);
            }
            text(text);
            line += countNewlines(source, pos, open);
            pos = afterOpen + (sign != 0 ? 1 : 0);
            if (rawEnd >= 0) {
                pos = rawEnd;
                lineStarting = false;
                raw();
            } else if (kind == '#') {
                comment();
            } else {
                tag(kind == '{');
            }
        }
    }

    private void text(String text) {
        if (!text.isEmpty()) {
            segments.add(new Text(text, line));
        }
    }

    private int nextOpening(int from) {
        for (int i = from; i + 1 < source.length(); i++) {
            if (source.charAt(i) == '{') {
                char c = source.charAt(i + 1);
                if (c == '{' || c == '%' || c == '#') {
                    return i;
                }
            }
        }
        return -1;
    }

    /** lstrip_blocks: a block or comment tag preceded on its line only by whitespace takes that whitespace. */
    private String lstrip(String text) {
        int lineStart = text.lastIndexOf('\n') + 1;
        if (lineStart > 0 || lineStarting) {
            String tail = text.substring(lineStart);
            if (!tail.isEmpty() && tail.codePoints().allMatch(PyText::isSpace)) {
                return text.substring(0, lineStart);
            }
        }
        return text;
    }

    private static int countNewlines(String s, int from, int to) {
        int n = 0;
        for (int i = from; i < to; i++) {
            if (s.charAt(i) == '\n') {
                n++;
            }
        }
        return n;
    }

    /** If a {% raw %} tag starts here, the position after it; else -1. */
    private int rawBegin(int open) {
        int i = open + 2;
        if (i < source.length() && (source.charAt(i) == '-' || source.charAt(i) == '+')) {
            i++;
        }
        i = skipSpace(i);
        if (!source.startsWith("raw", i)) {
            return -1;
        }
        i = skipSpace(i + 3);
        if (source.startsWith("-%}", i)) {
            return skipSpace(i + 3);
        }
        return source.startsWith("%}", i) ? i + 2 : -1;
    }

    private int skipSpace(int i) {
        while (i < source.length() && PyText.isSpace(source.charAt(i))) {
            i++;
        }
        return i;
    }

    /** The body of {% raw %} ... {% endraw %}, verbatim but for whitespace control at its end. */
    private void raw() {
        int search = pos;
        while (true) {
            int open = source.indexOf("{%", search);
            if (open < 0) {
                throw error("missing {% endraw %}");
            }
            int i = open + 2;
            char sign = i < source.length() && (source.charAt(i) == '-' || source.charAt(i) == '+') ? source.charAt(i) : 0;
            i = skipSpace(i + (sign != 0 ? 1 : 0));
            if (!source.startsWith("endraw", i)) {
                search = open + 2;
                continue;
            }
            i = skipSpace(i + 6);
            int end = blockEnd(i);
            if (end < 0) {
                search = open + 2;
                continue;
            }
            String text = source.substring(pos, open);
            if (sign == '-') {
                text = PyStrings.strip(text, null, false, true);
            } else if (sign != '+') {
                text = lstrip(text);
            }
            text(text);
            line += countNewlines(source, pos, end);
            lineStarting = source.charAt(end - 1) == '\n';
            pos = end;
            return;
        }
    }

    /** If a block tag ends at i ({@code +%}}, {@code -%}} and whitespace, {@code %}} and one newline), the position after it; else -1. */
    private int blockEnd(int i) {
        if (source.startsWith("+%}", i)) {
            return i + 3;
        }
        if (source.startsWith("-%}", i)) {
            return skipSpace(i + 3);
        }
        if (source.startsWith("%}", i)) {
            return i + 2 < source.length() && source.charAt(i + 2) == '\n' ? i + 3 : i + 2;
        }
        return -1;
    }

    private void comment() {
        for (int i = pos; i + 1 < source.length(); i++) {
            int end = -1;
            if (source.startsWith("+#}", i)) {
                end = i + 3;
            } else if (source.startsWith("-#}", i)) {
                end = skipSpace(i + 3);
            } else if (source.startsWith("#}", i)) {
                end = i + 2 < source.length() && source.charAt(i + 2) == '\n' ? i + 3 : i + 2;
            }
            if (end >= 0) {
                line += countNewlines(source, pos, end);
                lineStarting = source.charAt(end - 1) == '\n';
                pos = end;
                return;
            }
        }
        throw error("missing end of comment tag");
    }

    private void tag(boolean output) {
        int startLine = line;
        List<Token> tokens = new ArrayList<>();
        List<Character> brackets = new ArrayList<>();
        while (true) {
            int start = pos;
            pos = skipSpace(pos);
            line += countNewlines(source, start, pos);
            if (pos >= source.length()) {
                throw error("unexpected end of template inside a " + (output ? "{{ }}" : "{% %}") + " tag");
            }
            if (brackets.isEmpty()) {
                int end = output ? outputEnd(pos) : blockEnd(pos);
                if (end >= 0) {
                    line += countNewlines(source, pos, end);
                    lineStarting = source.charAt(end - 1) == '\n';
                    pos = end;
                    tokens.add(new Token(Token.Type.END, "", null, line));
                    segments.add(new Tag(output, tokens, startLine));
                    return;
                }
            }
            Token token = token();
            if (token.type() == Token.Type.OPERATOR) {
                switch (token.text()) {
                    case "(" -> brackets.add(')');
                    case "[" -> brackets.add(']');
                    case "{" -> brackets.add('}');
                    case ")", "]", "}" -> {
                        if (brackets.isEmpty() || brackets.getLast() != token.text().charAt(0)) {
                            throw error("unexpected '" + token.text() + "'");
                        }
                        brackets.removeLast();
                    }
                    default -> {
                    }
                }
            }
            tokens.add(token);
        }
    }

    private int outputEnd(int i) {
        if (source.startsWith("-}}", i)) {
            return skipSpace(i + 3);
        }
        return source.startsWith("}}", i) ? i + 2 : -1;
    }

    private Token token() {
        char c = source.charAt(pos);
        int start = pos;
        if (Character.isDigit(c)) {
            return number();
        }
        if (Character.isLetter(c) || c == '_') {
            while (pos < source.length() && (Character.isLetterOrDigit(source.charAt(pos)) || source.charAt(pos) == '_')) {
                pos++;
            }
            return new Token(Token.Type.NAME, source.substring(start, pos), null, line);
        }
        if (c == '\'' || c == '"') {
            return string(c);
        }
        for (String op : OPERATORS) {
            if (source.startsWith(op, pos)) {
                pos += op.length();
                return new Token(Token.Type.OPERATOR, op, null, line);
            }
        }
        throw error("unexpected character '" + c + "'");
    }

    private Token number() {
        int start = pos;
        while (pos < source.length() && (Character.isDigit(source.charAt(pos)) || source.charAt(pos) == '_')) {
            pos++;
        }
        boolean isFloat = false;
        if (pos + 1 < source.length() && source.charAt(pos) == '.' && Character.isDigit(source.charAt(pos + 1))) {
            isFloat = true;
            pos++;
            while (pos < source.length() && (Character.isDigit(source.charAt(pos)) || source.charAt(pos) == '_')) {
                pos++;
            }
        }
        if (pos < source.length() && (source.charAt(pos) == 'e' || source.charAt(pos) == 'E')) {
            int e = pos + 1;
            if (e < source.length() && (source.charAt(e) == '+' || source.charAt(e) == '-')) {
                e++;
            }
            if (e < source.length() && Character.isDigit(source.charAt(e))) {
                isFloat = true;
                pos = e;
                while (pos < source.length() && Character.isDigit(source.charAt(pos))) {
                    pos++;
                }
            }
        }
        String text = source.substring(start, pos);
        String digits = text.replace("_", "");
        try {
            Object value = isFloat ? (Object) Double.parseDouble(digits) : (Object) Long.parseLong(digits);
            return new Token(isFloat ? Token.Type.FLOAT : Token.Type.INTEGER, text, value, line);
        } catch (NumberFormatException e) {
            throw error("bad number '" + text + "'");
        }
    }

    /** A quoted string, with Python's escapes decoded (\n, \t, \\, \', \xNN, \\uNNNN, ...; unknown escapes kept). */
    private Token string(char quote) {
        int start = pos++;
        StringBuilder value = new StringBuilder();
        while (true) {
            if (pos >= source.length()) {
                throw error("unterminated string");
            }
            char c = source.charAt(pos++);
            if (c == quote) {
                break;
            }
            if (c != '\\') {
                value.append(c);
                continue;
            }
            if (pos >= source.length()) {
                throw error("unterminated string");
            }
            char e = source.charAt(pos++);
            switch (e) {
                case 'n' -> value.append('\n');
                case 't' -> value.append('\t');
                case 'r' -> value.append('\r');
                case '\\' -> value.append('\\');
                case '\'' -> value.append('\'');
                case '"' -> value.append('"');
                case 'a' -> value.append('\u0007');
                case 'b' -> value.append('\b');
                case 'f' -> value.append('\f');
                case 'v' -> value.append('\u000b');
                case '\n' -> {
                }
                case 'x' -> value.appendCodePoint(hex(2));
                case 'u' -> value.appendCodePoint(hex(4));
                case 'U' -> value.appendCodePoint(hex(8));
                case '0', '1', '2', '3', '4', '5', '6', '7' -> {
                    int v = e - '0';
                    for (int k = 0; k < 2 && pos < source.length() && source.charAt(pos) >= '0' && source.charAt(pos) <= '7'; k++) {
                        v = v * 8 + source.charAt(pos++) - '0';
                    }
                    value.appendCodePoint(v);
                }
                default -> value.append('\\').append(e);
            }
        }
        return new Token(Token.Type.STRING, source.substring(start, pos), value.toString(), line);
    }

    private int hex(int digits) {
        if (pos + digits > source.length()) {
            throw error("truncated \\x, \\u or \\U escape");
        }
        try {
            int v = Integer.parseInt(source.substring(pos, pos + digits), 16);
            pos += digits;
            return v;
        } catch (NumberFormatException e) {
            throw error("truncated \\x, \\u or \\U escape");
        }
    }
}
