package dev.flora.chat.jinja;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** What Flora's template interpreter refuses (by name, when compiled) and the Python details it must get right. */
class TemplateTest {
    private static String render(String template, Map<String, ?> variables) {
        return Template.compile(template).render(variables);
    }

    private static void refusedAtCompile(String template, String message) {
        assertThatThrownBy(() -> Template.compile(template)).isInstanceOf(TemplateError.class)
                .satisfies(e -> assertThat(((TemplateError) e).kind()).isEqualTo(TemplateError.Kind.UNSUPPORTED))
                .hasMessageContaining(message);
    }

    @Test
    void unsupportedConstructsAreRefusedByName() {
        refusedAtCompile("{% include 'other.jinja' %}", "{% include %}");
        refusedAtCompile("{% import 'm.jinja' as m %}", "{% import %}");
        refusedAtCompile("{% extends 'base' %}", "{% extends %}");
        refusedAtCompile("{% from 'm.jinja' import f %}", "{% from %}");
        refusedAtCompile("{% block body %}x{% endblock %}", "{% block %}");
        refusedAtCompile("{% for x in y recursive %}{% endfor %}", "recursive");
        refusedAtCompile("{{ 'long text' | truncate(4) }}", "'truncate'");
        refusedAtCompile("{{ x | join(*args) }}", "*args");
    }

    @Test
    void syntaxErrorsSayWhere() {
        assertThatThrownBy(() -> Template.compile("a\nb {% if %}")).hasMessageContaining("line 2").hasMessageContaining("expected an expression");
        assertThatThrownBy(() -> Template.compile("{% for x in y %}")).hasMessageContaining("missing {% else or endfor %}");
        assertThatThrownBy(() -> Template.compile("{{ x | nosuch }}")).hasMessageContaining("no filter named 'nosuch'");
        assertThatThrownBy(() -> Template.compile("{% break %}")).hasMessageContaining("outside of a loop");
        assertThatThrownBy(() -> Template.compile("{{ 'unterminated }}")).hasMessageContaining("unterminated string");
    }

    @Test
    void runtimeErrorsAreTemplateErrorsWithTheLine() {
        assertThatThrownBy(() -> render("ok\n{{ 'a' + 1 }}", Map.of())).isInstanceOf(TemplateError.class)
                .hasMessage("line 2: can only concatenate str (not \"int\") to str");
        assertThatThrownBy(() -> render("{{ x.y }}", Map.of())).hasMessageContaining("'x' is undefined");
        assertThatThrownBy(() -> render("{{ messages.append(1) }}", Map.of("messages", List.of())))
                .hasMessageContaining("access to attribute 'append' of 'list' object is unsafe");
        assertThatThrownBy(() -> render("{{ range(1000000) }}", Map.of())).hasMessageContaining("Range too big");
        assertThatThrownBy(() -> render("{{ 'x' * 100000000 }}", Map.of())).hasMessageContaining("more than Flora allows");
        assertThatThrownBy(() -> render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", Map.of())).hasMessageContaining("nested deeper");
    }

    @Test
    void raiseExceptionCarriesTheTemplatesMessage() {
        assertThatThrownBy(() -> render("{{ raise_exception('Only user and assistant roles are supported!') }}", Map.of()))
                .isInstanceOf(TemplateError.class).hasMessage("Only user and assistant roles are supported!")
                .satisfies(e -> assertThat(((TemplateError) e).kind()).isEqualTo(TemplateError.Kind.RAISED));
    }

    @Test
    void floatsPrintAsPythonPrintsThem() {
        assertThat(PyText.floatRepr(1e16)).isEqualTo("1e+16");
        assertThat(PyText.floatRepr(1e15)).isEqualTo("1000000000000000.0");
        assertThat(PyText.floatRepr(0.0001)).isEqualTo("0.0001");
        assertThat(PyText.floatRepr(0.00001)).isEqualTo("1e-05");
        assertThat(PyText.floatRepr(-2.5e-300)).isEqualTo("-2.5e-300");
        assertThat(PyText.floatRepr(123.456)).isEqualTo("123.456");
        assertThat(PyText.floatRepr(0.1 + 0.2)).isEqualTo("0.30000000000000004");
        assertThat(PyText.floatRepr(-0.0)).isEqualTo("-0.0");
    }

    @Test
    void stringsAreIndexedByCharacterNotByUtf16Unit() {
        assertThat(render("{{ s | length }} {{ s[1] }} {{ s[::-1] }}", Map.of("s", "a👋b"))).isEqualTo("3 👋 b👋a");
    }

    @Test
    void percentFormattingTakesNoneAndUndefined() {
        assertThat(render("{{ '%s|%s|%r' % (none, nothing, none) }} {{ '%s' % none }} {{ '%s' | format(none) }}", Map.of()))
                .isEqualTo("None||None None None");
    }

    @Test
    void renderingIsIndependentPerCall() {
        Template t = Template.compile("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}");
        assertThat(t.render(Map.of("messages", List.of(1, 2)))).isEqualTo("2");
        assertThat(t.render(Map.of("messages", List.of(1)))).isEqualTo("1");
    }
}
