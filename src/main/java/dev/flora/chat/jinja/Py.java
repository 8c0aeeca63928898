package dev.flora.chat.jinja;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Python's semantics for template values: truth, equality, ordering, arithmetic, len, iteration, membership. */
final class Py {
    /** Longest string or list an operator may build (a template is not a way to exhaust memory). */
    static final int MAX_SIZE = 10_000_000;

    private Py() {
    }

    static boolean truthy(Object v) {
        return switch (v) {
            case null -> false;
            case Boolean b -> b;
            case Long l -> l != 0;
            case Double d -> d != 0;
            case BigInteger b -> b.signum() != 0;
            case String s -> !s.isEmpty();
            case List<?> l -> !l.isEmpty();
            case Map<?, ?> m -> !m.isEmpty();
            case Undefined u -> false;
            default -> true;
        };
    }

    static boolean isNumber(Object v) {
        return v instanceof Long || v instanceof Double || v instanceof Boolean || v instanceof BigInteger;
    }

    /** An int-like value as a long (bool is an int in Python). */
    static long asLong(Object v) {
        return v instanceof Boolean b ? (b ? 1 : 0) : (Long) v;
    }

    static double asDouble(Object v) {
        return switch (v) {
            case Boolean b -> b ? 1 : 0;
            case Long l -> l;
            case Double d -> d;
            case BigInteger b -> b.doubleValue();
            default -> throw new ClassCastException();
        };
    }

    static boolean isInt(Object v) {
        return v instanceof Long || v instanceof Boolean;
    }

    static boolean eq(Object a, Object b) {
        if (a == null || b == null) {
            return a == b;
        }
        if (a instanceof Undefined || b instanceof Undefined) {
            return a instanceof Undefined && b instanceof Undefined;
        }
        if (isNumber(a) && isNumber(b)) {
            if (isInt(a) && isInt(b)) {
                return asLong(a) == asLong(b);
            }
            if (a instanceof BigInteger || b instanceof BigInteger) {
                return a.toString().equals(b.toString());
            }
            return asDouble(a) == asDouble(b);
        }
        if (a instanceof String || b instanceof String) {
            return a.equals(b);
        }
        if (a instanceof PyTuple != b instanceof PyTuple) {
            return false;
        }
        if (a instanceof List<?> x && b instanceof List<?> y) {
            if (x.size() != y.size()) {
                return false;
            }
            for (int i = 0; i < x.size(); i++) {
                if (!eq(x.get(i), y.get(i))) {
                    return false;
                }
            }
            return true;
        }
        if (a instanceof Map<?, ?> x && b instanceof Map<?, ?> y) {
            if (x.size() != y.size()) {
                return false;
            }
            for (Map.Entry<?, ?> e : x.entrySet()) {
                if (!containsKey(y, e.getKey()) || !eq(e.getValue(), get(y, e.getKey()))) {
                    return false;
                }
            }
            return true;
        }
        return a.equals(b);
    }

    /** Python's ordering for <, <=, >, >=: numbers, strings (by code point) and lists; other pairs are a TypeError. */
    static int compare(Object a, Object b, String op) {
        if (a instanceof Undefined u) {
            throw u.error();
        }
        if (b instanceof Undefined u) {
            throw u.error();
        }
        if (isNumber(a) && isNumber(b)) {
            if (isInt(a) && isInt(b)) {
                return Long.compare(asLong(a), asLong(b));
            }
            return Double.compare(asDouble(a), asDouble(b));
        }
        if (a instanceof String x && b instanceof String y) {
            return compareCodePoints(x, y);
        }
        if (a instanceof List<?> x && b instanceof List<?> y && (a instanceof PyTuple == b instanceof PyTuple)) {
            for (int i = 0; i < Math.min(x.size(), y.size()); i++) {
                if (!eq(x.get(i), y.get(i))) {
                    return compare(x.get(i), y.get(i), op);
                }
            }
            return Integer.compare(x.size(), y.size());
        }
        throw TemplateError.runtime("'" + op + "' not supported between instances of '" + PyText.typeName(a) + "' and '" + PyText.typeName(b) + "'");
    }

