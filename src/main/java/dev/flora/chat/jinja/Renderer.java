package dev.flora.chat.jinja;

import dev.flora.chat.jinja.Ast.Expr;
import dev.flora.chat.jinja.Ast.Node;
import dev.flora.chat.jinja.Ast.Target;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Runs a parsed template: statements write to a buffer, expressions evaluate with Python's semantics. */
final class Renderer {
    private enum Flow { NORMAL, BREAK, CONTINUE }

    private static final int MAX_MACRO_DEPTH = 100;
    private static final long MAX_OUTPUT = 64L << 20;

    private int macroDepth;
    /** The line of the statement running, for error messages. */
    int line;
    /** The rendered body a {% filter %} or {% set %} block passes to its filters. */
    private String rendered;

    String render(List<Node> nodes, Scope scope) {
        StringBuilder out = new StringBuilder();
        exec(nodes, scope, out);
        return out.toString();
    }

    private Flow exec(List<Node> nodes, Scope scope, StringBuilder out) {
        for (Node node : nodes) {
            Flow flow = exec(node, scope, out);
            if (flow != Flow.NORMAL) {
                return flow;
            }
            if (out.length() > MAX_OUTPUT) {
                throw TemplateError.runtime("the template's output is longer than " + MAX_OUTPUT + " characters");
            }
        }
        return Flow.NORMAL;
    }

    private Flow exec(Node node, Scope scope, StringBuilder out) {
        switch (node) {
            case Ast.Text t -> out.append(t.text());
            case Ast.Output o -> {
                line = o.line();
                out.append(PyText.str(eval(o.value(), scope)));
            }
            case Ast.If i -> {
                for (Ast.Branch b : i.branches()) {
                    if (Py.truthy(eval(b.test(), scope))) {
                        return exec(b.body(), scope, out);
                    }
                }
                return exec(i.otherwise(), scope, out);
            }
            case Ast.For f -> {
                return loop(f, scope, out);
            }
            case Ast.Set s -> {
                line = s.line();
                assign(s.target(), eval(s.value(), scope), scope);
            }
            case Ast.SetBlock s -> {
                line = s.line();
                StringBuilder body = new StringBuilder();
                exec(s.body(), scope, body);
                assign(s.target(), s.filters() == null ? body.toString() : filtered(s.filters(), body.toString(), scope), scope);
            }
            case Ast.Macro m -> scope.set(m.name(), macro(m, scope));
            case Ast.CallBlock c -> out.append(PyText.str(callBlock(c, scope)));
            case Ast.FilterBlock f -> {
                line = f.line();
                StringBuilder body = new StringBuilder();
                exec(f.body(), scope, body);
                out.append(PyText.str(filtered(f.filters(), body.toString(), scope)));
            }
            case Ast.With w -> {
                Scope inner = new Scope(scope);
                for (int k = 0; k < w.targets().size(); k++) {
                    assign(w.targets().get(k), eval(w.values().get(k), scope), inner);
                }
                return exec(w.body(), inner, out);
            }
            case Ast.Break b -> {
                return Flow.BREAK;
            }
            case Ast.Continue c -> {
                return Flow.CONTINUE;
            }
        }
        return Flow.NORMAL;
    }

    private Object filtered(Expr filters, String body, Scope scope) {
        String outer = rendered;
        rendered = body;
        try {
            return eval(filters, scope);
        } finally {
            rendered = outer;
        }
    }

    private Flow loop(Ast.For f, Scope scope, StringBuilder out) {
        line = f.line();
        Object iterable = eval(f.iterable(), scope);
        if (iterable == null) {
            throw TemplateError.runtime("'NoneType' object is not iterable");
        }
        List<Object> items = Py.iterate(iterable);
        if (f.filter() != null) {
            List<Object> kept = new ArrayList<>();
            for (Object item : items) {
                Scope test = new Scope(scope);
                assign(f.target(), item, test);
                if (Py.truthy(eval(f.filter(), test))) {
                    kept.add(item);
                }
            }
            items = kept;
        }
        if (items.isEmpty()) {
            return exec(f.otherwise(), new Scope(scope), out);
        }
        LoopInfo info = new LoopInfo(items);
        for (int k = 0; k < items.size(); k++) {
            info.index0 = k;
            Scope iteration = new Scope(scope);
            iteration.set("loop", info);
            assign(f.target(), items.get(k), iteration);
            if (exec(f.body(), iteration, out) == Flow.BREAK) {
                break;
            }
        }
        return Flow.NORMAL;
    }

