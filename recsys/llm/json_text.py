"""JSON objects out of LLM text: find them in fenced or bare text and repair common faults.

Small models wrap JSON in prose or code fences, use single quotes and Python literals, leave
trailing commas and stop before the closing brackets; `iter_json_objects` yields every object
it can recover, fenced blocks first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["iter_json_objects", "repair_json"]

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)


def _balanced(text: str, start: int) -> str:
    """The object starting at text[start] == '{' up to its matching brace (or the end)."""
    depth, in_str, quote, esc = 0, False, "", False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == quote:
                in_str = False
        elif ch in "\"'":
            in_str, quote = True, ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return text[start:]


def repair_json(text: str) -> str:
    """Best-effort fixes: single quotes, Python literals, trailing commas, unclosed brackets."""
    s = text.strip()
    if "'" in s and '"' not in s:
        s = s.replace("'", '"')
    s = re.sub(r"\bNone\b", "null", s)
    s = re.sub(r"\bTrue\b", "true", s)
    s = re.sub(r"\bFalse\b", "false", s)
    s = re.sub(r",\s*([}\]])", r"\1", s)
    stack: list[str] = []
    in_str, esc = False, False
    for ch in s:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    if in_str:
        s += '"'
    s = re.sub(r',?\s*"[^"]*"\s*:\s*$', "", s)  # a key cut off before its value
    s = re.sub(r",\s*$", "", s)
    return s + "".join(reversed(stack))


def _loads(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        return json.loads(repair_json(candidate))


def iter_json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every JSON object found in `text` (fenced blocks first, then bare braces), repaired."""
    chunks = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    seen: set[str] = set()
    for chunk in chunks:
        for m in re.finditer(r"\{", chunk):
            cand = _balanced(chunk, m.start())
            if cand in seen:
                continue
            seen.add(cand)
            try:
                obj = _loads(cand)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj
