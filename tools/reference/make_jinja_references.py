#!/usr/bin/env python3
"""Reference renderings for Flora's Jinja interpreter, by Jinja2 itself in transformers' chat-template
environment (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, tojson with
ensure_ascii=False, raise_exception). Needs only jinja2 (no transformers):
  python3 tools/reference/make_jinja_references.py src/test/resources/fixtures/chat/jinja_references.json
"""
import json
import os
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat"))
from jinja_cases import CASES  # noqa: E402


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    # {% generation %} is transformers' extension; here a plain block that renders its body.
    return env


def main():
    env = environment()
    out = []
    for name, template, variables in CASES:
        entry = {"name": name, "template": template, "variables": variables}
        source = template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
        try:
            entry["text"] = env.from_string(source).render(**variables)
        except Exception as e:  # noqa: BLE001 - the error class is what the test compares
            entry["error"] = f"{type(e).__name__}: {e}"
        out.append(entry)
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump({"jinja2": jinja2.__version__, "cases": out}, f, ensure_ascii=False, indent=1)
    print(len(out), "cases")


if __name__ == "__main__":
    main()
