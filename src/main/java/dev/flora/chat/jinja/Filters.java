package dev.flora.chat.jinja;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/** Jinja2's built-in filters that chat templates use, with transformers' tojson (ensure_ascii=False, key order kept). */
final class Filters {
    private static final Set<String> NAMES = Set.of("abs", "attr", "capitalize", "center", "count", "d", "default", "dictsort", "e",
            "escape", "first", "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map",
            "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum",
            "title", "tojson", "trim", "unique", "upper", "wordcount");
    /** Jinja2 built-ins that Flora does not implement: refused by name rather than called unknown. */
    private static final Set<String> KNOWN = Set.of("batch", "filesizeformat", "groupby", "pprint", "random", "slice", "striptags",
            "truncate", "urlencode", "urlize", "wordwrap", "xmlattr");

    private Filters() {
    }

    static boolean exists(String name) {
        return NAMES.contains(name);
    }

    /** A Jinja2 filter that exists but that Flora does not implement. */
    static boolean known(String name) {
        return KNOWN.contains(name);
    }

    static Object apply(String name, Object v, List<Object> args, Map<String, Object> kw) {
        return switch (name) {
            case "abs" -> {
                Object n = defined(v);
                yield n instanceof Double d ? (Object) Math.abs(d) : (Object) Math.abs(Py.asLong(number(name, n)));
            }
            case "attr" -> Access.getattr(v, Args.string("attr", Args.get(args, kw, 0, "name", null)));
            case "capitalize" -> PyStrings.capitalize(PyText.str(v));
            case "center" -> PyStrings.method(PyText.str(v), "center").call(List.of(Args.get(args, kw, 0, "width", 80L)), Map.of());
            case "count", "length" -> Py.len(v);
            case "d", "default" -> {
                Object fallback = Args.get(args, kw, 0, "default_value", "");
                boolean bool = Py.truthy(Args.get(args, kw, 1, "boolean", false));
                yield v instanceof Undefined || (bool && !Py.truthy(v)) ? fallback : v;
            }
            case "dictsort" -> dictsort(v, args, kw);
            case "e", "escape", "forceescape" -> escape(PyText.str(v));
            case "first" -> {
                List<Object> items = Py.iterate(v);
                yield items.isEmpty() ? Undefined.withMessage("No first item, sequence was empty.") : items.getFirst();
            }
            case "last" -> {
                List<Object> items = Py.iterate(v);
                yield items.isEmpty() ? Undefined.withMessage("No last item, sequence was empty.") : items.getLast();
            }
            case "float" -> toFloat(v, Args.get(args, kw, 0, "default", 0.0));
            case "format" -> {
                if (!args.isEmpty() && !kw.isEmpty()) {
                    throw TemplateError.runtime("format: can't handle positional and keyword arguments at the same time");
                }
                yield PyFormat.percent(PyText.str(v), kw.isEmpty() ? new PyTuple(args) : new LinkedHashMap<Object, Object>(kw));
            }
            case "indent" -> indent(PyText.str(v), Args.get(args, kw, 0, "width", 4L), Py.truthy(Args.get(args, kw, 1, "first", false)),
                    Py.truthy(Args.get(args, kw, 2, "blank", false)));
            case "int" -> toInt(v, Args.get(args, kw, 0, "default", 0L), Py.asLong(Args.get(args, kw, 1, "base", 10L)));
            case "items" -> {
                if (v instanceof Undefined) {
                    yield new ArrayList<>();
                }
                if (!(v instanceof Map<?, ?> m)) {
                    throw TemplateError.runtime("items: can only get item pairs from a mapping, not " + PyText.typeName(v));
                }
                List<Object> out = new ArrayList<>();
                m.forEach((k, x) -> out.add(PyTuple.of(k, x)));
                yield out;
            }
            case "join" -> {
                String separator = PyText.str(Args.get(args, kw, 0, "d", ""));
                Object attribute = Args.get(args, kw, 1, "attribute", null);
                List<String> parts = new ArrayList<>();
                for (Object item : Py.iterate(v)) {
                    parts.add(PyText.str(attribute == null ? item : path(item, attribute)));
                }
                yield String.join(separator, parts);
            }
            case "list" -> Py.iterate(v);
            case "lower" -> PyText.str(v).toLowerCase(Locale.ROOT);
            case "upper" -> PyText.str(v).toUpperCase(Locale.ROOT);
            case "title" -> title(PyText.str(v));
            case "map" -> map(v, args, kw);
            case "max", "min" -> extreme(name, v, kw);
            case "select", "reject" -> {
                boolean keep = name.equals("select");
                List<Object> out = new ArrayList<>();
                for (Object item : Py.iterate(v)) {
                    boolean passes = args.isEmpty() ? Py.truthy(item)
                            : Tests.apply(testName(args.getFirst()), item, args.subList(1, args.size()));
                    if (passes == keep) {
                        out.add(item);
                    }
                }
                yield out;
            }
            case "selectattr", "rejectattr" -> {
                boolean keep = name.equals("selectattr");
                if (args.isEmpty()) {
                    throw TemplateError.runtime(name + ": missing the attribute");
                }
                List<Object> out = new ArrayList<>();
                for (Object item : Py.iterate(v)) {
                    Object value = path(item, args.getFirst());
                    boolean passes = args.size() == 1 ? Py.truthy(value) : Tests.apply(testName(args.get(1)), value, args.subList(2, args.size()));
                    if (passes == keep) {
                        out.add(item);
                    }
                }
                yield out;
            }
            case "replace" -> {
                Object count = Args.get(args, kw, 2, "count", null);
                yield PyStrings.replace(PyText.str(v), PyText.str(Args.get(args, kw, 0, "old", "")), PyText.str(Args.get(args, kw, 1, "new", "")),
                        count == null ? -1 : Py.asLong(count));
            }
            case "reverse" -> {
                if (v instanceof String s) {
                    yield new StringBuilder(s).reverse().toString();
                }
                List<Object> items = Py.iterate(v);
                java.util.Collections.reverse(items);
                yield items;
            }
            case "round" -> round(v, Args.get(args, kw, 0, "precision", 0L), PyText.str(Args.get(args, kw, 1, "method", "common")));
            case "safe" -> v;
            case "sort" -> sort(v, Py.truthy(Args.get(args, kw, 0, "reverse", false)), Py.truthy(Args.get(args, kw, 1, "case_sensitive", false)),
                    Args.get(args, kw, 2, "attribute", null));
            case "string" -> PyText.str(v);
            case "sum" -> {
                Object attribute = Args.get(args, kw, 0, "attribute", null);
                Object total = Args.get(args, kw, 1, "start", 0L);
                for (Object item : Py.iterate(v)) {
                    total = Py.add(total, attribute == null ? item : path(item, attribute));
                }
                yield total;
            }
            case "tojson" -> JsonDump.dumps(v, Args.get(args, kw, 0, "indent", null), (List<?>) kw.get("separators"),
                    Py.truthy(kw.getOrDefault("sort_keys", false)), Py.truthy(kw.getOrDefault("ensure_ascii", false)));
            case "trim" -> {
                Object chars = Args.get(args, kw, 0, "chars", null);
                yield PyStrings.strip(PyText.str(v), chars == null ? null : PyText.str(chars), true, true);
            }
            case "unique" -> unique(v, Py.truthy(Args.get(args, kw, 0, "case_sensitive", false)), Args.get(args, kw, 1, "attribute", null));
            case "wordcount" -> java.util.regex.Pattern.compile("[\\p{L}\\p{N}\\p{M}_]+").matcher(PyText.str(v)).results().count();
            default -> throw TemplateError.unsupported("the filter '" + name + "' is not supported");
        };
    }

