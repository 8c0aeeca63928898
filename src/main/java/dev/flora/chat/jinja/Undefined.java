package dev.flora.chat.jinja;

/**
 * Jinja2's default Undefined: a missing variable, key or attribute. It prints as nothing, is false
 * and iterates as empty; using it any other way (arithmetic, attributes, calls) is an error that
 * names what was missing.
 */
final class Undefined {
    private final String message;

    private Undefined(String message) {
        this.message = message;
    }

    /** A variable that was never set. */
    static Undefined name(String name) {
        return new Undefined("'" + name + "' is undefined");
    }

    /** A key or attribute that {@code owner} does not have. */
    static Undefined member(Object owner, Object key) {
        String what = key instanceof String s ? PyText.repr(s) : PyText.repr(key);
        return new Undefined("'" + PyText.objectTypeRepr(owner) + "' has no attribute " + what);
    }

    static Undefined withMessage(String message) {
        return new Undefined(message);
    }

    TemplateError error() {
        return TemplateError.runtime(message);
    }

    @Override
    public String toString() {
        return "";
    }
}
