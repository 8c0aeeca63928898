#!/usr/bin/env python3
"""Reference encodings of hard texts with Hugging Face `tokenizers`, as transformers uses it.

For each tokenizer.json named on the command line (NAME=PATH), writes OUT/NAME.json: a list of
{text, ids, ids_no_special, decoded} over the texts of tools/reference/tokenizer_texts.json, where
ids = encode(text) with the post-processor's special tokens, ids_no_special without them, and
decoded = decode(ids, skip_special_tokens=False). No truncation and no padding, whatever the file says.

  python3 tools/reference/make_tokenizer_references.py --out OUT llama2=DIR/llama2/tokenizer.json ...
"""
import argparse
import json
import os

import tokenizers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("tokenizers", nargs="+", help="NAME=PATH")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    texts = json.load(open(os.path.join(here, "tokenizer_texts.json"), encoding="utf-8"))
    os.makedirs(args.out, exist_ok=True)
    for spec in args.tokenizers:
        name, path = spec.split("=", 1)
        tok = tokenizers.Tokenizer.from_file(path)
        tok.no_truncation()
        tok.no_padding()
        out = []
        for text in texts:
            ids = tok.encode(text).ids
            out.append({"text": text, "ids": ids, "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
                        "decoded": tok.decode(ids, skip_special_tokens=False)})
        with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False)
        print(name, len(out), "texts, longest", max(len(o["ids"]) for o in out), "tokens", flush=True)
    with open(os.path.join(args.out, "VERSIONS.txt"), "w") as f:
        f.write(f"tokenizers {tokenizers.__version__}\n")


if __name__ == "__main__":
    main()
