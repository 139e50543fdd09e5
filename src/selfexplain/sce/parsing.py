"""Tolerant parsing of model replies: a label choice (`{"answer": ...}`) and a revised record.

Real model output is messy: code fences, reasoning blocks, prose around the JSON, single quotes, truncation,
numbers written as words or with units. A study must never crash on one bad reply, so nothing here raises on
model output; every result carries a status, and callers count failure modes instead of losing runs.
"""

from __future__ import annotations

import ast
import json
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from selfexplain.tabular.features import DatasetSpec, Feature

ANSWER_STATUSES = ("ok", "empty", "no_json", "no_answer_key", "not_an_option", "ambiguous")
COUNTERFACTUAL_STATUSES = ("ok", "empty", "no_json", "missing_feature", "bad_value")


@dataclass(frozen=True)
class AnswerParse:
    """The option a model chose, or None with a status that says why no option could be read."""

    answer: str | None
    status: str
    raw_value: str | None


@dataclass(frozen=True)
class CounterfactualParse:
    """A revised record keyed by feature column; None marks a value that was missing or unreadable."""

    values: dict[str, float | None]
    status: str
    extra_keys: tuple[str, ...]
    problems: tuple[str, ...]


# --------------------------------------------------------------------------------------------------------
# Text cleaning
# --------------------------------------------------------------------------------------------------------

_THINK_TAG = re.compile(r"<\s*(/?)\s*think(?:ing)?\s*>", re.IGNORECASE)
_FENCE = re.compile(
    r"(?:```+|~~~+)[ \t]*(?:(?:json5?|jsonc|javascript|js|python|py|text|txt|plaintext|yaml|yml)\b)?",
    re.IGNORECASE,
)
_QUOTE_MAP = dict.fromkeys("“”„‟″", '"') | dict.fromkeys("‘’‚‛′", "'") | dict.fromkeys("–—−‐‑", "-")
_FANCY = re.compile("[" + "".join(_QUOTE_MAP) + "]")


def _plain(text: str) -> str:
    """Typographic quotes and dashes as ASCII (a regex, as str.translate with a dict is slow on long text)."""
    return _FANCY.sub(lambda m: _QUOTE_MAP[m.group()], text)


def strip_thinking(text: str) -> str:
    """Drop reasoning blocks so that JSON-like text a model merely considered is never taken as its answer.

    A closing tag without an opening one means the chat template opened the block, so everything before
    the last such tag is reasoning; an opening tag that is never closed means the reply ended mid-reasoning.
    """
    kept: list[str] = []
    pos = 0
    open_at: int | None = None
    for tag in _THINK_TAG.finditer(text):
        closing = bool(tag.group(1))
        if open_at is None and closing:
            kept.clear()
            pos = tag.end()
        elif open_at is None:
            kept.append(text[pos : tag.start()])
            open_at = tag.start()
        elif closing:
            open_at = None
            pos = tag.end()
    if open_at is None:
        kept.append(text[pos:])
    return "".join(kept)


def _clean(text: str) -> str:
    return _FENCE.sub("\n", strip_thinking(text))


def normalise_label(text: str) -> str:
    """Reduce a label to lower-case words so that case, quotes and punctuation never decide a match."""
    s = re.sub(r"['`´]", "", _plain(str(text)))
    if not s.isascii():
        s = "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))
    s = s.lower()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", s).split())


# --------------------------------------------------------------------------------------------------------
# JSON candidates
# --------------------------------------------------------------------------------------------------------

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
    s = _plain(text)
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


def _objects_in(text: str) -> list[dict[str, Any]]:
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
    return _objects_in(_clean(text))


# --------------------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------------------

_NEGATIONS = frozenset(
    {"not", "no", "non", "never", "neither", "nor", "cannot", "cant", "dont", "doesnt", "isnt", "wont"}
    | {"arent", "wasnt", "didnt", "unlikely"}
)
_MISSING = object()


def _answer_form(text: str) -> str:
    """normalise_label, with digit groups joined so that "$50,000" and "$50000" compare equal."""
    return re.sub(r"(?<=\d) (?=\d{3}(?!\d))", "", normalise_label(text))


