package dev.flora.chat.jinja;

import java.util.LinkedHashMap;
import java.util.Map;

/** Jinja2's namespace(): the one object a template may change from inside a loop ({% set ns.x = ... %}). */
final class Namespace {
    final Map<String, Object> attributes = new LinkedHashMap<>();

    @Override
    public String toString() {
        return "<Namespace " + PyText.repr(attributes) + ">";
    }
}
