package dev.flora.chat.jinja;

import dev.flora.FloraException;

/**
 * A chat template that cannot be compiled or rendered. {@link Kind#RAISED} is the template's own
 * {@code raise_exception(message)} (it refuses the conversation); the others are Flora's words.
 */
public final class TemplateError extends FloraException {
    public enum Kind {
        /** The template is not valid Jinja. */
        SYNTAX,
        /** Valid Jinja that Flora's interpreter does not implement (named in the message). */
        UNSUPPORTED,
        /** An error while rendering, as Jinja2 would raise it (undefined value, wrong type, ...). */
        RUNTIME,
        /** The template called raise_exception(message). */
        RAISED
    }

    private final Kind kind;

    public TemplateError(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }

    static TemplateError runtime(String message) {
        return new TemplateError(Kind.RUNTIME, message);
    }

    static TemplateError unsupported(String message) {
        return new TemplateError(Kind.UNSUPPORTED, message);
    }
}
