#!/usr/bin/env python3
"""Writes reference.json: what Python's jinja2 renders for every *.jinja here
(chat templates of public checkpoints, see SOURCES.json) over a few
conversations, and for each case of features.json. serve/jinja.cpp is tested
against it (tests/chat_template_test.cpp).

The environment is the one transformers' apply_chat_template builds:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[loopcontrols]), `tojson` = json.dumps(ensure_ascii=False, ...),
globals raise_exception and strftime_now (fixed here: "26 Jul 2024", so the
reference does not depend on the day). Special tokens that are null in
<name>.tokens.json are not passed, as transformers omits them.

Run with Debian's python3-jinja2:  python3 render_reference.py
"""
import glob
import json
import os

import jinja2
import jinja2.ext
import jinja2.sandbox

HERE = os.path.dirname(os.path.abspath(__file__))
FIXED_DATE = "26 Jul 2024"

CONVERSATIONS = {
    "a": [{"role": "user", "content": "Hello!"}],
    "b": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "c": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ],
    "d": [{"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "text", "text": " this."}]}],
    "e": [
        {"role": "user", "content": "  spaced out  \n"},
        {"role": "assistant", "content": "héllo — 世界"},
        {"role": "user", "content": "héllo — 世界  \n"},
    ],
}


def environment():
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: FIXED_DATE
    return env


def render(env, source, variables):
    try:
        return {"output": env.from_string(source).render(**variables)}
    except Exception as e:  # raise_exception, TypeError, UndefinedError, ...
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    env = environment()
    templates = []
    for path in sorted(glob.glob(os.path.join(HERE, "*.jinja"))):
        name = os.path.basename(path)[: -len(".jinja")]
        with open(path, encoding="utf-8", newline="") as f:
            source = f.read()
        tokens = {"bos_token": "<s>", "eos_token": "</s>"}
        tokens_path = os.path.join(HERE, name + ".tokens.json")
        if os.path.exists(tokens_path):
            with open(tokens_path, encoding="utf-8") as f:
                tokens = {k: v for k, v in json.load(f).items() if v is not None}
        for conversation, messages in CONVERSATIONS.items():
            for generation_prompt in (True, False):
                variables = dict(tokens, messages=messages, add_generation_prompt=generation_prompt)
                entry = {"template": name, "conversation": conversation, "add_generation_prompt": generation_prompt}
                entry.update({k: v for k, v in tokens.items()})
                entry.update(render(env, source, variables))
                templates.append(entry)
    with open(os.path.join(HERE, "features.json"), encoding="utf-8") as f:
        features = json.load(f)
    feature_results = [dict(name=c["name"], **render(env, c["template"], c["variables"])) for c in features]
    with open(os.path.join(HERE, "reference.json"), "w", encoding="utf-8") as f:
        json.dump({"date": FIXED_DATE, "conversations": CONVERSATIONS, "templates": templates,
                   "features": feature_results}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    errors = sum("error" in e for e in templates + feature_results)
    print(f"reference.json: {len(templates)} template renderings, {len(feature_results)} features, {errors} errors")


if __name__ == "__main__":
    main()