    private void assign(Target target, Object value, Scope scope) {
        switch (target) {
            case Ast.NameTarget n -> scope.set(n.name(), value);
            case Ast.AttributeTarget a -> {
                Object ns = scope.lookup(a.namespace());
                if (!(ns instanceof Namespace namespace)) {
                    throw TemplateError.runtime("cannot assign attribute on non-namespace object");
                }
                namespace.attributes.put(a.attribute(), value);
            }
            case Ast.TupleTarget t -> {
                List<Object> items = Py.iterate(value);
                if (items.size() != t.items().size()) {
                    throw TemplateError.runtime(items.size() > t.items().size()
                            ? "too many values to unpack (expected " + t.items().size() + ")"
                            : "not enough values to unpack (expected " + t.items().size() + ", got " + items.size() + ")");
                }
                for (int k = 0; k < items.size(); k++) {
                    assign(t.items().get(k), items.get(k), scope);
                }
            }
        }
    }

    /**
     * A macro: a function of its parameters that renders its body in a scope of its own (over the
     * scope it was defined in). As in Jinja2, extra positional arguments are {@code varargs}, extra
     * keywords {@code kwargs}, and a {% call %} block's body is {@code caller()}.
     */
    private PyCallable macro(Ast.Macro m, Scope definedIn) {
        return (args, kwargs) -> {
            Scope local = new Scope(definedIn);
            bind(m.params(), m.defaults(), args, kwargs, local);
            return renderIn(m.body(), local);
        };
    }

    /** Binds call arguments to parameters (missing ones without default are Undefined); the rest go to varargs, kwargs and caller. */
    private void bind(List<String> params, List<Expr> defaults, List<Object> args, Map<String, Object> kwargs, Scope local) {
        int firstDefault = params.size() - defaults.size();
        for (int k = 0; k < params.size(); k++) {
            String p = params.get(k);
            Object value;
            if (k < args.size()) {
                value = args.get(k);
            } else if (kwargs.containsKey(p)) {
                value = kwargs.get(p);
            } else if (k >= firstDefault) {
                value = eval(defaults.get(k - firstDefault), local);
            } else {
                value = Undefined.withMessage("parameter '" + p + "' was not provided");
            }
            local.set(p, value);
        }
        local.set("varargs", new PyTuple(args.size() > params.size() ? new ArrayList<>(args.subList(params.size(), args.size())) : List.of()));
        Map<Object, Object> extra = new LinkedHashMap<>();
        kwargs.forEach((k, v) -> {
            if (!params.contains(k) && !k.equals("caller")) {
                extra.put(k, v);
            }
        });
        local.set("kwargs", extra);
        if (kwargs.containsKey("caller") && !params.contains("caller")) {
            local.set("caller", kwargs.get("caller"));
        }
    }

    private String renderIn(List<Node> body, Scope local) {
        if (++macroDepth > MAX_MACRO_DEPTH) {
            throw TemplateError.runtime("macro calls nested deeper than " + MAX_MACRO_DEPTH);
        }
        try {
            StringBuilder out = new StringBuilder();
            exec(body, local, out);
            return out.toString();
        } finally {
            macroDepth--;
        }
    }

    /** {% call %}: the called macro gets {@code caller}, a function rendering this block's body. */
    private Object callBlock(Ast.CallBlock c, Scope scope) {
        PyCallable caller = (args, kwargs) -> {
            Scope local = new Scope(scope);
            bind(c.params(), c.defaults(), args, kwargs, local);
            return renderIn(c.body(), local);
        };
        Ast.Call call = c.call();
        Object function = eval(call.function(), scope);
        List<Object> args = new ArrayList<>();
        Map<String, Object> kwargs = new LinkedHashMap<>();
        arguments(call, scope, args, kwargs);
        kwargs.put("caller", caller);
        return invoke(function, args, kwargs);
    }

    /** A call's arguments, *args and **kwargs spread. */
    private void arguments(Ast.Call c, Scope scope, List<Object> args, Map<String, Object> kwargs) {
        c.args().forEach(x -> args.add(eval(x, scope)));
        if (c.spreadArgs() != null) {
            args.addAll(Py.iterate(eval(c.spreadArgs(), scope)));
        }
        for (int k = 0; k < c.keywords().size(); k++) {
            kwargs.put(c.keywords().get(k), eval(c.keywordValues().get(k), scope));
        }
        if (c.spreadKeywords() != null) {
            Object spread = eval(c.spreadKeywords(), scope);
            if (!(spread instanceof Map<?, ?> m)) {
                throw TemplateError.runtime("argument after ** must be a mapping, not " + PyText.typeName(spread));
            }
            m.forEach((k, v) -> kwargs.put(PyText.str(k), v));
        }
    }

    private static Object invoke(Object function, List<Object> args, Map<String, Object> kwargs) {
        if (function instanceof Undefined u) {
            throw u.error();
        }
        if (!(function instanceof PyCallable callable)) {
            throw TemplateError.runtime("'" + PyText.typeName(function) + "' object is not callable");
        }
        return callable.call(args, kwargs);
    }

