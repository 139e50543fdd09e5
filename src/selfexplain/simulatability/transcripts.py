"""Transcripts of a simulatability run (one reference model and its predictors), one case per pair: the reference's
chats about the centre and the counterfactual, then every predictor chat about the pair, with the scores.

The tables store replies, not prompts; the prompts are rebuilt here with the functions the inference steps use
(`simulatability.prompts.reference_fields` / `predictor_fields` and the same templates), and each rebuilt chat is
checked against the journal key stored with its answer (`prompt_verified`). Egregious pairs come from
`metrics.egregious_pairs` over all predictors. Schema and page: `selfexplain.transcripts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from selfexplain import transcripts as tr
from selfexplain.llm.catalog import ModelEntry

STUDY = "simulatability"
# The flags a simulatability case can carry (invalid is an sce flag: false here), in the page's words.
FLAGS = {
    "failure": "pairs with a failure",
    "egregious": "egregious pairs (every predictor wrong the same way with the explanation)",
}
WITH, WITHOUT = "with_explanation", "without_explanation"


def _system(entry: ModelEntry) -> str | None:
    return "\n\n".join(m["content"] for m in entry.system_messages()) or None


def _same(a: Any, b: Any) -> bool | None:
    """Whether two answers are equal; None when either is unreadable."""
    a, b = tr.text(a), tr.text(b)
    return None if a is None or b is None else a == b


def reference_status(answer_status: Any, parse_status: Any) -> str:
    """One status for a reference reply: ok when its answer and its sections were both read."""
    answer, sections = tr.text(answer_status) or "?", tr.text(parse_status) or "?"
    return "ok" if answer == sections == "ok" else f"answer {answer}, sections {sections}"


def predictor_score(prediction: Any, reference_answer: Any) -> str:
    correct = _same(prediction, reference_answer)
    if correct is None:
        return "not scored: " + ("no readable prediction" if tr.text(prediction) is None else "reference unreadable")
    verdict = "correct" if correct else "WRONG"
    return f"{verdict}: predicted {prediction}, the reference answered {reference_answer}"


def run_turns(
    reference_entry: ModelEntry,
    predictor_entries: Mapping[str, ModelEntry],
    eval_set: pd.DataFrame,
    reference: pd.DataFrame,
    predictions: Sequence[pd.DataFrame],
    observations: pd.DataFrame,
    prompt_dir: str | Path,
    only: set[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(turns, cases) of one reference model: one case per pair of the eval set, with its flags (`FLAGS`); turns
    are built (prompts rendered) only for the pairs in `only` when it is given, as rendering every pair of a large
    run is the slow part."""
    from selfexplain.prompts import load_template
    from selfexplain.simulatability.metrics import egregious_pairs
    from selfexplain.simulatability.prompts import (
        PREDICTOR_TEMPLATES,
        REFERENCE_TEMPLATES,
        predictor_fields,
        reference_fields,
    )

    templates: dict[tuple[Any, str], Any] = {}

    def template(name: str, dataset: str) -> Any:
        if (name, dataset) not in templates:
            templates[(name, dataset)] = load_template(prompt_dir, name, dataset)
        return templates[(name, dataset)]

    answers = {(r["dataset"], int(r["row"]), bool(r["answer_first"])): r for r in reference.to_dict("records")}
    preds = pd.concat(list(predictions), ignore_index=True) if predictions else pd.DataFrame()
    by_pair = {pid: g for pid, g in preds.groupby("pair_id", sort=False)} if len(preds) else {}
    egregious = set()
    if len(observations):
        per_pair = egregious_pairs(observations)
        egregious = set(per_pair.loc[per_pair["egregious"], "pair_id"].astype(str))
    name = reference_entry.name
    ref_system = _system(reference_entry)

    def reference_turn(label: str, dataset: str, row: int, answer_first: bool) -> dict[str, Any]:
        ref = answers[(dataset, row, answer_first)]
        prompt = template(REFERENCE_TEMPLATES[answer_first], dataset).render(reference_fields(dataset, ref["question"]))
        messages = [*reference_entry.system_messages(), {"role": "user", "content": prompt}]
        confidence = tr.text(ref.get("confidence"))
        return {
            "chat": label,
            "turn": 1,
            "stage": "reference",
            "model": name,
            "dataset": dataset,
            "system": ref_system,
            "prompt": prompt,
            "prompt_verified": reference_entry.request(messages).key == ref.get("request_key"),
            "thinking": ref.get("reasoning"),
            "answer": ref.get("response"),
            "parsed": ref.get("answer"),
            "parse_status": reference_status(ref.get("answer_status"), ref.get("parse_status")),
            "finish_reason": ref.get("finish_reason"),
            "error": ref.get("error"),
            "score": f"confidence {confidence}" if confidence else None,
            "request_key": ref.get("request_key"),
        }

    turns: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    status_ok = {k: reference_status(r.get("answer_status"), r.get("parse_status")) == "ok" for k, r in answers.items()}
    preds_ok = (preds["prediction_status"] == "ok").groupby(preds["pair_id"]).all().to_dict() if len(preds) else {}
    for pair in eval_set.to_dict("records"):
        case, dataset, first = str(pair["pair_id"]), pair["dataset"], bool(pair["answer_first"])
        centre_row, cf_row = int(pair["centre_row"]), int(pair["counterfactual_row"])
        failure = not (
            status_ok[(dataset, centre_row, first)] and status_ok[(dataset, cf_row, first)] and preds_ok.get(case, True)
        )
        flags = {"failure": failure, "egregious": case in egregious}
        cases.append({"case": case, **flags})
        if only is not None and case not in only:
            continue
        rows = [
            reference_turn(f"01 reference on the centre (row {centre_row})", dataset, centre_row, first),
            reference_turn(f"02 reference on the counterfactual (row {cf_row})", dataset, cf_row, first),
        ]
        centre = answers[(dataset, centre_row, first)]
        cf_answer = answers[(dataset, cf_row, first)].get("answer")
        switched = _same(centre.get("answer"), cf_answer)
        if switched is not None:
            rows[1]["score"] = "; ".join(
                filter(None, [rows[1]["score"], "same answer as on the centre" if switched else "answer CHANGED"])
            )
        group = by_pair.get(case)
        if group is not None:
            group = group.sort_values(["predictor", "condition", "repeat"], kind="stable")
            by_obs = {
                (p, int(r), c): _same(v, cf_answer)
                for p, r, c, v in zip(
                    group["predictor"], group["repeat"], group["condition"], group["prediction"], strict=True
                )
            }
            for k, pred in enumerate(group.to_dict("records"), start=3):
                entry = predictor_entries[pred["predictor"]]
                condition, repeat = pred["condition"], int(pred["repeat"])
                fields = predictor_fields(
                    dataset,
                    pair["centre_text"],
                    centre["answer"],
                    pair["counterfactual_text"],
                    explanation=tr.text(centre.get("explanation")),
                    factors=list(centre["factors"]) if centre.get("factors") is not None else [],
                    thinking=tr.text(centre.get("reasoning")),
                )
                prompt = template(PREDICTOR_TEMPLATES[condition], dataset).render(fields)
                messages = [*entry.system_messages(), {"role": "user", "content": prompt}]
                key = (pred["predictor"], repeat)
                rows.append(
                    {
                        "chat": f"{k:02d} {pred['predictor']} · {condition} · repeat {repeat}",
                        "turn": 1,
                        "stage": "predictor",
                        "model": pred["predictor"],
                        "dataset": dataset,
                        "condition": condition,
                        "system": _system(entry),
                        "prompt": prompt,
                        "prompt_verified": entry.request(messages, repeat).key == pred.get("request_key"),
                        "thinking": pred.get("reasoning"),
                        "answer": pred.get("response"),
                        "parsed": pred.get("prediction"),
                        "parse_status": pred.get("prediction_status"),
                        "finish_reason": pred.get("finish_reason"),
                        "error": pred.get("error"),
                        "score": predictor_score(pred.get("prediction"), cf_answer),
                        "correct": _same(pred.get("prediction"), cf_answer),
                        "correct_with_explanation": by_obs.get((*key, WITH)),
                        "correct_without_explanation": by_obs.get((*key, WITHOUT)),
                        "request_key": pred.get("request_key"),
                    }
                )
        turns.extend({"study": STUDY, "run": name, "case": case, **flags, "invalid": False, **r} for r in rows)
    return tr.frame_of(turns), pd.DataFrame(cases, columns=["case", *FLAGS])