    private static Object defined(Object v) {
        if (v instanceof Undefined u) {
            throw u.error();
        }
        return v;
    }

    private static Object number(String filter, Object v) {
        if (!Py.isNumber(v)) {
            throw TemplateError.runtime(filter + ": bad operand type " + PyText.typeName(v));
        }
        return v;
    }

    private static String testName(Object name) {
        if (!(name instanceof String s) || !Tests.exists(s)) {
            throw TemplateError.runtime("no test named " + PyText.repr(name));
        }
        return s;
    }

    /** An attribute path as Jinja2's attribute getters read it: "function.name", "0.x" (items first, then attributes). */
    static Object path(Object item, Object attribute) {
        if (attribute instanceof Long index) {
            return Access.getitem(item, index);
        }
        Object value = item;
        for (String part : PyText.str(attribute).split("\\.", -1)) {
            Object key = !part.isEmpty() && part.chars().allMatch(Character::isDigit) ? (Object) Long.parseLong(part) : part;
            value = Access.getitem(value, key);
        }
        return value;
    }

    private static Function<Object, Object> key(Object attribute, boolean caseSensitive) {
        return item -> {
            Object value = attribute == null ? item : path(item, attribute);
            return !caseSensitive && value instanceof String s ? s.toLowerCase(Locale.ROOT) : value;
        };
    }

