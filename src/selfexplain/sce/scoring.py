"""Validity and minimality of self-generated counterfactuals, scored against the model's own grid answers.

Validity is looked up, as in the paper: a counterfactual is valid when the model's first-pass answer at the grid
point it names is the target label. With `verify: requery` it is also judged from the model's answer when asked
about the counterfactual in a fresh chat (`selfexplain.sce.requery`), and the two are compared row by row.
Minimality compares the counterfactual's distance with that of the nearest grid point the model labels
differently (x_min).

Two views are reported side by side:
* the 13 aggregates of the original study, with its definitions, over the rows it keeps (readable first answer,
  and a counterfactual on the grid whose own answer is readable);
* what those aggregates hide: strict validity (unreadable and off-grid counterfactuals count as invalid), a count
  for every failure kind, and seeded bootstrap 95 % CIs.

Distances follow `selfexplain.tabular.distances` under either convention (`ours`, or `original` to reproduce the
original's L1/L2 matrices). A table is a DataFrame or a mapping of named arrays: nothing here imports pandas, so a
results file of the original can be read and scored in one short process (`score_columns_summary`).

scores table (one row per counterfactuals row), in addition to row_id/answer/target:
  cf_row_id       grid id the counterfactual names, -1 when off the grid or unreadable
  verification    model's first-pass answer at cf_row_id (null when unknown)
  kept            row counted in the original aggregates
  valid           1/0 when kept, null otherwise;  strict_valid  1/0 for every row with a readable first answer
  failure         "" or the first failure kind (see FAILURE_KINDS)
  distance        d(x, counterfactual) (computed for off-grid points too when all features were read)
  min_row_id, distance_to_min      x_min and d(x, x_min)
  RCF, RCF_A      d/d_min - 1 and d - d_min (0 when within the tie tolerance)
  cf_to_boundary  distance from the counterfactual to the nearest point labelled opposite to it
  ICF, ICF_A      cf_to_boundary / d_min and cf_to_boundary
  requery_*       with a re-query: its answer, status, whether the point is on the grid, requery_valid (1/0/null)
                  and requery_strict_valid (see `requery_columns`)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from selfexplain.errors import InputError
from selfexplain.sce import tables as T
from selfexplain.tabular.distances import grid_index, grid_points, make_metric, nearest_by_class
from selfexplain.tabular.features import DatasetSpec

if TYPE_CHECKING:
    import pandas as pd

ORIGINAL_METRICS = (
    "validity_percent",
    "mean_distance",
    "mean_RCF",
    "median_RCF",
    "mean_RCF_A",
    "median_RCF_A",
    "mean_ICF",
    "median_ICF",
    "mean_ICF_A",
    "median_ICF_A",
    "total_minimality",
    "total_minimality_A",
    "exact_match",
)

FAILURE_KINDS = (
    "first_answer_unreadable",
    "counterfactual_unreadable",
    "counterfactual_off_grid",
    "verification_unreadable",
)

# A table is a pandas DataFrame or any mapping of column name -> 1-D array (what `sce.original.read_original`
# returns); nothing in this module needs pandas, so a results file of the original can be scored without it.
Columns = Mapping[str, Any]


def _objects(column: Any) -> np.ndarray:
    """A column as an object array with None for missing values (pandas NA/NaN included)."""
    if hasattr(column, "to_numpy"):
        return column.to_numpy(dtype=object, na_value=None)
    return np.asarray(column, dtype=object)


def _floats(column: Any) -> np.ndarray:
    return np.asarray(column, dtype=np.float64)


def check_columns(table: Columns, spec: DatasetSpec, source: str) -> None:
    missing = [c for c in (*T.REQUIRED, *T.cf_columns(spec)) if c not in table]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing} needed to score dataset {spec.name!r}")


def class_of(labels: Any, spec: DatasetSpec) -> np.ndarray:
    """0/1 for the two options, -1 for anything else (null, unreadable)."""
    mapping = {spec.options[0]: 0, spec.options[1]: 1}
    values = _objects(labels)
    return np.fromiter(
        (mapping.get(x, -1) if isinstance(x, str) else -1 for x in values), dtype=np.int64, count=len(values)
    )


def score_columns(
    spec: DatasetSpec,
    table: Columns,
    metric_name: str = "gower",
    source: str = "table",
    grid: Columns | None = None,
    convention: str = "ours",
) -> dict[str, np.ndarray]:
    """Per-row validity and distances as named arrays (the columns of the scores table, in order).

    The grid's answers are the table's own first-pass answers. `grid` (columns of the full grid) is built from the
    spec when not given.
    """
    check_columns(table, spec, source)
    if grid is None:
        points = grid_points(spec)
        grid = {c: points[:, j] for j, c in enumerate(spec.columns)}
    else:
        points = np.column_stack([_floats(grid[c]) for c in spec.columns])
    metric = make_metric(spec, grid, metric_name, convention)
    n_grid = len(points)

    row_id = np.asarray(table[T.ROW_ID], dtype=np.int64)
    if (row_id < 0).any() or (row_id >= n_grid).any():
        raise InputError(f"{source}: column {T.ROW_ID!r} has ids outside the {spec.name} grid (0..{n_grid - 1})")
    if len(np.unique(row_id)) != len(row_id):
        raise InputError(f"{source}: column {T.ROW_ID!r} repeats grid ids; one row per grid point is expected")
    answer_class = class_of(table[T.ANSWER], spec)
    grid_class = np.full(n_grid, -1, dtype=np.int64)
    grid_class[row_id] = answer_class

    x = points[row_id]
    cf = np.column_stack([_floats(table[c]) for c in T.cf_columns(spec)])
    cf_row = grid_index(metric.levels, cf)
    on_grid = cf_row >= 0
    verification_class = np.where(on_grid, grid_class[np.clip(cf_row, 0, None)], -1)
    target_class = class_of(table[T.TARGET], spec)

    readable_answer = answer_class >= 0
    cf_read = ~np.isnan(cf).any(axis=1)
    kept = readable_answer & (verification_class >= 0)
    valid = np.where(kept, (verification_class == target_class).astype(float), np.nan)
    strict_valid = np.where(
        readable_answer,
        ((verification_class >= 0) & (verification_class == target_class)).astype(float),
        np.nan,
    )

    failure = np.full(len(row_id), "", dtype=object)
    failure[~readable_answer] = "first_answer_unreadable"
    failure[readable_answer & ~cf_read] = "counterfactual_unreadable"
    failure[readable_answer & cf_read & ~on_grid] = "counterfactual_off_grid"
    failure[readable_answer & on_grid & (verification_class < 0)] = "verification_unreadable"

    distance = metric.rowwise(x, cf)
    transforms: dict[int, np.ndarray] = {}  # one distance transform per label, shared by both searches
    min_idx, d_min = nearest_by_class(
        metric, points, grid_class, row_id, np.where(kept, 1 - answer_class, -1), transforms
    )
    _, c2db = nearest_by_class(
        metric, points, grid_class, cf_row, np.where(kept, 1 - verification_class, -1), transforms
    )
    excess = distance - d_min
    excess = np.where(np.abs(excess) <= metric.tolerance, 0.0, excess)
    usable = kept & ~np.isnan(d_min)
    with np.errstate(divide="ignore", invalid="ignore"):
        # the original's L1/L2 come with its arithmetic too: RCF = d / d_min - 1, no tie tolerance
        ratio = distance / d_min - 1 if metric.original_arithmetic else excess / d_min
        rcf = np.where(usable, ratio, np.nan)
        icf = np.where(usable & ~np.isnan(c2db), c2db / d_min, np.nan)
    rcf_a = np.where(usable, excess, np.nan)
    icf_a = np.where(usable, c2db, np.nan)

    out: dict[str, np.ndarray] = {
        T.ROW_ID: row_id,
        T.ANSWER: _objects(table[T.ANSWER]),
        T.TARGET: _objects(table[T.TARGET]),
        "cf_row_id": cf_row,
        "verification": np.where(
            verification_class >= 0,
            np.asarray(spec.options, dtype=object)[np.clip(verification_class, 0, 1)],
            None,
        ),
        "kept": kept,
        "valid": valid,
        "strict_valid": strict_valid,
        "failure": failure,
        "distance": np.where(cf_read, distance, np.nan),
        "min_row_id": min_idx,
        "distance_to_min": d_min,
        "RCF": rcf,
        "RCF_A": rcf_a,
        "cf_to_boundary": np.where(kept, c2db, np.nan),
        "ICF": icf,
        "ICF_A": icf_a,
    }
    for j, col in enumerate(T.cf_columns(spec)):
        out[col] = cf[:, j].copy()
    if T.CF_STATUS in table:
        out[T.CF_STATUS] = _objects(table[T.CF_STATUS])
    return out


def score_rows(
    spec: DatasetSpec,
    grid: pd.DataFrame,
    table: pd.DataFrame,
    metric_name: str = "gower",
    source: str = "table",
    convention: str = "ours",
) -> pd.DataFrame:
    """Per-row validity and distances (the scores table); the grid's answers are the table's own first answers."""
    import pandas as pd

    return pd.DataFrame(score_columns(spec, table, metric_name, source, grid, convention))


def _nan_stat(fn: Any, values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan
    return float(fn(values))


def _kept(rows: Columns) -> np.ndarray:
    return np.asarray(rows["kept"], dtype=bool)


def original_aggregates(rows: Columns) -> dict[str, float]:
    """The original scorer's 13 aggregates, with its definitions, over the kept rows."""
    kept = _kept(rows)
    n = int(kept.sum())
    v = _floats(rows["valid"])[kept]
    is_valid = v == 1
    rcf, rcf_a = _floats(rows["RCF"])[kept], _floats(rows["RCF_A"])[kept]
    icf, icf_a = _floats(rows["ICF"])[kept], _floats(rows["ICF_A"])[kept]
    validity = float(np.mean(v)) if n else math.nan
    out = {
        "validity_percent": 100 * validity,
        "mean_distance": _nan_stat(np.mean, _floats(rows["distance"])[kept]),
        "mean_RCF": _nan_stat(np.mean, rcf[is_valid]),
        "median_RCF": _nan_stat(np.median, rcf[is_valid]),
        "mean_RCF_A": _nan_stat(np.mean, rcf_a[is_valid]),
        "median_RCF_A": _nan_stat(np.median, rcf_a[is_valid]),
        "mean_ICF": _nan_stat(np.mean, icf[~is_valid]),
        "median_ICF": _nan_stat(np.median, icf[~is_valid]),
        "mean_ICF_A": _nan_stat(np.mean, icf_a[~is_valid]),
        "median_ICF_A": _nan_stat(np.median, icf_a[~is_valid]),
    }
    # As in the original: NaN when no counterfactual is valid (0 * NaN), ICF terms NaN -> 0.
    out["total_minimality"] = validity * out["median_RCF"] + (1 - validity) * _zero_if_nan(out["median_ICF"])
    out["total_minimality_A"] = validity * out["mean_RCF_A"] + (1 - validity) * _zero_if_nan(out["mean_ICF_A"])
    out["exact_match"] = 100 * float(np.sum((rcf == 0) & is_valid)) / n if n else math.nan
    return out


