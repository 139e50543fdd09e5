"""Reading per-row results files written by the original study's code (`main.py` output, before scoring).

The conversion keeps the original's own reading of each field, so that scoring the imported table reproduces the
original scorer's aggregates: the first answer counts only when it is exactly an option string, counterfactual
fields are the values it stored under `<COLUMN>_CF`, read as numbers the way its post-processing did (first run of
digits for income, `float()` otherwise; codes for categorical fields).
"""

from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from selfexplain.errors import InputError
from selfexplain.sce import tables as T
from selfexplain.tabular.features import DatasetSpec

_DIGITS = re.compile(r"\d+")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InputError(f"results file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable JSON results file ({exc})") from exc
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}: expected a JSON object keyed by row number")
    return data


def _number(raw: Any, mode: str) -> float:
    if raw is None or isinstance(raw, bool):
        return math.nan
    if isinstance(raw, int | float):
        return float(raw)
    text = str(raw)
    if mode == "first_digits":
        match = _DIGITS.search(text)
        return float(match.group()) if match else math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def import_original(path: str | Path, spec: DatasetSpec) -> pd.DataFrame:
    """Convert an original per-row results file into a counterfactuals table (see `selfexplain.sce.tables`)."""
    path = Path(path)
    data = _read_json(path)
    mode = spec.original.get("cf_numbers", "float")
    records = []
    for key, row in data.items():
        if not isinstance(row, dict):
            raise InputError(f"{path}: row {key!r} is not an object")
        for needed in ("dataset_id", "original_answer", "selected_complement"):
            if needed not in row:
                raise InputError(f"{path}: row {key!r} lacks field {needed!r}; is this an original results file?")
        raw_answer = row["original_answer"]
        answer = raw_answer if raw_answer in spec.options else None
        if answer is not None:
            answer_status = "ok"
        elif raw_answer in ("NA", "", None):
            answer_status = "no_json"
        else:
            answer_status = "not_an_option"
        record: dict[str, Any] = {
            T.ROW_ID: int(row["dataset_id"]),
            T.ANSWER: answer,
            T.ANSWER_STATUS: answer_status,
            T.TARGET: row["selected_complement"],
            T.TARGET_SOURCE: "complement" if answer is not None else "random",
            "first_response": row.get("original_full_response"),
            "followup_response": row.get("followup_full_response"),
        }
        present = 0
        for feature in spec.features:
            raw = row.get(f"{feature.column}_CF")
            present += raw is not None
            value = _number(raw, "float" if feature.has_text_labels else mode)
            record[T.CF_PREFIX + feature.column] = value
        values = [record[T.CF_PREFIX + f.column] for f in spec.features]
        if present == 0:
            status = "no_json"
        elif present < len(spec.features):
            status = "missing_feature"
        elif any(math.isnan(v) for v in values):
            status = "bad_value"
        else:
            status = "ok"
        record[T.CF_STATUS] = status
        record[T.CF_EXTRA_KEYS] = ""
        records.append(record)
    table = pd.DataFrame.from_records(records).sort_values(T.ROW_ID, kind="stable").reset_index(drop=True)
    if table[T.ROW_ID].duplicated().any():
        raise InputError(f"{path}: field 'dataset_id' repeats; one row per grid point is expected")
    if len(table) != spec.n_rows:
        raise InputError(
            f"{path}: {len(table)} rows, but the {spec.name} grid has {spec.n_rows}; validity needs the full grid"
        )
    return table
