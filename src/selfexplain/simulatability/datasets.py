"""The simulatability study's tabular datasets, defined as YAML data and handled by one generic loader and renderer.

A spec (`src/selfexplain/data/sim_datasets/<name>.yaml`, or a user's own file) says how the original study read its
raw table, cleaned and binned it, which columns are features, how the label is derived and how a row is written as a
sentence. `load_table` reproduces the original's rows in the original's order, so a row's position equals the
original `question_idx`; `describe` writes a row's text (with the original's slips fixed), `describe_original` writes
it exactly as the original did, and `parse_description` reads feature values back from either text.
Nothing here depends on which dataset it is: adding a dataset means writing a YAML file.

The keys of a spec (the built-in files are worked examples):

* `name`; `labels: {positive, negative}` (the answers for target 1 and 0); `base_rate: {positive_percent, sentence}`
  or null; `words`: the nouns and labels prompts need (WORD_KEYS).
* `raw`: how the source file is read: `format: csv`, `header` (false: `columns` names them in order), `columns` (all
  columns of the source), `sep`, `na_values`, `skipinitialspace`, `encoding` (utf-8-sig for a byte-order mark),
  `archive_member` (the CSV inside a zip), `dtypes` (int/float/str as the original's read typed them).
* `steps`, applied in order, each a one-key mapping: `dropna` (all or [columns]); `replace {columns: all|[..], values:
  {old: new}}`; `impute_median {columns, missing: [values]}`; `cut {column, into?, bins, labels, right?,
  include_lowest?}` (pandas.cut); `ladder {column, into?, steps: [[op, threshold, label], ...], otherwise}` (first
  true comparison wins, op one of < <= == > >=; NaN gets `otherwise`); `map {column, into?, values, unmapped:
  nan|keep|error}`; `drop_values {column: [values]}`; `keep_values {column: [values]}`; `rename {old: new}`;
  `target {column, positive: [values] | greater_than: number}` (writes the int column `target`).
* `features`: `[{column, values?, allow_missing?}]` in the original's order; `values` (the column's possible values)
  can be left out when a cut, ladder or map step made the column. `drop_duplicates` (default true) over features and
  target; row positions count after it.
* `render`: `root` and `pieces` (see `Piece`), and `original`: per-piece key overrides that give the original's text
  where ours fixes a slip (null removes a key).
* `sources`: `url: {url, sha256}` and `package: {requirement, sha256, member, read: csv|pickle_xz|raw, steps}` or
  null (see `sources.py`).
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from selfexplain.errors import ConfigError, InputError
from selfexplain.simulatability.builtin import tabular_dataset_names as builtin_names

TARGET = "target"
_TOP_KEYS = {
    "name",
    "labels",
    "base_rate",
    "words",
    "raw",
    "steps",
    "features",
    "drop_duplicates",
    "render",
    "sources",
    "max_centres",
}
WORD_KEYS = (
    "subject",
    "subjects",
    "assessor",
    "description_header",
    "description_label",
    "answer_label",
    "explanation_label",
    "factors_label",
    "question",
    "context",
)
_DTYPES = ("int", "float", "str")
_LADDER_OPS = {"<": np.less, "<=": np.less_equal, "==": np.equal, ">": np.greater, ">=": np.greater_equal}
_UNMAPPED = ("nan", "keep", "error")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_OXFORD = "oxford"


# ---------------------------------------------------------------------------------------------------- spec objects


@dataclass(frozen=True)
class RawFormat:
    """How the original read the raw table: a delimited text file, possibly inside a zip archive."""

    columns: tuple[str, ...]
    header: bool
    sep: str = ","
    na_values: tuple[str, ...] = ()
    skipinitialspace: bool = False
    encoding: str = "utf-8"
    archive_member: str | None = None
    dtypes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One cleaning or derivation step: `kind` is the YAML key, `args` its validated arguments."""

    kind: str
    args: Mapping[str, Any]
    where: str


@dataclass(frozen=True)
class Feature:
    column: str
    values: tuple[str, ...]
    allow_missing: bool = False


@dataclass(frozen=True)
class Piece:
    """A named part of the rendered text.

    kind `phrase`: the words for one column's value (`map`, else `fallback` with {value}/{lower}; `missing` for NaN;
    `unless`: say nothing when other columns hold given values). `text`: fixed words. `template`: words with
    {piece} references. `group`: `head` + the non-empty `items` joined by `join` (a separator, or "oxford" for
    "a, b, and c") + `tail`; a group whose items are all empty is itself empty.
    """

    name: str
    kind: str
    column: str | None = None
    mapping: Mapping[str, Any] = field(default_factory=dict)
    fallback: str = "{value}"
    missing: str | None = None
    unless: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    hidden: str | None = None
    text: str = ""
    items: tuple[str, ...] = ()
    join: str = ", "
    head: str = ""
    tail: str = ""


@dataclass(frozen=True)
class SimDatasetSpec:
    """A tabular dataset of the simulatability study (see the module docstring)."""

    name: str
    path: Path
    positive_label: str
    negative_label: str
    base_rate: Mapping[str, Any] | None
    words: Mapping[str, str]
    raw: RawFormat
    steps: tuple[Step, ...]
    features: tuple[Feature, ...]
    drop_duplicates: bool
    root: str
    pieces: Mapping[str, Piece]
    original_pieces: Mapping[str, Piece]
    sources: Mapping[str, Any]
    used_columns: tuple[str, ...]
    # the paper's cap on Hamming groups for this dataset (None: keep every group); the config may override it
    max_centres: int | None = None

    @property
    def feature_columns(self) -> list[str]:
        return [f.column for f in self.features]

    @property
    def options(self) -> tuple[str, str]:
        """(negative, positive): the label of target 0, then of target 1."""
        return (self.negative_label, self.positive_label)

    def format_target(self, value: int) -> str:
        return self.positive_label if int(value) == 1 else self.negative_label

    def feature(self, column: str) -> Feature:
        for f in self.features:
            if f.column == column:
                return f
        raise KeyError(f"dataset {self.name!r} has no feature {column!r}; features: {self.feature_columns}")

    @cached_property
    def _parsers(self) -> tuple[_Parser, _Parser]:
        return (_Parser(self, self.pieces), _Parser(self, self.original_pieces))


# ------------------------------------------------------------------------------------------------------ validation


class _Where:
    """Builds one-line ConfigErrors that name the spec file and the key at fault."""

    def __init__(self, path: Path) -> None:
        self.file = path.name if path.name else str(path)

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.file}: {key}: {problem}")