def _zero_if_nan(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def bootstrap_ci(rows: Columns, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, list[float]]:
    """Percentile bootstrap CIs over kept rows for validity % and mean RCF_A (mean over the valid rows drawn)."""
    kept = _kept(rows)
    n = int(kept.sum())
    if n == 0 or resamples <= 0:
        return {"validity_percent": [math.nan, math.nan], "mean_RCF_A": [math.nan, math.nan]}
    v = _floats(rows["valid"])[kept]
    rcf_a = np.where(v == 1, _floats(rows["RCF_A"])[kept], 0.0)
    rng = np.random.default_rng(seed)
    validity = np.empty(resamples)
    mean_rcf_a = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        draw = rng.integers(0, n, size=(stop - start, n))
        n_valid = v[draw].sum(axis=1)
        validity[start:stop] = 100 * n_valid / n
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_rcf_a[start:stop] = rcf_a[draw].sum(axis=1) / n_valid
    alpha = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "validity_percent": [float(x) for x in np.nanquantile(validity, [alpha, 1 - alpha])],
            "mean_RCF_A": [float(x) for x in np.nanquantile(mean_rcf_a, [alpha, 1 - alpha])],
        }


def failure_counts(rows: Columns) -> dict[str, int]:
    """Rows of each failure kind, then of each counterfactual status other than "ok" (most frequent first)."""
    failure = _objects(rows["failure"])
    counts = {kind: int(np.sum(failure == kind)) for kind in FAILURE_KINDS}
    if T.CF_STATUS in rows:
        seen: dict[str, int] = {}
        for status in _objects(rows[T.CF_STATUS]):
            if status is not None and status != "ok":
                seen[status] = seen.get(status, 0) + 1
        for status, count in sorted(seen.items(), key=lambda item: -item[1]):  # stable: ties keep first-seen order
            counts[f"cf_status_{status}"] = count
    return counts