def build(
    reference: str,
    reference_entry_json: str,
    predictor_entries_json: Mapping[str, str],
    eval_set_path: str | Path,
    reference_path: str | Path,
    predictions_paths: Sequence[str | Path],
    observations_path: str | Path,
    prompt_dir: str | Path,
    table_out: str | Path,
    page_out: str | Path,
    sampling: tr.Sampling,
) -> pd.DataFrame:
    """File-level step of the `sim_transcripts` rule: the reference model's sampled transcripts table and page."""
    from selfexplain.io import provenance, read_table
    from selfexplain.llm.catalog import entry_from_json

    entry = entry_from_json(reference, reference_entry_json)
    predictors = {p: entry_from_json(p, j) for p, j in predictor_entries_json.items()}
    inputs = (
        entry,
        predictors,
        read_table(eval_set_path),
        read_table(reference_path),
        [read_table(p) for p in predictions_paths],
        read_table(observations_path),
        prompt_dir,
    )
    _, cases = run_turns(*inputs, only=set())
    chosen = set(tr.choose_cases(cases, sampling.sample, sampling.max_flagged, sampling.seed, list(FLAGS)).index)
    turns, _ = run_turns(*inputs, only=chosen)
    prov = provenance(
        stage="sim_transcripts",
        reference=reference,
        predictors=list(predictors),
        inputs=[str(reference_path), *map(str, predictions_paths), str(observations_path)],
    )
    title = f"Transcripts: {reference}"
    header = f"simulatability · reference {reference} · predictors {', '.join(predictors) or '(none)'}."
    return tr.write_sample(turns, cases, FLAGS, title, header, prov, table_out, page_out, sampling)
