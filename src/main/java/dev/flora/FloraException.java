package dev.flora;

/**
 * An error a user can act on: bad input, a missing file, an unsupported option. The CLI prints
 * its message as one line and exits non-zero; anything else is a bug in Flora.
 */
public class FloraException extends RuntimeException {
    public FloraException(String message) {
        super(message);
    }

    public FloraException(String message, Throwable cause) {
        super(message, cause);
    }
}