def _mapping(value: Any, w: _Where, key: str, *, allowed: set[str] | None = None, required: tuple = ()) -> dict:
    if not isinstance(value, dict):
        raise w.fail(key, f"expected a mapping, got {type(value).__name__}")
    if allowed is not None and (extra := sorted(str(k) for k in value if k not in allowed)):
        raise w.fail(key, f"unknown key(s) {extra}; allowed: {sorted(allowed)}")
    if missing := [k for k in required if k not in value]:
        raise w.fail(key, f"missing key(s) {missing}")
    return value


def _string(value: Any, w: _Where, key: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise w.fail(key, f"expected a {'' if empty else 'non-empty '}string, got {value!r}")
    return value


def _strings(value: Any, w: _Where, key: str, *, unique: bool = True) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise w.fail(key, f"expected a non-empty list, got {value!r}")
    out = tuple(_string(v, w, f"{key}[{i}]") for i, v in enumerate(value))
    if unique and len(set(out)) != len(out):
        dupes = sorted({v for v in out if out.count(v) > 1})
        raise w.fail(key, f"repeated entries {dupes}")
    return out


def _bool(value: Any, w: _Where, key: str) -> bool:
    if not isinstance(value, bool):
        raise w.fail(key, f"expected true or false, got {value!r}")
    return value


def _number(value: Any, w: _Where, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise w.fail(key, f"expected a number, got {value!r}")
    return value


def _scalar(value: Any, w: _Where, key: str) -> Any:
    if not isinstance(value, str | int | float | bool):
        raise w.fail(key, f"expected a string, number or boolean, got {value!r}")
    return value


def _label_text(value: Any) -> str:
    """How a label produced by a step reads in the loaded table (labels are always text there)."""
    return value if isinstance(value, str) else str(value)


def _parse_raw(data: Any, w: _Where) -> RawFormat:
    allowed = {"format", "header", "columns", "sep", "na_values", "skipinitialspace", "encoding", "archive_member"}
    d = _mapping(data, w, "raw", allowed=allowed | {"dtypes"}, required=("format", "header", "columns"))
    if d["format"] != "csv":
        raise w.fail("raw.format", f"{d['format']!r} is not supported; use csv (a delimited text file)")
    columns = _strings(d["columns"], w, "raw.columns")
    dtypes = _mapping(d.get("dtypes") or {}, w, "raw.dtypes")
    for col, kind in dtypes.items():
        if col not in columns:
            raise w.fail(f"raw.dtypes.{col}", f"not one of raw.columns {list(columns)}")
        if kind not in _DTYPES:
            raise w.fail(f"raw.dtypes.{col}", f"{kind!r} is not one of {list(_DTYPES)}")
    na = d.get("na_values") or []
    if not isinstance(na, list):
        raise w.fail("raw.na_values", f"expected a list of strings, got {na!r}")
    member = d.get("archive_member")
    return RawFormat(
        columns=columns,
        header=_bool(d["header"], w, "raw.header"),
        sep=_string(d.get("sep", ","), w, "raw.sep"),
        na_values=tuple(_string(v, w, f"raw.na_values[{i}]") for i, v in enumerate(na)),
        skipinitialspace=_bool(d.get("skipinitialspace", False), w, "raw.skipinitialspace"),
        encoding=_string(d.get("encoding", "utf-8"), w, "raw.encoding"),
        archive_member=None if member is None else _string(member, w, "raw.archive_member"),
        dtypes=dict(dtypes),
    )


def parse_steps(data: Any, w: _Where, key: str) -> tuple[Step, ...]:
    """Validate a list of steps (the loader's, or a package source's mapping back to the raw format)."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise w.fail(key, f"expected a list of steps, got {type(data).__name__}")
    return tuple(_parse_step(item, w, f"{key}[{i}]") for i, item in enumerate(data))


def _parse_step(item: Any, w: _Where, where: str) -> Step:
    if not isinstance(item, dict) or len(item) != 1:
        raise w.fail(where, f"a step is a mapping with exactly one key, one of {sorted(_STEP_PARSERS)}")
    kind, args = next(iter(item.items()))
    if kind not in _STEP_PARSERS:
        raise w.fail(where, f"unknown step {kind!r}; known steps: {sorted(_STEP_PARSERS)}")
    return Step(kind, _STEP_PARSERS[kind](args, w, f"{where}.{kind}"), f"{where}.{kind}")


def _step_dropna(args: Any, w: _Where, key: str) -> dict:
    if args == "all":
        return {"columns": None}
    return {"columns": _strings(args, w, key)}


def _step_replace(args: Any, w: _Where, key: str) -> dict:
    d = _mapping(args, w, key, allowed={"columns", "values"}, required=("columns", "values"))
    cols = None if d["columns"] == "all" else _strings(d["columns"], w, f"{key}.columns")
    values = _mapping(d["values"], w, f"{key}.values")
    for old, new in values.items():
        _scalar(old, w, f"{key}.values")
        _scalar(new, w, f"{key}.values.{old}")
    return {"columns": cols, "values": dict(values)}


def _step_impute_median(args: Any, w: _Where, key: str) -> dict:
    d = _mapping(args, w, key, allowed={"columns", "missing"}, required=("columns", "missing"))
    missing = d["missing"]
    if not isinstance(missing, list) or not missing:
        raise w.fail(f"{key}.missing", f"expected a non-empty list of values, got {missing!r}")
    return {"columns": _strings(d["columns"], w, f"{key}.columns"), "missing": [_number(v, w, key) for v in missing]}


def _step_cut(args: Any, w: _Where, key: str) -> dict:
    allowed = {"column", "into", "bins", "labels", "right", "include_lowest"}
    d = _mapping(args, w, key, allowed=allowed, required=("column", "bins", "labels"))
    bins = d["bins"]
    if not isinstance(bins, list) or len(bins) < 2:
        raise w.fail(f"{key}.bins", f"expected a list of at least two edges, got {bins!r}")
    edges = [_number(b, w, f"{key}.bins") for b in bins]
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise w.fail(f"{key}.bins", f"edges must increase strictly, got {edges}")
    labels = d["labels"]
    if not isinstance(labels, list) or len(labels) != len(edges) - 1:
        raise w.fail(f"{key}.labels", f"expected {len(edges) - 1} labels for {len(edges)} edges, got {labels!r}")
    labels = [_label_text(_scalar(v, w, f"{key}.labels")) for v in labels]
    if len(set(labels)) != len(labels):
        raise w.fail(f"{key}.labels", f"labels must be distinct, got {labels}")
    column = _string(d["column"], w, f"{key}.column")
    return {
        "column": column,
        "into": _string(d.get("into", column), w, f"{key}.into"),
        "bins": edges,
        "labels": labels,
        "right": _bool(d.get("right", True), w, f"{key}.right"),
        "include_lowest": _bool(d.get("include_lowest", False), w, f"{key}.include_lowest"),
    }


def _step_ladder(args: Any, w: _Where, key: str) -> dict:
    d = _mapping(args, w, key, allowed={"column", "into", "steps", "otherwise"}, required=("column", "steps"))
    rungs = d["steps"]
    if not isinstance(rungs, list) or not rungs:
        raise w.fail(f"{key}.steps", "expected a non-empty list of [operator, threshold, label]")
    parsed = []
    for i, rung in enumerate(rungs):
        if not isinstance(rung, list) or len(rung) != 3 or rung[0] not in _LADDER_OPS:
            raise w.fail(
                f"{key}.steps[{i}]",
                f"expected [operator, threshold, label] with an operator of {list(_LADDER_OPS)}, got {rung!r}",
            )
        parsed.append((rung[0], _number(rung[1], w, f"{key}.steps[{i}]"), _label_text(rung[2])))
    if "otherwise" not in d:
        raise w.fail(key, "missing key 'otherwise' (the label when no step matches)")
    column = _string(d["column"], w, f"{key}.column")
    return {
        "column": column,
        "into": _string(d.get("into", column), w, f"{key}.into"),
        "steps": parsed,
        "otherwise": _label_text(_scalar(d["otherwise"], w, f"{key}.otherwise")),
    }


def _step_map(args: Any, w: _Where, key: str) -> dict:
    d = _mapping(args, w, key, allowed={"column", "into", "values", "unmapped"}, required=("column", "values"))
    values = _mapping(d["values"], w, f"{key}.values")
    if not values:
        raise w.fail(f"{key}.values", "expected at least one value")
    for old, new in values.items():
        _scalar(old, w, f"{key}.values")
        _scalar(new, w, f"{key}.values.{old}")
    unmapped = d.get("unmapped", "nan")
    if unmapped not in _UNMAPPED:
        raise w.fail(f"{key}.unmapped", f"{unmapped!r} is not one of {list(_UNMAPPED)}")
    column = _string(d["column"], w, f"{key}.column")
    return {
        "column": column,
        "into": _string(d.get("into", column), w, f"{key}.into"),
        "values": dict(values),
        "unmapped": unmapped,
    }


def _step_value_filter(args: Any, w: _Where, key: str) -> dict:
    d = _mapping(args, w, key)
    if not d:
        raise w.fail(key, "expected at least one column: [values]")
    out = {}
    for col, vals in d.items():
        if not isinstance(vals, list) or not vals:
            raise w.fail(f"{key}.{col}", f"expected a non-empty list of values, got {vals!r}")
        out[_string(col, w, key)] = [_scalar(v, w, f"{key}.{col}") for v in vals]
    return {"columns": out}


def _step_rename(args: Any, w: _Where, key: str) -> dict:
    d = _mapping(args, w, key)
    if not d:
        raise w.fail(key, "expected at least one old: new pair")
    return {"columns": {_string(k, w, key): _string(v, w, f"{key}.{k}") for k, v in d.items()}}


def _step_target(args: Any, w: _Where, key: str) -> dict:
    d = _mapping(args, w, key, allowed={"column", "positive", "greater_than"}, required=("column",))
    if ("positive" in d) == ("greater_than" in d):
        raise w.fail(key, "give exactly one of 'positive' (values meaning 1) or 'greater_than' (a number)")
    column = _string(d["column"], w, f"{key}.column")
    if "positive" in d:
        pos = d["positive"]
        if not isinstance(pos, list) or not pos:
            raise w.fail(f"{key}.positive", f"expected a non-empty list of values, got {pos!r}")
        return {"column": column, "positive": [_scalar(v, w, f"{key}.positive") for v in pos]}
    return {"column": column, "greater_than": _number(d["greater_than"], w, f"{key}.greater_than")}


_STEP_PARSERS = {
    "dropna": _step_dropna,
    "replace": _step_replace,
    "impute_median": _step_impute_median,
    "cut": _step_cut,
    "ladder": _step_ladder,
    "map": _step_map,
    "drop_values": _step_value_filter,
    "keep_values": _step_value_filter,
    "rename": _step_rename,
    "target": _step_target,
}


def _step_inputs(step: Step, available: list[str]) -> list[str]:
    a = step.args
    if step.kind in ("dropna", "replace"):
        return list(available) if a["columns"] is None else list(a["columns"])
    if step.kind == "impute_median":
        return list(a["columns"])
    if step.kind in ("drop_values", "keep_values", "rename"):
        return list(a["columns"])
    return [a["column"]]


def _trace_steps(
    steps: tuple[Step, ...], raw_columns: tuple[str, ...], w: _Where
) -> tuple[set[str], set[str], dict[str, tuple[str, ...] | None], bool]:
    """Check that every step names a column that exists at that point. Returns the raw columns the steps read, the
    columns the steps made, the value set each column ends up with when a step fixes it (None: values come from the
    data), and whether a target step exists."""
    available = list(raw_columns)
    domains: dict[str, tuple[str, ...] | None] = dict.fromkeys(raw_columns)
    derived: set[str] = set()
    used: set[str] = set()
    has_target = False
    for step in steps:
        for col in _step_inputs(step, available):
            if col not in available:
                raise w.fail(step.where, f"column {col!r} does not exist at this step; columns: {available}")
            if col not in derived:
                used.add(col)
        a = step.args
        if step.kind == "replace":
            for col in _step_inputs(step, available):
                if domains.get(col) is not None:
                    domains[col] = tuple(dict.fromkeys(_label_text(a["values"].get(v, v)) for v in domains[col]))
        elif step.kind in ("cut", "ladder", "map"):
            if step.kind == "cut":
                domain: tuple[str, ...] | None = tuple(a["labels"])
            elif step.kind == "ladder":
                domain = tuple(dict.fromkeys([r[2] for r in a["steps"]] + [a["otherwise"]]))
            else:
                keep = a["unmapped"] == "keep"
                domain = None if keep else tuple(dict.fromkeys(_label_text(v) for v in a["values"].values()))
            if a["into"] not in available:
                available.append(a["into"])
            domains[a["into"]] = domain
            derived.add(a["into"])
        elif step.kind == "rename":
            for old, new in a["columns"].items():
                if new in available and new != old:
                    raise w.fail(step.where, f"renaming {old!r} to {new!r} would overwrite an existing column")
                available[available.index(old)] = new
                domains[new] = domains.pop(old)
                derived.discard(old)
                derived.add(new)  # read from the raw table (if it was) under its old name
        elif step.kind == "target":
            if TARGET not in available:
                available.append(TARGET)
            domains[TARGET] = None
            derived.add(TARGET)
            has_target = True
    return used, derived, {c: domains.get(c) for c in available}, has_target


def _parse_features(data: Any, w: _Where, domains: Mapping[str, tuple[str, ...] | None]) -> tuple[Feature, ...]:
    if not isinstance(data, list) or not data:
        raise w.fail("features", "expected a non-empty list of {column, values?, allow_missing?}")
    out = []
    for i, item in enumerate(data):
        key = f"features[{i}]"
        d = _mapping(item, w, key, allowed={"column", "values", "allow_missing"}, required=("column",))
        col = _string(d["column"], w, f"{key}.column")
        if col == TARGET:
            raise w.fail(f"{key}.column", "'target' is the label, not a feature")
        if col not in domains:
            raise w.fail(f"{key}.column", f"{col!r} is not a column after the steps; columns: {list(domains)}")
        if "values" in d:
            values = _strings(
                [_label_text(v) for v in d["values"]] if isinstance(d["values"], list) else d["values"],
                w,
                f"{key}.values",
            )
        elif domains[col] is not None:
            values = domains[col]
        else:
            raise w.fail(key, f"column {col!r} needs 'values' (its values come straight from the raw table)")
        out.append(Feature(col, values, _bool(d.get("allow_missing", False), w, f"{key}.allow_missing")))
    cols = [f.column for f in out]
    if len(set(cols)) != len(cols):
        raise w.fail("features", f"repeated columns {sorted({c for c in cols if cols.count(c) > 1})}")
    return tuple(out)


def _template_refs(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)


def _parse_piece(name: str, d: Any, w: _Where, key: str, features: Mapping[str, Feature]) -> Piece:
    d = _mapping(d, w, key)
    kinds = [k for k in ("column", "text", "template", "items") if k in d]
    if len(kinds) != 1:
        raise w.fail(key, "a piece has exactly one of 'column' (a phrase), 'text', 'template' or 'items' (a group)")
    kind = {"column": "phrase", "text": "text", "template": "template", "items": "group"}[kinds[0]]
    if kind == "text":
        _mapping(d, w, key, allowed={"text"})
        return Piece(name, "text", text=_string(d["text"], w, f"{key}.text"))
    if kind == "template":
        _mapping(d, w, key, allowed={"template"})
        return Piece(name, "template", text=_string(d["template"], w, f"{key}.template"))
    if kind == "group":
        _mapping(d, w, key, allowed={"items", "join", "head", "tail"})
        return Piece(
            name,
            "group",
            items=_strings(d["items"], w, f"{key}.items"),
            join=_string(d.get("join", ", "), w, f"{key}.join"),
            head=_string(d.get("head", ""), w, f"{key}.head", empty=True),
            tail=_string(d.get("tail", ""), w, f"{key}.tail", empty=True),
        )
    _mapping(d, w, key, allowed={"column", "map", "fallback", "missing", "unless", "hidden"})
    column = _string(d["column"], w, f"{key}.column")
    if column not in features:
        raise w.fail(f"{key}.column", f"{column!r} is not a feature column; features: {list(features)}")
    mapping = {}
    for value, entry in _mapping(d.get("map") or {}, w, f"{key}.map").items():
        if not isinstance(value, str):
            raise w.fail(f"{key}.map", f"key {value!r} is not a string (quote yes/no/true/false/numbers in YAML)")
        if isinstance(entry, dict):
            e = _mapping(entry, w, f"{key}.map.{value}", allowed={"text", "unless"}, required=("text", "unless"))
            mapping[value] = {
                "text": _string(e["text"], w, f"{key}.map.{value}.text", empty=True),
                "unless": _unless(e["unless"], w, f"{key}.map.{value}.unless", features),
            }
        else:
            mapping[value] = _string(entry, w, f"{key}.map.{value}", empty=True)
    fallback = _string(d.get("fallback", "{value}"), w, f"{key}.fallback", empty=True)
    if bad := [r for r in _template_refs(fallback) if r not in ("value", "lower")]:
        raise w.fail(f"{key}.fallback", f"unknown placeholder(s) {bad}; a fallback may use {{value}} and {{lower}}")
    missing = d.get("missing")
    hidden = d.get("hidden")
    return Piece(
        name,
        "phrase",
        column=column,
        mapping=mapping,
        fallback=fallback,
        missing=None if missing is None else _string(missing, w, f"{key}.missing", empty=True),
        unless=_unless(d.get("unless") or {}, w, f"{key}.unless", features),
        hidden=None if hidden is None else _string(hidden, w, f"{key}.hidden"),
    )


def _unless(data: Any, w: _Where, key: str, features: Mapping[str, Feature]) -> dict[str, tuple[str, ...]]:
    out = {}
    for col, values in _mapping(data, w, key).items():
        if col not in features:
            raise w.fail(key, f"{col!r} is not a feature column; features: {list(features)}")
        out[col] = _strings(values, w, f"{key}.{col}")
    return out


def _parse_pieces(data: Any, w: _Where, key: str, features: Mapping[str, Feature]) -> dict[str, Piece]:
    raw = _mapping(data, w, key)
    if not raw:
        raise w.fail(key, "expected at least one piece")
    return {str(name): _parse_piece(str(name), d, w, f"{key}.{name}", features) for name, d in raw.items()}


def _check_pieces(pieces: Mapping[str, Piece], root: str, w: _Where, key: str, features: Mapping[str, Feature]):
    if root not in pieces:
        raise w.fail("render.root", f"{root!r} is not a piece; pieces: {sorted(pieces)}")
    for piece in pieces.values():
        refs = list(piece.items) if piece.kind == "group" else []
        for tmpl in (piece.head, piece.tail, piece.text if piece.kind == "template" else ""):
            refs += _template_refs(tmpl)
        for ref in refs:
            if ref not in pieces:
                raise w.fail(f"{key}.{piece.name}", f"refers to unknown piece {ref!r}; pieces: {sorted(pieces)}")
        if piece.kind == "phrase" and piece.unless and _hidden_value(piece, features[piece.column]) is None:
            raise w.fail(
                f"{key}.{piece.name}",
                "a phrase with 'unless' needs a value whose words are empty, or "
                "'hidden': the value to assume when the phrase is left out",
            )
        if piece.kind == "phrase" and piece.hidden is not None and piece.hidden not in features[piece.column].values:
            raise w.fail(f"{key}.{piece.name}.hidden", f"{piece.hidden!r} is not one of the column's values")
    # cycles, and which columns the text mentions
    seen: set[str] = set()
    mentioned: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise w.fail(f"{key}.{name}", f"pieces refer to each other in a cycle: {' -> '.join((*path, name))}")
        seen.add(name)
        piece = pieces[name]
        if piece.kind == "phrase":
            mentioned.add(piece.column)
            return
        refs = list(piece.items) if piece.kind == "group" else []
        for tmpl in (piece.head, piece.tail, piece.text if piece.kind == "template" else ""):
            refs += _template_refs(tmpl)
        for ref in refs:
            visit(ref, (*path, name))

    visit(root, ())
    if silent := [c for c in features if c not in mentioned]:
        raise w.fail(key, f"the text never mentions feature(s) {silent}, so they could not be read back")


def _merge_original(pieces: Mapping[str, dict], overrides: Any, w: _Where) -> dict[str, dict]:
    merged = {name: dict(d) for name, d in pieces.items()}
    for name, patch in _mapping(overrides or {}, w, "render.original").items():
        if name not in merged:
            raise w.fail(f"render.original.{name}", f"not a piece of render.pieces; pieces: {sorted(merged)}")
        for k, v in _mapping(patch, w, f"render.original.{name}").items():
            if v is None:
                merged[name].pop(k, None)
            else:
                merged[name][k] = v
    return merged


def _parse_sources(data: Any, w: _Where) -> dict[str, Any]:
    d = _mapping(data, w, "sources", allowed={"url", "package"}, required=("url",))
    url = _mapping(d["url"], w, "sources.url", allowed={"url", "sha256"}, required=("url",))
    out: dict[str, Any] = {"url": {"url": _string(url["url"], w, "sources.url.url"), "sha256": url.get("sha256")}}
    if url.get("sha256") is not None and not re.fullmatch(r"[0-9a-f]{64}", str(url["sha256"])):
        raise w.fail("sources.url.sha256", "expected 64 lower-case hex characters or null")
    pkg = d.get("package")
    if pkg is None:
        out["package"] = None
        return out
    allowed = {"requirement", "sha256", "member", "read", "steps"}
    p = _mapping(pkg, w, "sources.package", allowed=allowed, required=("requirement", "member", "read"))
    if p["read"] not in ("csv", "pickle_xz", "raw"):
        raise w.fail("sources.package.read", f"{p['read']!r} is not one of ['csv', 'pickle_xz', 'raw']")
    if p.get("sha256") is not None and not re.fullmatch(r"[0-9a-f]{64}", str(p["sha256"])):
        raise w.fail("sources.package.sha256", "expected 64 lower-case hex characters or null")
    out["package"] = {
        "requirement": _string(p["requirement"], w, "sources.package.requirement"),
        "sha256": p.get("sha256"),
        "member": _string(p["member"], w, "sources.package.member"),
        "read": p["read"],
        "steps": parse_steps(p.get("steps"), w, "sources.package.steps"),
    }
    return out


def parse_spec(data: Any, path: str | Path = "<dict>") -> SimDatasetSpec:
    """Validate a spec mapping (as read from YAML); errors name the file and key."""
    path = Path(path)
    w = _Where(path)
    d = _mapping(
        data,
        w,
        "(top level)",
        allowed=_TOP_KEYS,
        required=("name", "labels", "words", "raw", "steps", "features", "render", "sources"),
    )
    name = _string(d["name"], w, "name")
    labels = _mapping(d["labels"], w, "labels", allowed={"positive", "negative"}, required=("positive", "negative"))
    pos, neg = _string(labels["positive"], w, "labels.positive"), _string(labels["negative"], w, "labels.negative")
    if pos == neg:
        raise w.fail("labels", f"positive and negative must differ, both are {pos!r}")
    base_rate = d.get("base_rate")
    if base_rate is not None:
        br = _mapping(
            base_rate,
            w,
            "base_rate",
            allowed={"positive_percent", "sentence"},
            required=("positive_percent", "sentence"),
        )
        pct = _number(br["positive_percent"], w, "base_rate.positive_percent")
        if not 0 <= pct <= 100:
            raise w.fail("base_rate.positive_percent", f"expected a percentage in [0, 100], got {pct}")
        base_rate = {"positive_percent": pct, "sentence": _string(br["sentence"], w, "base_rate.sentence")}
    words = _mapping(d["words"], w, "words", required=WORD_KEYS)
    words = {str(k): _string(v, w, f"words.{k}") for k, v in words.items()}
    raw = _parse_raw(d["raw"], w)
    steps = parse_steps(d["steps"], w, "steps")
    used, derived, domains, has_target = _trace_steps(steps, raw.columns, w)
    if not has_target:
        raise w.fail("steps", "no 'target' step: say which raw column and values give the label 1")
    features = _parse_features(d["features"], w, domains)
    used |= {f.column for f in features if f.column not in derived}
    by_col = {f.column: f for f in features}
    render = _mapping(d["render"], w, "render", allowed={"root", "pieces", "original"}, required=("root", "pieces"))
    root = _string(render["root"], w, "render.root")
    pieces = _parse_pieces(render["pieces"], w, "render.pieces", by_col)
    _check_pieces(pieces, root, w, "render.pieces", by_col)
    merged = _merge_original(render["pieces"], render.get("original"), w)
    original = _parse_pieces(merged, w, "render.original", by_col)
    _check_pieces(original, root, w, "render.original", by_col)
    return SimDatasetSpec(
        name=name,
        path=path,
        positive_label=pos,
        negative_label=neg,
        base_rate=base_rate,
        words=words,
        raw=raw,
        steps=steps,
        features=features,
        drop_duplicates=_bool(d.get("drop_duplicates", True), w, "drop_duplicates"),
        root=root,
        pieces=pieces,
        original_pieces=original,
        sources=_parse_sources(d["sources"], w),
        used_columns=tuple(c for c in raw.columns if c in used),
        max_centres=_max_centres(d.get("max_centres"), w),
    )


def _max_centres(value: Any, w: _Where) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise w.fail("max_centres", f"expected a positive whole number of groups or null, got {value!r}")
    return value


def load_spec(name_or_path: str | Path) -> SimDatasetSpec:
    """A built-in dataset by name (e.g. "heart_disease"), or a spec YAML file by path."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return _load_spec_file(Path(text))
    names = builtin_names()
    if text not in names:
        raise ConfigError(f"unknown simulatability dataset {text!r}; built-in datasets: {names}")
    return _builtin_spec(text)


@cache
def _builtin_spec(name: str) -> SimDatasetSpec:
    """Built-in specs are read once per process (parsing and checking a spec takes ~15 ms)."""
    return _load_spec_file(Path(str(resources.files("selfexplain") / "data" / "sim_datasets" / f"{name}.yaml")))


def _load_spec_file(path: Path) -> SimDatasetSpec:
    if not path.is_file():
        raise ConfigError(f"dataset spec file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML ({' '.join(str(exc).split())})") from exc
    return parse_spec(data, path)


# -------------------------------------------------------------------------------------------------- raw reading


def read_raw_bytes(spec: SimDatasetSpec, data: bytes, label: str) -> pd.DataFrame:
    """Parse the bytes of a raw CSV in the spec's format; `label` names the file in errors."""
    fmt = spec.raw
    kwargs: dict[str, Any] = {
        "sep": fmt.sep,
        "header": 0 if fmt.header else None,
        "skipinitialspace": fmt.skipinitialspace,
        "encoding": fmt.encoding,
    }
    if fmt.na_values:
        kwargs["na_values"] = list(fmt.na_values)
    try:
        frame = pd.read_csv(io.BytesIO(data), **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{label}: cannot read as {spec.name}'s raw CSV ({' '.join(str(exc).split())})") from exc
    if not fmt.header:
        if frame.shape[1] != len(fmt.columns):
            raise InputError(
                f"{label}: {frame.shape[1]} columns, but {spec.name}'s raw format has {len(fmt.columns)} "
                f"({', '.join(fmt.columns)})"
            )
        frame.columns = list(fmt.columns)
    return frame


def check_raw_columns(spec: SimDatasetSpec, frame: pd.DataFrame, label: str) -> None:
    """A raw table may omit columns the loader never reads, but must have every column it reads and no others."""
    extra = [str(c) for c in frame.columns if c not in spec.raw.columns]
    if extra:
        raise InputError(
            f"{label}: column(s) {extra} are not in {spec.name}'s raw format ({', '.join(spec.raw.columns)})"
        )
    missing = [c for c in spec.used_columns if c not in frame.columns]
    if missing:
        raise InputError(f"{label}: lacks column(s) {missing} that the {spec.name} loader reads")


def read_raw(spec: SimDatasetSpec, path: str | Path) -> pd.DataFrame:
    """Read a raw file in the original source's format: the CSV as published (a `.zip` holding it, when the source is
    an archive), or a Parquet file with the columns as read from that CSV."""
    path = Path(path)
    label = str(path)
    if not path.is_file():
        raise InputError(f"{label}: raw file for {spec.name} not found")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise InputError(f"{label}: cannot read as Parquet ({' '.join(str(exc).split())})") from exc
    else:
        if suffix == ".zip":
            from selfexplain.fetch import FetchError, read_member

            if spec.raw.archive_member is None:
                raise InputError(f"{label}: {spec.name}'s raw format is not an archive (raw.archive_member is unset)")
            try:
                data = read_member(path, spec.raw.archive_member, label=spec.name)
            except FetchError as exc:
                raise InputError(str(exc)) from exc
            label = f"{path}!{spec.raw.archive_member}"
        else:
            data = path.read_bytes()
        frame = read_raw_bytes(spec, data, label)
    return normalize_raw(spec, frame, label)


def normalize_raw(spec: SimDatasetSpec, frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """Check a raw table's columns and give them the types the original's read gave them, whatever the source."""
    frame.columns = pd.Index([str(c) for c in frame.columns], dtype=object)
    check_raw_columns(spec, frame, label)
    return cast_raw(frame, spec.raw.dtypes, label)


# ------------------------------------------------------------------------------------------------------- loading


def _is_missing(value: Any) -> bool:
    if value.__class__ is str:
        return False
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def cast_raw(frame: pd.DataFrame, dtypes: Mapping[str, str], label: str) -> pd.DataFrame:
    """Give the columns named in `dtypes` the type the original's read gave them (int, float or str), in place."""
    for col, kind in dtypes.items():
        if col not in frame.columns:
            continue
        s = frame[col]
        try:
            if kind == "str":
                frame[col] = _text_series(s)
                continue
            num = pd.to_numeric(s, errors="raise")
            if kind == "float":
                frame[col] = num.astype("float64")
            else:
                if num.isna().any():
                    raise ValueError("missing values in an integer column")
                as_int = num.astype("int64")
                if not (as_int == num).all():
                    raise ValueError("non-integer values")
                frame[col] = as_int
        except (ValueError, TypeError) as exc:
            bad = _first_bad(s, kind)
            raise InputError(f"{label}: column {col!r} should be {kind} ({exc}; e.g. {bad!r})") from exc
    return frame


def _first_bad(s: pd.Series, kind: str) -> Any:
    for v in s:
        if _is_missing(v):
            if kind == "int":
                return v
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            return v
        if kind == "int" and not f.is_integer():
            return v
    return None


def _lookup(mapping: Mapping[Any, Any], value: Any) -> tuple[bool, Any]:
    if _is_missing(value):
        return False, None
    try:
        return (True, mapping[value]) if value in mapping else (False, None)
    except TypeError:  # unhashable
        return False, None


def apply_steps(frame: pd.DataFrame, steps: tuple[Step, ...], label: str) -> pd.DataFrame:
    """Run steps in order on a copy of `frame` (row filters keep the index labels)."""
    frame = frame.copy()
    for step in steps:
        a = step.args
        if step.kind == "dropna":
            frame = frame.dropna(subset=a["columns"])
        elif step.kind == "replace":
            for col in a["columns"] or list(frame.columns):
                s = frame[col]
                hit = s.isin(list(a["values"]))
                if hit.any():
                    out = s.astype(object)
                    out[hit] = [a["values"][v] for v in s[hit]]
                    frame[col] = out
        elif step.kind == "impute_median":
            for col in a["columns"]:
                s = pd.to_numeric(frame[col]).astype("float64")
                s = s.mask(s.isin(a["missing"]))
                frame[col] = s.fillna(s.median())
        elif step.kind == "cut":
            binned = pd.cut(
                pd.to_numeric(frame[a["column"]]),
                bins=a["bins"],
                labels=a["labels"],
                right=a["right"],
                include_lowest=a["include_lowest"],
            )
            frame[a["into"]] = binned.astype(object).where(binned.notna(), np.nan)
        elif step.kind == "ladder":
            values = pd.to_numeric(frame[a["column"]]).to_numpy(dtype="float64")
            with np.errstate(invalid="ignore"):
                conds = [_LADDER_OPS[op](values, thr) for op, thr, _ in a["steps"]]
            labels = [lab for _, _, lab in a["steps"]]
            frame[a["into"]] = pd.Series(
                np.select(conds, labels, default=a["otherwise"]), index=frame.index, dtype=object
            )
        elif step.kind == "map":
            out = []
            for v in frame[a["column"]]:
                found, new = _lookup(a["values"], v)
                if found:
                    out.append(new)
                elif a["unmapped"] == "keep" or (a["unmapped"] == "error" and _is_missing(v)):
                    out.append(v)
                elif a["unmapped"] == "error":
                    raise InputError(
                        f"{label}: column {a['column']!r} has value {v!r} that {step.where} does not map "
                        f"(mapped: {list(a['values'])})"
                    )
                else:
                    out.append(np.nan)
            frame[a["into"]] = pd.Series(out, index=frame.index, dtype=object)
        elif step.kind in ("drop_values", "keep_values"):
            for col, vals in a["columns"].items():
                hit = frame[col].isin(vals)
                frame = frame[~hit] if step.kind == "drop_values" else frame[hit]
        elif step.kind == "rename":
            frame = frame.rename(columns=a["columns"])
        elif step.kind == "target":
            s = frame[a["column"]]
            if "positive" in a:
                frame[TARGET] = s.isin(a["positive"]).astype("int64")
            else:
                frame[TARGET] = (pd.to_numeric(s) > a["greater_than"]).astype("int64")
    return frame


def _text_series(s: pd.Series) -> pd.Series:
    """Values as text (object dtype), missing values as NaN."""
    obj = s.astype(object)
    missing = obj.isna()
    out = obj.map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore").astype(object)
    return out.mask(missing, np.nan)


def _as_text(value: Any) -> Any:
    return np.nan if _is_missing(value) else (value if isinstance(value, str) else str(value))


def load_table(spec: SimDatasetSpec, raw: pd.DataFrame, *, label: str | None = None) -> pd.DataFrame:
    """The original loader's table: the feature columns (text; NaN where the original had NaN) and an int `target`,
    with the original's rows in the original's order under a fresh RangeIndex (position = original question_idx)."""
    label = label or f"{spec.name} raw table"
    missing = [c for c in spec.used_columns if c not in raw.columns]
    if missing:
        raise InputError(f"{label}: lacks column(s) {missing} that the {spec.name} loader reads")
    frame = cast_raw(raw[list(spec.used_columns)].copy(), spec.raw.dtypes, label)
    frame = apply_steps(frame, spec.steps, label)
    cols = spec.feature_columns
    table = pd.DataFrame({c: _text_series(frame[c]).to_numpy() for c in cols}, dtype=object)
    table[TARGET] = frame[TARGET].to_numpy(dtype="int64")
    if spec.drop_duplicates:
        table = table.drop_duplicates()
    table = table.reset_index(drop=True)
    _check_values(spec, table, label)
    return table


def _check_values(spec: SimDatasetSpec, table: pd.DataFrame, label: str) -> None:
    for f in spec.features:
        s = table[f.column]
        bad = s[~s.isin(list(f.values)) & (s.notna() | (not f.allow_missing))]
        if len(bad):
            pos = int(bad.index[0])
            raise InputError(
                f"{label}: {spec.name} column {f.column!r} has value {_as_text(bad.iloc[0])!r} at row {pos} "
                f"({len(bad)} rows), outside the spec's values {list(f.values)}"
            )


# ----------------------------------------------------------------------------------------------------- rendering


def _fill(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _value_text(value: Any) -> str:
    """A value as the original's string formatting printed it (NaN prints as 'nan')."""
    return "nan" if _is_missing(value) else (value if isinstance(value, str) else str(value))


def _unless_holds(unless: Mapping[str, tuple[str, ...]], row: Mapping[str, Any]) -> bool:
    return any(_value_text(row.get(col)) in values for col, values in unless.items())


def _phrase(piece: Piece, value: Any, row: Mapping[str, Any] | None) -> str:
    """Words for one value. With `row=None` the conditions (`unless`) are ignored: the unconditional words."""
    if row is not None and piece.unless and _unless_holds(piece.unless, row):
        return ""
    if _is_missing(value) and piece.missing is not None:
        return piece.missing
    text = _value_text(value)
    if not _is_missing(value) and text in piece.mapping:
        entry = piece.mapping[text]
        if isinstance(entry, dict):
            return "" if row is not None and _unless_holds(entry["unless"], row) else entry["text"]
        return entry
    return _fill(piece.fallback, {"value": text, "lower": text.lower()})


def _render(pieces: Mapping[str, Piece], name: str, row: Mapping[str, Any]) -> str:
    piece = pieces[name]
    if piece.kind == "phrase":
        return _phrase(piece, row.get(piece.column), row)
    if piece.kind == "text":
        return piece.text
    if piece.kind == "template":
        return _PLACEHOLDER.sub(lambda m: _render(pieces, m.group(1), row), piece.text)
    parts = [p for p in (_render(pieces, item, row) for item in piece.items) if p]
    if not parts:
        return ""
    head = _PLACEHOLDER.sub(lambda m: _render(pieces, m.group(1), row), piece.head)
    tail = _PLACEHOLDER.sub(lambda m: _render(pieces, m.group(1), row), piece.tail)
    return head + _join(parts, piece.join) + tail


def _join(parts: list[str], join: str) -> str:
    if join != _OXFORD:
        return join.join(parts)
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + ", and " + parts[-1]


def _row_mapping(spec: SimDatasetSpec, row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
    data = row.to_dict() if isinstance(row, pd.Series) else dict(row)
    if missing := [c for c in spec.feature_columns if c not in data]:
        raise InputError(f"{spec.name}: row lacks feature column(s) {missing}")
    return data


def describe(spec: SimDatasetSpec, row: Mapping[str, Any] | pd.Series) -> str:
    """The text of one row, with the original's slips fixed (see the spec's render.original)."""
    return _render(spec.pieces, spec.root, _row_mapping(spec, row))


def describe_original(spec: SimDatasetSpec, row: Mapping[str, Any] | pd.Series) -> str:
    """The text of one row exactly as the original code wrote it, slips included (for parity with its files)."""
    return _render(spec.original_pieces, spec.root, _row_mapping(spec, row))


def describe_table(spec: SimDatasetSpec, table: pd.DataFrame, *, original: bool = False) -> list[str]:
    """Texts of every row of a loaded table, in row order."""
    pieces = spec.original_pieces if original else spec.pieces
    cols = spec.feature_columns
    return [
        _render(pieces, spec.root, dict(zip(cols, values, strict=True)))
        for values in table[cols].itertuples(index=False, name=None)
    ]


# ------------------------------------------------------------------------------------------------------- parsing


def _hidden_value(piece: Piece, feature: Feature) -> str | None:
    """The value assumed when a conditional phrase was left out: `hidden`, else the first value without words."""
    if piece.hidden is not None:
        return piece.hidden
    for value in feature.values:
        if _phrase(piece, value, None) == "":
            return value
    return None


@lru_cache(maxsize=1024)
def _segments(template: str) -> list[str]:
    return [seg for seg in re.split(r"(\{[^{}]+\})", template) if seg]


def _same(a: Any, b: Any) -> bool:
    return (_is_missing(a) and _is_missing(b)) or a == b


class _Parser:
    """Reads a text back into feature values by walking the piece tree with backtracking.

    Each phrase can only be one of its column's known values (or NaN where allowed), so the search is small; every
    complete reading is checked by rendering it again."""

    def __init__(self, spec: SimDatasetSpec, pieces: Mapping[str, Piece]) -> None:
        self.spec = spec
        self.pieces = pieces
        self.alternatives: dict[str, list[tuple[str, Any]]] = {}
        for piece in pieces.values():
            if piece.kind != "phrase":
                continue
            feature = spec.feature(piece.column)
            domain: list[Any] = list(feature.values) + ([np.nan] if feature.allow_missing else [])
            alts: list[tuple[str, Any]] = [(_phrase(piece, v, None), v) for v in domain]
            alts += [("", v) for v in feature.values if isinstance(piece.mapping.get(v), dict)]
            if piece.unless:
                alts.append(("", _hidden_value(piece, feature)))
            unique: list[tuple[str, Any]] = []
            for alt in alts:
                if not any(alt[0] == u[0] and _same(alt[1], u[1]) for u in unique):
                    unique.append(alt)
            self.alternatives[piece.name] = unique

    def readings(self, text: str) -> Iterator[dict[str, Any]]:
        columns = self.spec.feature_columns
        for end, assigned in self._piece(self.spec.root, text, 0, {}):
            if end != len(text) or any(c not in assigned for c in columns):
                continue
            if _render(self.pieces, self.spec.root, assigned) == text:
                yield assigned

    def _piece(self, name: str, text: str, pos: int, assigned: dict) -> Iterator[tuple[int, dict]]:
        piece = self.pieces[name]
        if piece.kind == "phrase":
            col = piece.column
            for words, value in self.alternatives[name]:
                if col in assigned and not _same(assigned[col], value):
                    continue
                if text.startswith(words, pos):
                    yield pos + len(words), {**assigned, col: value}
        elif piece.kind == "text":
            if text.startswith(piece.text, pos):
                yield pos + len(piece.text), assigned
        elif piece.kind == "template":
            yield from self._template(piece.text, text, pos, assigned)
        else:
            yield from self._group(piece, text, pos, assigned)

    def _template(self, template: str, text: str, pos: int, assigned: dict) -> Iterator[tuple[int, dict]]:
        return self._sequence(_segments(template), 0, text, pos, assigned)

    def _sequence(self, segments: list[str], i: int, text: str, pos: int, assigned: dict):
        if i == len(segments):
            yield pos, assigned
            return
        seg = segments[i]
        if seg.startswith("{") and seg.endswith("}"):
            for end, got in self._piece(seg[1:-1], text, pos, assigned):
                yield from self._sequence(segments, i + 1, text, end, got)
        elif text.startswith(seg, pos):
            yield from self._sequence(segments, i + 1, text, pos + len(seg), assigned)

    def _group(self, piece: Piece, text: str, pos: int, assigned: dict) -> Iterator[tuple[int, dict]]:
        # every item empty: the whole group is empty
        yield from self._items(piece, 0, text, pos, assigned, None)
        # otherwise head, the non-empty items with their separators, tail
        for after_head, got in self._template(piece.head, text, pos, assigned):
            yield from self._items(piece, 0, text, after_head, got, [])

    def _items(self, piece: Piece, i: int, text: str, pos: int, assigned: dict, seps: list[str] | None):
        """seps is None while matching an all-empty group; else the separators used before non-empty items."""
        if i == len(piece.items):
            if seps is None:
                yield pos, assigned
            elif self._seps_ok(piece.join, seps):
                yield from self._template(piece.tail, text, pos, assigned)
            return
        item = piece.items[i]
        for end, got in self._piece(item, text, pos, assigned):
            if end == pos:
                yield from self._items(piece, i + 1, text, pos, got, seps)
        if seps is None:
            return
        if seps and piece.join == _OXFORD and seps[-1] in (" and ", ", and "):
            return  # "and" comes only before the last non-empty item
        for sep in self._separators(piece.join, first=not seps):
            if not text.startswith(sep, pos):
                continue
            start = pos + len(sep)
            for end, got in self._piece(item, text, start, assigned):
                if end > start:
                    yield from self._items(piece, i + 1, text, end, got, [*seps, sep])

    @staticmethod
    def _separators(join: str, *, first: bool) -> list[str]:
        if first:
            return [""]
        return [", ", ", and ", " and "] if join == _OXFORD else [join]

    @staticmethod
    def _seps_ok(join: str, seps: list[str]) -> bool:
        if not seps:
            return False  # at least one item must be non-empty for head/tail to be written
        rest = seps[1:]
        if join != _OXFORD:
            return True
        n = len(seps)
        if n <= 2:
            return rest == [" and "] * (n - 1)
        return rest == [", "] * (n - 2) + [", and "]


def parse_description(spec: SimDatasetSpec, text: str) -> dict[str, Any] | None:
    """Feature values read back from a text written by `describe` or `describe_original` (NaN where the text says a
    value is missing). None when the text has no reading, or more than one, in either style."""
    found: list[dict[str, Any]] = []
    for parser in spec._parsers:
        for reading in parser.readings(text):
            if not any(all(_same(reading[c], other[c]) for c in spec.feature_columns) for other in found):
                found.append(reading)
            if len(found) > 1:
                return None
    if not found:
        return None
    return {c: found[0][c] for c in spec.feature_columns}
