package dev.flora.chat.jinja;

import dev.flora.chat.jinja.Ast.Expr;
import dev.flora.chat.jinja.Ast.Node;
import dev.flora.chat.jinja.Ast.Target;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Jinja2's grammar as its own parser reads it (the same precedence: conditional, or, and, not,
 * comparisons and in, + -, ~, * / // %, **, unary, then postfix, filters and tests). Tags Flora
 * does not implement are refused here, by name, before anything renders.
 */
final class Parser {
    private static final Set<String> UNSUPPORTED_TAGS = Set.of("include", "import", "from", "extends", "block", "do",
            "autoescape", "trans", "pluralize", "debug");
    private static final Set<String> COMPARE = Set.of("==", "!=", "<", "<=", ">", ">=");

    private final List<Lexer.Segment> segments;
    private int index;
    private List<Token> tokens;
    private int at;
    private int loops;
    /** The name of the tag that ended the last body (elif, else, endfor, ...), its tokens current. */
    private String ended;

    private Parser(List<Lexer.Segment> segments) {
        this.segments = segments;
    }

    static List<Node> parse(String template) {
        Parser p = new Parser(Lexer.lex(template));
        List<Node> nodes = p.body(Set.of());
        return nodes;
    }

    private TemplateError error(String message) {
        return new TemplateError(TemplateError.Kind.SYNTAX, "line " + current().line() + ": " + message);
    }

    private Token current() {
        return tokens.get(at);
    }

    private Token peek() {
        return at + 1 < tokens.size() ? tokens.get(at + 1) : tokens.getLast();
    }

    private Token next() {
        Token t = tokens.get(at);
        if (at < tokens.size() - 1) {
            at++;
        }
        return t;
    }

    private boolean skipOperator(String op) {
        if (current().isOperator(op)) {
            next();
            return true;
        }
        return false;
    }

    private boolean skipName(String name) {
        if (current().isName(name)) {
            next();
            return true;
        }
        return false;
    }

    private void expectOperator(String op) {
        if (!skipOperator(op)) {
            throw error("expected '" + op + "', got " + current().describe());
        }
    }

    private String expectName() {
        if (current().type() != Token.Type.NAME) {
            throw error("expected a name, got " + current().describe());
        }
        return next().text();
    }

    private void expectEnd() {
        if (current().type() != Token.Type.END) {
            throw error("expected the end of the tag, got " + current().describe());
        }
    }

    /** Statements until a tag named in {@code ends} (left in {@link #ended}); at top level, until the end. */
    private List<Node> body(Set<String> ends) {
        List<Node> nodes = new ArrayList<>();
        while (index < segments.size()) {
            Lexer.Segment segment = segments.get(index++);
            if (segment instanceof Lexer.Text text) {
                nodes.add(new Ast.Text(text.text()));
                continue;
            }
            Lexer.Tag tag = (Lexer.Tag) segment;
            tokens = tag.tokens();
            at = 0;
            if (tag.output()) {
                Expr value = tuple(false, true, Set.of());
                expectEnd();
                nodes.add(new Ast.Output(value, tag.line()));
                continue;
            }
            String name = expectName();
            if (ends.contains(name)) {
                ended = name;
                return nodes;
            }
            nodes.add(statement(name, tag.line()));
        }
        if (!ends.isEmpty()) {
            throw new TemplateError(TemplateError.Kind.SYNTAX, "unexpected end of template: missing {% " + String.join(" or ", ends.stream().sorted().toList()) + " %}");
        }
        return nodes;
    }

    private Node statement(String name, int line) {
        switch (name) {
            case "if":
                return ifStatement();
            case "for":
                return forStatement(line);
            case "set":
                return setStatement(line);
            case "macro":
                return macro();
            case "call":
                return callBlock(line);
            case "filter": {
                Expr filters = filterChain(new Ast.Rendered(), true);
                expectEnd();
                List<Node> body = body(Set.of("endfilter"));
                expectEnd();
                return new Ast.FilterBlock(body, filters, line);
            }
            case "with":
                return with();
            case "generation": {
                // transformers' {% generation %} marks assistant text for masks; it renders its body unchanged.
                expectEnd();
                List<Node> body = body(Set.of("endgeneration"));
                expectEnd();
                return new Ast.With(List.of(), List.of(), body);
            }
            case "break", "continue": {
                if (loops == 0) {
                    throw error("'" + name + "' outside of a loop");
                }
                expectEnd();
                return name.equals("break") ? new Ast.Break() : new Ast.Continue();
            }
            default:
                if (UNSUPPORTED_TAGS.contains(name)) {
                    throw new TemplateError(TemplateError.Kind.UNSUPPORTED,
                            "line " + line + ": the chat template uses {% " + name + " %}, which Flora's template interpreter does not support");
                }
                throw error("unknown tag '" + name + "'");
        }
    }

