package dev.flora.chat.jinja;

/** One token inside a {{ }} or {% %} tag. {@code value} is the decoded literal of STRING, INTEGER and FLOAT tokens. */
record Token(Type type, String text, Object value, int line) {
    enum Type { NAME, STRING, INTEGER, FLOAT, OPERATOR, END }

    boolean is(Type t, String s) {
        return type == t && text.equals(s);
    }

    boolean isOperator(String s) {
        return is(Type.OPERATOR, s);
    }

    boolean isName(String s) {
        return is(Type.NAME, s);
    }

    String describe() {
        return type == Type.END ? "end of tag" : "'" + text + "'";
    }
}
