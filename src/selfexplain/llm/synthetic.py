"""Built-in synthetic respondents: deterministic stand-ins for an LLM whose true behaviour is known.

They read the chat *text* (the record lines a dataset spec renders), so they work behind any prompt wording and
over HTTP, and they answer with text that goes through the same parsing, journaling and scoring as a real model's.
They are labelled synthetic everywhere and never presented as an LLM.

Behaviour, set in a catalog entry's `synthetic` block:
* decision rule per dataset: positive (options[1]) when sum_f weight_f * scaled_f(x) >= threshold, where numeric
  features scale to [0, 1] over their levels and a categorical feature scales to 1 at its `positive_levels` value.
  Defaults come from the dataset spec's `synthetic_rule`; `rules: {dataset: {...}}` overrides them.
* counterfactual: `exact` returns the nearest grid point it labels differently (Gower, ties to the first in grid
  order); `overshoot` extrapolates `overshoot_factor` times that step and returns the nearest point with the target
  label; `timid` moves `timid_fraction` of the step, rounding every feature towards the original.
* noise rates (0..1) per kind, decided by a hash of seed, kind and chat, so each chat always gets the same
  (a `<think>` prefix reaches the pipeline as thinking text, split off by the backend like a real model's):
  first pass: malformed_json, code_fence, think_prefix, single_quotes;
  follow-up: malformed_json, off_grid, extra_keys, number_words, code_fence.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from selfexplain.llm.thinking import split_thinking
from selfexplain.llm.types import ChatRequest, Completion
from selfexplain.tabular.distances import first_min, make_metric, nearest_of_class
from selfexplain.tabular.features import DatasetSpec, builtin_dataset_names, load_dataset_spec
from selfexplain.tabular.grids import build_grid, lookup_rows

BEHAVIOURS = ("exact", "overshoot", "timid")

_SMALL = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1,000,000 (used to make the synthetic outputs harder to read)."""
    if n < 20:
        return _SMALL[n]
    if n < 100:
        tens, rest = divmod(n, 10)
        return _TENS[tens - 2] + (f"-{_SMALL[rest]}" if rest else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_SMALL[hundreds]} hundred" + (f" {number_to_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{number_to_words(thousands)} thousand" + (f" {number_to_words(rest)}" if rest else "")


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


class SyntheticModel:
    """One synthetic respondent; `respond(messages)` returns the reply text."""

    def __init__(self, settings: dict[str, Any] | None = None, dataset_specs: Sequence[DatasetSpec] | None = None):
        self.settings = dict(settings or {})
        self.behaviour = self.settings.get("counterfactual", "exact")
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"synthetic.counterfactual {self.behaviour!r} is not one of {list(BEHAVIOURS)}")
        self.noise = {k: float(v) for k, v in (self.settings.get("noise") or {}).items()}
        self.seed = int(self.settings.get("seed", 0))
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
    def _find_record(self, text: str) -> tuple[_Task, np.ndarray] | None:
        for task, patterns in self.tasks:
            values = []
            for f, pattern in zip(task.spec.features, patterns, strict=True):
                match = pattern.search(text)
                if not match or match.group(1) not in f.labels:
                    break
                values.append(f.levels[f.labels.index(match.group(1))])
            else:
                return task, np.asarray(values, dtype=np.float64)
        return None

    def _roll(self, kind: str, chat: str) -> bool:
        rate = self.noise.get(kind, 0.0)
        if rate <= 0:
            return False
        digest = hashlib.sha256(f"{self.seed}|{kind}|{chat}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < rate

    def respond(self, messages: Sequence[dict[str, str]]) -> str:
        users = [m["content"] for m in messages if m.get("role") == "user"]
        chat = json.dumps(list(messages), sort_keys=True)
        found = self._find_record(users[0]) if users else None
        if found is None:
            return "I can only answer questions about the records I was built for."
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


class SyntheticBackend:
    """Backend adapter: answers requests in order, optionally slowly, and logs every answer it gives."""

    def __init__(self, settings: dict[str, Any] | None = None, call_log: str | Path | None = None) -> None:
        self.settings = dict(settings or {})
        self.model = SyntheticModel(self.settings)
        self.latency_s = float(self.settings.get("latency_s", 0.0))
        self.call_log = Path(call_log) if call_log else None

    def preflight(self) -> None:
        """Nothing to check: no key, no install, no network."""

    def complete(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        log = self.call_log.open("a", encoding="utf-8") if self.call_log else None
        try:
            for i, request in enumerate(requests):
                start = time.perf_counter()
                if self.latency_s:
                    time.sleep(self.latency_s)
                raw = self.model.respond(request.messages)
                reasoning, text = split_thinking(raw)
                if log:
                    log.write(json.dumps({"key": request.key, "time": time.time()}) + "\n")
                    log.flush()
                prompt_words = sum(len(m["content"].split()) for m in request.messages)
                yield (
                    i,
                    Completion(
                        text=text,
                        reasoning=reasoning,
                        finish_reason="stop",
                        prompt_tokens=prompt_words,
                        completion_tokens=len(raw.split()),
                        latency_s=time.perf_counter() - start,
                        model="synthetic",
                    ),
                )
        finally:
            if log:
                log.close()