    private Node ifStatement() {
        List<Ast.Branch> branches = new ArrayList<>();
        List<Node> otherwise = List.of();
        while (true) {
            Expr test = tuple(false, false, Set.of());
            expectEnd();
            branches.add(new Ast.Branch(test, body(Set.of("elif", "else", "endif"))));
            if (ended.equals("elif")) {
                continue;
            }
            if (ended.equals("else")) {
                expectEnd();
                otherwise = body(Set.of("endif"));
            }
            expectEnd();
            return new Ast.If(branches, otherwise);
        }
    }

    private Node forStatement(int line) {
        Target target = assignTarget(Set.of("in"), false);
        if (!skipName("in")) {
            throw error("expected 'in', got " + current().describe());
        }
        Expr iterable = tuple(false, false, Set.of("recursive"));
        Expr filter = skipName("if") ? expression(true) : null;
        if (current().isName("recursive")) {
            throw new TemplateError(TemplateError.Kind.UNSUPPORTED, "line " + line + ": recursive for loops are not supported");
        }
        expectEnd();
        loops++;
        List<Node> body = body(Set.of("else", "endfor"));
        loops--;
        List<Node> otherwise = List.of();
        if (ended.equals("else")) {
            expectEnd();
            otherwise = body(Set.of("endfor"));
        }
        expectEnd();
        return new Ast.For(target, iterable, filter, body, otherwise, line);
    }

    private Node setStatement(int line) {
        Target target = assignTarget(Set.of(), true);
        if (skipOperator("=")) {
            Expr value = tuple(false, true, Set.of());
            expectEnd();
            return new Ast.Set(target, value, line);
        }
        Expr filters = current().isOperator("|") ? filterChain(new Ast.Rendered(), false) : null;
        expectEnd();
        List<Node> body = body(Set.of("endset"));
        expectEnd();
        return new Ast.SetBlock(target, body, filters, line);
    }

    private record Signature(List<String> params, List<Expr> defaults) {
    }

    /** (a, b=default, ...) of a macro or a call block. */
    private Signature signature() {
        expectOperator("(");
        List<String> params = new ArrayList<>();
        List<Expr> defaults = new ArrayList<>();
        while (!current().isOperator(")")) {
            if (!params.isEmpty()) {
                expectOperator(",");
            }
            params.add(expectName());
            if (skipOperator("=")) {
                defaults.add(expression(true));
            } else if (!defaults.isEmpty()) {
                throw error("non-default argument follows default argument");
            }
        }
        expectOperator(")");
        return new Signature(params, defaults);
    }

    private Node callBlock(int line) {
        Signature caller = current().isOperator("(") ? signature() : new Signature(List.of(), List.of());
        Expr call = expression(true);
        if (!(call instanceof Ast.Call c)) {
            throw new TemplateError(TemplateError.Kind.SYNTAX, "line " + line + ": expected a call after {% call %}");
        }
        expectEnd();
        List<Node> body = body(Set.of("endcall"));
        expectEnd();
        return new Ast.CallBlock(caller.params(), caller.defaults(), c, body);
    }

    private Node macro() {
        String name = expectName();
        Signature signature = signature();
        List<String> params = signature.params();
        List<Expr> defaults = signature.defaults();
        expectEnd();
        int outerLoops = loops;
        loops = 0;
        List<Node> body = body(Set.of("endmacro"));
        loops = outerLoops;
        expectEnd();
        return new Ast.Macro(name, params, defaults, body);
    }

    private Node with() {
        List<Target> targets = new ArrayList<>();
        List<Expr> values = new ArrayList<>();
        while (current().type() != Token.Type.END) {
            if (!targets.isEmpty()) {
                expectOperator(",");
            }
            targets.add(assignTarget(Set.of(), false));
            expectOperator("=");
            values.add(expression(true));
        }
        List<Node> body = body(Set.of("endwith"));
        expectEnd();
        return new Ast.With(targets, values, body);
    }

