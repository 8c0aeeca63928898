package dev.flora.chat.jinja;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.IntPredicate;

/** Python's str methods that chat templates call (strip, split, startswith, title, format, ...). */
final class PyStrings {
    private PyStrings() {
    }

    /** The method {@code name} bound to {@code s}, or null if Flora does not provide it (the caller reports that). */
    static PyCallable method(String s, String name) {
        return switch (name) {
            case "strip" -> (args, kw) -> strip(s, chars(name, args), true, true);
            case "lstrip" -> (args, kw) -> strip(s, chars(name, args), true, false);
            case "rstrip" -> (args, kw) -> strip(s, chars(name, args), false, true);
            case "split" -> (args, kw) -> split(s, Args.get(args, kw, 0, "sep", null), maxsplit(args, kw));
            case "rsplit" -> (args, kw) -> rsplit(s, Args.get(args, kw, 0, "sep", null), maxsplit(args, kw));
            case "splitlines" -> (args, kw) -> splitlines(s, Py.truthy(Args.get(args, kw, 0, "keepends", false)));
            case "startswith" -> (args, kw) -> affix(s, args, true);
            case "endswith" -> (args, kw) -> affix(s, args, false);
            case "replace" -> (args, kw) -> {
                Args.count(name, args, 2, 3);
                return replace(s, Args.string(name, args.get(0)), Args.string(name, args.get(1)), args.size() > 2 ? Py.asLong(args.get(2)) : -1);
            };
            case "upper" -> (args, kw) -> s.toUpperCase(Locale.ROOT);
            case "lower" -> (args, kw) -> s.toLowerCase(Locale.ROOT);
            case "casefold" -> (args, kw) -> s.toLowerCase(Locale.ROOT);
            case "swapcase" -> (args, kw) -> swapcase(s);
            case "title" -> (args, kw) -> title(s);
            case "capitalize" -> (args, kw) -> capitalize(s);
            case "find" -> (args, kw) -> (long) codePointIndex(s, s.indexOf(Args.string(name, args.getFirst())));
            case "rfind" -> (args, kw) -> (long) codePointIndex(s, s.lastIndexOf(Args.string(name, args.getFirst())));
            case "index", "rindex" -> (args, kw) -> {
                String sub = Args.string(name, args.getFirst());
                int at = name.equals("index") ? s.indexOf(sub) : s.lastIndexOf(sub);
                if (at < 0) {
                    throw TemplateError.runtime("substring not found");
                }
                return (long) codePointIndex(s, at);
            };
            case "count" -> (args, kw) -> count(s, Args.string(name, args.getFirst()));
            case "join" -> (args, kw) -> {
                List<String> parts = new ArrayList<>();
                for (Object item : Py.iterate(args.getFirst())) {
                    if (!(item instanceof String str)) {
                        throw TemplateError.runtime("sequence item " + parts.size() + ": expected str instance, " + PyText.typeName(item) + " found");
                    }
                    parts.add(str);
                }
                return String.join(s, parts);
            };
            case "format" -> (args, kw) -> PyFormat.format(s, args, kw);
            case "isdigit", "isdecimal", "isnumeric" -> (args, kw) -> !s.isEmpty() && s.codePoints().allMatch(Character::isDigit);
            case "isalpha" -> (args, kw) -> !s.isEmpty() && s.codePoints().allMatch(Character::isLetter);
            case "isalnum" -> (args, kw) -> !s.isEmpty() && s.codePoints().allMatch(Character::isLetterOrDigit);
            case "isspace" -> (args, kw) -> !s.isEmpty() && s.codePoints().allMatch(PyText::isSpace);
            case "isupper" -> (args, kw) -> s.codePoints().anyMatch(PyStrings::cased) && s.codePoints().noneMatch(Character::isLowerCase);
            case "islower" -> (args, kw) -> s.codePoints().anyMatch(PyStrings::cased) && s.codePoints().noneMatch(Character::isUpperCase);
            case "removeprefix" -> (args, kw) -> {
                String p = Args.string(name, args.getFirst());
                return s.startsWith(p) ? s.substring(p.length()) : s;
            };
            case "removesuffix" -> (args, kw) -> {
                String p = Args.string(name, args.getFirst());
                return !p.isEmpty() && s.endsWith(p) ? s.substring(0, s.length() - p.length()) : s;
            };
            case "partition", "rpartition" -> (args, kw) -> {
                String sep = Args.string(name, args.getFirst());
                int at = name.equals("partition") ? s.indexOf(sep) : s.lastIndexOf(sep);
                if (at < 0) {
                    return name.equals("partition") ? PyTuple.of(s, "", "") : PyTuple.of("", "", s);
                }
                return PyTuple.of(s.substring(0, at), sep, s.substring(at + sep.length()));
            };
            case "zfill" -> (args, kw) -> {
                int width = (int) Py.asLong(args.getFirst());
                int n = s.codePointCount(0, s.length());
                if (n >= width) {
                    return s;
                }
                int signs = !s.isEmpty() && (s.charAt(0) == '+' || s.charAt(0) == '-') ? 1 : 0;
                return s.substring(0, signs) + "0".repeat(width - n) + s.substring(signs);
            };
            case "center", "ljust", "rjust" -> (args, kw) -> justify(name, s, (int) Py.asLong(args.getFirst()),
                    args.size() > 1 ? Args.string(name, args.get(1)) : " ");
            default -> null;
        };
    }

