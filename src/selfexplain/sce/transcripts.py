"""Transcripts of an sce run: each grid point's chat (first pass, then the counterfactual follow-up) with its score.

The tables store replies, not prompts; the prompts are rebuilt here with the functions the inference steps use
(`sce.elicit.first_pass_messages`, `sce.prompts.followup_fields`), and each rebuilt chat is checked against the
journal key stored with its answer (`prompt_verified`). Schema and page: `selfexplain.transcripts`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from selfexplain import transcripts as tr
from selfexplain.llm.catalog import ModelEntry
from selfexplain.prompts import Template
from selfexplain.tabular.features import DatasetSpec

STUDY = "sce"
# The flags an sce case can carry (egregious is a simulatability flag: false here), in the page's words.
FLAGS = {"failure": "failures", "invalid": "invalid counterfactuals"}


def run_name(model: str, grid: str, prompt: str) -> str:
    return f"{model}__{grid}__{prompt}"


def _number(value: Any) -> Any:
    return int(value) if float(value).is_integer() else float(value)


def _system(entry: ModelEntry) -> str | None:
    return "\n\n".join(m["content"] for m in entry.system_messages()) or None


def followup_score(row: dict[str, Any]) -> str:
    """The follow-up's score in words: validity against the model's own answer, and minimality."""
    failure = tr.text(row.get("failure"))
    if failure:
        return f"not scored: {failure.replace('_', ' ')}"
    valid = row.get("valid")
    if valid is None or (isinstance(valid, float) and math.isnan(valid)):
        return "not scored"
    verdict = "valid" if valid == 1 else "INVALID"
    words = f"{verdict}: asked for {row['target']}, its own first-pass answer there is {row['verification']}"
    numbers = [(k, row.get(k)) for k in ("distance", "distance_to_min", "RCF_A")]
    shown = ", ".join(f"{k} {v:.3g}" for k, v in numbers if v is not None and not math.isnan(float(v)))
    return f"{words}; {shown}" if shown else words


def _counterfactual_text(spec: DatasetSpec, row: dict[str, Any]) -> str | None:
    values = {f.column: _number(row[f"cf_{f.column}"]) for f in spec.features if not pd.isna(row.get(f"cf_{f.column}"))}
    parts = [json.dumps(values)] if values else []
    for key, label in (("cf_extra_keys", "extra keys"), ("cf_problems", "problems")):
        if tr.text(row.get(key)):
            parts.append(f"{label}: {row[key]}")
    return "; ".join(parts) or None


def run_turns(
    entry: ModelEntry,
    spec: DatasetSpec,
    prompt: str,
    predictions: pd.DataFrame,
    counterfactuals: pd.DataFrame,
    scores: pd.DataFrame,
    first_template: Template,
    followup_template: Template,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(turns, cases) of one run: two turns per grid point, and one row per grid point with its flags (`FLAGS`)."""
    from selfexplain.sce.elicit import first_pass_messages
    from selfexplain.sce.prompts import followup_fields

    first = predictions.drop(columns=["answer", "answer_status"], errors="ignore")
    score_cols = ["row_id", "verification", "kept", "valid", "strict_valid", "failure", "distance"]
    score_cols += ["distance_to_min", "RCF_A"]
    merged = counterfactuals.merge(first, on="row_id", how="left", validate="one_to_one")
    merged = merged.merge(scores[score_cols], on="row_id", how="left", validate="one_to_one")
    followups = {option: followup_template.render(followup_fields(spec, option)) for option in spec.options}
    system = _system(entry)
    run = run_name(entry.name, spec.name, prompt)
    width = len(str(int(merged["row_id"].max()))) if len(merged) else 1
    turns: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    for row in merged.to_dict("records"):
        case = f"{spec.name} row {int(row['row_id']):0{width}d}"
        failure = bool(tr.text(row.get("failure"))) or row["answer_status"] != "ok" or row["cf_status"] != "ok"
        invalid = row.get("valid") == 0
        cases.append({"case": case, "failure": failure, "invalid": invalid})
        messages = first_pass_messages(entry, spec, first_template, row["description"])
        reply = row.get("first_response")
        followup = [
            *messages,
            {"role": "assistant", "content": tr.text(reply) or ""},
            {"role": "user", "content": followups[row["target"]]},
        ]
        common = {
            "study": STUDY,
            "run": run,
            "case": case,
            "failure": failure,
            "egregious": False,
            "invalid": invalid,
            "chat": case,
            "model": entry.name,
            "dataset": spec.name,
            "system": system,
        }
        turns.append(
            {
                **common,
                "turn": 1,
                "stage": "first_pass",
                "prompt": messages[-1]["content"],
                "prompt_verified": entry.request(messages).key == row.get("first_request_key"),
                "thinking": row.get("first_reasoning"),
                "answer": reply,
                "parsed": row.get("answer"),
                "parse_status": row["answer_status"],
                "finish_reason": row.get("first_finish_reason"),
                "error": row.get("first_error"),
                "score": f"target of the follow-up: {row['target']} ({row['target_source']})",
                "request_key": row.get("first_request_key"),
            }
        )
        turns.append(
            {
                **common,
                "turn": 2,
                "stage": "followup",
                "prompt": followup[-1]["content"],
                "prompt_verified": entry.request(followup).key == row.get("followup_request_key"),
                "thinking": row.get("followup_reasoning"),
                "answer": row.get("followup_response"),
                "parsed": _counterfactual_text(spec, row),
                "parse_status": row["cf_status"],
                "finish_reason": row.get("followup_finish_reason"),
                "error": row.get("followup_error"),
                "score": followup_score(row),
                "valid": row.get("valid"),
                "strict_valid": row.get("strict_valid"),
                "distance": row.get("distance"),
                "rcf_a": row.get("RCF_A"),
                "request_key": row.get("followup_request_key"),
            }
        )
    return tr.frame_of(turns), pd.DataFrame(cases, columns=["case", *FLAGS])


def build(
    model: str,
    entry_json: str,
    grid: str,
    prompt: str,
    predictions_path: str | Path,
    counterfactuals_path: str | Path,
    scores_path: str | Path,
    first_template_path: str | Path,
    template_path: str | Path,
    table_out: str | Path,
    page_out: str | Path,
    sampling: tr.Sampling,
) -> pd.DataFrame:
    """File-level step of the `sce_transcripts` rule: the run's sampled transcripts table and page."""
    from selfexplain.io import provenance, read_table
    from selfexplain.llm.catalog import entry_from_json
    from selfexplain.prompts import template_from_path
    from selfexplain.tabular.features import load_dataset_spec

    entry = entry_from_json(model, entry_json)
    spec = load_dataset_spec(grid)
    turns, cases = run_turns(
        entry,
        spec,
        prompt,
        read_table(predictions_path),
        read_table(counterfactuals_path),
        read_table(scores_path),
        template_from_path(first_template_path),
        template_from_path(template_path),
    )
    prov = provenance(
        stage="sce_transcripts",
        model=model,
        dataset=grid,
        prompt=prompt,
        inputs=[str(predictions_path), str(counterfactuals_path), str(scores_path)],
    )
    title = f"Transcripts: {run_name(model, grid, prompt)}"
    header = f"sce · model {model} · grid {grid} · follow-up prompt {prompt}."
    return tr.write_sample(turns, cases, FLAGS, title, header, prov, table_out, page_out, sampling)
