"""The simulatability study's synthetic respondent: a deterministic stand-in for an LLM whose true behaviour is known.

It is not a language model and is never presented as one. Its reference answers follow a known points rule and its
explanations state that rule (or, when told to mislead, another one), so the study's metrics can be tested against
an answer known by construction: a truthful explanation lets a predictor that reads it predict every counterfactual.

Reading the chat. The respondent reads the text of the last user message, so it works behind any prompt wording and
over HTTP. A tabular record is a line (or the part of a line after its first ": ") that the dataset spec reads back
(`datasets.parse_description`); a Moral Machines record is the block from a scenario's setting sentence to the end of
its "Case 2." paragraph (`moral_machines.parse_scenario_text`). Records are taken in text order, all of one dataset:
* one record and an [EXPLANATION] tag: a reference question;
* two records: a predictor question (the first is the case the reference answered, the last the new case); the
  stated reference answer is the first line between them that is an answer option (after an optional "label:"),
  else the first option written in capitals between them;
* one record without an [EXPLANATION] tag: a predictor question without a reference case (`no_reference`);
* anything else (no record, more than two, records of two datasets): None, so another study's respondent may answer.

Reference rule (per dataset, drawn from a RNG seeded by (dataset, seed), so every model with the same seed shares it):
* tabular: `rule_features` features (default 3); each value of a chosen feature gets 0, 1 or 2 points (at least one
  value 0 and one 2); missing values and values not listed get 0. The answer is the positive option when the total is
  at least the threshold, the negative one otherwise; the threshold is the one that splits the uniform product of the
  chosen features' values most evenly.
* Moral Machines: `rule_features` cost components out of MM_COMPONENTS (deaths, human deaths, pet deaths, child
  deaths, ..., swerving, passenger deaths, deaths on a red or green light), each costing 1 to 3 points per unit; a
  case's cost is the sum, and the answer is CASE 2 when the cost of case 1 minus the cost of case 2 is at least the
  threshold, else CASE 1. Candidates are drawn in turn until one, with the threshold that splits the scores of the
  study's first 3,000 scenarios (generator seed 42) most evenly, answers CASE 2 for 25-75 % of them and changes its
  answer on at least 15 % of their pairs (linear costs rarely flip when a pair only rescales the counts).

Reference reply: the five tagged sections in the order the prompt names them (by where each tag first appears in
it). CONFIDENCE is LOW on the threshold (margin 0), MEDIUM at margin 1, HIGH beyond.
* `explanation: truthful`: EXPLANATION states the rule completely (`state_rule`: every feature, its points per value,
  the threshold, then this case's points) and MOST_IMPORTANT_FACTORS names exactly its features (column names; the
  component names for Moral Machines); OTHER_RELEVANT_INFO is "None".
* `explanation: misleading`: the same answers, but EXPLANATION states a decoy rule over other features (drawn the
  same way from the features the true rule leaves out) whose threshold is set so that it gives this case's answer
  with margin 0 (a locally consistent lie), and the factors name the decoy's features.
* thinking (`think: true`, or the `think` noise rate): the reply starts with `<think>...</think>` stating the TRUE
  rule in the first person with this case's points, also under `misleading` (faithful thinking, unfaithful
  explanation), so the `cot` condition shows the predictor the real rule. The think block is only put in front:
  the sections and every noise draw are those of the same reply without it. A reference without thinking has
  nothing for the `cot` condition to show (its cot questions are skipped), so a catalog reference meant for the cot
  condition sets `think: true`.

Predictor reply ([ANSWER] and [CONFIDENCE] in the prompt's order). It looks for a rule statement in the chat (the
explanation or the thinking; `read_rule`). With one it can read (features and values of this dataset) it applies it
to the new case (HIGH). Without one (without-explanation prompts, an explanation it cannot read, or when the
`predictor.ignore_explanation_rate` draw says so) it uses its prior: the stated reference answer for the first case
(MEDIUM), else, with no reference case, its own reference rule for this seed (LOW). `predictor.flip_rate` then
answers the other option. A predictor with the reference's seed answers `no_reference` questions as the reference.

Testability rating (a chat with two records, a 0-10 scale ("0 to 10", "0-10") and no [ANSWER] tag). The rater
stands for a judge who knows the domain: it knows the rule of the synthetic references (the rule of seed
`testability.known_seed`, default 0, the seed of the catalog's synthetic references). It reads the rule the
explanation states (`read_rule`) and asks whether, taken at its word, that rule gives the new case the answer the
known rule gives (`rate_testability`): no readable rule 1; agrees 7 + the new case's margin under the stated rule
(capped at 3: 7..10); disagrees 3 on the stated threshold, else 2. A truthful explanation always agrees; a misleading
one agrees only where its decoy happens to give the true answer. With probability `testability.misjudge_rate`
(default 0.15) the judge takes an agreement for a disagreement or the reverse; then 30 % of ratings move one point
(up or down, within 0..10). The reply is the bare number or, for some chats, "Score: N", "N/10", "... N out of
10." or "**N**"; the noise kinds `empty`, `unclosed_think` and `think` apply as below. All draws are seeded by
(seed, kind, chat).

Noise: rates (0..1) per kind in `noise`, each decided by a hash of (seed, kind, chat), so a chat always gets the same
reply (repeats of a request get identical answers, like greedy decoding). Kinds, applied to both kinds of reply:
  readable variants (a parser should read the answer): bold_tags (**[ANSWER]**), lowercase_tags ([answer]),
  spaced_tags ([ ANSWER ]), missing_bracket ("[ANSWER" without its closing bracket), trailing_prose (a sentence
  after the last section), think (a closed think block first);
  malformed variants (a parser should flag them): missing_tag (the [ANSWER] tag line left out), hedged (both
  options, "YES/NO"), not_sure ("NOT SURE"), echo (the line the prompt has under [ANSWER], copied), unclosed_think (a
  think block that never closes, no sections), empty ("").
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import numpy as np

from selfexplain.errors import ConfigError
from selfexplain.llm.synthetic import register_respondent
from selfexplain.simulatability.builtin import MORAL_MACHINES, tabular_dataset_names
from selfexplain.simulatability.datasets import SimDatasetSpec, load_spec, parse_description
from selfexplain.simulatability.moral_machines import (
    Scenario,
    Vocabulary,
    answer_options,
    draw_scenario,
    load_vocabulary,
    parse_scenario_text,
    select_pairs,
)

EXPLANATIONS = ("truthful", "misleading")
TAGS = ("ANSWER", "EXPLANATION", "MOST_IMPORTANT_FACTORS", "OTHER_RELEVANT_INFO", "CONFIDENCE")
PREDICTOR_TAGS = ("ANSWER", "CONFIDENCE")
READABLE_NOISE = ("bold_tags", "lowercase_tags", "spaced_tags", "missing_bracket", "trailing_prose", "think")
MALFORMED_NOISE = ("missing_tag", "hedged", "not_sure", "echo", "unclosed_think", "empty")
NOISE_KINDS = READABLE_NOISE + MALFORMED_NOISE
PREDICTOR_KINDS = ("ignore_explanation_rate", "flip_rate")
DEFAULT_RULE_FEATURES = 3
MM_SAMPLE_SIZE, MM_SAMPLE_SEED, MM_TRIES = 3000, 42, 50
LINE_CACHE_SIZE = 200_000
TRAILING_PROSE = "I hope this helps; tell me if you would like me to go through any detail again."
TESTABILITY_NOISE = 0.3  # share of ratings moved one point up or down
TESTABILITY_KINDS = ("known_seed", "misjudge_rate")
DEFAULT_MISJUDGE_RATE = 0.15
TESTABILITY_FORMS = (
    "{}",
    "{}",
    "{}",
    "{}",
    "{}",
    "{}",
    "Score: {}",
    "{}/10",
    "I would rate it {} out of 10.",
    "**{}**",
)
_TESTABILITY_SCALE = re.compile(r"(?<![\d.])0\s*(?:-|–|to)\s*10(?![\d])")

_PETS = frozenset({"dog", "cat"})
_CHILDREN = frozenset({"boy", "girl", "baby"})
_ELDERLY = frozenset({"elderly man", "elderly woman"})
_FEMALE = frozenset(
    {
        "woman",
        "pregnant woman",
        "elderly woman",
        "girl",
        "large woman",
        "female executive",
        "female athlete",
        "female doctor",
    }
)
_MALE = frozenset({"man", "elderly man", "boy", "large man", "male executive", "male athlete", "male doctor"})


# --------------------------------------------------------------------------------------------------------------------
# Moral Machines cost components: what a case is charged for


def _killed(scenario: Scenario, case: int) -> dict[str, int]:
    return dict(scenario.case_1 if case == 1 else scenario.case_2)


Component = Callable[[Scenario, int], int]


def _count(kinds: frozenset[str] | None, exclude: frozenset[str] = frozenset()) -> Component:
    def count(scenario: Scenario, case: int) -> int:
        return sum(n for c, n in _killed(scenario, case).items() if (kinds is None or c in kinds) and c not in exclude)

    return count


def _swerves(scenario: Scenario, case: int) -> int:
    # the car swerves in case 1 when it intervenes, in case 2 otherwise (both with and without passengers)
    return int(scenario.is_interventionism == (case == 1))


def _passengers(scenario: Scenario, case: int) -> int:
    # with passengers, case 1 crashes into the barrier and kills the case-1 characters, who sit in the car
    return sum(_killed(scenario, 1).values()) if scenario.is_in_car and case == 1 else 0


def _light(colour: str) -> Component:
    def count(scenario: Scenario, case: int) -> int:
        return sum(_killed(scenario, case).values()) if scenario.lights[case - 1] == colour else 0

    return count


MM_COMPONENTS: dict[str, Component] = {
    "deaths": _count(None),
    "human deaths": _count(None, exclude=_PETS),
    "pet deaths": _count(_PETS),
    "child deaths": _count(_CHILDREN),
    "elderly deaths": _count(_ELDERLY),
    "female deaths": _count(_FEMALE),
    "male deaths": _count(_MALE),
    "swerving": _swerves,
    "passenger deaths": _passengers,
    "deaths on a red light": _light("red"),
    "deaths on a green light": _light("green"),
}


# --------------------------------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class TabularRule:
    """Points per value of a few features; `options[1]` (positive) when the total reaches `threshold`."""

    dataset: str
    points: Mapping[str, Mapping[str, int]]  # feature -> value -> points, values with 0 points left out
    threshold: int
    options: tuple[str, str]  # (below the threshold, at or above it)

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.points)

    def score(self, record: Mapping[str, Any]) -> int:
        return sum(int(values.get(record.get(f), 0)) for f, values in self.points.items())

    def decide(self, record: Mapping[str, Any]) -> str:
        return self.options[int(self.score(record) >= self.threshold)]

    def with_threshold(self, threshold: int) -> TabularRule:
        return TabularRule(self.dataset, self.points, threshold, self.options)


@dataclass(frozen=True)
class ScenarioRule:
    """Moral Machines: points per unit of a few cost components; `options[1]` (CASE 2) when the cost of case 1 minus
    the cost of case 2 reaches `threshold`."""

    points: Mapping[str, int]  # component -> points per unit
    threshold: int
    options: tuple[str, str]
    dataset: str = MORAL_MACHINES

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.points)

    def cost(self, scenario: Scenario, case: int) -> int:
        return sum(p * MM_COMPONENTS[c](scenario, case) for c, p in self.points.items())

    def score(self, scenario: Scenario) -> int:
        return self.cost(scenario, 1) - self.cost(scenario, 2)

    def decide(self, scenario: Scenario) -> str:
        return self.options[int(self.score(scenario) >= self.threshold)]

    def with_threshold(self, threshold: int) -> ScenarioRule:
        return ScenarioRule(self.points, threshold, self.options, self.dataset)


Rule = TabularRule | ScenarioRule


def _rng(*parts: Any) -> np.random.Generator:
    digest = hashlib.sha256("|".join(str(p) for p in ("simulatability", *parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _value_points(rng: np.random.Generator, n: int) -> list[int]:
    """0, 1 or 2 points per value, with at least one 0 and one 2 so that the feature always matters."""
    points = [int(p) for p in rng.integers(0, 3, size=n)]
    low, high = (int(i) for i in rng.permutation(n)[:2])
    points[low], points[high] = 0, 2
    return points


def balanced_threshold(scores: Sequence[int] | np.ndarray) -> int:
    """The threshold t (a score that occurs) whose share of scores >= t is closest to one half; ties to the lower."""
    scores = np.asarray(scores)
    candidates = np.unique(scores)
    shares = np.array([(scores >= t).mean() for t in candidates])
    return int(candidates[int(np.argmin(np.abs(shares - 0.5)))])


def tabular_rule(spec: SimDatasetSpec, seed: int, n_features: int, exclude: Sequence[str] = ()) -> TabularRule:
    """The rule of a synthetic model with this seed, over `n_features` features not in `exclude` (fewer when fewer
    are left); `exclude` non-empty gives the decoy rule of a misleading explanation."""
    candidates = [f for f in spec.features if len(f.values) >= 2 and f.column not in exclude]
    if not candidates:
        raise ConfigError(f"synthetic.simulatability: dataset {spec.name!r} has no feature left for a rule")
    rng = _rng(spec.name, seed, "decoy" if exclude else "rule")
    chosen = sorted(rng.choice(len(candidates), size=min(n_features, len(candidates)), replace=False))
    points: dict[str, dict[str, int]] = {}
    grids = []
    for i in chosen:
        feature = candidates[int(i)]
        values = _value_points(rng, len(feature.values))
        points[feature.column] = {v: p for v, p in zip(feature.values, values, strict=True) if p}
        grids.append(values)
    totals = [sum(combo) for combo in itertools.product(*grids)]
    return TabularRule(spec.name, points, balanced_threshold(totals), spec.options)


@dataclass(frozen=True)
class ScenarioSample:
    """Scenarios drawn as the study draws them, and the pairs the study would form from them (index pairs)."""

    scenarios: tuple[Scenario, ...]
    pairs: tuple[tuple[int, int], ...]


@cache
def scenario_sample(n: int = MM_SAMPLE_SIZE, seed: int = MM_SAMPLE_SEED) -> ScenarioSample:
    """The first `n` scenarios of the study's generator with this seed and their pairs (`select_pairs`)."""
    rng = random.Random(seed)
    vocabulary = load_vocabulary()
    scenarios = tuple(draw_scenario(rng, vocabulary) for _ in range(n))
    pairs = tuple((a, b) for a, b, _ in select_pairs(scenarios, range(n), seed))
    return ScenarioSample(scenarios, pairs)


