"""Moral Machines scenarios and their counterfactual pairs for the simulatability study (reference §2.4).

The original generator drew its scenarios from Python's global RNG and paired them in an order set by string
hashing, so its pairs changed with PYTHONHASHSEED. This module draws from an explicit `random.Random(seed)`, keeps
every ordering explicit (vocabulary lists from `data/moral_machines.yaml`, groups sorted by key), and returns the
study's pairs table. The draws follow the original's sequence one for one (same `random` methods, same list
orders), so a seed gives the scenarios the original would have drawn with it: seed 42 reproduces every scenario text
of the original's shipped pairs (without its stale "Respond with one word only."), and the same 1,391 groups pair up.
Which two scenarios of a group form the pair, and the answer order, are drawn from our own seeded RNG.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from selfexplain.errors import ConfigError, InputError
from selfexplain.simulatability.pairs import as_pairs_frame, pair_id

DATASET = "moral_machines"
DEFAULT_SCENARIOS = 15_000
DEFAULT_SEED = 42
_BUILTIN = "data/moral_machines.yaml"

SCENARIO_COLUMNS = (
    "row",
    "dimension",
    "is_interventionism",
    "is_in_car",
    "is_law",
    "light_1",
    "light_2",
    "cases_swapped",
    "case_1_group",
    "case_2_group",
    "case_1_deaths",
    "case_2_deaths",
    "text",
)

Counts = tuple[tuple[str, int], ...]


# --------------------------------------------------------------------------------------------------------------------
# Vocabulary


@dataclass(frozen=True)
class Dimension:
    """One scenario dimension: how its two character sets are drawn and what the two sides are called."""

    name: str
    groups: tuple[str, str]
    kind: str  # "pairs" or "extra"
    pair_list: tuple[tuple[str, str], ...] = ()
    pair_range: tuple[int, int] = (1, 1)
    pool: tuple[str, ...] = ()
    shared_range: tuple[int, int] = (1, 1)
    total_max: int = 1


@dataclass(frozen=True)
class Vocabulary:
    """Everything data-dependent about the scenarios, from `moral_machines.yaml`."""

    options: tuple[str, str]
    words: dict[str, str]
    characters: tuple[str, ...]
    plurals: dict[str, str]
    dimensions: tuple[Dimension, ...]
    lights: tuple[str, str]
    text: dict[str, Any]
    source: str

    def dimension(self, name: str) -> Dimension:
        for dim in self.dimensions:
            if dim.name == name:
                return dim
        raise InputError(f"{self.source}: unknown Moral Machines dimension {name!r}")


def _range(value: Any, where: str) -> tuple[int, int]:
    if not isinstance(value, dict) or not {"min", "max"} <= set(value) or int(value["min"]) > int(value["max"]):
        raise ConfigError(f"{where}: expected {{min: M, max: N}} with M <= N, got {value!r}")
    return int(value["min"]), int(value["max"])


def _pair_list(entries: Any, pools: dict[str, tuple[str, ...]], where: str) -> tuple[tuple[str, str], ...]:
    """Expand `product`, `zip` and explicit `[a, b]` entries, in order."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: pair_list must be a non-empty list")
    out: list[tuple[str, str]] = []
    for entry in entries:
        if isinstance(entry, list) and len(entry) == 2:
            out.append((str(entry[0]), str(entry[1])))
            continue
        if isinstance(entry, dict) and len(entry) == 1:
            ((how, names),) = entry.items()
            if how in ("product", "zip") and isinstance(names, list) and len(names) == 2:
                missing = [n for n in names if n not in pools]
                if missing:
                    raise ConfigError(f"{where}: unknown pool(s) {missing}")
                left, right = pools[names[0]], pools[names[1]]
                if how == "product":
                    out.extend((a, b) for a in left for b in right)
                    continue
                if len(left) == len(right):
                    out.extend(zip(left, right, strict=True))
                    continue
                raise ConfigError(f"{where}: zip needs pools of equal length, got {names}")
        raise ConfigError(f"{where}: bad pair_list entry {entry!r}")
    return tuple(out)


