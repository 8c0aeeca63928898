package dev.flora.chat.jinja;

import java.util.List;
import java.util.Map;
import java.util.Set;

/** Jinja2's tests ({@code x is defined}, {@code x is string}, {@code x is divisibleby 3}, ...). */
final class Tests {
    private static final Set<String> NAMES = Set.of("defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number",
            "string", "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby", "eq", "equalto", "ne", "lt", "lessthan",
            "le", "gt", "greaterthan", "ge", "in", "sameas", "lower", "upper", "escaped", "filter", "test");

    private Tests() {
    }

    static boolean exists(String name) {
        return NAMES.contains(name);
    }

    static boolean apply(String name, Object v, List<Object> args) {
        return switch (name) {
            case "defined" -> !(v instanceof Undefined);
            case "undefined" -> v instanceof Undefined;
            case "none" -> v == null;
            case "boolean" -> v instanceof Boolean;
            case "false" -> Boolean.FALSE.equals(v);
            case "true" -> Boolean.TRUE.equals(v);
            case "integer" -> v instanceof Long || v instanceof java.math.BigInteger;
            case "float" -> v instanceof Double;
            case "number" -> Py.isNumber(v);
            case "string" -> v instanceof String;
            case "mapping" -> v instanceof Map<?, ?>;
            case "iterable" -> v instanceof String || v instanceof List<?> || v instanceof Map<?, ?> || v instanceof Undefined;
            case "sequence" -> v instanceof String || v instanceof List<?> || v instanceof Map<?, ?> || v instanceof Undefined;
            case "callable" -> v instanceof PyCallable;
            case "odd" -> integer(name, v) % 2 != 0;
            case "even" -> integer(name, v) % 2 == 0;
            case "divisibleby" -> integer(name, v) % integer(name, arg(name, args)) == 0;
            case "eq", "equalto" -> Py.eq(v, arg(name, args));
            case "ne" -> !Py.eq(v, arg(name, args));
            case "lt", "lessthan" -> Py.compare(v, arg(name, args), "<") < 0;
            case "le" -> Py.compare(v, arg(name, args), "<=") <= 0;
            case "gt", "greaterthan" -> Py.compare(v, arg(name, args), ">") > 0;
            case "ge" -> Py.compare(v, arg(name, args), ">=") >= 0;
            case "in" -> Py.contains(arg(name, args), v);
            case "sameas" -> {
                Object other = arg(name, args);
                yield v == other || (v != null && (v instanceof Boolean || v instanceof Long) && v.equals(other));
            }
            case "lower" -> v instanceof String s && s.equals(s.toLowerCase(java.util.Locale.ROOT)) && !s.equals(s.toUpperCase(java.util.Locale.ROOT));
            case "upper" -> v instanceof String s && s.equals(s.toUpperCase(java.util.Locale.ROOT)) && !s.equals(s.toLowerCase(java.util.Locale.ROOT));
            case "escaped" -> false;
            case "filter" -> v instanceof String s && Filters.exists(s);
            case "test" -> v instanceof String s && exists(s);
            default -> throw TemplateError.unsupported("no test named '" + name + "'");
        };
    }

    private static Object arg(String test, List<Object> args) {
        if (args.isEmpty()) {
            throw TemplateError.runtime("the test '" + test + "' needs an argument");
        }
        return args.getFirst();
    }

    private static long integer(String test, Object v) {
        if (v instanceof Undefined u) {
            throw u.error();
        }
        if (!Py.isInt(v)) {
            throw TemplateError.runtime("the test '" + test + "' needs an integer, got " + PyText.typeName(v));
        }
        return Py.asLong(v);
    }
}
