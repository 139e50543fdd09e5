"""The two inference stages of the sce study.

First pass (`predict`): every grid point once, each in its own chat. Follow-up (`elicit`): the same chat continued
with the model's own first reply as the assistant turn and a request for a counterfactual with the other label.
When the first reply has no readable answer the target is drawn with a RNG seeded by (seed, row id), so it does
not depend on order or on other rows, and the draw is recorded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from selfexplain.llm.backends import Backend
from selfexplain.llm.catalog import ModelEntry
from selfexplain.llm.runner import completion_columns, run_requests, usage_totals
from selfexplain.llm.types import Message
from selfexplain.prompts import Template
from selfexplain.sce import tables as T
from selfexplain.sce.parsing import parse_answer, parse_counterfactual
from selfexplain.sce.prompts import first_pass_fields, followup_fields
from selfexplain.tabular.features import DatasetSpec

log = logging.getLogger(__name__)


def first_pass_messages(entry: ModelEntry, spec: DatasetSpec, template: Template, description: str) -> list[Message]:
    return [
        *entry.system_messages(),
        {"role": "user", "content": template.render(first_pass_fields(spec, description))},
    ]


def predict(
    entry: ModelEntry,
    backend: Backend,
    spec: DatasetSpec,
    grid: pd.DataFrame,
    template: Template,
    journal_path: str | Path,
    progress: bool = True,
) -> pd.DataFrame:
    """predictions table: row_id, features, description, answer, answer_status, answer_raw, first_* columns."""
    requests = [entry.request(first_pass_messages(entry, spec, template, d)) for d in grid["description"]]
    completions = run_requests(backend, requests, journal_path, f"{entry.name}/{spec.name} first pass", progress)
    parsed = [parse_answer(c.text, spec.options) for c in completions]
    frame = grid[["id", *spec.columns, "description"]].rename(columns={"id": T.ROW_ID}).copy()
    frame[T.ANSWER] = [p.answer for p in parsed]
    frame[T.ANSWER_STATUS] = [p.status if c.ok else "request_failed" for p, c in zip(parsed, completions, strict=True)]
    frame["answer_raw"] = [p.raw_value for p in parsed]
    for column, values in completion_columns(completions, requests, "first_").items():
        frame[column] = values
    log.info("%s/%s first pass usage: %s", entry.name, spec.name, usage_totals(completions))
    return frame


def choose_targets(spec: DatasetSpec, answers: pd.Series, row_ids: pd.Series, seed: int) -> tuple[list, list]:
    targets, sources = [], []
    for answer, row_id in zip(answers, row_ids, strict=True):
        if answer in spec.options:
            targets.append(spec.options[1 - spec.options.index(answer)])
            sources.append("complement")
        else:
            draw = int(np.random.default_rng([seed, int(row_id)]).integers(2))
            targets.append(spec.options[draw])
            sources.append("random")
    return targets, sources


def elicit(
    entry: ModelEntry,
    backend: Backend,
    spec: DatasetSpec,
    predictions: pd.DataFrame,
    first_template: Template,
    followup_template: Template,
    journal_path: str | Path,
    seed: int = 42,
    progress: bool = True,
) -> pd.DataFrame:
    """counterfactuals table (see `selfexplain.sce.tables`) plus the follow-up's raw reply and usage."""
    targets, sources = choose_targets(spec, predictions[T.ANSWER], predictions[T.ROW_ID], seed)
    followups = {option: followup_template.render(followup_fields(spec, option)) for option in spec.options}
    requests = []
    for description, first_reply, target in zip(
        predictions["description"], predictions["first_response"], targets, strict=True
    ):
        messages = [
            *first_pass_messages(entry, spec, first_template, description),
            {"role": "assistant", "content": first_reply or ""},
            {"role": "user", "content": followups[target]},
        ]
        requests.append(entry.request(messages))
    label = f"{entry.name}/{spec.name}/{followup_template.name} follow-up"
    completions = run_requests(backend, requests, journal_path, label, progress)
    parsed = [parse_counterfactual(c.text, spec) for c in completions]
    frame = pd.DataFrame(
        {
            T.ROW_ID: predictions[T.ROW_ID].to_numpy(),
            T.ANSWER: predictions[T.ANSWER].to_numpy(dtype=object),
            T.ANSWER_STATUS: predictions[T.ANSWER_STATUS].to_numpy(dtype=object),
            T.TARGET: targets,
            T.TARGET_SOURCE: sources,
            T.CF_STATUS: [p.status if c.ok else "request_failed" for p, c in zip(parsed, completions, strict=True)],
        }
    )
    for f in spec.features:
        frame[T.CF_PREFIX + f.column] = [
            np.nan if p.values.get(f.column) is None else float(p.values[f.column]) for p in parsed
        ]
    frame[T.CF_EXTRA_KEYS] = [",".join(p.extra_keys) for p in parsed]
    frame["cf_problems"] = ["; ".join(p.problems) for p in parsed]
    for column, values in completion_columns(completions, requests, "followup_").items():
        frame[column] = values
    log.info("%s usage: %s", label, usage_totals(completions))
    return frame
