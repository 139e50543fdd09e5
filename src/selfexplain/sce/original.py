"""Reading per-row results files written by the original study's code (`main.py` output, before scoring).

The conversion keeps the original's own reading of each field, so that scoring the imported table reproduces the
original scorer's aggregates: the first answer counts only when it is exactly an option string, counterfactual
fields are the values it stored under `<COLUMN>_CF`, read as numbers the way its post-processing did (first run of
digits for income, `float()` otherwise; codes for categorical fields).

`read_original` gives the columns as numpy arrays without importing pandas, so `selfexplain sce score` can read and
score such a file in one short process; `import_original` wraps them in a DataFrame for the Parquet table.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selfexplain.errors import InputError
from selfexplain.sce import tables as T
from selfexplain.tabular.features import DatasetSpec

if TYPE_CHECKING:
    import pandas as pd

_DIGITS = re.compile(r"\d+")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InputError(f"results file not found: {path}")
    try:
        raw = path.read_bytes()
        data = json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
    except (OSError, EOFError, ValueError) as exc:  # bad gzip, torn file, bad JSON or encoding
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


def is_results_file(path: str | Path) -> bool:
    """True for a name the original's results files have (.json, .json.gz), rather than one of our tables."""
    name = Path(path).name.lower()
    return name.endswith(".json") or name.endswith(".json.gz")


def read_original(path: str | Path, spec: DatasetSpec) -> dict[str, np.ndarray]:
    """Columns of the counterfactuals table (see `selfexplain.sce.tables`) read from an original results file.

    One array per column, rows in grid order; text columns are object arrays with None where missing.
    """
    path = Path(path)
    data = _read_json(path)
    mode = spec.original.get("cf_numbers", "float")
    text_columns = (T.ANSWER, T.ANSWER_STATUS, T.TARGET, T.TARGET_SOURCE, "first_response", "followup_response")
    texts: dict[str, list[Any]] = {c: [] for c in text_columns}
    row_ids: list[int] = []
    statuses: list[str] = []
    cf_values: list[list[float]] = []
    number_modes = ["float" if f.has_text_labels else mode for f in spec.features]
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
        row_ids.append(int(row["dataset_id"]))
        texts[T.ANSWER].append(answer)
        texts[T.ANSWER_STATUS].append(answer_status)
        texts[T.TARGET].append(row["selected_complement"])
        texts[T.TARGET_SOURCE].append("complement" if answer is not None else "random")
        texts["first_response"].append(row.get("original_full_response"))
        texts["followup_response"].append(row.get("followup_full_response"))
        raws = [row.get(f"{feature.column}_CF") for feature in spec.features]
        values = [_number(raw, m) for raw, m in zip(raws, number_modes, strict=True)]
        present = sum(raw is not None for raw in raws)
        if present == 0:
            status = "no_json"
        elif present < len(spec.features):
            status = "missing_feature"
        elif any(math.isnan(v) for v in values):
            status = "bad_value"
        else:
            status = "ok"
        statuses.append(status)
        cf_values.append(values)
    ids = np.asarray(row_ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if len(ids) > 1 and (ids[1:] == ids[:-1]).any():
        raise InputError(f"{path}: field 'dataset_id' repeats; one row per grid point is expected")
    if len(ids) != spec.n_rows:
        raise InputError(
            f"{path}: {len(ids)} rows, but the {spec.name} grid has {spec.n_rows}; validity needs the full grid"
        )
    cf = np.asarray(cf_values, dtype=np.float64).reshape(len(order), len(spec.features))[order]

    def _text(column: str) -> np.ndarray:
        out = np.empty(len(order), dtype=object)
        out[:] = texts[column]
        return out[order]

    columns: dict[str, np.ndarray] = {T.ROW_ID: ids}
    for column in text_columns:
        columns[column] = _text(column)
    for j, feature in enumerate(spec.features):
        columns[T.CF_PREFIX + feature.column] = cf[:, j].copy()
    status_array = np.empty(len(order), dtype=object)
    status_array[:] = statuses
    columns[T.CF_STATUS] = status_array[order]
    columns[T.CF_EXTRA_KEYS] = np.full(len(order), "", dtype=object)
    return columns


def import_original(path: str | Path, spec: DatasetSpec) -> pd.DataFrame:
    """Convert an original per-row results file into a counterfactuals table (see `selfexplain.sce.tables`)."""
    import pandas as pd

    return pd.DataFrame(read_original(path, spec))
