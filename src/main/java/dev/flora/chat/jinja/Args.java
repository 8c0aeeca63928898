package dev.flora.chat.jinja;

import java.util.List;
import java.util.Map;

/** Argument checks for built-in functions, filters and methods, with Python-like messages. */
final class Args {
    private Args() {
    }

    static void count(String function, List<Object> args, int min, int max) {
        if (args.size() < min || args.size() > max) {
            throw TemplateError.runtime(function + "() takes " + (min == max ? String.valueOf(min) : "from " + min + " to " + max)
                    + " arguments (" + args.size() + " given)");
        }
    }

    /** Positional argument i, else the keyword of that name, else the default. */
    static Object get(List<Object> args, Map<String, Object> kwargs, int i, String name, Object fallback) {
        if (i < args.size()) {
            return args.get(i);
        }
        return kwargs.containsKey(name) ? kwargs.get(name) : fallback;
    }

    static String string(String function, Object value) {
        if (value instanceof String s) {
            return s;
        }
        throw TemplateError.runtime(function + "() argument must be str, not " + PyText.typeName(value));
    }
}