def _has_phrase(text: str, phrase: str) -> bool:
    """Whole-word containment; both sides are normalised (single spaces, no punctuation)."""
    return bool(phrase) and f" {phrase} " in f" {text} "


def _pick_contained(text: str, candidates: Sequence[str]) -> tuple[int | None, bool]:
    """The one candidate phrase contained in text as whole words, and whether the choice was ambiguous.

    A longer candidate wins over one it contains ("no heart disease" over "heart disease") unless the
    shorter also occurs on its own; any negation word outside the chosen phrase makes the choice ambiguous.
    """
    found = [i for i, c in enumerate(candidates) if _has_phrase(text, c)]
    if not found:
        return None, False
    best = max(found, key=lambda i: len(candidates[i]))
    rest = f" {text} "
    while f" {candidates[best]} " in rest:
        rest = rest.replace(f" {candidates[best]} ", " | ")
    if any(_has_phrase(rest, candidates[i]) for i in found if i != best):
        return None, True
    if _NEGATIONS.intersection(rest.split()):
        return None, True
    return best, False


def _match_option(value: str, options: Sequence[str]) -> tuple[str | None, str]:
    stripped = value.strip()
    if stripped in options:
        return stripped, "ok"
    forms = [_answer_form(o) for o in options]
    wanted = _answer_form(stripped)
    equal = [o for o, f in zip(options, forms, strict=True) if f == wanted]
    if equal:
        return (equal[0], "ok") if len(equal) == 1 else (None, "ambiguous")
    index, ambiguous = _pick_contained(wanted, forms)
    if index is not None:
        return options[index], "ok"
    return None, "ambiguous" if ambiguous else "not_an_option"


def _answer_key(obj: dict[str, Any]) -> str | None:
    if "answer" in obj:
        return "answer"
    return next((k for k in obj if normalise_label(k) == "answer"), None)


def _find_answer_value(objects: Sequence[dict[str, Any]]) -> Any:
    for obj in reversed(objects):
        key = _answer_key(obj)
        if key is not None:
            return obj[key]
        for inner in reversed(list(obj.values())):
            if isinstance(inner, dict) and (key := _answer_key(inner)) is not None:
                return inner[key]
    return _MISSING


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:  # e.g. RecursionError on absurdly nested values
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _stringify(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except Exception:  # sets, tuples-as-keys, nesting too deep
        return _short(value)


def _answer_from_value(value: Any, options: Sequence[str]) -> AnswerParse:
    raw = _stringify(value)
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]
    if value is None or (isinstance(value, (str, list, tuple, dict)) and not value):
        return AnswerParse(None, "empty", raw)
    if isinstance(value, str) and not value.strip():
        return AnswerParse(None, "empty", raw)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return AnswerParse(None, "not_an_option", raw)
    answer, status = _match_option(value, options)
    return AnswerParse(answer, status, raw)


def parse_answer(text: str | None, options: Sequence[str]) -> AnswerParse:
    """Read which of `options` a reply chose; never guesses from letters or numbers, never raises."""
    options = tuple(str(o) for o in options)
    if not isinstance(text, str) or not text.strip():
        return AnswerParse(None, "empty", None)
    cleaned = _clean(text)
    if not cleaned.strip():
        return AnswerParse(None, "empty", None)
    objects = _objects_in(cleaned)
    if not objects:
        bare = cleaned.strip()
        equal = [o for o in options if _answer_form(o) == _answer_form(bare)]
        if len(equal) == 1:
            return AnswerParse(equal[0], "ok", bare)
        return AnswerParse(None, "no_json", None)
    value = _find_answer_value(objects)
    if value is _MISSING:
        return AnswerParse(None, "no_answer_key", None)
    return _answer_from_value(value, options)


# --------------------------------------------------------------------------------------------------------
# Feature values
# --------------------------------------------------------------------------------------------------------