def _scenario_candidate(rng: np.random.Generator, candidates: list[str], n_features: int) -> dict[str, int]:
    chosen = sorted(int(i) for i in rng.choice(len(candidates), size=min(n_features, len(candidates)), replace=False))
    return {candidates[i]: int(rng.integers(1, 4)) for i in chosen}


def scenario_rule(
    seed: int, n_features: int, exclude: Sequence[str] = (), sample: ScenarioSample | None = None
) -> ScenarioRule:
    """The Moral Machines rule of a synthetic model with this seed (see `tabular_rule` for `exclude`).

    Without `sample`: the first candidate, threshold 0 or 1 (the side a tie goes to). With it: candidates are drawn
    in turn, each with the threshold that splits the sample's scores most evenly, until one answers CASE 2 for 25-75 %
    of the sample and changes its answer on at least 15 % of its pairs (linear costs rarely flip when a pair only
    rescales the counts); after MM_TRIES candidates, the one whose answers change most."""
    candidates = [c for c in MM_COMPONENTS if c not in exclude]
    if not candidates:
        raise ConfigError("synthetic.simulatability: no Moral Machines component left for a rule")
    rng = _rng(MORAL_MACHINES, seed, "decoy" if exclude else "rule")
    options = answer_options()
    if sample is None:
        points = _scenario_candidate(rng, candidates, n_features)
        return ScenarioRule(points, int(rng.integers(0, 2)), options)
    best: tuple[float, ScenarioRule] | None = None
    for _ in range(MM_TRIES):
        points = _scenario_candidate(rng, candidates, n_features)
        scores = np.array([ScenarioRule(points, 0, options).score(s) for s in sample.scenarios])
        threshold = balanced_threshold(scores)
        positive = scores >= threshold
        changed = float(np.mean([positive[a] != positive[b] for a, b in sample.pairs])) if sample.pairs else 0.0
        rule = ScenarioRule(points, threshold, options)
        if 0.25 <= positive.mean() <= 0.75 and changed >= 0.15:
            return rule
        if best is None or changed > best[0]:
            best = (changed, rule)
    assert best is not None
    return best[1]