def summarise(
    rows: Columns, resamples: int = 1000, seed: int = 0, metric_name: str = "gower", convention: str = "ours"
) -> dict[str, Any]:
    """metrics.json content: the 13 original keys first, then what the original does not report."""
    metrics: dict[str, Any] = original_aggregates(rows)
    strict = _floats(rows["strict_valid"])
    readable = ~np.isnan(strict)
    metrics.update(
        {
            "distance_metric": metric_name,
            "distance_convention": convention,
            "n_rows": len(strict),
            "n_kept": int(_kept(rows).sum()),
            "n_first_answer_readable": int(readable.sum()),
            "strict_validity_percent": 100 * float(np.mean(strict[readable])) if readable.any() else math.nan,
            "failures": failure_counts(rows),
            "ci95": bootstrap_ci(rows, resamples=resamples, seed=seed),
            "bootstrap": {"resamples": resamples, "seed": seed},
        }
    )
    return metrics


# -- validity by re-query (`verify: requery`, `selfexplain.sce.requery`) ---------------------------------------------
REQUERY_COLUMNS = ("requery_answer", "requery_status", "requery_on_grid", "requery_valid", "requery_strict_valid")


def requery_columns(spec: DatasetSpec, rows: Columns, requery: Columns, source: str = "requery table") -> dict:
    """Per-row columns of the re-query, aligned with the scores `rows` by row id.

    requery_valid is 1 when the re-asked answer differs from the original first answer, 0 when it is the same, null
    when either is unreadable or the counterfactual was not asked; requery_strict_valid counts the last two as
    invalid on every row with a readable first answer (as strict_valid does for lookup).
    """
    missing = [c for c in (T.ROW_ID, "requery_answer", "requery_status", "requery_on_grid") if c not in requery]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing} needed to score a re-query")
    row_id = np.asarray(rows[T.ROW_ID], dtype=np.int64)
    asked_ids = np.asarray(requery[T.ROW_ID], dtype=np.int64)
    if len(np.unique(asked_ids)) != len(asked_ids):
        raise InputError(f"{source}: column {T.ROW_ID!r} repeats grid ids; one re-query per counterfactual expected")
    position = {int(r): i for i, r in enumerate(row_id)}
    unknown = [int(r) for r in asked_ids if int(r) not in position]
    if unknown:
        raise InputError(f"{source}: row ids {unknown[:5]} are not rows of the counterfactuals table")
    at = np.fromiter((position[int(r)] for r in asked_ids), dtype=np.int64, count=len(asked_ids))
    n = len(row_id)
    answer = np.full(n, None, dtype=object)
    status = np.full(n, "not_asked", dtype=object)
    on_grid = np.full(n, None, dtype=object)
    answer[at] = _objects(requery["requery_answer"])
    status[at] = _objects(requery["requery_status"])
    on_grid[at] = _objects(requery["requery_on_grid"])
    first_class = class_of(rows[T.ANSWER], spec)
    again_class = class_of(answer, spec)
    readable = first_class >= 0
    judged = readable & (again_class >= 0)
    return {
        "requery_answer": answer,
        "requery_status": status,
        "requery_on_grid": on_grid,
        "requery_valid": np.where(judged, (again_class != first_class).astype(float), np.nan),
        "requery_strict_valid": np.where(readable, (judged & (again_class != first_class)).astype(float), np.nan),
    }


