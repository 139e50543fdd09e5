"""The sce study's synthetic respondent: a deterministic stand-in for an LLM whose true behaviour is known.

It reads the chat *text* (the record lines a dataset spec renders), so it works behind any prompt wording and over
HTTP, and answers with text that goes through the same parsing, journaling and scoring as a real model's. The
synthetic backend (`selfexplain.llm.synthetic`) asks it first whether a chat is an sce chat.

Behaviour, set in a catalog entry's `synthetic.sce` block:
* decision rule per dataset: positive (options[1]) when sum_f weight_f * scaled_f(x) >= threshold, where numeric
  features scale to [0, 1] over their levels and a categorical feature scales to 1 at its `positive_levels` value.
  Defaults come from the dataset spec's `synthetic_rule`; `rules: {dataset: {...}}` overrides them.
* counterfactual: `exact` returns the nearest grid point it labels differently (Gower, ties to the first in grid
  order); `overshoot` extrapolates `overshoot_factor` times that step and returns the nearest point with the target
  label; `timid` moves `timid_fraction` of the step, rounding every feature towards the original.
* a first-pass chat may name values off the grid (a counterfactual asked again, `verify: requery`): numeric
  features are read as numbers and the same rule answers; a follow-up always starts from a grid point.
* noise rates (0..1) per kind, decided by a hash of seed, kind and chat, so each chat always gets the same
  (a `<think>` prefix reaches the pipeline as thinking text, split off by the backend like a real model's):
  first pass: malformed_json, code_fence, think_prefix, single_quotes;
  follow-up: malformed_json, off_grid, extra_keys, number_words, code_fence.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from selfexplain.llm.synthetic import register_respondent
from selfexplain.parsing.numbers import number_to_words
from selfexplain.tabular.distances import first_min, make_metric, nearest_of_class
from selfexplain.tabular.features import DatasetSpec, Feature, builtin_dataset_names, load_dataset_spec
from selfexplain.tabular.grids import build_grid, lookup_rows

BEHAVIOURS = ("exact", "overshoot", "timid")


def _line_pattern(template: str) -> re.Pattern[str]:
    before, after = template.split("{label}", 1)
    return re.compile("^" + re.escape(before) + "(.+?)" + re.escape(after) + "$", re.MULTILINE)


@dataclass
class _Task:
    """Everything a synthetic model needs about one dataset: grid, own labels, nearest flips."""

    spec: DatasetSpec
    weights: dict[str, float]
    threshold: float
    positive_levels: dict[str, float]

    @cached_property
    def grid(self) -> Any:
        return build_grid(self.spec)

    @cached_property
    def points(self) -> np.ndarray:
        return self.grid[self.spec.columns].to_numpy(dtype=np.float64)

    @cached_property
    def metric(self) -> Any:
        return make_metric(self.spec, self.grid, "gower")

    def decide(self, x: np.ndarray) -> int:
        score = 0.0
        for j, f in enumerate(self.spec.features):
            w = float(self.weights.get(f.column, 0.0))
            if f.is_categorical:
                score += w * float(x[j] == self.positive_levels.get(f.column, f.levels[-1]))
            else:
                lo, hi = min(f.levels), max(f.levels)
                score += w * (x[j] - lo) / (hi - lo)
        return int(score >= self.threshold - 1e-12)

    @cached_property
    def labels(self) -> np.ndarray:
        return np.array([self.decide(p) for p in self.points], dtype=np.int64)

    def members(self, label: int) -> np.ndarray:
        return np.flatnonzero(self.labels == label)

    @cached_property
    def nearest_flip(self) -> np.ndarray:
        to_positive = nearest_of_class(self.metric, self.labels, 1)
        to_negative = nearest_of_class(self.metric, self.labels, 0)
        return np.where(self.labels == 0, to_positive, to_negative)

    @cached_property
    def off_grid_feature(self) -> int | None:
        """The last numeric feature without word labels: where off-grid noise puts a value between levels."""
        numeric = [j for j, f in enumerate(self.spec.features) if not f.is_categorical and not f.has_text_labels]
        return numeric[-1] if numeric else None


def _read_value(feature: Feature, text: str, off_grid: bool) -> float | None:
    if text in feature.labels:
        return float(feature.levels[feature.labels.index(text)])
    if not off_grid or feature.has_text_labels:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


class GridRespondent:
    """The sce study's synthetic respondent: labels grid records and gives counterfactuals by a known rule."""

    def __init__(
        self,
        settings: dict[str, Any] | None = None,
        seed: int = 0,
        dataset_specs: Sequence[DatasetSpec] | None = None,
    ) -> None:
        self.settings = dict(settings or {})
        self.behaviour = self.settings.get("counterfactual", "exact")
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"synthetic.sce.counterfactual {self.behaviour!r} is not one of {list(BEHAVIOURS)}")
        self.noise = {k: float(v) for k, v in (self.settings.get("noise") or {}).items()}
        self.seed = int(seed)
        specs = dataset_specs or [load_dataset_spec(n) for n in builtin_dataset_names()]
        rules = self.settings.get("rules") or {}
        self.tasks: list[tuple[_Task, list[re.Pattern[str]]]] = []
        for spec in specs:
            rule = {**spec.synthetic_rule, **rules.get(spec.name, {})}
            task = _Task(
                spec=spec,
                weights=dict(rule.get("weights", {})),
                threshold=float(rule.get("threshold", 0.5)),
                positive_levels={k: float(v) for k, v in (rule.get("positive_levels") or {}).items()},
            )
            self.tasks.append((task, [_line_pattern(f.description) for f in spec.features]))

    # -- reading the chat ------------------------------------------------------------------------------------
    def _find_record(self, text: str, off_grid: bool = False) -> tuple[_Task, np.ndarray] | None:
        """The dataset and values of the record in `text`. With `off_grid`, a feature whose labels are numbers may
        hold any number (a counterfactual asked again between or beyond the levels); the rule applies to it as is."""
        for task, patterns in self.tasks:
            values = []
            for f, pattern in zip(task.spec.features, patterns, strict=True):
                match = pattern.search(text)
                value = _read_value(f, match.group(1), off_grid) if match else None
                if value is None:
                    break
                values.append(value)
            else:
                return task, np.asarray(values, dtype=np.float64)
        return None

    def _roll(self, kind: str, chat: str) -> bool:
        rate = self.noise.get(kind, 0.0)
        if rate <= 0:
            return False
        digest = hashlib.sha256(f"{self.seed}|{kind}|{chat}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < rate

    def respond(self, messages: Sequence[dict[str, str]]) -> str | None:
        """The reply, or None when the chat holds no grid record this respondent knows."""
        users = [m["content"] for m in messages if m.get("role") == "user"]
        # a first pass may be a counterfactual asked again (verify: requery), off the grid; a follow-up starts
        # from a grid point
        found = self._find_record(users[0], off_grid=len(users) == 1) if users else None
        if found is None:
            return None
        chat = json.dumps(list(messages), sort_keys=True)
        task, x = found
        if len(users) == 1:
            return self._first_answer(task, x, chat)
        return self._counterfactual(task, x, users[-1], chat)

    # -- first pass ------------------------------------------------------------------------------------------
    def _first_answer(self, task: _Task, x: np.ndarray, chat: str) -> str:
        label = task.spec.options[task.decide(x)]
        if self._roll("malformed_json", chat):
            return "Hard to say from so little information."
        body = json.dumps({"answer": label}, ensure_ascii=False)
        if self._roll("single_quotes", chat):
            body = "{'answer': '" + label + "'}"
        if self._roll("code_fence", chat):
            body = f"```json\n{body}\n```"
        if self._roll("think_prefix", chat):
            other = task.spec.options[1 - task.decide(x)]
            body = f'<think>First guess {{"answer": "{other}"}}, but let me weigh the record again.</think>\n{body}'
        return body

    # -- follow-up -------------------------------------------------------------------------------------------
    def _target(self, task: _Task, x: np.ndarray, followup: str) -> int:
        named = [i for i, option in enumerate(task.spec.options) if option in followup]
        # "Heart disease" is inside "No heart disease": prefer the longest option named.
        if named:
            return max(named, key=lambda i: len(task.spec.options[i]))
        return 1 - task.decide(x)

    def _choose_point(self, task: _Task, x: np.ndarray, target: int) -> np.ndarray:
        if task.decide(x) == target:
            return x
        row = int(lookup_rows(task.spec, task.grid, x[None, :])[0])
        x_min = task.points[task.nearest_flip[row]]
        if self.behaviour == "exact":
            return x_min
        if self.behaviour == "overshoot":
            factor = float(self.settings.get("overshoot_factor", 3.0))
            lo = np.array([min(f.levels) for f in task.spec.features])
            hi = np.array([max(f.levels) for f in task.spec.features])
            aim = np.clip(x + factor * (x_min - x), lo, hi)
            members = task.members(target)
            return task.points[members[first_min(task.metric.pairwise(aim, task.points[members]))]]
        fraction = float(self.settings.get("timid_fraction", 0.5))
        out = x.copy()
        for j, f in enumerate(task.spec.features):
            if f.is_categorical:
                continue
            levels = sorted(f.levels)
            i0, i1 = levels.index(x[j]), levels.index(x_min[j])
            step = int(np.trunc(fraction * (i1 - i0)))
            out[j] = levels[i0 + step]
        return out

    def _counterfactual(self, task: _Task, x: np.ndarray, followup: str, chat: str) -> str:
        if self._roll("malformed_json", chat):
            return "I would rather not change the record."
        point = self._choose_point(task, x, self._target(task, x, followup))
        answer: dict[str, Any] = {}
        if self._roll("extra_keys", chat):
            answer["note"] = "changed the fields that matter most"
        words = self._roll("number_words", chat)
        off_grid = self._roll("off_grid", chat)
        for j, f in enumerate(task.spec.features):
            value = point[j]
            if off_grid and j == task.off_grid_feature:
                levels = sorted(f.levels)
                gap = (levels[1] - levels[0]) / 2 if len(levels) > 1 else 1
                value = value + gap if value < levels[-1] else levels[-1] + 2 * gap
                answer[f.key] = f"{value:g}"
            elif f.has_text_labels:
                answer[f.key] = f.label_of(value)
            elif words and float(value).is_integer():
                answer[f.key] = number_to_words(int(value))
            else:
                answer[f.key] = f"{value:g}"
        body = json.dumps(answer, ensure_ascii=False)
        if self._roll("code_fence", chat):
            body = f"Here is the revised record:\n```json\n{body}\n```"
        return body


register_respondent("sce", GridRespondent)
