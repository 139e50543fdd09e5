"""The two inference stages of the simulatability study: reference answers, then predictor answers.

Reference (`reference_answers`): the reference model answers every question of the evaluation set once per answer
order, with a tagged self-explanation. As the original, a question is keyed by (dataset, row, answer_first) in one
namespace shared by centres and counterfactuals, so a row that is both (in the same answer order) is asked once and
both uses share its answer.

Predictor (`predictor_answers`): for every pair whose centre answer is readable, the predictor is asked for the
reference model's counterfactual answer under each condition — with the explanation, without it, with the
reference's thinking (`cot`), or with the counterfactual alone (`no_reference`) — `repeats` times. Every answer is
keyed by (pair_id, condition, repeat); nothing is aligned by list position. Tables: see
`/docs/architecture.md` and the column lists below.

Both, and the testability rubric (`testability.testability_scores`), send their requests and add the reply columns
through `ask`; `steps.run_stage` is the file-level step of all three.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from selfexplain.errors import InputError
from selfexplain.llm.backends import Backend
from selfexplain.llm.catalog import ModelEntry
from selfexplain.llm.runner import completion_columns, run_requests, usage_totals
from selfexplain.llm.types import ChatRequest, Completion
from selfexplain.prompts import Template, load_template
from selfexplain.simulatability.parsing import parse_prediction, parse_reference
from selfexplain.simulatability.prompts import (
    CONDITIONS,
    PREDICTOR_TEMPLATES,
    REFERENCE_TEMPLATES,
    answer_options,
    predictor_fields,
    reference_fields,
)
from selfexplain.simulatability.tables import PREDICTION_COLUMNS, QUESTION_KEY

log = logging.getLogger(__name__)


def questions(eval_set: pd.DataFrame) -> pd.DataFrame:
    """Unique (dataset, row, answer_first) questions of the eval set with their text, centres first, in order."""
    parts = []
    for side in ("centre", "counterfactual"):
        part = eval_set[["dataset", f"{side}_row", "answer_first", f"{side}_text"]]
        parts.append(part.set_axis(["dataset", "row", "answer_first", "question"], axis=1))
    table = pd.concat(parts, ignore_index=True)
    texts = table.groupby(list(QUESTION_KEY), sort=False)["question"].nunique()
    if (texts > 1).any():
        dataset, row, _ = texts[texts > 1].index[0]
        raise InputError(f"eval set: {dataset} row {row} has two different texts; the rows of a dataset must be stable")
    return table.drop_duplicates(list(QUESTION_KEY)).reset_index(drop=True)


def _templates(prompt_dir: str | Path, names: dict[Any, str], datasets: Sequence[str]) -> dict[tuple, Template]:
    return {(key, d): load_template(prompt_dir, name, d) for key, name in names.items() for d in datasets}


def reference_answers(
    entry: ModelEntry,
    backend: Backend,
    eval_set: pd.DataFrame,
    prompt_dir: str | Path,
    journal_path: str | Path,
    progress: bool = True,
) -> pd.DataFrame:
    """The reference table: one row per question (see the module docstring), parsed, with usage columns."""
    table = questions(eval_set)
    templates = _templates(prompt_dir, REFERENCE_TEMPLATES, table["dataset"].unique())
    requests = []
    for dataset, answer_first, question in zip(table["dataset"], table["answer_first"], table["question"], strict=True):
        prompt = templates[(bool(answer_first), dataset)].render(reference_fields(dataset, question))
        requests.append(entry.request([*entry.system_messages(), {"role": "user", "content": prompt}]))
    label = f"{entry.name} reference answers"
    columns = partial(_reference_columns, datasets=list(table["dataset"]))
    return ask(backend, requests, table, columns, "answer_status", journal_path, label, progress)


def _reference_columns(completions: list[Completion], datasets: Sequence[str]) -> dict[str, list[Any]]:
    parsed = [parse_reference(c.text, answer_options(d)) for c, d in zip(completions, datasets, strict=True)]
    return {
        "answer": [p.answer for p in parsed],
        "answer_status": [_status(p.answer_status, c) for p, c in zip(parsed, completions, strict=True)],
        "answer_raw": [p.answer_raw for p in parsed],
        "explanation": [p.explanation for p in parsed],
        "factors": [list(p.factors) for p in parsed],
        "other_info": [list(p.other_info) for p in parsed],
        "confidence": [p.confidence for p in parsed],
        "confidence_raw": [p.confidence_raw for p in parsed],
        "parse_status": [_status(p.parse_status, c) for p, c in zip(parsed, completions, strict=True)],
    }


def reference_lookup(reference: pd.DataFrame, needed: Sequence[str]) -> dict[tuple, dict[str, Any]]:
    """The reference table's rows by question key (dataset, row, answer_first), for the stages made from pairs;
    an InputError names the columns (`needed` besides the key) it lacks."""
    missing = [c for c in (*QUESTION_KEY, *needed) if c not in reference]
    if missing:
        raise InputError(f"reference table: missing column(s) {missing}")
    records = reference.to_dict("records")
    return {(r["dataset"], int(r["row"]), bool(r["answer_first"])): r for r in records}


def pair_answers(answers: Mapping[tuple, dict[str, Any]], pair: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reference's rows for a pair's centre and counterfactual, in the pair's answer order."""
    centre = answers.get((pair.dataset, int(pair.centre_row), bool(pair.answer_first)))
    counterfactual = answers.get((pair.dataset, int(pair.counterfactual_row), bool(pair.answer_first)))
    if centre is None or counterfactual is None:
        raise InputError(f"reference table has no answer for pair {pair.pair_id}: was it made from this eval set?")
    return centre, counterfactual


