"""sce figures render from score tables built offline from a threshold rule (no model, no network)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selfexplain.sce import tables as T
from selfexplain.sce.plots import plot_decision_boundary, plot_validity_vs_minimality
from selfexplain.sce.scoring import score_table
from selfexplain.tabular.features import DatasetSpec, load_dataset_spec
from selfexplain.tabular.grids import build_grid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rule_answers(spec: DatasetSpec, grid: pd.DataFrame) -> np.ndarray:
    """The dataset's synthetic rule: weighted features scaled to [0, 1] against a threshold."""
    rule = spec.synthetic_rule
    score = np.zeros(len(grid))
    for f in spec.features:
        weight = rule["weights"][f.column]
        values = grid[f.column].to_numpy()
        if f.is_categorical:
            score += weight * (values == rule["positive_levels"][f.column])
        else:
            score += weight * (values - min(f.levels)) / (max(f.levels) - min(f.levels))
    return np.where(score >= rule["threshold"], spec.options[1], spec.options[0]).astype(object)


def counterfactual_table(spec: DatasetSpec, grid: pd.DataFrame, seed: int = 0, all_null: bool = False) -> pd.DataFrame:
    """One row per grid point: mostly one- or two-feature moves, plus unreadable and off-grid points."""
    rng = np.random.default_rng(seed)
    n = len(grid)
    answers = rule_answers(spec, grid)
    answers[rng.random(n) < 0.03] = None
    if all_null:
        answers[:] = None
    other = {spec.options[0]: spec.options[1], spec.options[1]: spec.options[0]}
    targets = np.array(
        [other[a] if a is not None else spec.options[int(rng.integers(2))] for a in answers], dtype=object
    )
    cf = grid[spec.columns].to_numpy(dtype=np.float64).copy()
    for r in range(n):
        for k in rng.choice(len(spec.features), size=int(rng.integers(1, 3)), replace=False):
            cf[r, k] = rng.choice(spec.features[k].levels)
    status = np.full(n, "ok", dtype=object)
    unreadable = rng.random(n) < 0.04
    cf[unreadable] = np.nan
    status[unreadable] = "no_json"
    off_grid = ~unreadable & (rng.random(n) < 0.04)
    first = spec.features[0]
    cf[off_grid, 0] = max(first.levels) + (max(first.levels) - min(first.levels)) * 0.2
    table = pd.DataFrame(
        {
            T.ROW_ID: grid["id"].to_numpy(),
            T.ANSWER: answers,
            T.ANSWER_STATUS: np.where(pd.isna(answers), "no_json", "ok"),
            T.TARGET: targets,
            T.TARGET_SOURCE: np.where(pd.isna(answers), "random", "complement"),
            T.CF_STATUS: status,
        }
    )
    for k, col in enumerate(T.cf_columns(spec)):
        table[col] = cf[:, k]
    table[T.CF_EXTRA_KEYS] = ""
    return table


def scored(name: str, all_null: bool = False) -> tuple[DatasetSpec, pd.DataFrame, pd.DataFrame]:
    spec = load_dataset_spec(name)
    grid = build_grid(spec)
    rows, _ = score_table(spec, grid, counterfactual_table(spec, grid, all_null=all_null), resamples=50)
    return spec, grid, rows


def assert_png(path: Path, min_bytes: int = 10_000) -> None:
    assert path.exists()
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > min_bytes
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "temp file left behind"


@pytest.mark.parametrize("name", ["income", "heart_disease"])
def test_decision_boundary(tmp_path: Path, name: str) -> None:
    spec, grid, rows = scored(name)
    assert rows["valid"].notna().any() and (rows["cf_row_id"] < 0).any()
    out = tmp_path / "figures" / f"{name}_boundary.png"
    plot_decision_boundary(spec, grid, rows, out, title=f"{name} (synthetic rule)")
    assert_png(out)


def test_decision_boundary_all_answers_null(tmp_path: Path) -> None:
    spec, grid, rows = scored("heart_disease", all_null=True)
    assert rows[T.ANSWER].isna().all()
    out = tmp_path / "null.png"
    plot_decision_boundary(spec, grid, rows, out)
    assert_png(out)


def test_decision_boundary_without_counterfactuals_or_in_slice_starts(tmp_path: Path) -> None:
    spec = load_dataset_spec("house_prices")
    grid = build_grid(spec)
    _, _, rows = scored("house_prices")
    # Keep only rows outside every panel's slice (area at its lowest level): arrows must be projected.
    few = rows[grid.loc[rows[T.ROW_ID], "area"].to_numpy() == 500.0].head(30)
    plot_decision_boundary(spec, grid, few, tmp_path / "projected.png", max_arrows=5)
    assert_png(tmp_path / "projected.png")
    empty = rows.iloc[:0]
    plot_decision_boundary(spec, grid, empty, tmp_path / "empty.png")
    assert_png(tmp_path / "empty.png")


def summary_rows(n_models: int, datasets: list[str], prompts: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    records = []
    for m in range(n_models):
        for d in datasets:
            for p in prompts:
                validity = float(rng.uniform(5, 95))
                am = float(rng.uniform(0, 0.3))
                records.append(
                    {
                        "model": f"model-{m}",
                        "dataset": d,
                        "prompt": p,
                        "validity_percent": validity,
                        "mean_RCF_A": am,
                        "validity_ci_low": validity - 4,
                        "validity_ci_high": validity + 4,
                        "mean_RCF_A_ci_low": am - 0.02,
                        "mean_RCF_A_ci_high": am + 0.03,
                    }
                )
    frame = pd.DataFrame(records)
    frame.loc[0, ["mean_RCF_A", "mean_RCF_A_ci_low", "mean_RCF_A_ci_high"]] = math.nan
    frame.loc[0, ["validity_percent", "validity_ci_low", "validity_ci_high"]] = [0.0, 0.0, 3.0]
    return frame


def test_validity_vs_minimality_many_rows(tmp_path: Path) -> None:
    summary = summary_rows(4, ["income", "house_prices", "heart_disease"], ["baseline", "cot", "short"])
    out = tmp_path / "scatter.png"
    plot_validity_vs_minimality(summary, out, title="synthetic summary")
    assert_png(out)


def test_validity_vs_minimality_one_row_without_ci(tmp_path: Path) -> None:
    summary = pd.DataFrame(
        [
            {
                "model": "m",
                "dataset": "income",
                "prompt": "baseline",
                "validity_percent": 42.0,
                "mean_RCF_A": 0.1,
            }
        ]
    )
    out = tmp_path / "one.png"
    plot_validity_vs_minimality(summary, out)
    assert_png(out)


def test_figures_are_not_left_open(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    spec, grid, rows = scored("income")
    plot_decision_boundary(spec, grid, rows, tmp_path / "a.png")
    plot_validity_vs_minimality(summary_rows(1, ["income"], ["baseline"]), tmp_path / "b.png")
    assert plt.get_fignums() == before