    /** A name, a namespace attribute (with {@code namespaced}), or several of them separated by commas. */
    private Target assignTarget(Set<String> extraEnds, boolean namespaced) {
        List<Target> items = new ArrayList<>();
        boolean isTuple = false;
        while (true) {
            if (!items.isEmpty()) {
                expectOperator(",");
            }
            if (current().type() == Token.Type.END || current().isOperator(")") || extraEnds.stream().anyMatch(e -> current().isName(e))) {
                break;
            }
            boolean parenthesised = skipOperator("(");
            if (parenthesised) {
                items.add(assignTarget(Set.of(), namespaced));
                expectOperator(")");
            } else {
                String name = expectName();
                if (namespaced && current().isOperator(".")) {
                    next();
                    items.add(new Ast.AttributeTarget(name, expectName()));
                } else {
                    items.add(new Ast.NameTarget(name));
                }
            }
            if (current().isOperator(",")) {
                isTuple = true;
            } else {
                break;
            }
        }
        if (items.isEmpty()) {
            throw error("expected an assignment target, got " + current().describe());
        }
        return isTuple ? new Ast.TupleTarget(items) : items.getFirst();
    }

    private Expr tuple(boolean explicitParentheses, boolean withConditional, Set<String> extraEnds) {
        List<Expr> items = new ArrayList<>();
        boolean isTuple = false;
        while (true) {
            if (!items.isEmpty()) {
                expectOperator(",");
            }
            if (current().type() == Token.Type.END || current().isOperator(")") || extraEnds.stream().anyMatch(e -> current().isName(e))) {
                break;
            }
            items.add(expression(withConditional));
            if (current().isOperator(",")) {
                isTuple = true;
            } else {
                break;
            }
        }
        if (!isTuple) {
            if (!items.isEmpty()) {
                return items.getFirst();
            }
            if (!explicitParentheses) {
                throw error("expected an expression, got " + current().describe());
            }
        }
        return new Ast.TupleLiteral(items);
    }

    private Expr expression(boolean withConditional) {
        return withConditional ? conditional() : or();
    }

    private Expr conditional() {
        Expr value = or();
        while (skipName("if")) {
            Expr test = or();
            Expr otherwise = skipName("else") ? conditional() : null;
            value = new Ast.Conditional(test, value, otherwise);
        }
        return value;
    }

    private Expr or() {
        Expr left = and();
        while (skipName("or")) {
            left = new Ast.Or(left, and());
        }
        return left;
    }

    private Expr and() {
        Expr left = not();
        while (skipName("and")) {
            left = new Ast.And(left, not());
        }
        return left;
    }

    private Expr not() {
        if (skipName("not")) {
            return new Ast.Not(not());
        }
        return compare();
    }

    private Expr compare() {
        Expr first = math1();
        List<String> ops = new ArrayList<>();
        List<Expr> rest = new ArrayList<>();
        while (true) {
            Token t = current();
            if (t.type() == Token.Type.OPERATOR && COMPARE.contains(t.text())) {
                next();
                ops.add(t.text());
            } else if (skipName("in")) {
                ops.add("in");
            } else if (t.isName("not") && peek().isName("in")) {
                next();
                next();
                ops.add("not in");
            } else {
                break;
            }
            rest.add(math1());
        }
        return ops.isEmpty() ? first : new Ast.Compare(first, ops, rest);
    }

    private Expr math1() {
        Expr left = concat();
        while (current().isOperator("+") || current().isOperator("-")) {
            String op = next().text();
            left = new Ast.Binary(op, left, concat());
        }
        return left;
    }

    private Expr concat() {
        List<Expr> parts = new ArrayList<>();
        parts.add(math2());
        while (skipOperator("~")) {
            parts.add(math2());
        }
        return parts.size() == 1 ? parts.getFirst() : new Ast.Concat(parts);
    }

    private Expr math2() {
        Expr left = pow();
        while (current().isOperator("*") || current().isOperator("/") || current().isOperator("//") || current().isOperator("%")) {
            String op = next().text();
            left = new Ast.Binary(op, left, pow());
        }
        return left;
    }