    static int compareCodePoints(String x, String y) {
        int i = 0;
        int j = 0;
        while (i < x.length() && j < y.length()) {
            int a = x.codePointAt(i);
            int b = y.codePointAt(j);
            if (a != b) {
                return Integer.compare(a, b);
            }
            i += Character.charCount(a);
            j += Character.charCount(b);
        }
        return Integer.compare(x.length() - i, y.length() - j);
    }

    static long len(Object v) {
        return switch (v) {
            case null -> throw TemplateError.runtime("object of type 'NoneType' has no len()");
            case String s -> s.codePointCount(0, s.length());
            case List<?> l -> l.size();
            case Map<?, ?> m -> m.size();
            case Undefined u -> 0;
            default -> throw TemplateError.runtime("object of type '" + PyText.typeName(v) + "' has no len()");
        };
    }

    /** The items a for loop (or a filter) walks: a list's items, a dict's keys, a string's characters; Undefined is empty. */
    static List<Object> iterate(Object v) {
        return switch (v) {
            case null -> throw TemplateError.runtime("'NoneType' object is not iterable");
            case List<?> l -> new ArrayList<>(l);
            case Map<?, ?> m -> new ArrayList<>(m.keySet());
            case String s -> {
                List<Object> chars = new ArrayList<>();
                s.codePoints().forEach(cp -> chars.add(new String(Character.toChars(cp))));
                yield chars;
            }
            case Undefined u -> new ArrayList<>();
            default -> throw TemplateError.runtime("'" + PyText.typeName(v) + "' object is not iterable");
        };
    }

    /** {@code item in container}. */
    static boolean contains(Object container, Object item) {
        return switch (container) {
            case null -> throw TemplateError.runtime("argument of type 'NoneType' is not iterable");
            case String s -> {
                if (!(item instanceof String sub)) {
                    throw TemplateError.runtime("'in <string>' requires string as left operand, not " + PyText.typeName(item));
                }
                yield s.contains(sub);
            }
            case List<?> l -> l.stream().anyMatch(x -> eq(x, item));
            case Map<?, ?> m -> containsKey(m, item);
            case Undefined u -> false;
            default -> throw TemplateError.runtime("argument of type '" + PyText.typeName(container) + "' is not iterable");
        };
    }

    /** Dict lookup with Python's key equality (1 == 1.0 == True). */
    static boolean containsKey(Map<?, ?> m, Object key) {
        if (m.containsKey(key)) {
            return true;
        }
        if (isNumber(key)) {
            return m.keySet().stream().anyMatch(k -> isNumber(k) && eq(k, key));
        }
        return false;
    }

