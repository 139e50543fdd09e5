"""Reading the sce study's replies: a label choice (`{"answer": ...}`) and a revised record.

The generic pieces (thinking blocks, tolerant JSON, label matching, number words) live in `selfexplain.parsing`;
this module adds what an sce answer means. Words that may stand around a number or name a label differently
("years old", "mmHg", "woman" for Female) come from the dataset spec, not from lists here. Nothing here raises on
model output; every result carries a status, and callers count failure modes instead of losing runs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from selfexplain.parsing.jsontext import clean_reply, json_objects
from selfexplain.parsing.labels import answer_form, has_phrase, match_option, normalise_label, pick_contained
from selfexplain.parsing.numbers import ORDINAL_SUFFIXES, extract_number
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
# Answers
# --------------------------------------------------------------------------------------------------------

_MISSING = object()


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
    answer, status = match_option(value, options)
    return AnswerParse(answer, status, raw)


def parse_answer(text: str | None, options: Sequence[str]) -> AnswerParse:
    """Read which of `options` a reply chose; never guesses from letters or numbers, never raises."""
    options = tuple(str(o) for o in options)
    if not isinstance(text, str) or not text.strip():
        return AnswerParse(None, "empty", None)
    cleaned = clean_reply(text)
    if not cleaned.strip():
        return AnswerParse(None, "empty", None)
    objects = json_objects(cleaned)
    if not objects:
        bare = cleaned.strip()
        equal = [o for o in options if answer_form(o) == answer_form(bare)]
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


@lru_cache(maxsize=256)
def _numeric_fillers(feature: Feature) -> frozenset[str]:
    """Words allowed around a number: the spec's `number_words` plus the feature's unit and key ("3 bedrooms")."""
    words = {w.lower() for w in feature.number_words}
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
    synonyms: dict[str, str]  # normalised word -> normalised label it names ("woman" -> "female")


@lru_cache(maxsize=256)
def _labels(feature: Feature) -> _Labels:
    norm = tuple(normalise_label(label) for label in feature.labels)
    words = frozenset(w for label in norm for w in re.findall(r"[a-z]+", label))
    synonyms = {normalise_label(word): normalise_label(label) for word, label in feature.synonyms}
    return _Labels(norm, tuple(_loose(label) for label in norm), words, synonyms)


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
    if not {str(k), *(f"{k}{suffix}" for suffix in ORDINAL_SUFFIXES)} & set(label.split()):
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
    synonym = labels.synonyms.get(value)
    if synonym is not None:
        hits = [i for i, label in enumerate(labels.norm) if label == synonym]
        if hits:
            return _unique_level(hits, feature)
    number = extract_number(raw, labels.words, ordinals=True)
    if number is not None:
        code = _offset_code(number[0], feature, number[1])
        if code is not None or not number[1]:
            return code  # a bare number is either a grade with an offset or unreadable
    if len(loose) >= 3:
        hits = [i for i, label in enumerate(labels.loose) if label.startswith(loose)]
        if hits:
            return _unique_level(hits, feature)
    index, ambiguous = pick_contained(loose, labels.loose)
    if index is not None or ambiguous:
        return None if index is None else feature.levels[index]
    return _unique_level([i for i, label in enumerate(labels.loose) if has_phrase(label, loose)], feature)


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
    found = extract_number(raw, _numeric_fillers(feature))
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
    cleaned = clean_reply(text)
    if not cleaned.strip():
        return CounterfactualParse(blank, "empty", (), ("nothing left after removing reasoning",))
    objects = json_objects(cleaned)
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
