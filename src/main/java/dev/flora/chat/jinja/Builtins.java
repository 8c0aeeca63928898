package dev.flora.chat.jinja;

import java.time.ZonedDateTime;
import java.time.format.TextStyle;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** The global functions of transformers' template environment: Jinja2's range, dict and namespace, plus raise_exception and strftime_now. */
final class Builtins {
    /** Jinja2's sandbox refuses ranges longer than this. */
    private static final long MAX_RANGE = 100_000;

    private Builtins() {
    }

    static void install(Scope globals) {
        globals.set("raise_exception", (PyCallable) (args, kwargs) -> {
            throw new TemplateError(TemplateError.Kind.RAISED, args.isEmpty() ? "" : PyText.str(args.getFirst()));
        });
        globals.set("strftime_now", (PyCallable) (args, kwargs) -> strftime(Args.string("strftime_now", args.isEmpty() ? null : args.getFirst()),
                ZonedDateTime.now()));
        globals.set("range", (PyCallable) Builtins::range);
        globals.set("dict", (PyCallable) (args, kwargs) -> {
            Map<Object, Object> out = new LinkedHashMap<>();
            if (!args.isEmpty() && args.getFirst() instanceof Map<?, ?> m) {
                out.putAll(m);
            }
            out.putAll(kwargs);
            return out;
        });
        globals.set("namespace", (PyCallable) (args, kwargs) -> {
            Namespace ns = new Namespace();
            if (!args.isEmpty() && args.getFirst() instanceof Map<?, ?> m) {
                m.forEach((k, v) -> ns.attributes.put(PyText.str(k), v));
            }
            ns.attributes.putAll(kwargs);
            return ns;
        });
    }

    private static Object range(List<Object> args, Map<String, Object> kwargs) {
        Args.count("range", args, 1, 3);
        for (Object a : args) {
            if (!Py.isInt(a)) {
                throw TemplateError.runtime("'" + PyText.typeName(a) + "' object cannot be interpreted as an integer");
            }
        }
        long start = args.size() == 1 ? 0 : Py.asLong(args.get(0));
        long stop = Py.asLong(args.size() == 1 ? args.get(0) : args.get(1));
        long step = args.size() == 3 ? Py.asLong(args.get(2)) : 1;
        if (step == 0) {
            throw TemplateError.runtime("range() arg 3 must not be zero");
        }
        long count = step > 0 ? Math.max(0, (stop - start + step - 1) / step) : Math.max(0, (start - stop - step - 1) / -step);
        if (count > MAX_RANGE) {
            throw TemplateError.runtime("Range too big. The sandbox blocks ranges larger than MAX_RANGE (" + MAX_RANGE + ").");
        }
        List<Object> out = new ArrayList<>();
        for (long k = 0, v = start; k < count; k++, v += step) {
            out.add(v);
        }
        return out;
    }

    /** Python's strftime for the directives templates use (%d %b %Y %B %m %H %M %S %A %a %y %j %p %I %Z %z %e %%). */
    static String strftime(String format, ZonedDateTime t) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%' || i + 1 >= format.length()) {
                out.append(c);
                continue;
            }
            char d = format.charAt(++i);
            out.append(switch (d) {
                case 'd' -> String.format("%02d", t.getDayOfMonth());
                case 'e' -> String.format("%2d", t.getDayOfMonth());
                case 'm' -> String.format("%02d", t.getMonthValue());
                case 'Y' -> String.valueOf(t.getYear());
                case 'y' -> String.format("%02d", t.getYear() % 100);
                case 'H' -> String.format("%02d", t.getHour());
                case 'I' -> String.format("%02d", (t.getHour() + 11) % 12 + 1);
                case 'p' -> t.getHour() < 12 ? "AM" : "PM";
                case 'M' -> String.format("%02d", t.getMinute());
                case 'S' -> String.format("%02d", t.getSecond());
                case 'j' -> String.format("%03d", t.getDayOfYear());
                case 'b', 'h' -> t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH);
                case 'B' -> t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH);
                case 'a' -> t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH);
                case 'A' -> t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH);
                case 'Z' -> t.getZone().getDisplayName(TextStyle.SHORT, Locale.ENGLISH);
                case 'z' -> t.getOffset().getId().equals("Z") ? "+0000" : t.getOffset().getId().replace(":", "");
                case '%' -> "%";
                default -> throw TemplateError.unsupported("strftime_now: the directive %" + d + " is not supported");
            });
        }
        return out.toString();
    }
}