def pair_columns(pair: Any) -> dict[str, Any]:
    """The columns naming the pair that a row of a table made from pairs (predictions, ratings) starts with."""
    return {
        "pair_id": pair.pair_id,
        "dataset": pair.dataset,
        "centre_row": int(pair.centre_row),
        "counterfactual_row": int(pair.counterfactual_row),
        "answer_first": bool(pair.answer_first),
    }


def predictor_answers(
    entry: ModelEntry,
    backend: Backend,
    reference_name: str,
    eval_set: pd.DataFrame,
    reference: pd.DataFrame,
    prompt_dir: str | Path,
    journal_path: str | Path,
    conditions: Sequence[str] = ("with_explanation", "without_explanation"),
    repeats: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """The predictions table of one (reference, predictor): one row per (pair_id, condition, repeat) of the pairs whose
    centre answer is readable. A pair whose centre has no thinking text gets no `cot` row (nothing to show)."""
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown:
        raise InputError(f"unknown predictor condition(s) {unknown}; known: {list(CONDITIONS)}")
    answers = reference_lookup(reference, ("answer", "explanation", "factors", "reasoning"))
    templates = _templates(prompt_dir, {c: PREDICTOR_TEMPLATES[c] for c in conditions}, eval_set["dataset"].unique())
    rows: list[dict[str, Any]] = []
    requests: list[ChatRequest] = []
    skipped = {"centre_unreadable": 0, "no_thinking": 0}
    for pair in eval_set.itertuples(index=False):
        centre, counterfactual = pair_answers(answers, pair)
        if centre["answer"] is None or pd.isna(centre["answer"]):
            skipped["centre_unreadable"] += 1
            continue
        for condition in conditions:
            if condition == "cot" and not _text(centre["reasoning"]):
                skipped["no_thinking"] += 1
                continue
            fields = predictor_fields(
                pair.dataset,
                pair.centre_text,
                centre["answer"],
                pair.counterfactual_text,
                explanation=_text(centre["explanation"]),
                factors=list(centre["factors"]) if centre["factors"] is not None else [],
                thinking=_text(centre["reasoning"]),
            )
            prompt = templates[(condition, pair.dataset)].render(fields)
            messages = [*entry.system_messages(), {"role": "user", "content": prompt}]
            for repeat in range(repeats):
                requests.append(entry.request(messages, repeat))
                rows.append(
                    {
                        **pair_columns(pair),
                        "condition": condition,
                        "repeat": repeat,
                        "reference": reference_name,
                        "predictor": entry.name,
                        "reference_centre_answer": centre["answer"],
                        "reference_counterfactual_answer": _text(counterfactual["answer"]),
                    }
                )
    table = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    label = f"{entry.name} predicting {reference_name}"
    columns = partial(_prediction_columns, datasets=list(table["dataset"]))
    return ask(backend, requests, table, columns, "prediction_status", journal_path, label, progress, skipped)


def _prediction_columns(completions: list[Completion], datasets: Sequence[str]) -> dict[str, list[Any]]:
    parsed = [parse_prediction(c.text, answer_options(d)) for c, d in zip(completions, datasets, strict=True)]
    return {
        "prediction": [p.answer for p in parsed],
        "prediction_status": [p.status if c.ok else "request_failed" for p, c in zip(parsed, completions, strict=True)],
        "prediction_raw": [p.raw for p in parsed],
        "confidence": [p.confidence for p in parsed],
    }


def ask(
    backend: Backend,
    requests: Sequence[ChatRequest],
    table: pd.DataFrame,
    columns: Callable[[list[Completion]], Mapping[str, Any]],
    status: str,
    journal_path: str | Path,
    label: str,
    progress: bool = True,
    skipped: dict[str, int] | None = None,
) -> pd.DataFrame:
    """What every inference stage does with its requests (one per row of `table`, in order): send them through the
    shared runner (journal, retries, usage), add the parsed columns (`columns` of the completions), then the
    completion columns, and log the `status` column's counts and the usage. `skipped` (what was not asked, and why)
    goes into the log line and `table.attrs`, so the stage's provenance can say it."""
    completions = run_requests(backend, requests, journal_path, label, progress)
    for column, values in columns(completions).items():
        table[column] = values
    for column, values in completion_columns(completions, requests).items():
        table[column] = values
    statuses, usage = table[status].value_counts().to_dict(), usage_totals(completions)
    if skipped is None:
        log.info("%s: %s; usage %s", label, statuses, usage)
        return table
    log.info("%s: %d requests, skipped %s, statuses %s; usage %s", label, len(requests), skipped, statuses, usage)
    table.attrs["skipped"] = skipped
    return table


def _status(status: str, completion: Completion) -> str:
    """The parse status, or what went wrong before parsing: the request failed for good, or the reply has thinking
    but no answer text (it ended inside its thinking, which backends move whole into `reasoning`, or said nothing
    after it)."""
    if not completion.ok:
        return "request_failed"
    if status == "empty" and (completion.reasoning or "").strip():
        return "incomplete_thinking"
    return status


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