    private static boolean cased(int cp) {
        return Character.isUpperCase(cp) || Character.isLowerCase(cp) || Character.isTitleCase(cp);
    }

    private static String chars(String method, List<Object> args) {
        if (args.isEmpty() || args.getFirst() == null) {
            return null;
        }
        return Args.string(method, args.getFirst());
    }

    private static long maxsplit(List<Object> args, java.util.Map<String, Object> kwargs) {
        Object m = Args.get(args, kwargs, 1, "maxsplit", -1L);
        return Py.asLong(m);
    }

    /** str.strip / lstrip / rstrip: whitespace when chars is null, else any of the given characters. */
    static String strip(String s, String chars, boolean left, boolean right) {
        IntPredicate strip = chars == null ? PyText::isSpace : cp -> chars.codePoints().anyMatch(c -> c == cp);
        int start = 0;
        int end = s.length();
        while (left && start < end && strip.test(s.codePointAt(start))) {
            start += Character.charCount(s.codePointAt(start));
        }
        while (right && end > start && strip.test(s.codePointBefore(end))) {
            end -= Character.charCount(s.codePointBefore(end));
        }
        return s.substring(start, end);
    }

    static List<Object> split(String s, Object sep, long maxsplit) {
        List<Object> out = new ArrayList<>();
        if (sep == null) {
            int i = 0;
            int n = s.length();
            while (true) {
                while (i < n && PyText.isSpace(s.codePointAt(i))) {
                    i += Character.charCount(s.codePointAt(i));
                }
                if (i >= n) {
                    return out;
                }
                if (maxsplit >= 0 && out.size() >= maxsplit) {
                    out.add(strip(s.substring(i), null, false, true));
                    return out;
                }
                int start = i;
                while (i < n && !PyText.isSpace(s.codePointAt(i))) {
                    i += Character.charCount(s.codePointAt(i));
                }
                out.add(s.substring(start, i));
            }
        }
        String separator = Args.string("split", sep);
        if (separator.isEmpty()) {
            throw TemplateError.runtime("empty separator");
        }
        int from = 0;
        while (maxsplit < 0 || out.size() < maxsplit) {
            int at = s.indexOf(separator, from);
            if (at < 0) {
                break;
            }
            out.add(s.substring(from, at));
            from = at + separator.length();
        }
        out.add(s.substring(from));
        return out;
    }

    static List<Object> rsplit(String s, Object sep, long maxsplit) {
        if (maxsplit < 0) {
            return split(s, sep, -1);
        }
        List<Object> out = new ArrayList<>();
        if (sep == null) {
            int i = s.length();
            while (true) {
                while (i > 0 && PyText.isSpace(s.codePointBefore(i))) {
                    i -= Character.charCount(s.codePointBefore(i));
                }
                if (i <= 0) {
                    break;
                }
                if (out.size() >= maxsplit) {
                    out.add(strip(s.substring(0, i), null, true, false));
                    break;
                }
                int end = i;
                while (i > 0 && !PyText.isSpace(s.codePointBefore(i))) {
                    i -= Character.charCount(s.codePointBefore(i));
                }
                out.add(s.substring(i, end));
            }
            java.util.Collections.reverse(out);
            return out;
        }
        String separator = Args.string("rsplit", sep);
        if (separator.isEmpty()) {
            throw TemplateError.runtime("empty separator");
        }
        int end = s.length();
        while (out.size() < maxsplit) {
            int at = s.lastIndexOf(separator, end - separator.length());
            if (at < 0) {
                break;
            }
            out.add(s.substring(at + separator.length(), end));
            end = at;
        }
        out.add(s.substring(0, end));
        java.util.Collections.reverse(out);
        return out;
    }

