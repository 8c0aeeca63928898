package dev.flora.chat.jinja;

import java.util.HashMap;
import java.util.Map;

/**
 * Variables visible at one point of a template. As in Jinja2, every loop iteration and macro call
 * has its own scope (a {% set %} inside a loop does not leak out of it), while {% if %} does not.
 */
final class Scope {
    private final Scope parent;
    private final Map<String, Object> variables = new HashMap<>();

    Scope(Scope parent) {
        this.parent = parent;
    }

    Object lookup(String name) {
        for (Scope s = this; s != null; s = s.parent) {
            if (s.variables.containsKey(name)) {
                return s.variables.get(name);
            }
        }
        return Undefined.name(name);
    }

    void set(String name, Object value) {
        variables.put(name, value);
    }
}