_SMALL = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven")
_SMALL += ("twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_UNITS = {w: i for i, w in enumerate(_SMALL[:10])}
_TEENS = {w: i + 10 for i, w in enumerate(_SMALL[10:])}
_TENS = {w: 10 * i for i, w in enumerate(("twenty", "thirty", "forty", "fifty", "sixty"), start=2)}
_TENS |= {w: 10 * i for i, w in enumerate(("seventy", "eighty", "ninety"), start=7)}
_TENS["fourty"] = 40
_SCALES = {"thousand": 1_000, "million": 1_000_000}
_NUMBER_WORDS = frozenset({*_UNITS, *_TEENS, *_TENS, "hundred", *_SCALES})
_ORDINALS = {
    **{w + "th": w for w in (*_UNITS, *_TEENS, "hundred", *_SCALES)},
    **{w[:-1] + "ieth": w for w in _TENS},
    **{"first": "one", "second": "two", "third": "three", "fifth": "five", "eighth": "eight"},
    **{"ninth": "nine", "twelfth": "twelve"},
}
_Number = tuple[float, tuple[str, ...]]  # a value and the filler words written around it
_ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})
_UNIT_WORDS = frozenset({"years", "year", "yrs", "yr", "yo", "y", "o", "old", "aged", "usd", "dollars"})
_UNIT_WORDS |= {"dollar", "sq", "ft", "feet", "foot", "square", "sqft", "mmhg", "mm", "hg", "mg", "dl"}
_IGNORED_SYMBOLS = frozenset(".,/():;'\"*`")
_NUMBER_TOKEN = re.compile(r"\d*\.\d+|\d+|[a-z]+|\S", re.ASCII)
# words that name a label without sharing its letters (single letters "M"/"F" are handled generically)
_LABEL_SYNONYMS = dict.fromkeys(("man", "men", "boy"), "male")
_LABEL_SYNONYMS |= dict.fromkeys(("woman", "women", "girl"), "female")


def _words_to_number(words: Sequence[str]) -> int | None:
    """Value of an English cardinal ("forty five", "two thousand five hundred"), None if malformed."""
    total = group = 0
    last = ""
    largest_scale = 0
    for w in words:
        if w == "and":
            if last not in ("hundred", "scale"):
                return None
            last = "and"
        elif w in _UNITS:
            if last not in ("", "tens", "hundred", "scale", "and") or (w == "zero" and last):
                return None
            group, last = group + _UNITS[w], "unit"
        elif w in _TEENS or w in _TENS:
            if last not in ("", "hundred", "scale", "and"):
                return None
            group, last = group + _TEENS.get(w, _TENS.get(w, 0)), "tens" if w in _TENS else "teen"
        elif w == "hundred":
            if last not in ("unit", "teen") or not 0 < group < 100:
                return None
            group, last = group * 100, "hundred"
        elif w in _SCALES:
            scale = _SCALES[w]
            if last in ("", "and", "scale") or group == 0 or (largest_scale and scale >= largest_scale):
                return None
            total, group, last, largest_scale = total + group * scale, 0, "scale", scale
        else:
            return None
    return None if last in ("", "and") else total + group


def _extract_number(text: str, fillers: frozenset[str], ordinals: bool = False) -> _Number | None:
    """The single number in text, written in digits or words, and the filler words around it.

    Anything else (a second different number, a range or minus sign, hedges such as "about") gives None.
    """
    s = _plain(text.lower())
    s = re.sub(r"[$€£¥]", " ", s)
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)
    s = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", s)
    tokens = _NUMBER_TOKEN.findall(s)
    numbers: list[float] = []
    words: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if "0" <= t[0] <= "9" or (t[0] == "." and len(t) > 1):
            numbers.append(float(t))
            i += 1
            if ordinals and i < len(tokens) and tokens[i] in _ORDINAL_SUFFIXES:
                i += 1
        elif t in _NUMBER_WORDS or (ordinals and t in _ORDINALS):
            run: list[str] = []
            while i < len(tokens):
                w = tokens[i]
                if ordinals and w in _ORDINALS:
                    run.append(_ORDINALS[w])
                    i += 1
                    break
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                if w in _NUMBER_WORDS or (w == "and" and (nxt in _NUMBER_WORDS or nxt in _ORDINALS)):
                    run.append(w)
                    i += 1
                else:
                    break
            value = _words_to_number(run)
            if value is None:
                return None
            numbers.append(float(value))
        elif t in fillers:
            words.append(t)
            i += 1
        elif t in _IGNORED_SYMBOLS:
            i += 1
        else:
            return None
    if len(set(numbers)) != 1 or not math.isfinite(numbers[0]):
        return None
    return numbers[0], tuple(words)


