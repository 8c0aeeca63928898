package dev.flora.chat.jinja;

import java.util.List;
import java.util.Map;

/** Something a template can call: a global function, a macro, a method bound to its object. */
@FunctionalInterface
interface PyCallable {
    Object call(List<Object> args, Map<String, Object> kwargs);
}