    private Expr pow() {
        Expr left = unary(true);
        while (skipOperator("**")) {
            left = new Ast.Binary("**", left, unary(true));
        }
        return left;
    }

    private Expr unary(boolean withFilter) {
        Expr node;
        if (skipOperator("-")) {
            node = new Ast.Negate(unary(false));
        } else if (skipOperator("+")) {
            node = unary(false);
        } else {
            node = primary();
        }
        node = postfix(node);
        return withFilter ? filterExpression(node) : node;
    }

    private Expr primary() {
        Token t = current();
        switch (t.type()) {
            case NAME -> {
                next();
                return switch (t.text()) {
                    case "true", "True" -> new Ast.Const(true);
                    case "false", "False" -> new Ast.Const(false);
                    case "none", "None" -> new Ast.Const(null);
                    default -> new Ast.Name(t.text());
                };
            }
            case STRING -> {
                StringBuilder s = new StringBuilder();
                while (current().type() == Token.Type.STRING) {
                    s.append((String) next().value());
                }
                return new Ast.Const(s.toString());
            }
            case INTEGER, FLOAT -> {
                next();
                return new Ast.Const(t.value());
            }
            default -> {
            }
        }
        if (skipOperator("(")) {
            Expr e = tuple(true, true, Set.of());
            expectOperator(")");
            return e;
        }
        if (skipOperator("[")) {
            List<Expr> items = new ArrayList<>();
            while (!current().isOperator("]")) {
                if (!items.isEmpty()) {
                    expectOperator(",");
                }
                if (current().isOperator("]")) {
                    break;
                }
                items.add(expression(true));
            }
            expectOperator("]");
            return new Ast.ListLiteral(items);
        }
        if (skipOperator("{")) {
            List<Expr> keys = new ArrayList<>();
            List<Expr> values = new ArrayList<>();
            while (!current().isOperator("}")) {
                if (!keys.isEmpty()) {
                    expectOperator(",");
                }
                if (current().isOperator("}")) {
                    break;
                }
                keys.add(expression(true));
                expectOperator(":");
                values.add(expression(true));
            }
            expectOperator("}");
            return new Ast.DictLiteral(keys, values);
        }
        throw error("unexpected " + t.describe());
    }

    private Expr postfix(Expr node) {
        while (true) {
            if (current().isOperator(".") || current().isOperator("[")) {
                node = subscript(node);
            } else if (current().isOperator("(")) {
                node = call(node);
            } else {
                return node;
            }
        }
    }

    private Expr filterExpression(Expr node) {
        while (true) {
            if (current().isOperator("|")) {
                node = filterChain(node, false);
            } else if (current().isName("is")) {
                node = test(node);
            } else if (current().isOperator("(")) {
                node = call(node);
            } else {
                return node;
            }
        }
    }

    private Expr subscript(Expr node) {
        Token t = next();
        if (t.isOperator(".")) {
            Token attribute = next();
            if (attribute.type() == Token.Type.NAME) {
                return new Ast.Attribute(node, attribute.text());
            }
            if (attribute.type() == Token.Type.INTEGER) {
                return new Ast.Item(node, new Ast.Const(attribute.value()));
            }
            throw error("expected a name or a number after '.'");
        }
        List<Expr> args = new ArrayList<>();
        while (!current().isOperator("]")) {
            if (!args.isEmpty()) {
                expectOperator(",");
            }
            args.add(subscribed(node));
        }
        expectOperator("]");
        if (args.size() == 1) {
            Expr only = args.getFirst();
            return only instanceof Ast.Slice ? only : new Ast.Item(node, only);
        }
        throw new TemplateError(TemplateError.Kind.UNSUPPORTED, "line " + t.line() + ": subscripts with several indices are not supported");
    }

    /** One subscript: an index, or a slice [start:stop:step] of {@code node}. */
    private Expr subscribed(Expr node) {
        Expr start = null;
        if (!current().isOperator(":")) {
            start = expression(true);
            if (!current().isOperator(":")) {
                return start;
            }
        }
        next();
        Expr stop = null;
        Expr step = null;
        if (!current().isOperator(":") && !current().isOperator("]") && !current().isOperator(",")) {
            stop = expression(true);
        }
        if (skipOperator(":") && !current().isOperator("]") && !current().isOperator(",")) {
            step = expression(true);
        }
        return new Ast.Slice(node, start, stop, step);
    }