    private static List<Object> sort(Object v, boolean reverse, boolean caseSensitive, Object attribute) {
        List<Object> items = Py.iterate(v);
        Function<Object, Object> key = key(attribute, caseSensitive);
        Comparator<Object> order = (a, b) -> Py.compare(key.apply(a), key.apply(b), "<");
        items.sort(reverse ? order.reversed() : order);
        return items;
    }

    private static List<Object> unique(Object v, boolean caseSensitive, Object attribute) {
        Function<Object, Object> key = key(attribute, caseSensitive);
        List<Object> out = new ArrayList<>();
        List<Object> seen = new ArrayList<>();
        for (Object item : Py.iterate(v)) {
            Object k = key.apply(item);
            if (seen.stream().noneMatch(s -> Py.eq(s, k))) {
                seen.add(k);
                out.add(item);
            }
        }
        return out;
    }

    private static Object extreme(String name, Object v, Map<String, Object> kw) {
        List<Object> items = Py.iterate(v);
        if (items.isEmpty()) {
            return Undefined.withMessage("No aggregated item, sequence was empty.");
        }
        Function<Object, Object> key = key(kw.get("attribute"), Py.truthy(kw.getOrDefault("case_sensitive", false)));
        Object best = items.getFirst();
        for (Object item : items.subList(1, items.size())) {
            int c = Py.compare(key.apply(item), key.apply(best), "<");
            if (name.equals("max") ? c > 0 : c < 0) {
                best = item;
            }
        }
        return best;
    }

    private static List<Object> dictsort(Object v, List<Object> args, Map<String, Object> kw) {
        if (!(v instanceof Map<?, ?> m)) {
            throw TemplateError.runtime("dictsort: can only sort a mapping, not " + PyText.typeName(v));
        }
        boolean caseSensitive = Py.truthy(Args.get(args, kw, 0, "case_sensitive", false));
        String by = PyText.str(Args.get(args, kw, 1, "by", "key"));
        boolean reverse = Py.truthy(Args.get(args, kw, 2, "reverse", false));
        int position = switch (by) {
            case "key" -> 0;
            case "value" -> 1;
            default -> throw TemplateError.runtime("dictsort: you can only sort by either \"key\" or \"value\"");
        };
        List<Object> pairs = new ArrayList<>();
        m.forEach((k, x) -> pairs.add(PyTuple.of(k, x)));
        Function<Object, Object> key = key(null, caseSensitive);
        Comparator<Object> order = (a, b) -> Py.compare(key.apply(((PyTuple) a).get(position)), key.apply(((PyTuple) b).get(position)), "<");
        pairs.sort(reverse ? order.reversed() : order);
        return pairs;
    }

