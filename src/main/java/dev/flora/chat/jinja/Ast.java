package dev.flora.chat.jinja;

import java.util.List;

/** The parsed template: statements ({@link Node}) and expressions ({@link Expr}), as Jinja2's nodes. */
final class Ast {
    private Ast() {
    }

    sealed interface Node {
    }

    record Text(String text) implements Node {
    }

    record Output(Expr value, int line) implements Node {
    }

    record Branch(Expr test, List<Node> body) {
    }

    record If(List<Branch> branches, List<Node> otherwise) implements Node {
    }

    /** {% for target in iterable if filter %} body {% else %} otherwise {% endfor %}. */
    record For(Target target, Expr iterable, Expr filter, List<Node> body, List<Node> otherwise, int line) implements Node {
    }

    record Set(Target target, Expr value, int line) implements Node {
    }

    /** {% set target | filters %} body {% endset %}: the rendered body, filtered. */
    record SetBlock(Target target, List<Node> body, Expr filters, int line) implements Node {
    }

    record Macro(String name, List<String> params, List<Expr> defaults, List<Node> body) implements Node {
    }

    /** {% call(params) macro(args) %} body {% endcall %}: the macro runs with {@code caller()} rendering the body. */
    record CallBlock(List<String> params, List<Expr> defaults, Call call, List<Node> body) implements Node {
    }

    /** {% filter f %} body {% endfilter %}: filters is a chain applied to a {@link Rendered} placeholder. */
    record FilterBlock(List<Node> body, Expr filters, int line) implements Node {
    }

    record With(List<Target> targets, List<Expr> values, List<Node> body) implements Node {
    }

    record Break() implements Node {
    }

    record Continue() implements Node {
    }

    /** Where an assignment goes: a name, a namespace attribute (ns.x), or a tuple of targets. */
    sealed interface Target {
    }

    record NameTarget(String name) implements Target {
    }

    record AttributeTarget(String namespace, String attribute) implements Target {
    }

    record TupleTarget(List<Target> items) implements Target {
    }

    sealed interface Expr {
    }

    record Const(Object value) implements Expr {
    }

    record Name(String name) implements Expr {
    }

    /** Stands for the rendered body of a {% filter %} or {% set %} block in its filter chain. */
    record Rendered() implements Expr {
    }

    record ListLiteral(List<Expr> items) implements Expr {
    }

    record TupleLiteral(List<Expr> items) implements Expr {
    }

    record DictLiteral(List<Expr> keys, List<Expr> values) implements Expr {
    }

    record Attribute(Expr object, String name) implements Expr {
    }

    record Item(Expr object, Expr key) implements Expr {
    }

    record Slice(Expr object, Expr start, Expr stop, Expr step) implements Expr {
    }

    /** A call; {@code spreadArgs} and {@code spreadKeywords} are its *args and **kwargs (null when absent). */
    record Call(Expr function, List<Expr> args, List<String> keywords, List<Expr> keywordValues, Expr spreadArgs, Expr spreadKeywords)
            implements Expr {
    }

    record Filter(Expr value, String name, List<Expr> args, List<String> keywords, List<Expr> keywordValues, int line) implements Expr {
    }

    record Test(Expr value, String name, List<Expr> args, int line) implements Expr {
    }

    record Not(Expr value) implements Expr {
    }

    record Negate(Expr value) implements Expr {
    }

    record Binary(String op, Expr left, Expr right) implements Expr {
    }

    record Concat(List<Expr> parts) implements Expr {
    }

    /** a op1 b op2 c ...: Python's chained comparisons (==, !=, <, <=, >, >=, in, not in). */
    record Compare(Expr first, List<String> ops, List<Expr> rest) implements Expr {
    }

    record And(Expr left, Expr right) implements Expr {
    }

    record Or(Expr left, Expr right) implements Expr {
    }

    /** then if test else otherwise (otherwise may be null: Undefined). */
    record Conditional(Expr test, Expr then, Expr otherwise) implements Expr {
    }
}