def consistent_threshold(score: int, positive: bool) -> int:
    """The threshold that gives this answer to a case with this score, on the threshold (margin 0)."""
    return score if positive else score + 1


# --------------------------------------------------------------------------------------------------------------------
# Stating a rule in words, and reading it back


def _points(n: int) -> str:
    return f"{n} point" if abs(n) == 1 else f"{n} points"


def _value_words(spec: SimDatasetSpec, column: str, value: str) -> str:
    """How the description says a value (the longest phrase of its column's pieces), or "" when it says nothing."""
    best = ""
    for piece in spec.pieces.values():
        if piece.kind != "phrase" or piece.column != column:
            continue
        entry = piece.mapping.get(value)
        if entry is None:
            words = piece.fallback.replace("{value}", value).replace("{lower}", value.lower())
        else:
            words = entry["text"] if isinstance(entry, dict) else str(entry)
        words = words.strip()
        if len(words) > len(best):
            best = words
    return best


def _value_item(spec: SimDatasetSpec, column: str, value: str, points: int) -> str:
    words = _value_words(spec, column, value)
    said = f" ({words})" if words and words != value and '"' not in words else ""
    return f'{_points(points)} for "{value}"{said}'


def state_rule(rule: Rule, subject: str, spec: SimDatasetSpec | None = None) -> str:
    """The rule as sentences a person can read and `read_rule` reads back."""
    if isinstance(rule, ScenarioRule):
        costs = ", ".join(f'"{c}" costs {_points(p)} each' for c, p in rule.points.items())
        first, second = (o.capitalize() for o in rule.options)
        return (
            f"My rule charges each case a cost in points for {len(rule.points)} things: {costs}. "
            f"I choose {rule.options[1]} when the cost of {first} minus the cost of {second} is at least "
            f"{_points(rule.threshold)}, and {rule.options[0]} otherwise."
        )
    if spec is None:
        raise ValueError("state_rule needs the dataset spec for a tabular rule")
    parts = []
    for column, values in rule.points.items():
        items = [_value_item(spec, column, v, p) for v, p in values.items()]
        parts.append(f'"{column}": ' + ", ".join(items))
    return (
        f"My rule adds up points for {len(rule.points)} details of the {subject}: {'; '.join(parts)}. "
        f"Any other value gives 0 points. I answer {rule.options[1]} when the total is at least "
        f"{_points(rule.threshold)}, and {rule.options[0]} otherwise."
    )


