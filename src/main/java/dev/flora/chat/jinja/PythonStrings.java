package dev.flora.chat.jinja;

/** Python's str.strip and str.lstrip (Python's idea of whitespace), for code outside templates that must agree with transformers. */
public final class PythonStrings {
    private PythonStrings() {
    }

    public static String strip(String s) {
        return PyStrings.strip(s, null, true, true);
    }

    public static String lstrip(String s) {
        return PyStrings.strip(s, null, true, false);
    }
}