    Object eval(Expr e, Scope scope) {
        try {
            return evaluate(e, scope);
        } catch (ArithmeticException overflow) {
            throw TemplateError.runtime("integer overflow");
        }
    }

    private Object evaluate(Expr e, Scope scope) {
        switch (e) {
            case Ast.Const c -> {
                return c.value();
            }
            case Ast.Name n -> {
                return scope.lookup(n.name());
            }
            case Ast.Rendered r -> {
                return rendered;
            }
            case Ast.ListLiteral l -> {
                List<Object> out = new ArrayList<>();
                l.items().forEach(x -> out.add(eval(x, scope)));
                return out;
            }
            case Ast.TupleLiteral t -> {
                List<Object> out = new ArrayList<>();
                t.items().forEach(x -> out.add(eval(x, scope)));
                return new PyTuple(out);
            }
            case Ast.DictLiteral d -> {
                Map<Object, Object> out = new LinkedHashMap<>();
                for (int k = 0; k < d.keys().size(); k++) {
                    out.put(eval(d.keys().get(k), scope), eval(d.values().get(k), scope));
                }
                return out;
            }
            case Ast.Attribute a -> {
                return Access.getattr(eval(a.object(), scope), a.name());
            }
            case Ast.Item i -> {
                return Access.getitem(eval(i.object(), scope), eval(i.key(), scope));
            }
            case Ast.Slice s -> {
                return Access.slice(eval(s.object(), scope), s.start() == null ? null : eval(s.start(), scope),
                        s.stop() == null ? null : eval(s.stop(), scope), s.step() == null ? null : eval(s.step(), scope));
            }
            case Ast.Call c -> {
                Object function = eval(c.function(), scope);
                List<Object> args = new ArrayList<>();
                Map<String, Object> kwargs = new LinkedHashMap<>();
                arguments(c, scope, args, kwargs);
                return invoke(function, args, kwargs);
            }
            case Ast.Filter f -> {
                Object value = eval(f.value(), scope);
                List<Object> args = new ArrayList<>();
                f.args().forEach(x -> args.add(eval(x, scope)));
                Map<String, Object> kwargs = new LinkedHashMap<>();
                for (int k = 0; k < f.keywords().size(); k++) {
                    kwargs.put(f.keywords().get(k), eval(f.keywordValues().get(k), scope));
                }
                return Filters.apply(f.name(), value, args, kwargs);
            }
            case Ast.Test t -> {
                Object value = eval(t.value(), scope);
                List<Object> args = new ArrayList<>();
                t.args().forEach(x -> args.add(eval(x, scope)));
                return Tests.apply(t.name(), value, args);
            }
            case Ast.Not n -> {
                return !Py.truthy(eval(n.value(), scope));
            }
            case Ast.Negate n -> {
                return Py.negate(eval(n.value(), scope));
            }
            case Ast.Binary b -> {
                Object left = eval(b.left(), scope);
                Object right = eval(b.right(), scope);
                return b.op().equals("+") ? Py.add(left, right) : Py.arithmetic(b.op(), left, right);
            }
            case Ast.Concat c -> {
                StringBuilder s = new StringBuilder();
                for (Expr part : c.parts()) {
                    s.append(PyText.str(eval(part, scope)));
                }
                return s.toString();
            }
            case Ast.Compare c -> {
                Object left = eval(c.first(), scope);
                for (int k = 0; k < c.ops().size(); k++) {
                    Object right = eval(c.rest().get(k), scope);
                    if (!compare(c.ops().get(k), left, right)) {
                        return false;
                    }
                    left = right;
                }
                return true;
            }
            case Ast.And a -> {
                Object left = eval(a.left(), scope);
                return Py.truthy(left) ? eval(a.right(), scope) : left;
            }
            case Ast.Or o -> {
                Object left = eval(o.left(), scope);
                return Py.truthy(left) ? left : eval(o.right(), scope);
            }
            case Ast.Conditional c -> {
                if (Py.truthy(eval(c.test(), scope))) {
                    return eval(c.then(), scope);
                }
                return c.otherwise() == null
                        ? Undefined.withMessage("the inline if-expression evaluated to false and no else section was defined")
                        : eval(c.otherwise(), scope);
            }
        }
    }

    private static boolean compare(String op, Object left, Object right) {
        return switch (op) {
            case "==" -> Py.eq(left, right);
            case "!=" -> !Py.eq(left, right);
            case "<" -> Py.compare(left, right, op) < 0;
            case "<=" -> Py.compare(left, right, op) <= 0;
            case ">" -> Py.compare(left, right, op) > 0;
            case ">=" -> Py.compare(left, right, op) >= 0;
            case "in" -> Py.contains(right, left);
            case "not in" -> !Py.contains(right, left);
            default -> throw new IllegalArgumentException(op);
        };
    }
}
