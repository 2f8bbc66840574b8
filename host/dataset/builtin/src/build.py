#!/usr/bin/env python3
"""Builds ../prompts-v1.jsonl from the prompt lists in part*.py.

The prompts were written for lemctl. The output is committed; after changing a prompt, bump the
version (a new file, a new entry in builtin.go) and record the new sha256 there.
"""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import part1, part2, part3  # noqa: F401  (they append to part1.P)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "prompts-v1.jsonl")
with open(out, "w", encoding="utf-8") as f:
    for i, (task, prompt) in enumerate(part1.P, 1):
        f.write(json.dumps({"id": "b%03d" % i, "task": task, "prompt": prompt}, ensure_ascii=False) + "\n")
print(len(part1.P), "prompts")