    static Object get(Map<?, ?> m, Object key) {
        if (m.containsKey(key)) {
            return m.get(key);
        }
        if (isNumber(key)) {
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (isNumber(e.getKey()) && eq(e.getKey(), key)) {
                    return e.getValue();
                }
            }
        }
        return null;
    }

    private static void checkDefined(Object a, Object b) {
        if (a instanceof Undefined u) {
            throw u.error();
        }
        if (b instanceof Undefined u) {
            throw u.error();
        }
    }

    private static TemplateError unsupported(String op, Object a, Object b) {
        return TemplateError.runtime("unsupported operand type(s) for " + op + ": '" + PyText.typeName(a) + "' and '" + PyText.typeName(b) + "'");
    }

    static Object add(Object a, Object b) {
        checkDefined(a, b);
        if (a instanceof String x && b instanceof String y) {
            checkSize((long) x.length() + y.length());
            return x + y;
        }
        if (a instanceof String) {
            throw TemplateError.runtime("can only concatenate str (not \"" + PyText.typeName(b) + "\") to str");
        }
        if (a instanceof List<?> x && b instanceof List<?> y && (a instanceof PyTuple == b instanceof PyTuple)) {
            checkSize((long) x.size() + y.size());
            List<Object> out = new ArrayList<>(x);
            out.addAll(y);
            return a instanceof PyTuple ? new PyTuple(out) : out;
        }
        if (a instanceof List<?> && !(a instanceof PyTuple)) {
            throw TemplateError.runtime("can only concatenate list (not \"" + PyText.typeName(b) + "\") to list");
        }
        if (isNumber(a) && isNumber(b) && !(a instanceof BigInteger) && !(b instanceof BigInteger)) {
            if (isInt(a) && isInt(b)) {
                return Math.addExact(asLong(a), asLong(b));
            }
            return asDouble(a) + asDouble(b);
        }
        throw unsupported("+", a, b);
    }

    static Object arithmetic(String op, Object a, Object b) {
        checkDefined(a, b);
        if (op.equals("*")) {
            Object repeated = repeat(a, b);
            if (repeated == null) {
                repeated = repeat(b, a);
            }
            if (repeated != null) {
                return repeated;
            }
        }
        if (op.equals("%") && a instanceof String format) {
            return PyFormat.percent(format, b);
        }
        if (!isNumber(a) || !isNumber(b) || a instanceof BigInteger || b instanceof BigInteger) {
            throw unsupported(op, a, b);
        }
        boolean ints = isInt(a) && isInt(b);
        switch (op) {
            case "-":
                return ints ? (Object) Math.subtractExact(asLong(a), asLong(b)) : asDouble(a) - asDouble(b);
            case "*":
                return ints ? (Object) Math.multiplyExact(asLong(a), asLong(b)) : asDouble(a) * asDouble(b);
            case "/":
                if (asDouble(b) == 0) {
                    throw TemplateError.runtime("division by zero");
                }
                return asDouble(a) / asDouble(b);
            case "//":
                if (asDouble(b) == 0) {
                    throw TemplateError.runtime("integer division or modulo by zero");
                }
                return ints ? (Object) Math.floorDiv(asLong(a), asLong(b)) : Math.floor(asDouble(a) / asDouble(b));
            case "%":
                if (asDouble(b) == 0) {
                    throw TemplateError.runtime("integer division or modulo by zero");
                }
                if (ints) {
                    return Math.floorMod(asLong(a), asLong(b));
                }
                double x = asDouble(a);
                double y = asDouble(b);
                double r = x % y;
                return r != 0 && (r < 0) != (y < 0) ? r + y : r;
            case "**":
                if (ints && asLong(b) >= 0) {
                    return BigInteger.valueOf(asLong(a)).pow((int) Math.min(asLong(b), 4096)).longValueExact();
                }
                return Math.pow(asDouble(a), asDouble(b));
            default:
                throw new IllegalArgumentException(op);
        }
    }

    /** seq * n for a string or list; null when the operands are not that. */
    private static Object repeat(Object seq, Object n) {
        if (!isInt(n) || !(seq instanceof String || seq instanceof List<?>)) {
            return null;
        }
        long times = Math.max(0, asLong(n));
        if (seq instanceof String s) {
            checkSize(s.length() * times);
            return s.repeat((int) times);
        }
        List<?> l = (List<?>) seq;
        checkSize(l.size() * times);
        List<Object> out = new ArrayList<>();
        for (long i = 0; i < times; i++) {
            out.addAll(l);
        }
        return seq instanceof PyTuple ? new PyTuple(out) : out;
    }

    static void checkSize(long size) {
        if (size > MAX_SIZE) {
            throw TemplateError.runtime("the template builds a value of " + size + " items, more than Flora allows (" + MAX_SIZE + ")");
        }
    }

    static Object negate(Object v) {
        if (v instanceof Undefined u) {
            throw u.error();
        }
        if (v instanceof Double d) {
            return -d;
        }
        if (isInt(v)) {
            return Math.negateExact(asLong(v));
        }
        throw TemplateError.runtime("bad operand type for unary -: '" + PyText.typeName(v) + "'");
    }
}