def parse_vocabulary(data: dict[str, Any], source: str) -> Vocabulary:
    """Check and convert the YAML mapping; raise ConfigError naming the key at fault."""
    try:
        characters = tuple(str(c["name"]) for c in data["characters"])
        plurals = {str(c["name"]): str(c["plural"]) for c in data["characters"]}
        pools = {str(k): tuple(str(x) for x in v) for k, v in data["pools"].items()}
        options = tuple(str(o) for o in data["options"])
        words = {str(k): str(v) for k, v in dict(data["words"]).items()}
        lights = tuple(str(x) for x in data["lights"])
        text = dict(data["text"])
        raw_dims = list(data["dimensions"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{source}: missing or malformed key {exc}") from None
    if len(options) != 2 or len(lights) != 2:
        raise ConfigError(f"{source}: `options` and `lights` must each list two items")
    known = set(characters)
    for name, pool in pools.items():
        unknown = [c for c in pool if c not in known]
        if unknown:
            raise ConfigError(f"{source}: pools.{name} names unknown characters {unknown}")
    dims = []
    for i, d in enumerate(raw_dims):
        where = f"{source}: dimensions[{i}]"
        try:
            name, groups, kind = str(d["name"]), tuple(str(g) for g in d["groups"]), str(d["kind"])
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{where}: missing key {exc}") from None
        if len(groups) != 2:
            raise ConfigError(f"{where}: groups must name two sides")
        if kind == "pairs":
            pairs = _pair_list(d.get("pair_list"), pools, f"{where}.pair_list")
            unknown = sorted({c for p in pairs for c in p} - known)
            if unknown:
                raise ConfigError(f"{where}.pair_list: unknown characters {unknown}")
            dims.append(Dimension(name, groups, kind, pairs, _range(d.get("pairs"), f"{where}.pairs")))  # type: ignore[arg-type]
        elif kind == "extra":
            if d.get("pool") not in pools:
                raise ConfigError(f"{where}.pool: unknown pool {d.get('pool')!r}")
            shared = _range(d.get("shared"), f"{where}.shared")
            total_max = int(d.get("total_max", 0))
            if total_max <= shared[1]:
                raise ConfigError(f"{where}.total_max must exceed shared.max")
            dims.append(
                Dimension(name, groups, kind, pool=pools[d["pool"]], shared_range=shared, total_max=total_max)  # type: ignore[arg-type]
            )
        else:
            raise ConfigError(f"{where}.kind: expected 'pairs' or 'extra', got {kind!r}")
    if not dims:
        raise ConfigError(f"{source}: no dimensions")
    for key in ("setting", "instruction", "case", "manoeuvres", "passengers", "lanes", "crossing", "verb", "join"):
        if key not in text:
            raise ConfigError(f"{source}: text.{key} is missing")
    return Vocabulary(options, words, characters, plurals, tuple(dims), lights, text, source)  # type: ignore[arg-type]


@cache
def _builtin_vocabulary() -> Vocabulary:
    res = resources.files("selfexplain").joinpath(_BUILTIN)
    return parse_vocabulary(yaml.safe_load(res.read_text(encoding="utf-8")), f"selfexplain/{_BUILTIN}")


def load_vocabulary(path: str | Path | None = None) -> Vocabulary:
    """The built-in vocabulary, or a user's YAML file in the same format."""
    if path is None:
        return _builtin_vocabulary()
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"Moral Machines vocabulary file not found: {path}")
    return parse_vocabulary(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def answer_options(vocabulary: Vocabulary | None = None) -> tuple[str, str]:
    """The two answers a model may give to a scenario: ("CASE 1", "CASE 2")."""
    return (vocabulary or _builtin_vocabulary()).options


# --------------------------------------------------------------------------------------------------------------------
# One scenario


@dataclass(frozen=True)
class Scenario:
    """A scenario's parameters. `case_1` dies in case 1 (and is spared in case 2); `case_2` the reverse.

    Counts keep the order in which each character type was first drawn: the text lists them in that order.
    `lights` are the case-1 and case-2 pedestrians' signals (None: no light, or the group is in the car).
    """

    dimension: str
    is_interventionism: bool
    is_in_car: bool
    is_law: bool
    lights: tuple[str | None, str | None]
    cases_swapped: bool
    case_1: Counts
    case_2: Counts


def count_in_order(characters: Sequence[str]) -> Counts:
    """(type, count) pairs in order of first appearance."""
    counts: dict[str, int] = {}
    for c in characters:
        counts[c] = counts.get(c, 0) + 1
    return tuple(counts.items())


def _draw_sets(rng: random.Random, dim: Dimension) -> tuple[list[str], list[str]]:
    if dim.kind == "pairs":
        n = rng.choice(range(dim.pair_range[0], dim.pair_range[1] + 1))
        chosen = rng.choices(dim.pair_list, k=n)
        return [a for a, _ in chosen], [b for _, b in chosen]
    shared = rng.choices(dim.pool, k=rng.choice(range(dim.shared_range[0], dim.shared_range[1] + 1)))
    extra = rng.choices(dim.pool, k=rng.choice(range(1, dim.total_max - len(shared) + 1)))
    return list(shared), list(shared) + extra


def draw_scenario(rng: random.Random, vocabulary: Vocabulary) -> Scenario:
    """Draw one scenario: dimension, the three flags, the characters, the lights, then (in-car only) the case order."""
    dim = rng.choice(vocabulary.dimensions)
    is_interventionism = rng.choice((True, False))
    is_in_car = rng.choice((True, False))
    is_law = rng.choice((True, False))
    set_1, set_2 = _draw_sets(rng, dim)
    lights: tuple[str | None, str | None] = (None, None)
    if is_law:
        first, second = rng.sample(vocabulary.lights, 2)
        lights = (None if is_in_car else first, second)
    swapped = is_in_car and rng.random() < 0.5
    if swapped:
        set_1, set_2 = set_2, set_1
    return Scenario(
        dim.name, is_interventionism, is_in_car, is_law, lights, swapped, count_in_order(set_1), count_in_order(set_2)
    )


def case_groups(scenario: Scenario, vocabulary: Vocabulary) -> tuple[str, str]:
    """What case 1's and case 2's characters stand for in the dimension (e.g. ("pet", "human") after a swap)."""
    a, b = vocabulary.dimension(scenario.dimension).groups
    return (b, a) if scenario.cases_swapped else (a, b)


def list_characters(counts: Counts, vocabulary: Vocabulary) -> str:
    """Counts as the text lists them: "1 man", "2 dogs and 1 cat", "1 boy, 2 girls, and 1 baby"."""
    join = vocabulary.text["join"]
    items = [f"{n} {vocabulary.plurals[c] if n > 1 else c}" for c, n in counts]
    if len(items) <= 2:
        return join["pair"].join(items)
    return join["sep"].join(items[:-1]) + join["last"] + items[-1]


def render_scenario(scenario: Scenario, vocabulary: Vocabulary | None = None) -> str:
    """The scenario text: setting and instruction line, then the "Case 1." and "Case 2." blocks."""
    vocab = vocabulary or _builtin_vocabulary()
    t = vocab.text
    turn = "intervene" if scenario.is_interventionism else "stay"
    where_kind = "in_car" if scenario.is_in_car else "pedestrians"
    crossing = [t["crossing"][light or "none"] for light in scenario.lights]
    if scenario.is_in_car:
        where = [t["passengers"], crossing[1]]
    else:
        where = [f"{crossing[i]} {t['lanes'][turn][i]}" for i in (0, 1)]
    sets = [scenario.case_1, scenario.case_2]
    cases = []
    for i in (0, 1):
        dead, spared = i, 1 - i
        cases.append(
            t["case"].format(
                number=i + 1,
                manoeuvre=t["manoeuvres"][where_kind][turn][i],
                dead=list_characters(sets[dead], vocab),
                dead_verb=_verb(sets[dead], t),
                dead_where=where[dead],
                spared=list_characters(sets[spared], vocab),
                spared_verb=_verb(sets[spared], t),
                spared_where=where[spared],
            )
        )
    return f"{t['setting'][where_kind]} {t['instruction']}\n\n{cases[0]}\n{cases[1]}"


_Shape = tuple[re.Pattern[str], bool, bool, tuple[str | None, str | None]]
_PATTERNS: dict[int, tuple[Vocabulary, tuple[_Shape, ...]]] = {}


def _text_patterns(vocabulary: Vocabulary) -> tuple[_Shape, ...]:
    """One regex per text shape (passengers in car or not, interventionism, the two lights), counts as groups;
    built once per vocabulary (which holds dicts, so it cannot be a cache key itself)."""
    cached = _PATTERNS.get(id(vocabulary))
    if cached is None or cached[0] is not vocabulary:
        cached = _PATTERNS[id(vocabulary)] = (vocabulary, _build_patterns(vocabulary))
    return cached[1]


def _build_patterns(vocabulary: Vocabulary) -> tuple[_Shape, ...]:
    t = vocabulary.text
    markers = {"dead": "\x00D\x00", "spared": "\x00S\x00", "dead_verb": "\x00V\x00", "spared_verb": "\x00W\x00"}
    out = []
    for in_car, intervene in itertools.product((True, False), repeat=2):
        turn, kind = ("intervene" if intervene else "stay"), ("in_car" if in_car else "pedestrians")
        for lights in itertools.product((None, *vocabulary.lights), repeat=2):
            if in_car and lights[0] is not None:
                continue  # passengers have no traffic light
            crossing = [t["crossing"][light or "none"] for light in lights]
            where = (
                [t["passengers"], crossing[1]] if in_car else [f"{crossing[i]} {t['lanes'][turn][i]}" for i in (0, 1)]
            )
            cases = []
            for i in (0, 1):
                case = t["case"].format(
                    number=i + 1,
                    manoeuvre=t["manoeuvres"][kind][turn][i],
                    dead_where=where[i],
                    spared_where=where[1 - i],
                    **markers,
                )
                pattern = re.escape(case)
                for name, marker in markers.items():
                    group = f"(?P<{name}{i}>.+?)" if "verb" not in name else "(?:\\w+)"
                    pattern = pattern.replace(re.escape(marker), group)
                cases.append(pattern)
            head = re.escape(f"{t['setting'][kind]} {t['instruction']}\n\n")
            out.append((re.compile(f"{head}{cases[0]}\n{cases[1]}\\Z", re.DOTALL), in_car, intervene, lights))
    return tuple(out)


def _parse_listing(listing: str, vocabulary: Vocabulary) -> Counts | None:
    join = vocabulary.text["join"]
    singular = {c: c for c in vocabulary.characters} | {vocabulary.plurals[c]: c for c in vocabulary.characters}
    separators = "|".join(
        re.escape(s) for s in sorted({join["last"], join["sep"], join["pair"]}, key=len, reverse=True)
    )
    counts = []
    for item in re.split(separators, listing):
        number, _, noun = item.partition(" ")
        if not number.isdigit() or noun not in singular:
            return None
        counts.append((singular[noun], int(number)))
    return tuple(counts)


def parse_scenario_text(text: str, vocabulary: Vocabulary | None = None) -> Scenario | None:
    """A scenario's parameters read back from its text (ours, or the original's without its stale last sentence),
    or None when the text is not a scenario of this vocabulary. The dimension and the case order are not in the
    text: they come back empty and False. Checked by rendering the result again."""
    vocab = vocabulary or _builtin_vocabulary()
    for pattern, in_car, intervene, lights in _text_patterns(vocab):
        match = pattern.match(text)
        if match is None:
            continue
        case_1, case_2 = _parse_listing(match["dead0"], vocab), _parse_listing(match["dead1"], vocab)
        if case_1 is None or case_2 is None:
            return None
        scenario = Scenario("", intervene, in_car, any(lights), lights, False, case_1, case_2)
        return scenario if render_scenario(scenario, vocab) == text else None
    return None


def _verb(counts: Counts, text: dict[str, Any]) -> str:
    return text["verb"]["many" if sum(n for _, n in counts) >= 2 else "one"]


# --------------------------------------------------------------------------------------------------------------------
# Scenario table


def _counts_json(counts: Counts) -> str:
    return json.dumps(dict(counts), ensure_ascii=False)


def generate_scenarios(
    n: int = DEFAULT_SCENARIOS, seed: int = DEFAULT_SEED, vocabulary: Vocabulary | None = None
) -> pd.DataFrame:
    """`n` scenarios drawn with `random.Random(seed)`, one row each (columns: SCENARIO_COLUMNS).

    `case_1_deaths` / `case_2_deaths` are JSON objects {type: count} in text order; `light_1` / `light_2` are
    "green", "red" or missing.
    """
    if n < 0:
        raise ConfigError(f"moral_machines: number of scenarios must be >= 0, got {n}")
    vocab = vocabulary or _builtin_vocabulary()
    rng = random.Random(seed)
    records = []
    for row in range(n):
        s = draw_scenario(rng, vocab)
        g1, g2 = case_groups(s, vocab)
        records.append(
            (
                row,
                s.dimension,
                s.is_interventionism,
                s.is_in_car,
                s.is_law,
                s.lights[0],
                s.lights[1],
                s.cases_swapped,
                g1,
                g2,
                _counts_json(s.case_1),
                _counts_json(s.case_2),
                render_scenario(s, vocab),
            )
        )
    frame = pd.DataFrame.from_records(records, columns=list(SCENARIO_COLUMNS))
    frame["row"] = frame["row"].astype("int64")
    for col in ("is_interventionism", "is_in_car", "is_law", "cases_swapped"):
        frame[col] = frame[col].astype(bool)
    for col in ("dimension", "light_1", "light_2", "case_1_group", "case_2_group", "case_1_deaths", "case_2_deaths"):
        frame[col] = frame[col].astype("str")
    frame["text"] = frame["text"].astype("str")
    return frame


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA


def _counts_from_json(value: Any) -> Counts:
    parsed = json.loads(value)
    if not isinstance(parsed, dict) or not parsed:
        raise ValueError("not a non-empty JSON object")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in parsed.values()):
        raise ValueError("counts must be positive integers")
    return tuple((str(c), n) for c, n in parsed.items())


def scenario_from_row(row: dict[str, Any], where: str = "scenarios", vocabulary: Vocabulary | None = None) -> Scenario:
    """Rebuild a Scenario from one row of `generate_scenarios` output (as a dict); InputError names a bad column."""
    vocab = vocabulary or _builtin_vocabulary()
    values: dict[str, Any] = {}
    for col in SCENARIO_COLUMNS[1:-1]:
        value = row[col]
        try:
            if col in ("case_1_deaths", "case_2_deaths"):
                value = _counts_from_json(value)
                unknown = [c for c, _ in value if c not in vocab.plurals]
                if unknown:
                    raise ValueError(f"unknown characters {unknown}")
            elif col in ("light_1", "light_2"):
                value = None if _missing(value) else str(value)
                if value is not None and value not in vocab.lights:
                    raise ValueError(f"unknown light {value!r}")
            elif col in ("is_interventionism", "is_in_car", "is_law", "cases_swapped"):
                if _missing(value) or not isinstance(value, bool | int | np.bool_ | np.integer):
                    raise ValueError(f"expected a boolean, got {value!r}")
                value = bool(value)
            elif col == "dimension":
                vocab.dimension(str(value))
        except (ValueError, TypeError, InputError) as exc:
            raise InputError(f"{where}: row {row.get('row')} has a malformed value in column {col}: {exc}") from None
        values[col] = value
    return Scenario(
        str(values["dimension"]),
        values["is_interventionism"],
        values["is_in_car"],
        values["is_law"],
        (values["light_1"], values["light_2"]),
        values["cases_swapped"],
        values["case_1_deaths"],
        values["case_2_deaths"],
    )


# --------------------------------------------------------------------------------------------------------------------
# Pairing


def pairing_key(scenario: Scenario) -> tuple[tuple[str, ...], tuple[bool, bool, bool]]:
    """Scenarios pair up when they share the set of character types (both cases together) and the three flags."""
    types = sorted({c for c, _ in scenario.case_1} | {c for c, _ in scenario.case_2})
    return tuple(types), (scenario.is_law, scenario.is_in_car, scenario.is_interventionism)


def count_signature(scenario: Scenario) -> tuple[tuple[str, int], ...]:
    """Total count per character type over both cases; scenarios with equal signatures are duplicates for pairing."""
    totals: dict[str, int] = {}
    for c, n in scenario.case_1 + scenario.case_2:
        totals[c] = totals.get(c, 0) + n
    return tuple(sorted(totals.items()))


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def changed_features(
    centre: Scenario, other: Scenario, vocabulary: Vocabulary | None = None, text_only: bool = False
) -> list[dict[str, str]]:
    """Every scenario attribute that differs, as {feature, centre, counterfactual} with readable names and values.
    `text_only` leaves out what a text does not show (the dimension and the case order), for parsed scenarios."""
    vocab = vocabulary or _builtin_vocabulary()

    def attributes(s: Scenario) -> dict[str, str]:
        attrs = {} if text_only else {"dimension": s.dimension, "case order": ", ".join(case_groups(s, vocab))}
        attrs |= {
            "interventionism": _yes_no(s.is_interventionism),
            "passengers in car": _yes_no(s.is_in_car),
            "traffic lights": _yes_no(s.is_law),
            "case 1 light": s.lights[0] or "none",
            "case 2 light": s.lights[1] or "none",
        }
        for number, counts in ((1, dict(s.case_1)), (2, dict(s.case_2))):
            for c in vocab.characters:
                attrs[f"case {number} deaths: {c}"] = str(counts.get(c, 0))
        return attrs

    a, b = attributes(centre), attributes(other)
    return [{"feature": k, "centre": a[k], "counterfactual": b[k]} for k in a if a[k] != b[k]]


def select_pairs(scenarios: Sequence[Scenario], rows: Sequence[int], seed: int) -> list[tuple[int, int, bool]]:
    """(centre row, counterfactual row, answer_first) per eligible group, groups in sorted key order.

    Within a group (rows in ascending order) only the first row of each count signature is kept; groups left with
    fewer than two rows are skipped. From the rest two distinct rows are drawn, the first being the centre, and then
    the answer order, all from one `random.Random(seed)`.
    """
    groups: dict[tuple, dict[tuple, int]] = {}
    for scenario, row in sorted(zip(scenarios, rows, strict=True), key=lambda x: x[1]):
        groups.setdefault(pairing_key(scenario), {}).setdefault(count_signature(scenario), row)
    rng = random.Random(seed)
    out = []
    for key in sorted(groups):
        members = list(groups[key].values())
        if len(members) < 2:
            continue
        i, j = rng.sample(range(len(members)), 2)
        out.append((members[i], members[j], rng.choice((True, False))))
    return out


def pair_scenarios(
    scenarios: pd.DataFrame, seed: int = DEFAULT_SEED, both_orders: bool = False, vocabulary: Vocabulary | None = None
) -> pd.DataFrame:
    """Counterfactual pairs in the study's pairs-table schema (`selfexplain.simulatability.pairs`).

    One row per pair with the seeded answer order, or two rows (answer first, then answer last) with `both_orders`.
    """
    vocab = vocabulary or _builtin_vocabulary()
    missing = [c for c in SCENARIO_COLUMNS if c not in scenarios.columns]
    if missing:
        raise InputError(f"moral_machines scenarios: missing column(s) {missing}")
    records = scenarios[list(SCENARIO_COLUMNS)].to_dict("records")
    rows = [int(r["row"]) for r in records]
    if len(set(rows)) != len(rows):
        raise InputError("moral_machines scenarios: column 'row' has duplicate values")
    parsed = {row: scenario_from_row(r, vocabulary=vocab) for row, r in zip(rows, records, strict=True)}
    texts = {row: str(r["text"]) for row, r in zip(rows, records, strict=True)}

    records = []
    for centre, other, answer_first in select_pairs(list(parsed.values()), list(parsed), seed):
        changes = changed_features(parsed[centre], parsed[other], vocab)
        for first in (True, False) if both_orders else (answer_first,):
            records.append(
                {
                    "dataset": DATASET,
                    "pair_id": pair_id(DATASET, centre, other, first),
                    "centre_row": centre,
                    "counterfactual_row": other,
                    "centre_text": texts[centre],
                    "counterfactual_text": texts[other],
                    "centre_label": None,
                    "counterfactual_label": None,
                    "answer_first": first,
                    "hamming_distance": None,
                    "changed_features": [dict(d) for d in changes],
                    "generator": DATASET,
                    "group_size": None,
                }
            )
    return as_pairs_frame(records)