@lru_cache(maxsize=256)
def _numeric_fillers(feature: Feature) -> frozenset[str]:
    """Words allowed around a number: generic units plus the feature's unit and key ("3 bedrooms")."""
    words = set(_UNIT_WORDS)
    for text in (feature.unit or "", feature.key.replace("_", " ")):
        tokens = re.findall(r"[a-z]+", text.lower())
        words.update(tokens)
        words.update(t + "s" for t in tokens)
        words.update(t[:-1] for t in tokens if t.endswith("s") and len(t) > 1)
        if tokens:
            words.add("".join(tokens))  # "mg/dL" -> "mgdl", "sq ft" -> "sqft"
    return frozenset(words)


def _loose(normalised: str) -> str:
    """Plural-insensitive form ("masters degrees" ~ "master degree")."""
    return " ".join(t[:-1] if len(t) > 3 and t.endswith("s") else t for t in normalised.split())


@dataclass(frozen=True)
class _Labels:
    norm: tuple[str, ...]
    loose: tuple[str, ...]
    words: frozenset[str]


@lru_cache(maxsize=256)
def _labels(feature: Feature) -> _Labels:
    norm = tuple(normalise_label(label) for label in feature.labels)
    words = frozenset(w for label in norm for w in re.findall(r"[a-z]+", label))
    return _Labels(norm, tuple(_loose(label) for label in norm), words)


@lru_cache(maxsize=256)
def _text_labelled(feature: Feature) -> bool:
    return feature.has_text_labels


def _unique_level(hits: Sequence[int], feature: Feature) -> float | None:
    return feature.levels[hits[0]] if len(hits) == 1 else None


def _offset_code(value: float, feature: Feature, words: Sequence[str]) -> float | None:
    """A bare number for a text-labelled feature: the level `value + number_offset`, if that level's label
    names the number ("9" -> "9th grade") and contains every word given with it ("grade 9")."""
    offset = feature.number_offset
    if offset is None or not value.is_integer():
        return None
    k = int(value)
    code = float(k + offset)
    if code not in feature.levels:
        return None
    label = normalise_label(feature.label_of(code))
    if not {str(k), *(f"{k}{suffix}" for suffix in _ORDINAL_SUFFIXES)} & set(label.split()):
        return None
    if not set(words) <= set(re.findall(r"[a-z]+", label)):
        return None
    return code


def _label_value(raw: str, feature: Feature) -> float | None:
    labels = _labels(feature)
    value = normalise_label(raw)
    if not value:
        return None
    loose = _loose(value)
    hits = [i for i, label in enumerate(labels.norm) if label == value]
    hits = hits or [i for i, label in enumerate(labels.loose) if label == loose]
    if hits:
        return _unique_level(hits, feature)
    if len(value) == 1 and value.isalpha():
        return _unique_level([i for i, label in enumerate(labels.norm) if label.startswith(value)], feature)
    if value in _LABEL_SYNONYMS:
        hits = [i for i, label in enumerate(labels.norm) if label == _LABEL_SYNONYMS[value]]
        if hits:
            return _unique_level(hits, feature)
    number = _extract_number(raw, labels.words, ordinals=True)
    if number is not None:
        code = _offset_code(number[0], feature, number[1])
        if code is not None or not number[1]:
            return code  # a bare number is either a grade with an offset or unreadable
    if len(loose) >= 3:
        hits = [i for i, label in enumerate(labels.loose) if label.startswith(loose)]
        if hits:
            return _unique_level(hits, feature)
    index, ambiguous = _pick_contained(loose, labels.loose)
    if index is not None or ambiguous:
        return None if index is None else feature.levels[index]
    return _unique_level([i for i, label in enumerate(labels.loose) if _has_phrase(label, loose)], feature)