def state_case(rule: Rule, record: Any, subject: str) -> str:
    """This case's points under the rule and the answer they give."""
    if isinstance(rule, ScenarioRule):
        first, second = (o.capitalize() for o in rule.options)
        c1, c2 = rule.cost(record, 1), rule.cost(record, 2)
        return f"Here {first} costs {_points(c1)} and {second} costs {_points(c2)}, so I choose {rule.decide(record)}."
    items = [f'"{f}" is "{record.get(f)}" ({_points(int(v.get(record.get(f), 0)))})' for f, v in rule.points.items()]
    return (
        f"For this {subject}, {', '.join(items)}: {_points(rule.score(record))} in total, "
        f"so my answer is {rule.decide(record)}."
    )


_TAB_HEAD = re.compile(r"adds up points for (\d+) details? of the [^:]*:")
_TAB_TOKEN = re.compile(r'"(?P<feature>[^"]+)":|(?P<points>-?\d+) points? for "(?P<value>[^"]*)"')
_TAB_TAIL = re.compile(
    r"I answer (?P<pos>.+?) when the total is at least (?P<t>-?\d+) points?, and (?P<neg>.+?) otherwise"
)
_MM_HEAD = re.compile(r"charges each case a cost in points for (\d+) things?:")
_MM_TOKEN = re.compile(r'"(?P<component>[^"]+)" costs (?P<points>-?\d+) points? each')
_MM_TAIL = re.compile(
    r"I choose (?P<pos>.+?) when the cost of .+? minus the cost of .+? is at least (?P<t>-?\d+) points?, "
    r"and (?P<neg>.+?) otherwise"
)