    private static List<Object> splitlines(String s, boolean keepends) {
        List<Object> out = new ArrayList<>();
        int start = 0;
        int i = 0;
        while (i < s.length()) {
            char c = s.charAt(i);
            int eol;
            if (c == '\r' && i + 1 < s.length() && s.charAt(i + 1) == '\n') {
                eol = 2;
            } else if ("\n\r\u000b\u000c\u001c\u001d\u001e\u0085\u2028\u2029".indexOf(c) >= 0) {
                eol = 1;
            } else {
                i++;
                continue;
            }
            out.add(s.substring(start, keepends ? i + eol : i));
            i += eol;
            start = i;
        }
        if (start < s.length()) {
            out.add(s.substring(start));
        }
        return out;
    }

    private static boolean affix(String s, List<Object> args, boolean prefix) {
        String method = prefix ? "startswith" : "endswith";
        Args.count(method, args, 1, 3);
        String subject = s;
        if (args.size() > 1) {
            subject = (String) Access.slice(s, args.get(1), args.size() > 2 ? args.get(2) : null, null);
        }
        List<Object> candidates = args.getFirst() instanceof PyTuple t ? t : List.of(args.getFirst());
        for (Object c : candidates) {
            if (!(c instanceof String affix)) {
                throw TemplateError.runtime(method + " first arg must be str or a tuple of str, not " + PyText.typeName(c));
            }
            if (prefix ? subject.startsWith(affix) : subject.endsWith(affix)) {
                return true;
            }
        }
        return false;
    }

    static String replace(String s, String old, String replacement, long count) {
        if (count < 0) {
            count = Long.MAX_VALUE;
        }
        StringBuilder out = new StringBuilder();
        if (old.isEmpty()) {
            // Python inserts the replacement before every character and at the end.
            int done = 0;
            int i = 0;
            while (i < s.length()) {
                if (done < count) {
                    out.append(replacement);
                    done++;
                }
                int cp = s.codePointAt(i);
                out.appendCodePoint(cp);
                i += Character.charCount(cp);
            }
            if (done < count) {
                out.append(replacement);
            }
            return out.toString();
        }
        int from = 0;
        long done = 0;
        while (done < count) {
            int at = s.indexOf(old, from);
            if (at < 0) {
                break;
            }
            out.append(s, from, at).append(replacement);
            from = at + old.length();
            done++;
        }
        Py.checkSize((long) out.length() + s.length() - from);
        return out.append(s, from, s.length()).toString();
    }

    private static long count(String s, String sub) {
        if (sub.isEmpty()) {
            return s.codePointCount(0, s.length()) + 1;
        }
        long n = 0;
        int from = 0;
        while ((from = s.indexOf(sub, from)) >= 0) {
            n++;
            from += sub.length();
        }
        return n;
    }

    private static int codePointIndex(String s, int charIndex) {
        return charIndex < 0 ? -1 : s.codePointCount(0, charIndex);
    }

    /** str.title: a cased character after an uncased one goes to title case, the others to lower case. */
    static String title(String s) {
        StringBuilder out = new StringBuilder();
        boolean previousCased = false;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            if (cased(cp)) {
                out.appendCodePoint(previousCased ? Character.toLowerCase(cp) : Character.toTitleCase(cp));
                previousCased = true;
            } else {
                out.appendCodePoint(cp);
                previousCased = false;
            }
        }
        return out.toString();
    }

    /** str.capitalize: the first character in title case, the rest lower case. */
    static String capitalize(String s) {
        if (s.isEmpty()) {
            return s;
        }
        int first = s.codePointAt(0);
        return new String(Character.toChars(Character.toTitleCase(first))) + s.substring(Character.charCount(first)).toLowerCase(Locale.ROOT);
    }

    private static String swapcase(String s) {
        StringBuilder out = new StringBuilder();
        s.codePoints().forEach(cp -> out.appendCodePoint(Character.isUpperCase(cp) ? Character.toLowerCase(cp)
                : Character.isLowerCase(cp) ? Character.toUpperCase(cp) : cp));
        return out.toString();
    }

    private static String justify(String how, String s, int width, String fill) {
        int n = s.codePointCount(0, s.length());
        if (width <= n) {
            return s;
        }
        int pad = width - n;
        return switch (how) {
            case "ljust" -> s + fill.repeat(pad);
            case "rjust" -> fill.repeat(pad) + s;
            default -> {
                // CPython centres with the extra character on the left when the padding and the width are both odd.
                int left = pad / 2 + (pad & width & 1);
                yield fill.repeat(left) + s + fill.repeat(pad - left);
            }
        };
    }
}