    private record CallArgs(List<Expr> args, List<String> keywords, List<Expr> keywordValues, Expr spreadArgs, Expr spreadKeywords) {
    }

    private CallArgs callArgs() {
        expectOperator("(");
        List<Expr> args = new ArrayList<>();
        List<String> keywords = new ArrayList<>();
        List<Expr> values = new ArrayList<>();
        Expr spreadArgs = null;
        Expr spreadKeywords = null;
        boolean needComma = false;
        while (!current().isOperator(")")) {
            if (needComma) {
                expectOperator(",");
                if (current().isOperator(")")) {
                    break;
                }
            }
            if (skipOperator("*")) {
                if (spreadArgs != null || spreadKeywords != null) {
                    throw error("invalid syntax for function call expression");
                }
                spreadArgs = expression(true);
            } else if (skipOperator("**")) {
                if (spreadKeywords != null) {
                    throw error("invalid syntax for function call expression");
                }
                spreadKeywords = expression(true);
            } else if (current().type() == Token.Type.NAME && peek().isOperator("=")) {
                keywords.add(next().text());
                next();
                values.add(expression(true));
            } else {
                if (!keywords.isEmpty()) {
                    throw error("a positional argument follows a keyword argument");
                }
                args.add(expression(true));
            }
            needComma = true;
        }
        expectOperator(")");
        return new CallArgs(args, keywords, values, spreadArgs, spreadKeywords);
    }

    private Expr call(Expr node) {
        CallArgs a = callArgs();
        return new Ast.Call(node, a.args(), a.keywords(), a.keywordValues(), a.spreadArgs(), a.spreadKeywords());
    }

    /** One or more filters: {@code | name(args)}; with {@code inline}, the first one has no leading bar ({% filter name %}). */
    private Expr filterChain(Expr node, boolean inline) {
        while (inline || current().isOperator("|")) {
            if (!inline) {
                next();
            }
            inline = false;
            int line = current().line();
            String name = dottedName();
            if (!Filters.exists(name)) {
                throw new TemplateError(Filters.known(name) ? TemplateError.Kind.UNSUPPORTED : TemplateError.Kind.SYNTAX,
                        "line " + line + ": " + (Filters.known(name) ? "the filter '" + name + "' is not supported by Flora's template interpreter"
                                : "no filter named '" + name + "'"));
            }
            CallArgs a = current().isOperator("(") ? callArgs() : new CallArgs(List.of(), List.of(), List.of(), null, null);
            if (a.spreadArgs() != null || a.spreadKeywords() != null) {
                throw new TemplateError(TemplateError.Kind.UNSUPPORTED, "line " + line + ": *args and **kwargs in filter arguments are not supported");
            }
            node = new Ast.Filter(node, name, a.args(), a.keywords(), a.keywordValues(), line);
        }
        return node;
    }

    private String dottedName() {
        StringBuilder name = new StringBuilder(expectName());
        while (skipOperator(".")) {
            name.append('.').append(expectName());
        }
        return name.toString();
    }

    private Expr test(Expr node) {
        int line = next().line();
        boolean negated = skipName("not");
        String name = dottedName();
        if (!Tests.exists(name)) {
            throw new TemplateError(TemplateError.Kind.SYNTAX, "line " + line + ": no test named '" + name + "'");
        }
        List<Expr> args = new ArrayList<>();
        Token t = current();
        if (t.isOperator("(")) {
            CallArgs a = callArgs();
            if (!a.keywords().isEmpty() || a.spreadArgs() != null || a.spreadKeywords() != null) {
                throw new TemplateError(TemplateError.Kind.UNSUPPORTED, "line " + line + ": keyword arguments to tests are not supported");
            }
            args.addAll(a.args());
        } else if ((t.type() == Token.Type.NAME || t.type() == Token.Type.STRING || t.type() == Token.Type.INTEGER
                || t.type() == Token.Type.FLOAT || t.isOperator("[") || t.isOperator("{"))
                && !t.isName("else") && !t.isName("or") && !t.isName("and")) {
            if (t.isName("is")) {
                throw error("you cannot chain multiple tests with is");
            }
            args.add(postfix(primary()));
        }
        Expr result = new Ast.Test(node, name, args, line);
        return negated ? new Ast.Not(result) : result;
    }
}
