package dev.flora.chat.jinja;

import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Python's two string formattings: {@code "%s" % args} (the format filter uses it) and {@code str.format}. */
final class PyFormat {
    private PyFormat() {
    }

    /** printf-style formatting: %s %r %d %i %f %e %g %x %o %c %% with flags, width, precision and %(key)s. */
    static String percent(String format, Object args) {
        List<Object> values = args instanceof PyTuple t ? t : java.util.Collections.singletonList(args instanceof Undefined ? "" : args);
        Map<?, ?> named = args instanceof Map<?, ?> m ? m : null;
        StringBuilder out = new StringBuilder();
        int next = 0;
        int i = 0;
        while (i < format.length()) {
            char c = format.charAt(i++);
            if (c != '%') {
                out.append(c);
                continue;
            }
            if (i >= format.length()) {
                throw TemplateError.runtime("incomplete format");
            }
            Object value = null;
            boolean haveValue = false;
            if (format.charAt(i) == '(') {
                int close = format.indexOf(')', i);
                if (close < 0 || named == null) {
                    throw TemplateError.runtime("format requires a mapping");
                }
                String key = format.substring(i + 1, close);
                if (!Py.containsKey(named, key)) {
                    throw TemplateError.runtime("KeyError: " + PyText.repr(key));
                }
                value = Py.get(named, key);
                haveValue = true;
                i = close + 1;
            }
            StringBuilder flags = new StringBuilder();
            while (i < format.length() && "-+ 0#".indexOf(format.charAt(i)) >= 0) {
                flags.append(format.charAt(i++));
            }
            int width = -1;
            int start = i;
            while (i < format.length() && Character.isDigit(format.charAt(i))) {
                i++;
            }
            if (i > start) {
                width = Integer.parseInt(format.substring(start, i));
            }
            int precision = -1;
            if (i < format.length() && format.charAt(i) == '.') {
                start = ++i;
                while (i < format.length() && Character.isDigit(format.charAt(i))) {
                    i++;
                }
                precision = i > start ? Integer.parseInt(format.substring(start, i)) : 0;
            }
            if (i >= format.length()) {
                throw TemplateError.runtime("incomplete format");
            }
            char type = format.charAt(i++);
            if (type == '%') {
                out.append('%');
                continue;
            }
            if (!haveValue) {
                if (next >= values.size()) {
                    throw TemplateError.runtime("not enough arguments for format string");
                }
                value = values.get(next++);
            }
            out.append(pad(convert(type, value, flags.toString(), precision), width, flags.indexOf("-") >= 0,
                    flags.indexOf("0") >= 0 && "dioxXeEfFgG".indexOf(type) >= 0));
        }
        if (named == null && next < values.size()) {
            throw TemplateError.runtime("not all arguments converted during string formatting");
        }
        return out.toString();
    }

    private static String convert(char type, Object value, String flags, int precision) {
        String sign = flags.contains("+") ? "+" : flags.contains(" ") ? " " : "";
        return switch (type) {
            case 's' -> precision >= 0 ? truncate(PyText.str(value), precision) : PyText.str(value);
            case 'r', 'a' -> precision >= 0 ? truncate(PyText.repr(value), precision) : PyText.repr(value);
            case 'd', 'i', 'u' -> {
                long n = value instanceof Double d ? (long) (double) d : Py.asLong(number(value));
                yield (n >= 0 ? sign : "") + n;
            }
            case 'x', 'X', 'o' -> {
                long n = Py.asLong(number(value));
                String digits = type == 'o' ? Long.toOctalString(Math.abs(n)) : Long.toHexString(Math.abs(n));
                if (flags.contains("#")) {
                    digits = (type == 'o' ? "0o" : "0x") + digits;
                }
                digits = type == 'X' ? digits.toUpperCase(Locale.ROOT) : digits;
                yield (n < 0 ? "-" : sign) + digits;
            }
            case 'f', 'F', 'e', 'E', 'g', 'G' -> {
                double d = Py.asDouble(number(value));
                String s = String.format(Locale.ROOT, "%" + (precision >= 0 ? "." + precision : ".6") + type, d);
                yield (d >= 0 ? sign : "") + s;
            }
            case 'c' -> value instanceof String s ? s : new String(Character.toChars((int) Py.asLong(number(value))));
            default -> throw TemplateError.unsupported("the format character '" + type + "' is not supported");
        };
    }

    private static Object number(Object value) {
        if (!Py.isNumber(value)) {
            throw TemplateError.runtime("a number is required, not " + PyText.typeName(value));
        }
        return value;
    }

    private static String truncate(String s, int codePoints) {
        return s.codePointCount(0, s.length()) <= codePoints ? s : s.substring(0, s.offsetByCodePoints(0, codePoints));
    }

    private static String pad(String s, int width, boolean left, boolean zeros) {
        int length = s.codePointCount(0, s.length());
        if (width <= length) {
            return s;
        }
        if (left) {
            return s + " ".repeat(width - length);
        }
        if (zeros) {
            int signs = !s.isEmpty() && "+- ".indexOf(s.charAt(0)) >= 0 ? 1 : 0;
            return s.substring(0, signs) + "0".repeat(width - length) + s.substring(signs);
        }
        return " ".repeat(width - length) + s;
    }

    /** str.format: {} {0} {name} {name.attr} {name[key]} with an optional !r/!s and a format spec [[fill]align][sign][0][width][.precision][type]. */
    static String format(String format, List<Object> args, Map<String, Object> kwargs) {
        StringBuilder out = new StringBuilder();
        int auto = 0;
        int i = 0;
        while (i < format.length()) {
            char c = format.charAt(i);
            if (c == '{' && i + 1 < format.length() && format.charAt(i + 1) == '{') {
                out.append('{');
                i += 2;
                continue;
            }
            if (c == '}' && i + 1 < format.length() && format.charAt(i + 1) == '}') {
                out.append('}');
                i += 2;
                continue;
            }
            if (c == '}') {
                throw TemplateError.runtime("Single '}' encountered in format string");
            }
            if (c != '{') {
                out.append(c);
                i++;
                continue;
            }
            int close = format.indexOf('}', i);
            if (close < 0) {
                throw TemplateError.runtime("Single '{' encountered in format string");
            }
            String field = format.substring(i + 1, close);
            i = close + 1;
            String spec = "";
            int colon = field.indexOf(':');
            if (colon >= 0) {
                spec = field.substring(colon + 1);
                field = field.substring(0, colon);
            }
            char conversion = 0;
            int bang = field.indexOf('!');
            if (bang >= 0) {
                conversion = field.length() > bang + 1 ? field.charAt(bang + 1) : 0;
                field = field.substring(0, bang);
            }
            int end = 0;
            while (end < field.length() && field.charAt(end) != '.' && field.charAt(end) != '[') {
                end++;
            }
            String head = field.substring(0, end);
            Object value;
            if (head.isEmpty()) {
                if (auto >= args.size()) {
                    throw TemplateError.runtime("Replacement index " + auto + " out of range for positional args tuple");
                }
                value = args.get(auto++);
            } else if (head.chars().allMatch(Character::isDigit)) {
                int index = Integer.parseInt(head);
                if (index >= args.size()) {
                    throw TemplateError.runtime("Replacement index " + index + " out of range for positional args tuple");
                }
                value = args.get(index);
            } else {
                if (!kwargs.containsKey(head)) {
                    throw TemplateError.runtime("KeyError: " + PyText.repr(head));
                }
                value = kwargs.get(head);
            }
            String rest = field.substring(end);
            while (!rest.isEmpty()) {
                if (rest.charAt(0) == '.') {
                    int stop = 1;
                    while (stop < rest.length() && rest.charAt(stop) != '.' && rest.charAt(stop) != '[') {
                        stop++;
                    }
                    value = Access.getattr(value, rest.substring(1, stop));
                    rest = rest.substring(stop);
                } else {
                    int stop = rest.indexOf(']');
                    String key = rest.substring(1, stop);
                    value = Access.getitem(value, key.chars().allMatch(Character::isDigit) && !key.isEmpty() ? (Object) Long.parseLong(key) : key);
                    rest = rest.substring(stop + 1);
                }
            }
            if (value instanceof Undefined u) {
                throw u.error();
            }
            String text = conversion == 'r' ? PyText.repr(value) : null;
            out.append(applySpec(text != null ? text : value, spec));
        }
        return out.toString();
    }

    private static String applySpec(Object value, String spec) {
        if (spec.isEmpty()) {
            return PyText.str(value);
        }
        int i = 0;
        char fill = ' ';
        char align = 0;
        if (spec.length() >= 2 && "<>^=".indexOf(spec.charAt(1)) >= 0) {
            fill = spec.charAt(0);
            align = spec.charAt(1);
            i = 2;
        } else if ("<>^=".indexOf(spec.charAt(0)) >= 0) {
            align = spec.charAt(0);
            i = 1;
        }
        String sign = "";
        if (i < spec.length() && "+- ".indexOf(spec.charAt(i)) >= 0) {
            sign = spec.charAt(i) == '-' ? "" : String.valueOf(spec.charAt(i));
            i++;
        }
        if (i < spec.length() && spec.charAt(i) == '0') {
            fill = '0';
            if (align == 0) {
                align = '=';
            }
            i++;
        }
        int start = i;
        while (i < spec.length() && Character.isDigit(spec.charAt(i))) {
            i++;
        }
        int width = i > start ? Integer.parseInt(spec.substring(start, i)) : 0;
        int precision = -1;
        if (i < spec.length() && spec.charAt(i) == '.') {
            start = ++i;
            while (i < spec.length() && Character.isDigit(spec.charAt(i))) {
                i++;
            }
            precision = Integer.parseInt(spec.substring(start, i));
        }
        char type = i < spec.length() ? spec.charAt(i++) : 0;
        if (i != spec.length()) {
            throw TemplateError.unsupported("the format spec '" + spec + "' is not supported");
        }
        String text;
        boolean numeric = Py.isNumber(value) && !(value instanceof Boolean && type == 0);
        if (type == 0 || type == 's') {
            text = value instanceof Double d && precision >= 0 ? String.format(Locale.ROOT, "%." + precision + "g", d) : PyText.str(value);
            if (type == 's' && precision >= 0) {
                text = truncate(text, precision);
            }
        } else {
            text = convert(type == 'n' ? 'd' : type, value, sign, precision);
            sign = "";
        }
        if (numeric && !sign.isEmpty() && !text.startsWith("-")) {
            text = sign + text;
        }
        int length = text.codePointCount(0, text.length());
        if (width <= length) {
            return text;
        }
        String padding = String.valueOf(fill).repeat(width - length);
        if (align == 0) {
            align = numeric ? '>' : '<';
        }
        return switch (align) {
            case '<' -> text + padding;
            case '^' -> {
                int half = (width - length) / 2;
                yield String.valueOf(fill).repeat(half) + text + String.valueOf(fill).repeat(width - length - half);
            }
            case '=' -> {
                int signs = !text.isEmpty() && "+- ".indexOf(text.charAt(0)) >= 0 ? 1 : 0;
                yield text.substring(0, signs) + padding + text.substring(signs);
            }
            default -> padding + text;
        };
    }
}
