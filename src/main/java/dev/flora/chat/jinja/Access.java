package dev.flora.chat.jinja;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Attribute and item access as Jinja2's sandbox does it: {@code x.name} tries the object's
 * attribute (a method) first and then its item, {@code x[key]} the other way round; what is
 * missing is Undefined. Methods that would change a list or dict are refused as the sandbox does.
 */
final class Access {
    private static final Set<String> MUTATING = Set.of("append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear",
            "update", "setdefault", "popitem", "add", "discard", "difference_update", "intersection_update");

    private Access() {
    }

    static Object getattr(Object obj, String name) {
        if (obj instanceof Undefined u) {
            throw u.error();
        }
        if (obj instanceof Namespace ns) {
            return ns.attributes.containsKey(name) ? ns.attributes.get(name) : Undefined.member(obj, name);
        }
        if (obj instanceof LoopInfo loop) {
            return loop.attribute(name);
        }
        Object method = method(obj, name);
        if (method != null) {
            return method;
        }
        if (obj instanceof Map<?, ?> m && Py.containsKey(m, name)) {
            return Py.get(m, name);
        }
        return Undefined.member(obj, name);
    }

    static Object getitem(Object obj, Object key) {
        if (obj instanceof Undefined u) {
            throw u.error();
        }
        switch (obj) {
            case null -> {
                return Undefined.member(null, key);
            }
            case Map<?, ?> m when Py.containsKey(m, key) -> {
                return Py.get(m, key);
            }
            case List<?> l when Py.isInt(key) -> {
                long i = Py.asLong(key);
                long index = i < 0 ? i + l.size() : i;
                if (index >= 0 && index < l.size()) {
                    return l.get((int) index);
                }
                return Undefined.member(obj, key);
            }
            case String s when Py.isInt(key) -> {
                int n = s.codePointCount(0, s.length());
                long i = Py.asLong(key);
                long index = i < 0 ? i + n : i;
                if (index >= 0 && index < n) {
                    int at = s.offsetByCodePoints(0, (int) index);
                    return new String(Character.toChars(s.codePointAt(at)));
                }
                return Undefined.member(obj, key);
            }
            case Namespace ns when key instanceof String name -> {
                return getattr(ns, name);
            }
            case LoopInfo loop when key instanceof String name -> {
                return loop.attribute(name);
            }
            default -> {
            }
        }
        if (key instanceof String name) {
            Object method = method(obj, name);
            if (method != null) {
                return method;
            }
        }
        return Undefined.member(obj, key);
    }

    /** obj[start:stop:step] on a list, tuple or string (by characters, as Python counts them). */
    static Object slice(Object obj, Object start, Object stop, Object step) {
        if (obj instanceof Undefined u) {
            throw u.error();
        }
        long st = step == null || step instanceof Undefined ? 1 : index(step);
        if (st == 0) {
            throw TemplateError.runtime("slice step cannot be zero");
        }
        List<Object> items;
        if (obj instanceof String s) {
            items = Py.iterate(s);
        } else if (obj instanceof List<?> l) {
            items = new ArrayList<>(l);
        } else {
            return Undefined.member(obj, "slice"); // as Jinja2's getitem: a TypeError becomes Undefined
        }
        int n = items.size();
        long a;
        long b;
        if (st > 0) {
            a = bound(start, 0, n, 0, n);
            b = bound(stop, n, n, 0, n);
        } else {
            a = bound(start, n - 1, n, -1, n - 1);
            b = bound(stop, -1, n, -1, n - 1);
        }
        List<Object> out = new ArrayList<>();
        for (long i = a; st > 0 ? i < b : i > b; i += st) {
            out.add(items.get((int) i));
        }
        if (obj instanceof String) {
            StringBuilder sb = new StringBuilder();
            out.forEach(c -> sb.append((String) c));
            return sb.toString();
        }
        return obj instanceof PyTuple ? new PyTuple(out) : out;
    }

    private static long index(Object v) {
        if (!Py.isInt(v)) {
            throw TemplateError.runtime("slice indices must be integers or None");
        }
        return Py.asLong(v);
    }

    /** A slice bound adjusted as CPython does: negative counts from the end, then clamped to [low, high]. */
    private static long bound(Object v, long fallback, int n, long low, long high) {
        if (v == null || v instanceof Undefined) {
            return fallback;
        }
        long i = index(v);
        if (i < 0) {
            i += n;
        }
        return Math.max(low, Math.min(high, i));
    }

    /** A method of a str, dict or list bound to it, or null when the type has no such method. */
    private static Object method(Object obj, String name) {
        if ((obj instanceof List<?> || obj instanceof Map<?, ?>) && MUTATING.contains(name)) {
            throw TemplateError.runtime("access to attribute '" + name + "' of '" + PyText.typeName(obj) + "' object is unsafe.");
        }
        return switch (obj) {
            case null -> null;
            case String s -> PyStrings.method(s, name);
            case Map<?, ?> m -> dictMethod(m, name);
            case List<?> l -> listMethod(l, name);
            default -> null;
        };
    }

    private static PyCallable dictMethod(Map<?, ?> m, String name) {
        return switch (name) {
            case "items" -> (args, kwargs) -> {
                List<Object> out = new ArrayList<>();
                m.forEach((k, v) -> out.add(PyTuple.of(k, v)));
                return out;
            };
            case "keys" -> (args, kwargs) -> new ArrayList<Object>(m.keySet());
            case "values" -> (args, kwargs) -> new ArrayList<Object>(m.values());
            case "get" -> (args, kwargs) -> {
                Args.count("get", args, 1, 2);
                Object key = args.getFirst();
                return Py.containsKey(m, key) ? Py.get(m, key) : args.size() > 1 ? args.get(1) : null;
            };
            case "copy" -> (args, kwargs) -> new java.util.LinkedHashMap<Object, Object>(m);
            default -> null;
        };
    }

    private static PyCallable listMethod(List<?> l, String name) {
        return switch (name) {
            case "count" -> (args, kwargs) -> l.stream().filter(x -> Py.eq(x, args.getFirst())).count();
            case "index" -> (args, kwargs) -> {
                for (int i = 0; i < l.size(); i++) {
                    if (Py.eq(l.get(i), args.getFirst())) {
                        return (long) i;
                    }
                }
                throw TemplateError.runtime(PyText.repr(args.getFirst()) + " is not in list");
            };
            case "copy" -> (args, kwargs) -> new ArrayList<Object>(l);
            default -> null;
        };
    }
}