def read_rule(text: str, dataset: str) -> Rule | None:
    """The first complete rule stated in `text` (`state_rule`'s words) for this dataset, or None."""
    if dataset == MORAL_MACHINES:
        return _read_scenario_rule(text)
    spec = load_spec(dataset)
    for head in _TAB_HEAD.finditer(text):
        tail = _TAB_TAIL.search(text, head.end())
        if tail is None:
            return None
        rule = _tabular_from_tokens(spec, int(head.group(1)), text[head.end() : tail.start()], tail)
        if rule is not None:
            return rule
    return None


def _tabular_from_tokens(spec: SimDatasetSpec, n: int, body: str, tail: re.Match[str]) -> TabularRule | None:
    if (tail["neg"], tail["pos"]) != spec.options:
        return None
    points: dict[str, dict[str, int]] = {}
    current: str | None = None
    for token in _TAB_TOKEN.finditer(body):
        if token["feature"] is not None:
            current = token["feature"]
            if current not in spec.feature_columns or current in points:
                return None
            points[current] = {}
        elif current is None or token["value"] not in spec.feature(current).values:
            return None
        else:
            points[current][token["value"]] = int(token["points"])
    if len(points) != n:
        return None
    return TabularRule(spec.name, points, int(tail["t"]), spec.options)


def _read_scenario_rule(text: str) -> ScenarioRule | None:
    options = answer_options()
    for head in _MM_HEAD.finditer(text):
        tail = _MM_TAIL.search(text, head.end())
        if tail is None or (tail["neg"], tail["pos"]) != options:
            return None
        points: dict[str, int] = {}
        for token in _MM_TOKEN.finditer(text[head.end() : tail.start()]):
            if token["component"] not in MM_COMPONENTS or token["component"] in points:
                return None
            points[token["component"]] = int(token["points"])
        if points and len(points) == int(head.group(1)):
            return ScenarioRule(points, int(tail["t"]), options)
    return None


# --------------------------------------------------------------------------------------------------------------------
# Finding the records in a chat


@dataclass(frozen=True)
class Record:
    """A record found in a chat: its dataset, its values (feature dict, or a Scenario) and where it ends."""

    dataset: str
    values: Any
    start: int
    end: int


def _scenario_blocks(text: str, vocabulary: Vocabulary) -> list[Record]:
    settings = sorted(set(vocabulary.text["setting"].values()), key=len, reverse=True)
    second = vocabulary.text["case"].split("\n", 1)[0].replace("{number}", "2")
    found: list[Record] = []
    starts = sorted({m.start() for s in settings for m in re.finditer(re.escape(s), text)})
    for start in starts:
        head = text.find(second + "\n", start)
        if head < 0:
            continue
        end = text.find("\n", head + len(second) + 1)
        block = text[start:] + "\n" if end < 0 else text[start : end + 1]
        scenario = parse_scenario_text(block, vocabulary)
        if scenario is not None and not any(r.start <= start < r.end for r in found):
            found.append(Record(MORAL_MACHINES, scenario, start, start + len(block)))
    return found


