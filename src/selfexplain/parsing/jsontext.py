"""Tolerant JSON extraction: every `{...}` object a model wrote, even when it is not quite JSON.

Real model output is messy: code fences, reasoning blocks, prose around the JSON, single quotes, unquoted keys,
trailing commas, comments, truncation. Nothing here raises on model output; a reply with no readable object gives
an empty list and the caller records a status.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfexplain.parsing.thinking import strip_thinking

_FENCE = re.compile(
    r"(?:```+|~~~+)[ \t]*(?:(?:json5?|jsonc|javascript|js|python|py|text|txt|plaintext|yaml|yml)\b)?",
    re.IGNORECASE,
)
_QUOTE_MAP = dict.fromkeys("“”„‟″", '"') | dict.fromkeys("‘’‚‛′", "'") | dict.fromkeys("–—−‐‑", "-")
_FANCY = re.compile("[" + "".join(_QUOTE_MAP) + "]")


def plain(text: str) -> str:
    """Typographic quotes and dashes as ASCII (a regex, as str.translate with a dict is slow on long text)."""
    return _FANCY.sub(lambda m: _QUOTE_MAP[m.group()], text)


def clean_reply(text: str) -> str:
    """The reply without reasoning blocks, code fences turned into line breaks."""
    return _FENCE.sub("\n", strip_thinking(text))


_CLOSER = {"{": "}", "[": "]"}
_VALUE_START = frozenset("{[,:")
# Retrying inside failed candidates finds objects after a stray brace; these caps bound the cost on garbage.
_MAX_FAILED_CANDIDATES = 32
_MAX_FAILED_CHARS = 100_000


@dataclass(frozen=True)
class _Span:
    end: int | None  # exclusive end of a balanced object, None when the text ran out first
    closing: str  # what a truncated object needs appended (closing quote and brackets)
    cuts: tuple[int, ...]  # where a truncated object may be cut back to its last complete part


def _string_closes(text: str, j: int) -> bool:
    """A quote ends a string only if what follows could follow a JSON value.

    This keeps apostrophes (`'Master's degree'`) and stray inner quotes inside the string, and never
    changes where a string of valid JSON ends.
    """
    n = len(text)
    while j < n and text[j] in " \t\r":
        j += 1
    return j >= n or text[j] in ",:}]\n"


def _skip_string(text: str, i: int) -> tuple[int, bool]:
    """Index just after the string opened at text[i], and whether it was closed."""
    quote, j, n = text[i], i + 1, len(text)
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == quote and _string_closes(text, j + 1):
            return j + 1, True
        j += 1
    return n, False


def _closers(stack: list[str]) -> str:
    return "".join(_CLOSER[b] for b in reversed(stack))


def _scan(text: str, start: int) -> _Span:
    """Match the brackets of the object starting at text[start], skipping brackets inside strings."""
    stack: list[str] = []
    prev = ""
    cut_line = cut_value = cut_comma = -1
    i, n = start, len(text)
    while i < n:
        c = text[i]
        if c in "\"'" and prev in _VALUE_START:
            end, closed = _skip_string(text, i)
            if not closed:
                return _Span(None, c + _closers(stack), (cut_line, cut_value, cut_comma))
            i, prev, cut_value = end, c, end
            continue
        if c in "{[":
            stack.append(c)
        elif c == "}" or (c == "]" and "[" in stack):
            while stack.pop() != {"}": "{", "]": "["}[c]:
                pass
            if not stack:
                return _Span(i + 1, "", ())
            cut_value = i + 1
        elif c == ",":
            cut_comma = i
        elif c == "\n":
            cut_line = i
        if not c.isspace():
            prev = c
        i += 1
    return _Span(None, _closers(stack), (cut_line, cut_value, cut_comma))


def _truncated_attempts(text: str, start: int, span: _Span) -> list[str]:
    """Ways to complete an object whose end is missing: close it as is, or cut back and close."""
    attempts = [text[start:] + span.closing]
    for cut in sorted({c for c in span.cuts if c > start}, reverse=True):
        prefix = text[start:cut].rstrip().rstrip(",")
        sub = _scan(prefix, 0)
        if sub.end is None:
            attempts.append(prefix + sub.closing)
    return attempts


_KEY_AHEAD = re.compile(r"""\s*(?:"[^"\n]*"|'[^'\n]*'|[A-Za-z_][\w\-]*(?:[ \t]+[\w\-]+)*)\s*:""")
_BARE_KEY = re.compile(r"[A-Za-z_][\w\-]*(?:[ \t]+[\w\-]+)*(?=\s*:)")
_COMMENT_AHEAD = re.compile(r"\s*//")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_SIMPLE_VALUE = re.compile(rf"(?:{_JSON_NUMBER.pattern}|true|false|null|True|False|None)(?=\s*(?:[,}}\]]|$))")
_LITERALS = {"true": "true", "false": "false", "null": "null"}
_LITERALS |= {"True": "true", "False": "false", "None": "null"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", '"': '"', "'": "'"}


def _next_significant(s: str, i: int) -> str:
    while i < len(s) and s[i].isspace():
        i += 1
    return s[i] if i < len(s) else ""


def _at_line_start(s: str, i: int) -> bool:
    return not s[s.rfind("\n", 0, i) + 1 : i].strip()


def _unescape(body: str) -> str:
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, c + nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _bare_value_end(s: str, i: int, in_array: bool) -> int:
    """End of an unquoted value: a closing bracket, or a comma/newline that starts the next key."""
    for j in range(i, len(s)):
        c = s[j]
        if c in "}]":
            return j
        if c == "," and (
            in_array
            or _KEY_AHEAD.match(s, j + 1)
            or _COMMENT_AHEAD.match(s, j + 1)
            or _next_significant(s, j + 1) in ("}", "]", "")
        ):
            return j
        if c == "\n" and _KEY_AHEAD.match(s, j + 1):
            return j
    return len(s)


def _bare_literal(token: str) -> str:
    if _JSON_NUMBER.fullmatch(token):
        return token
    return _LITERALS.get(token, json.dumps(token))


def _repair(text: str) -> str:
    """Rewrite near-JSON as JSON: smart quotes, single-quoted strings, unquoted keys and values, trailing
    commas, missing commas between lines and `//` comments (only at a line start or after a comma, so
    values such as "#3" or URLs survive)."""
    s = plain(text)
    out: list[str] = []
    stack: list[str] = []
    prev = ""
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        in_object = bool(stack) and stack[-1] == "{"
        if c in "\"'":
            missing_comma = in_object and prev in ('"', "v", "}", "]") and bool(_KEY_AHEAD.match(s, i))
            if prev in _VALUE_START or missing_comma:
                end, closed = _skip_string(s, i)
                if missing_comma:
                    out.append(",")
                out.append(json.dumps(_unescape(s[i + 1 : end - 1 if closed else end])))
                prev, i = '"', end
                continue
        elif c == "/" and s.startswith("//", i) and (prev in (",", "{", "[") or _at_line_start(s, i)):
            j = s.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c == "," and _next_significant(s, i + 1) in ("}", "]"):
            i += 1
            continue
        elif c in "{[":
            stack.append(c)
        elif c in "}]":
            if stack:
                stack.pop()
        elif not c.isspace() and c not in ",:":
            key = _BARE_KEY.match(s, i) if in_object and prev != ":" else None
            if key:
                if prev not in ("{", ","):
                    out.append(",")
                out.append(json.dumps(key.group(0).strip()))
                prev, i = '"', key.end()
                continue
            if prev == ":" or (not in_object and stack and prev in ("[", ",")):
                simple = _SIMPLE_VALUE.match(s, i)
                j = simple.end() if simple else _bare_value_end(s, i, in_array=not in_object)
                out.append(_bare_literal(s[i:j].strip()))
                prev, i = "v", j
                continue
        out.append(c)
        if not c.isspace():
            prev = c
        i += 1
    return "".join(out)


def _repaired_json(text: str) -> Any:
    return json.loads(_repair(text))


_LOADERS: tuple[Callable[[str], Any], ...] = (json.loads, ast.literal_eval, _repaired_json)


def _str_keys(obj: dict[Any, Any]) -> dict[str, Any]:
    """String keys at the two levels the parsers look at (ast.literal_eval may give other key types)."""
    return {str(k): _str_keys_shallow(v) for k, v in obj.items()}


def _str_keys_shallow(value: Any) -> Any:
    if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
        return {str(k): v for k, v in value.items()}
    return value


def _parse_candidate(text: str) -> dict[str, Any] | None:
    for load in _LOADERS:
        try:
            value = load(text)
        except Exception:  # any failure on model output just means "try the next reading"
            continue
        if isinstance(value, dict):
            return _str_keys(value)
    return None


def json_objects(text: str) -> list[dict[str, Any]]:
    """The objects in already-cleaned text (see `clean_reply`), in order; a truncated last object is closed."""
    objects: list[dict[str, Any]] = []
    pos = failures = failed_chars = 0
    while (start := text.find("{", pos)) >= 0:
        span = _scan(text, start)
        if span.end is not None:
            obj = _parse_candidate(text[start : span.end])
            if obj is not None:
                objects.append(obj)
                pos = span.end
                continue
        else:
            obj = next(filter(None, map(_parse_candidate, _truncated_attempts(text, start, span))), None)
            if obj is not None:
                objects.append(obj)
                break
        failures += 1
        failed_chars += (span.end or len(text)) - start
        if failures <= _MAX_FAILED_CANDIDATES and failed_chars <= _MAX_FAILED_CHARS:
            pos = start + 1  # a failed span may hold a good inner object or start at a stray brace in prose
        elif span.end is not None:
            pos = span.end
        else:
            break
    return objects


def extract_json_objects(text: str) -> list[dict[str, Any]]:
    """All top-level `{...}` objects that parse (after repair if need be), in text order.

    Reasoning blocks and code fences are removed first; an object cut off at the end of the text is closed.
    """
    if not isinstance(text, str):
        return []
    return json_objects(clean_reply(text))