    private static List<Object> map(Object v, List<Object> args, Map<String, Object> kw) {
        List<Object> out = new ArrayList<>();
        if (args.isEmpty() && kw.containsKey("attribute")) {
            Object fallback = kw.getOrDefault("default", Undefined.withMessage("map: the attribute is missing"));
            for (Object item : Py.iterate(v)) {
                Object value = path(item, kw.get("attribute"));
                out.add(value instanceof Undefined && kw.containsKey("default") ? fallback : value);
            }
            return out;
        }
        if (args.isEmpty() || !(args.getFirst() instanceof String filter) || !exists(filter)) {
            throw TemplateError.runtime("map: expected a filter name or attribute=");
        }
        for (Object item : Py.iterate(v)) {
            out.add(apply(filter, item, args.subList(1, args.size()), kw));
        }
        return out;
    }

    /** Jinja2's title filter: every word (after a space, dash or opening bracket) capitalised. Unlike str.title, "it's" stays "It's". */
    private static String title(String s) {
        StringBuilder out = new StringBuilder();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("([-\\s({\\[<]+)").matcher(s);
        int last = 0;
        List<String> pieces = new ArrayList<>();
        while (m.find()) {
            pieces.add(s.substring(last, m.start()));
            pieces.add(m.group());
            last = m.end();
        }
        pieces.add(s.substring(last));
        for (String piece : pieces) {
            if (!piece.isEmpty()) {
                int first = piece.codePointAt(0);
                out.append(new String(Character.toChars(first)).toUpperCase(Locale.ROOT))
                        .append(piece.substring(Character.charCount(first)).toLowerCase(Locale.ROOT));
            }
        }
        return out.toString();
    }

    private static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&#34;").replace("'", "&#39;");
    }

    private static String indent(String s, Object width, boolean first, boolean blank) {
        String indention = width instanceof String w ? w : " ".repeat((int) Py.asLong(width));
        List<Object> lines = PyStrings.split(s + "\n", "\n", -1);
        lines.removeLast();
        StringBuilder rv = new StringBuilder();
        for (int i = 0; i < lines.size(); i++) {
            String line = (String) lines.get(i);
            if (i > 0) {
                rv.append('\n').append(blank || !line.isEmpty() ? indention : "");
            }
            rv.append(line);
        }
        return first ? indention + rv : rv.toString();
    }

    private static Object toInt(Object v, Object fallback, long base) {
        try {
            return switch (v) {
                case null -> fallback;
                case Boolean b -> b ? 1L : 0L;
                case Long l -> l;
                case Double d -> (long) (double) d;
                case String s -> {
                    String t = PyStrings.strip(s, null, true, true).replace("_", "");
                    try {
                        yield Long.parseLong(t, (int) base);
                    } catch (NumberFormatException e) {
                        yield (long) Double.parseDouble(t);
                    }
                }
                default -> fallback;
            };
        } catch (NumberFormatException e) {
            return fallback;
        }
    }

    private static Object toFloat(Object v, Object fallback) {
        try {
            return switch (v) {
                case null -> fallback;
                case Boolean b -> b ? 1.0 : 0.0;
                case Long l -> (double) l;
                case Double d -> d;
                case String s -> Double.parseDouble(PyStrings.strip(s, null, true, true));
                default -> fallback;
            };
        } catch (NumberFormatException e) {
            return fallback;
        }
    }

    private static Object round(Object v, Object precision, String method) {
        double value = Py.asDouble(number("round", defined(v)));
        int digits = (int) Py.asLong(precision);
        BigDecimal exact = new BigDecimal(value);
        RoundingMode mode = switch (method) {
            case "common" -> RoundingMode.HALF_EVEN; // Python's round() on the exact binary value
            case "ceil" -> RoundingMode.CEILING;
            case "floor" -> RoundingMode.FLOOR;
            default -> throw TemplateError.runtime("round: method must be common, ceil or floor");
        };
        return exact.setScale(digits, mode).doubleValue();
    }
}