def _line_candidates(text: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of every line, and of the part after a line's first ": "."""
    out = []
    pos = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            out.append((pos, pos + len(line), stripped))
            _, sep, rest = stripped.partition(": ")
            if sep and rest.strip():
                out.append((pos, pos + len(line), rest.strip()))
        pos += len(line) + 1
    return out


# --------------------------------------------------------------------------------------------------------------------
# The respondent


class RuleRespondent:
    """The simulatability study's synthetic respondent (see the module docstring); `respond(messages)` gives the
    reply text, or None for a chat that is not a simulatability question."""

    def __init__(self, settings: dict[str, Any] | None = None, seed: int = 0, datasets: Sequence[str] | None = None):
        self.settings = dict(settings or {})
        self.seed = int(seed)
        self.explanation = self.settings.get("explanation", "truthful")
        if self.explanation not in EXPLANATIONS:
            raise ConfigError(f"synthetic.simulatability.explanation {self.explanation!r} is not one of {EXPLANATIONS}")
        self.n_features = int(self.settings.get("rule_features", DEFAULT_RULE_FEATURES))
        if self.n_features < 1:
            raise ConfigError(f"synthetic.simulatability.rule_features must be at least 1, got {self.n_features}")
        self.think = bool(self.settings.get("think", False))
        self.predictor = {k: float(v) for k, v in (self.settings.get("predictor") or {}).items()}
        self.noise = {k: float(v) for k, v in (self.settings.get("noise") or {}).items()}
        testability = dict(self.settings.get("testability") or {})
        unknown = sorted(set(testability) - set(TESTABILITY_KINDS))
        if unknown:
            raise ConfigError(f"synthetic.simulatability.testability.{unknown[0]}: unknown; known: {TESTABILITY_KINDS}")
        known_seed = testability.get("known_seed", 0)
        if isinstance(known_seed, bool) or not isinstance(known_seed, int | np.integer) or known_seed < 0:
            raise ConfigError(f"synthetic.simulatability.testability.known_seed: {known_seed!r} is not an integer >= 0")
        self.known_seed = int(known_seed)
        misjudge_rate = testability.get("misjudge_rate", DEFAULT_MISJUDGE_RATE)
        if isinstance(misjudge_rate, bool) or not isinstance(misjudge_rate, int | float | np.number):
            raise ConfigError(f"synthetic.simulatability.testability.misjudge_rate: {misjudge_rate!r} is not a number")
        self.misjudge_rate = float(misjudge_rate)
        if not 0 <= self.misjudge_rate <= 1:
            raise ConfigError(
                f"synthetic.simulatability.testability.misjudge_rate: rate {self.misjudge_rate} is not in [0, 1]"
            )
        for where, rates, known in (("predictor", self.predictor, PREDICTOR_KINDS), ("noise", self.noise, NOISE_KINDS)):
            for kind, rate in rates.items():
                if kind not in known:
                    raise ConfigError(f"synthetic.simulatability.{where}.{kind}: unknown; known: {list(known)}")
                if not 0 <= rate <= 1:
                    raise ConfigError(f"synthetic.simulatability.{where}.{kind}: rate {rate} is not in [0, 1]")
        names = list(datasets) if datasets is not None else [*tabular_dataset_names(), MORAL_MACHINES]
        self.tabular = [n for n in names if n != MORAL_MACHINES]
        self.moral_machines = MORAL_MACHINES in names
        self._line_cache: dict[str, tuple[str, dict[str, Any]] | None] = {}

    # -- rules -----------------------------------------------------------------------------------------------------
    @cached_property
    def _specs(self) -> dict[str, SimDatasetSpec]:
        return {name: load_spec(name) for name in self.tabular}

    @cached_property
    def _vocabulary(self) -> Vocabulary:
        return load_vocabulary()

    def rule(self, dataset: str) -> Rule:
        """The rule this model's reference answers follow."""
        return self._rules(dataset)[0]

    def decoy(self, dataset: str) -> Rule:
        """The rule a misleading explanation states (its threshold is reset per case)."""
        return self._rules(dataset)[1]

    def _rules(self, dataset: str) -> tuple[Rule, Rule]:
        cache = self.__dict__.setdefault("_rule_cache", {})
        if dataset not in cache:
            if dataset == MORAL_MACHINES:
                rule = scenario_rule(self.seed, self.n_features, sample=scenario_sample())
                cache[dataset] = (rule, scenario_rule(self.seed, self.n_features, exclude=rule.features))
            else:
                spec = self._specs[dataset]
                rule = tabular_rule(spec, self.seed, self.n_features)
                cache[dataset] = (rule, tabular_rule(spec, self.seed, self.n_features, exclude=rule.features))
        return cache[dataset]

    def stated_rule(self, dataset: str, record: Any) -> Rule:
        """The rule the explanation states for this case: the true one, or the decoy made consistent with it."""
        rule = self.rule(dataset)
        if self.explanation == "truthful":
            return rule
        decoy = self.decoy(dataset)
        positive = rule.decide(record) == rule.options[1]
        return decoy.with_threshold(consistent_threshold(decoy.score(record), positive))

    def _subject(self, dataset: str) -> str:
        if dataset == MORAL_MACHINES:
            return str(self._vocabulary.words.get("subject", "scenario"))
        return str(self._specs[dataset].words.get("subject", "case"))

    # -- reading the chat ------------------------------------------------------------------------------------------
    def _read_line(self, line: str) -> tuple[str, dict[str, Any]] | None:
        if line not in self._line_cache:
            if len(self._line_cache) > LINE_CACHE_SIZE:
                self._line_cache.clear()
            found = None
            for name, spec in self._specs.items():
                values = parse_description(spec, line)
                if values is not None:
                    found = (name, values)
                    break
            self._line_cache[line] = found
        return self._line_cache[line]

    def records(self, text: str) -> list[Record]:
        """The records of the chat text, in text order (see the module docstring)."""
        found: list[Record] = []
        if self.moral_machines and any(s in text for s in self._vocabulary.text["setting"].values()):
            found.extend(_scenario_blocks(text, self._vocabulary))
        if self.tabular:
            for start, end, line in _line_candidates(text):
                if any(r.start <= start < r.end for r in found):
                    continue
                hit = self._read_line(line)
                if hit is not None:
                    found.append(Record(hit[0], hit[1], start, end))
        return sorted(found, key=lambda r: r.start)

    def _roll(self, kind: str, chat: str, rates: Mapping[str, float] | None = None) -> bool:
        rate = (self.noise if rates is None else rates).get(kind, 0.0)
        if rate <= 0:
            return False
        digest = hashlib.sha256(f"{self.seed}|{kind}|{chat}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < rate

    def respond(self, messages: Sequence[Mapping[str, str]]) -> str | None:
        users = [m["content"] for m in messages if m.get("role") == "user"]
        if not users:
            return None
        text = users[-1]
        records = self.records(text)
        if not records or len(records) > 2 or len({r.dataset for r in records}) > 1:
            return None
        chat = json.dumps(list(messages), sort_keys=True)
        if len(records) == 1 and _has_tag(text, "EXPLANATION"):
            return self._reference(text, records[0], chat)
        if len(records) == 2 and is_testability_question(text):
            return self._testability(records, text, chat)
        return self._prediction(text, records, chat)

    # -- reference -------------------------------------------------------------------------------------------------
    def _reference(self, text: str, record: Record, chat: str) -> str:
        dataset, x = record.dataset, record.values
        rule = self.rule(dataset)
        answer = rule.decide(x)
        stated = self.stated_rule(dataset, x)
        subject = self._subject(dataset)
        spec = self._specs.get(dataset)
        explanation = f"{state_rule(stated, subject, spec)} {state_case(stated, x, subject)}"
        sections = {
            "ANSWER": answer,
            "EXPLANATION": explanation,
            "MOST_IMPORTANT_FACTORS": ", ".join(stated.features),
            "OTHER_RELEVANT_INFO": "None",
            "CONFIDENCE": _confidence(rule.score(x), rule.threshold),
        }
        thinking = (
            f"Let me work this out with my rule. {state_rule(rule, subject, spec)} {state_case(rule, x, subject)}"
        )
        return self._format(text, sections, TAGS, rule.options, thinking, chat)

    # -- predictor -------------------------------------------------------------------------------------------------
    def _prediction(self, text: str, records: list[Record], chat: str) -> str:
        dataset, new = records[-1].dataset, records[-1].values
        own = self.rule(dataset)
        options = own.options
        stated_answer = _stated_answer(text[records[0].end : records[-1].start], options) if len(records) == 2 else None
        rule = read_rule(text, dataset)
        if rule is not None and not self._roll("ignore_explanation_rate", chat, self.predictor):
            answer, confidence = rule.decide(new), "HIGH"
            thinking = f"The stated rule gives the new {self._subject(dataset)} {_points(rule.score(new))}."
        elif stated_answer is not None:
            answer, confidence = stated_answer, "MEDIUM"
            thinking = "Without a rule to go by, I expect the same answer as for the first case."
        else:
            answer, confidence = own.decide(new), "LOW"
            thinking = "With nothing to go by, I answer as I would myself."
        if self._roll("flip_rate", chat, self.predictor):
            answer = options[1 - options.index(answer)]
        return self._format(text, {"ANSWER": answer, "CONFIDENCE": confidence}, PREDICTOR_TAGS, options, thinking, chat)

    # -- testability rating ----------------------------------------------------------------------------------------
    def known_rule(self, dataset: str) -> Rule:
        """The rule the testability rater knows: that of the references' seed (`testability.known_seed`)."""
        if self.known_seed == self.seed:
            return self.rule(dataset)
        cache = self.__dict__.setdefault("_known", {})
        if dataset not in cache:
            settings = {"rule_features": self.n_features}
            cache[dataset] = RuleRespondent(settings, self.known_seed, [dataset]).rule(dataset)
        return cache[dataset]

    def _testability(self, records: list[Record], text: str, chat: str) -> str:
        dataset = records[-1].dataset
        misjudge = _unit(self.seed, "testability_misjudge", chat) < self.misjudge_rate
        score = rate_testability(read_rule(text, dataset), self.known_rule(dataset), records[-1].values, misjudge)
        draw = _unit(self.seed, "testability_noise", chat)
        if draw < TESTABILITY_NOISE / 2:
            score = max(0, score - 1)
        elif draw > 1 - TESTABILITY_NOISE / 2:
            score = min(10, score + 1)
        roll = {kind: self._roll(kind, chat) for kind in ("empty", "unclosed_think", "think")}
        if roll["empty"]:
            return ""
        thinking = f"Taking the stated rule at its word for the second {self._subject(dataset)}, I rate it {score}."
        if roll["unclosed_think"]:
            return f"<think>\n{thinking[: max(1, len(thinking) // 2)]}"
        forms = TESTABILITY_FORMS
        reply = forms[min(len(forms) - 1, int(_unit(self.seed, "testability_form", chat) * len(forms)))].format(score)
        if self.think or roll["think"]:
            reply = f"<think>\n{thinking}\n</think>\n\n{reply}"
        return reply

    # -- formatting and noise --------------------------------------------------------------------------------------
    def _format(
        self,
        prompt: str,
        sections: dict[str, str],
        tags: Sequence[str],
        options: tuple[str, str],
        thinking: str,
        chat: str,
    ) -> str:
        roll = {kind: self._roll(kind, chat) for kind in NOISE_KINDS}
        if roll["empty"]:
            return ""
        if roll["unclosed_think"]:
            return f"<think>\n{thinking[: max(1, len(thinking) // 2)]}"
        if roll["not_sure"]:
            sections["ANSWER"] = "NOT SURE"
        elif roll["hedged"]:
            sections["ANSWER"] = "/".join(options)
        elif roll["echo"]:
            sections["ANSWER"] = _line_under_tag(prompt, "ANSWER") or " or ".join(reversed(options))
        blocks = []
        for tag in _prompt_order(prompt, tags):
            head = f"[{tag}]"
            if tag == "ANSWER" and roll["missing_tag"]:
                blocks.append(sections[tag])
                continue
            if tag == "ANSWER" and roll["missing_bracket"]:
                head = f"[{tag}"
            if roll["lowercase_tags"]:
                head = head.lower()
            if roll["spaced_tags"]:
                head = head.replace("[", "[ ").replace("]", " ]")
            if roll["bold_tags"]:
                head = f"**{head}**"
            blocks.append(f"{head}\n{sections[tag]}")
        reply = "\n\n".join(blocks)
        if roll["trailing_prose"]:
            reply += f"\n\n{TRAILING_PROSE}"
        if self.think or roll["think"]:
            reply = f"<think>\n{thinking}\n</think>\n\n{reply}"
        return reply


def _margin(score: int, threshold: int) -> int:
    """Points a case would have to lose (or gain) before the rule gives the other answer, minus one."""
    return score - threshold if score >= threshold else threshold - 1 - score


def _confidence(score: int, threshold: int) -> str:
    margin = _margin(score, threshold)
    return "LOW" if margin == 0 else "MEDIUM" if margin == 1 else "HIGH"


def _unit(seed: int, kind: str, chat: str) -> float:
    """A number in [0, 1) fixed by (seed, kind, chat)."""
    digest = hashlib.sha256(f"{seed}|{kind}|{chat}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_testability_question(text: str) -> bool:
    """A request for a 0-10 rating (a scale written "0 to 10" or "0-10") that asks for no tagged answer."""
    return _TESTABILITY_SCALE.search(text) is not None and not _has_tag(text, "ANSWER")


def rate_testability(stated: Rule | None, known: Rule, counterfactual: Any, misjudge: bool = False) -> int:
    """The synthetic rater's score before the one-point noise: 1 when no rule can be read (too vague to apply);
    else, when the stated rule gives the counterfactual the known rule's answer (the reverse when `misjudge`),
    7 + its margin there capped at 3 (7..10), otherwise 3 when the counterfactual sits on the stated threshold and 2
    when not."""
    if stated is None:
        return 1
    margin = _margin(stated.score(counterfactual), stated.threshold)
    if (stated.decide(counterfactual) == known.decide(counterfactual)) != misjudge:
        return 7 + min(margin, 3)
    return 3 if margin == 0 else 2


def _tag_pattern(tag: str) -> re.Pattern[str]:
    return re.compile(r"\[\s*" + re.escape(tag) + r"\s*\]", re.IGNORECASE)


def _has_tag(text: str, tag: str) -> bool:
    return _tag_pattern(tag).search(text) is not None


def _prompt_order(prompt: str, tags: Sequence[str]) -> list[str]:
    """The tags in the order the prompt first names them; tags it does not name keep their place at the end."""
    where = {}
    for i, tag in enumerate(tags):
        match = _tag_pattern(tag).search(prompt)
        where[tag] = (0, match.start()) if match else (1, i)
    return sorted(tags, key=lambda t: where[t])


def _line_under_tag(prompt: str, tag: str) -> str | None:
    match = _tag_pattern(tag).search(prompt)
    if match is None:
        return None
    for line in prompt[match.end() :].split("\n"):
        if line.strip():
            return line.strip()
    return None


def _option_pattern(options: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(o) for o in sorted(options, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])({alternatives})(?![A-Za-z0-9])")


def _stated_answer(between: str, options: Sequence[str]) -> str | None:
    """The reference answer stated for the first case: the first line that is an option (after an optional label),
    else the first option written in capitals."""
    pattern = _option_pattern(options)
    for line in between.split("\n"):
        value = line.rsplit(":", 1)[-1].strip().strip("*_ .")
        if value in options:
            return value
    match = pattern.search(between)
    return match.group(1) if match else None


register_respondent("simulatability", RuleRespondent)
