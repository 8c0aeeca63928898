#!/usr/bin/env python3
"""Reference chat-template renderings with transformers' apply_chat_template.

Two steps, so the fixture directories are made (and committed) without transformers:
  python3 tools/reference/make_chat_references.py dirs --tokenizers TOK --out FIX
      writes FIX/<name>/tokenizer_config.json (and chat_template.jinja) for every template of
      tools/reference/chat/cases.json, from the npm tokenizer packages' configs in TOK/<tok>/
  python3 tools/reference/make_chat_references.py render --tokenizers TOK --out FIX
      (transformers needed) renders every case with each fixture directory plus TOK/<tok>/tokenizer.json
      and writes FIX/chat_references.json: {template, case, text | error, ids (add_special_tokens=False)}
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = json.load(open(os.path.join(HERE, "chat", "cases.json"), encoding="utf-8"))


def read(name):
    return open(os.path.join(HERE, "chat", name), encoding="utf-8").read()


def make_dirs(tok_root, out):
    for name, spec in CASES["templates"].items():
        config = json.load(open(os.path.join(tok_root, spec["tokenizer"], "tokenizer_config.json"), encoding="utf-8"))
        target = os.path.join(out, name)
        os.makedirs(target, exist_ok=True)
        if "chat_template" in spec:
            config["chat_template"] = read(spec["chat_template"])
        if "named" in spec:
            config["chat_template"] = [{"name": n, "template": read(f)} for n, f in spec["named"].items()]
        if "chat_template_file" in spec:
            config.pop("chat_template", None)
            shutil.copy(os.path.join(HERE, "chat", spec["chat_template_file"]), os.path.join(target, "chat_template.jinja"))
        with open(os.path.join(target, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=1)
        print("made", target)


def render(tok_root, out):
    import transformers
    from transformers import AutoTokenizer
    results = []
    for name, spec in CASES["templates"].items():
        with tempfile.TemporaryDirectory() as tmp:
            for f in os.listdir(os.path.join(out, name)):
                shutil.copy(os.path.join(out, name, f), tmp)
            shutil.copy(os.path.join(tok_root, spec["tokenizer"], "tokenizer.json"), tmp)
            tok = AutoTokenizer.from_pretrained(tmp)
            for case in CASES["generic"] + CASES["special"].get(name, []):
                entry = {"template": name, "case": case["name"]}
                try:
                    kwargs = dict(case.get("kwargs", {}))
                    if "tools" in case:
                        kwargs["tools"] = case["tools"]
                    text = tok.apply_chat_template(case["messages"], tokenize=False,
                                                   add_generation_prompt=case["add_generation_prompt"], **kwargs)
                    entry["text"] = text
                    entry["ids"] = tok(text, add_special_tokens=False)["input_ids"]
                except Exception as e:  # the template refused (raise_exception) or there is none
                    entry["error"] = f"{type(e).__name__}: {e}"
                results.append(entry)
                print(name, case["name"], "error" if "error" in entry else len(entry["ids"]), flush=True)
    with open(os.path.join(out, "chat_references.json"), "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "results": results}, f, ensure_ascii=False, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=["dirs", "render"])
    ap.add_argument("--tokenizers", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    (make_dirs if args.step == "dirs" else render)(args.tokenizers, args.out)


if __name__ == "__main__":
    sys.exit(main())
