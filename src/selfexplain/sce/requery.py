"""Validity by re-query (`verify: requery`): each counterfactual asked again as a first-pass question, in a fresh chat.

The paper looks validity up in the first pass (`selfexplain.sce.scoring`), which needs the counterfactual to be a
grid point and assumes one answer per point (temperature 0). Re-querying works for any counterfactual whose values
were read, on the grid or off it: the first-pass template is filled with the counterfactual's record and the model
answers it in a chat of its own. The request is repeat 1 of that chat (`ModelEntry.request`: its own journal key,
sampling seed + 1), so at temperature > 0 it is a new sample, not the first pass replayed.

requery table, one row per request (counterfactuals whose values could not all be read are not asked):
  row_id              grid id of the original point x
  requery_on_grid     the counterfactual is a grid point
  requery_description the record shown to the model
  requery_answer      the answer normalised to an option label, null when unreadable
  requery_status      parse status of the answer ("ok", "no_json", ..., "request_failed")
  requery_*           reply text, thinking, usage, errors and journal key (`llm.runner.completion_columns`)
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from selfexplain.llm.backends import Backend
from selfexplain.llm.catalog import ModelEntry
from selfexplain.llm.runner import completion_columns, run_requests, usage_totals
from selfexplain.prompts import Template
from selfexplain.sce import tables as T
from selfexplain.sce.elicit import first_pass_messages
from selfexplain.sce.parsing import parse_answer
from selfexplain.tabular.features import DatasetSpec, Feature
from selfexplain.tabular.grids import lookup_rows

log = logging.getLogger(__name__)

PREFIX = "requery_"
ANSWER = PREFIX + "answer"
STATUS = PREFIX + "status"
ON_GRID = PREFIX + "on_grid"
DESCRIPTION = PREFIX + "description"
# A request repeat distinct from the first pass (repeat 0), so the answer is sampled afresh.
REPEAT = 1


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def render_value(feature: Feature, value: float) -> str | None:
    """A feature's line for any value: its label on a level; the number itself off the levels when the labels are
    numbers; None when the value cannot be shown (not finite, or between the levels of a worded feature)."""
    if value is None or not math.isfinite(value):
        return None
    if value in feature.levels:
        return feature.render(value)
    if feature.has_text_labels:
        return None
    return feature.description.format(label=_number(value))


def describe_counterfactual(spec: DatasetSpec, values: dict[str, float]) -> str | None:
    """The record of a counterfactual as the first pass shows a grid point, or None when a value cannot be shown."""
    lines = [render_value(f, values.get(f.column, math.nan)) for f in spec.features]
    return None if any(line is None for line in lines) else "\n".join(lines)


def requery(
    entry: ModelEntry,
    backend: Backend,
    spec: DatasetSpec,
    counterfactuals: pd.DataFrame,
    first_template: Template,
    journal_path: str | Path,
    progress: bool = True,
) -> pd.DataFrame:
    """Ask the first-pass question on every readable counterfactual (see the module docstring for the table)."""
    cf = counterfactuals[T.cf_columns(spec)].to_numpy(dtype=np.float64, na_value=np.nan)
    row_ids, descriptions, points = [], [], []
    for row_id, values in zip(counterfactuals[T.ROW_ID], cf, strict=True):
        text = describe_counterfactual(spec, dict(zip(spec.columns, values, strict=True)))
        if text is not None:
            row_ids.append(int(row_id))
            descriptions.append(text)
            points.append(values)
    requests = [entry.request(first_pass_messages(entry, spec, first_template, d), repeat=REPEAT) for d in descriptions]
    label = f"{entry.name}/{spec.name} requery"
    completions = run_requests(backend, requests, journal_path, label, progress)
    parsed = [parse_answer(c.text, spec.options) for c in completions]
    grid_ids = lookup_rows(spec, None, np.asarray(points).reshape(len(points), len(spec.columns)))
    frame = pd.DataFrame(
        {
            T.ROW_ID: np.asarray(row_ids, dtype=np.int64),
            ON_GRID: grid_ids >= 0,
            DESCRIPTION: descriptions,
            ANSWER: pd.Series([p.answer for p in parsed], dtype=object),
            STATUS: [p.status if c.ok else "request_failed" for p, c in zip(parsed, completions, strict=True)],
        }
    )
    for column, values in completion_columns(completions, requests, PREFIX).items():
        frame[column] = values
    log.info(
        "%s: %d of %d counterfactuals asked; usage %s; statuses %s",
        label,
        len(frame),
        len(counterfactuals),
        usage_totals(completions),
        frame[STATUS].value_counts().to_dict(),
    )
    return frame