def mean_ci(values: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile bootstrap CI of 100 x the mean of 0/1 values (NaN ignored); [nan, nan] when none or no resamples."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    n = len(values)
    if n == 0 or resamples <= 0:
        return [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        means[start:stop] = 100 * values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = (1 - level) / 2
    return [float(x) for x in np.quantile(means, [alpha, 1 - alpha])]


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two 0/1 ratings of the same items: (p_o - p_e) / (1 - p_e); NaN when p_e is 1 (both
    constant and equal) or there are no items."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0:
        return math.nan
    p_o = float(np.mean(a == b))
    p_a, p_b = float(np.mean(a)), float(np.mean(b))
    p_e = p_a * p_b + (1 - p_a) * (1 - p_b)
    return math.nan if p_e >= 1 else (p_o - p_e) / (1 - p_e)


def requery_summary(rows: Columns, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """metrics.json keys of the re-query, and its agreement with lookup on the rows both judge."""
    status = _objects(rows["requery_status"])
    asked = status != "not_asked"
    on_grid = np.array([bool(x) for x in _objects(rows["requery_on_grid"])])
    valid = _floats(rows["requery_valid"])
    strict = _floats(rows["requery_strict_valid"])
    judged = ~np.isnan(valid)
    lookup = _floats(rows["valid"])
    both = judged & ~np.isnan(lookup)
    off_judged = judged & asked & ~on_grid

    def percent(values: np.ndarray) -> float:
        return 100 * float(np.mean(values)) if len(values) else math.nan

    return {
        "validity_requery_percent": percent(valid[judged]),
        "strict_validity_requery_percent": percent(strict[~np.isnan(strict)]),
        "validity_requery_off_grid_percent": percent(valid[off_judged]),
        "n_requery": int(asked.sum()),
        "n_requery_judged": int(judged.sum()),
        "n_requery_unreadable": int(np.sum(asked & (status != "ok"))),
        "n_requery_not_asked": int(np.sum(~asked)),
        "n_requery_off_grid": int(np.sum(asked & ~on_grid)),
        "n_verify_both": int(both.sum()),
        "verify_agreement_percent": percent((valid[both] == lookup[both]).astype(float)),
        "verify_kappa": cohen_kappa(valid[both], lookup[both]),
        "ci95_validity_requery_percent": mean_ci(valid, resamples, seed),
    }


def _with_requery(
    spec: DatasetSpec, rows: dict, metrics: dict[str, Any], requery: Columns | None, resamples: int, seed: int
) -> None:
    if requery is None:
        return
    rows.update(requery_columns(spec, rows, requery))
    extra = requery_summary(rows, resamples, seed)
    metrics["ci95"]["validity_requery_percent"] = extra.pop("ci95_validity_requery_percent")
    metrics["verify"] = ["lookup", "requery"]
    metrics.update(extra)


def score_table(
    spec: DatasetSpec,
    grid: pd.DataFrame,
    table: pd.DataFrame,
    metric_name: str = "gower",
    resamples: int = 1000,
    seed: int = 0,
    source: str = "table",
    convention: str = "ours",
    requery: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Scores table and metrics.json content of a counterfactuals table; with a `requery` table (see
    `selfexplain.sce.requery`) its validity and agreement with lookup too."""
    import pandas as pd

    columns = score_columns(spec, table, metric_name, source, grid, convention)
    metrics = summarise(columns, resamples, seed, metric_name, convention)
    _with_requery(spec, columns, metrics, requery, resamples, seed)
    return pd.DataFrame(columns), metrics


def score_columns_summary(
    spec: DatasetSpec,
    table: Columns,
    metric_name: str = "gower",
    resamples: int = 1000,
    seed: int = 0,
    source: str = "table",
    convention: str = "ours",
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """`score_table` without pandas: the scores as named arrays, over the grid built from the spec."""
    rows = score_columns(spec, table, metric_name, source, convention=convention)
    return rows, summarise(rows, resamples, seed, metric_name, convention)