def parse_feature_value(raw: Any, feature: Feature) -> float | None:
    """The level code (text-labelled features) or number a model gave for one feature, None if unreadable.

    Numbers off the grid are returned as they are: whether a value is allowed is decided elsewhere, and
    an off-grid value is a different failure from an unreadable one.
    """
    if isinstance(raw, (list, tuple)) and len(raw) == 1:
        raw = raw[0]
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, (int, float)):
        try:
            value = float(raw)
        except OverflowError:
            return None
        if not math.isfinite(value):
            return None
        return _offset_code(value, feature, ()) if _text_labelled(feature) else value
    if not isinstance(raw, str):
        return None
    if _text_labelled(feature):
        return _label_value(raw, feature)
    found = _extract_number(raw, _numeric_fillers(feature))
    return None if found is None else found[0]


# --------------------------------------------------------------------------------------------------------
# Counterfactuals
# --------------------------------------------------------------------------------------------------------


def _key_form(key: str) -> str:
    """Key spelling that ignores case, spaces, underscores, hyphens and a parenthesised unit."""
    return re.sub(r"[^a-z0-9]", "", re.sub(r"\([^)]*\)", "", key.lower()))


def _feature_lookup(spec: DatasetSpec) -> dict[str, Feature]:
    lookup = {_key_form(f.column): f for f in spec.features}
    lookup.update({_key_form(f.key): f for f in spec.features})
    lookup.pop("", None)
    return lookup


def _feature_key_count(obj: dict[str, Any], lookup: dict[str, Feature]) -> int:
    return len({lookup[form].column for k in obj if (form := _key_form(k)) in lookup})


def _choose_record(objects: Sequence[dict[str, Any]], spec: DatasetSpec) -> dict[str, Any]:
    """The last object holding a feature key, looking one level down (`{"revised": {...}}`) too; among
    several inner records the one with most features wins, ties going to the later one."""
    lookup = _feature_lookup(spec)
    for obj in reversed(objects):
        if _feature_key_count(obj, lookup):
            return obj
        values = list(obj.values())
        inner = [(_feature_key_count(v, lookup), i, v) for i, v in enumerate(values) if isinstance(v, dict)]
        best = max(inner, key=lambda t: t[:2], default=None)
        if best is not None and best[0]:
            return best[2]
    return objects[-1]


def parse_counterfactual(text: str | None, spec: DatasetSpec) -> CounterfactualParse:
    """Read a revised record from a reply: one value per feature column, with the problems found."""
    blank: dict[str, float | None] = {f.column: None for f in spec.features}
    if not isinstance(text, str) or not text.strip():
        return CounterfactualParse(blank, "empty", (), ("empty output",))
    cleaned = _clean(text)
    if not cleaned.strip():
        return CounterfactualParse(blank, "empty", (), ("nothing left after removing reasoning",))
    objects = _objects_in(cleaned)
    if not objects:
        return CounterfactualParse(blank, "no_json", (), ("no JSON object found",))
    record = _choose_record(objects, spec)
    lookup = _feature_lookup(spec)
    matched = {k: f for k in record if (f := lookup.get(_key_form(k))) is not None}
    exact = [k for k, f in matched.items() if k in (f.key, f.column)]
    chosen: dict[str, str] = {}
    problems: list[str] = []
    for key in exact + [k for k in matched if k not in exact]:
        feature = matched[key]
        if feature.column in chosen:
            problems.append(f"{feature.key}: duplicate key {key!r} ignored")
        else:
            chosen[feature.column] = key
    extra = tuple(k for k in record if k not in matched)
    values = dict(blank)
    missing = bad = False
    for feature in spec.features:
        key = chosen.get(feature.column)
        if key is None:
            missing = True
            problems.append(f"{feature.key}: missing")
            continue
        values[feature.column] = parse_feature_value(record[key], feature)
        if values[feature.column] is None:
            bad = True
            problems.append(f"{feature.key}: could not read {_short(record[key])}")
    status = "missing_feature" if missing else "bad_value" if bad else "ok"
    return CounterfactualParse(values, status, extra, tuple(problems))
