"""sce figures render from score tables built offline from a threshold rule (no model, no network)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selfexplain.figures import DPI
from selfexplain.sce import tables as T
from selfexplain.sce.plots import (
    ARROW,
    MARKER_PT,
    OFF_PANEL,
    UNCHANGED,
    counterfactual_kind,
    plot_decision_boundary,
    plot_validity_vs_minimality,
    spread_coincident,
)
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


# -- what a boundary figure claims is true in each panel ------------------------------------------------------------

# heart_disease panels hold the features they do not show at these levels (the panel titles say so): median level,
# first level (Female = 2) for the categorical sex.
HEART_HELD = {"AGEP": 55.0, "SEX": 2.0, "systolic_bp": 140.0, "total_cholesterol": 225.0}


def test_counterfactual_kind_by_hand() -> None:
    held = {2: 140.0, 3: 225.0}  # panel: features 0 and 1
    start = np.array([40.0, 2.0, 140.0, 225.0])
    assert counterfactual_kind(start, np.array([60.0, 1.0, 140.0, 225.0]), (0, 1), held) == (ARROW, True)
    assert counterfactual_kind(start, np.array([60.0, 1.0, 160.0, 225.0]), (0, 1), held) == (ARROW, False)
    assert counterfactual_kind(start, np.array([40.0, 2.0, 140.0, 300.0]), (0, 1), held) == (OFF_PANEL, False)
    assert counterfactual_kind(start, start.copy(), (0, 1), held) == (UNCHANGED, True)
    # a start outside the slice (a projected panel): the cell under x is not the model's answer at x either
    off = np.array([40.0, 2.0, 150.0, 225.0])
    assert counterfactual_kind(off, np.array([60.0, 2.0, 150.0, 225.0]), (0, 1), held) == (ARROW, False)
    # two features only: nothing is held, every arrow is exact
    assert counterfactual_kind(np.array([30.0, 5.0]), np.array([40.0, 5.0]), (0, 1), {}) == (ARROW, True)


def _answer_at(spec: DatasetSpec, grid: pd.DataFrame, rows: pd.DataFrame) -> dict[tuple[float, ...], object]:
    """The model's first-pass answer at every grid point, by the point's feature values."""
    answers = rows.set_index(T.ROW_ID)[T.ANSWER]
    values = grid[spec.columns].to_numpy(dtype=np.float64)
    return {tuple(v): answers.get(i) for v, i in zip(values, grid["id"], strict=True)}


def test_boundary_arrows_are_solid_only_where_the_panel_shows_both_ends(tmp_path: Path) -> None:
    spec, grid, rows = scored("heart_disease")
    answer = _answer_at(spec, grid, rows)
    key_to_column = {f.key: f.column for f in spec.features}
    drawn = plot_decision_boundary(spec, grid, rows, tmp_path / "heart.png").drawn
    assert len({d.panel for d in drawn}) == 6
    arrows = [d for d in drawn if d.kind == ARROW and not d.off_grid]
    misleading_before = 0
    for d in arrows:
        row = rows.iloc[d.row]
        start = grid.loc[grid["id"] == row[T.ROW_ID], spec.columns].iloc[0].to_dict()
        end = dict(zip(spec.columns, row[T.cf_columns(spec)].to_numpy(dtype=np.float64), strict=True))
        shown = {key_to_column[k] for k in d.panel}
        off_slice = any(p[c] != HEART_HELD[c] for p in (start, end) for c in spec.columns if c not in shown)
        assert d.dashed == off_slice, (d, start, end)
        # The cell under the tip shows the grid point with x′'s panel values and the held levels elsewhere.
        tip_cell = tuple(end[c] if c in shown else HEART_HELD[c] for c in spec.columns)
        at_tip, at_end = answer[tip_cell], answer[tuple(end[c] for c in spec.columns)]
        if not d.dashed:
            # solid: the colour under the tip is the model's answer at x′ (grey where there is none)
            assert at_tip == at_end or (pd.isna(at_tip) and pd.isna(at_end)), d
        elif d.status == "valid" and at_tip == row[T.ANSWER] and not pd.isna(at_tip):
            misleading_before += 1  # a valid arrow ending in the original class's colour: drawn dashed now
    assert misleading_before > 0, "the data should contain the case the figure used to draw misleadingly"
    assert any(d.dashed for d in arrows) and any(not d.dashed for d in arrows)


# A legend entry for each mark a boundary figure draws only when needed, found by these words.
MARK_WORDS = {
    "dashed arrow": "dashed:",
    "× off the grid": "white margin = beyond the grid",
    "ring (off-panel change)": "only in features this panel does not show",
    "square (no change)": "changes nothing",
}


def _marks(figure) -> set[str]:
    marks = set()
    for d in figure.drawn:
        marks |= {"dashed arrow"} if d.dashed else set()
        marks |= {"× off the grid"} if d.off_grid else set()
        marks |= {"ring (off-panel change)"} if d.kind == OFF_PANEL else set()
        marks |= {"square (no change)"} if d.kind == UNCHANGED else set()
    return marks


def assert_legend_explains_exactly_the_marks_drawn(figure) -> None:
    labels = "\n".join(figure.legend)
    marks = _marks(figure)
    for mark, words in MARK_WORDS.items():
        assert (words in labels) == (mark in marks), (mark, marks, figure.legend)


def _unchanged(spec: DatasetSpec, grid: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Every counterfactual repeats its own grid point."""
    rows = rows.copy()
    rows.loc[:, T.cf_columns(spec)] = grid.set_index("id").loc[rows[T.ROW_ID], spec.columns].to_numpy(np.float64)
    return rows


def test_boundary_legend_explains_every_mark_drawn(tmp_path: Path) -> None:
    spec, grid, rows = scored("heart_disease")
    heart = plot_decision_boundary(spec, grid, rows, tmp_path / "heart.png")
    assert _marks(heart) == set(MARK_WORDS)  # this data draws every kind of mark
    assert_legend_explains_exactly_the_marks_drawn(heart)

    # An unchanged counterfactual is a square ("changes nothing"), never a ring ("features not shown"), with two
    # features (income: the ring used to have no legend entry there) as with four.
    for name in ("income", "heart_disease"):
        spec, grid, rows = scored(name)
        figure = plot_decision_boundary(spec, grid, _unchanged(spec, grid, rows), tmp_path / f"{name}.png")
        assert figure.drawn and {d.kind for d in figure.drawn} == {UNCHANGED}
        assert_legend_explains_exactly_the_marks_drawn(figure)

    # Only solid arrows (two features, every counterfactual on the grid): no entry for marks not drawn.
    spec, grid, rows = scored("income")
    rows = rows[(rows["cf_row_id"] >= 0) & rows["valid"].notna()]
    moved = rows[T.cf_columns(spec)].to_numpy() != grid.set_index("id").loc[rows[T.ROW_ID], spec.columns].to_numpy()
    solid = plot_decision_boundary(spec, grid, rows[moved.any(axis=1)], tmp_path / "solid.png")
    assert solid.drawn and _marks(solid) == set()
    assert_legend_explains_exactly_the_marks_drawn(solid)


# -- the scatter: coinciding points and undefined minimality ------------------------------------------------------


def test_spread_coincident_by_hand() -> None:
    assert spread_coincident(np.array([[0.0, 0.0], [0.0, 0.0], [100.0, 0.0]]), 10).tolist() == [-5.0, 5.0, 0.0]
    np.testing.assert_allclose(spread_coincident(np.array([[0.0, 0], [3, 0], [6, 0]]), 10), [-7.0, 0.0, 7.0])
    assert spread_coincident(np.array([[0.0, 0.0], [0.0, 50.0]]), 10).tolist() == [0.0, 0.0]  # apart in y
    # spreading a pair pushes it into a third marker: the three end up side by side, in their x order
    xy = np.array([[0.0, 0.0], [0.0, 0.0], [12.0, 0.0]])
    x = xy[:, 0] + spread_coincident(xy, 10)
    assert np.all(np.diff(x) >= 10 - 1e-9) and x.mean() == pytest.approx(4.0)


def _scatter_row(model: str, prompt: str, validity: float, am: float, dataset: str = "income") -> dict:
    return {"model": model, "dataset": dataset, "prompt": prompt, "validity_percent": validity, "mean_RCF_A": am}


def test_scatter_shows_coinciding_points_and_keeps_undefined_minimality_away_from_zero(tmp_path: Path) -> None:
    summary = pd.DataFrame(
        [
            _scatter_row("exact", "standard", 100.0, 0.0),  # these two coincide
            _scatter_row("exact", "minimal", 100.0, 0.0),
            _scatter_row("overshoot", "standard", 100.0, 0.1446),  # nearly coincide
            _scatter_row("overshoot", "minimal", 100.0, 0.1455),
            _scatter_row("timid", "standard", 0.0, math.nan),  # no valid counterfactual: AM undefined
            _scatter_row("timid", "minimal", 0.0, math.nan),
            _scatter_row("other", "standard", 50.0, 0.07),  # alone: stays where it is
        ]
    )
    figure = plot_validity_vs_minimality(summary, tmp_path / "scatter.png")
    assert_png(tmp_path / "scatter.png")
    points = figure.points
    assert len(points) == 7
    centres = np.array([p.centre_px for p in points])
    gaps = np.hypot(*(centres[:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(gaps, np.inf)
    marker_px = MARKER_PT * DPI / 72
    assert gaps.min() >= marker_px, "two markers overlap"
    by_key = {(p.model, p.prompt): p for p in points}
    assert by_key[("other", "standard")].offset_pt == 0.0 and by_key[("other", "standard")].x == 0.07
    # undefined AM: drawn in the band right of every defined point, not at 0 beside the perfect model
    left, right = figure.undefined_band["income"]
    assert left > 0.1455
    for prompt in ("standard", "minimal"):
        timid = by_key[("timid", prompt)]
        assert math.isnan(timid.am) and left < timid.x < right
    assert by_key[("exact", "standard")].x == 0.0
    assert any("AM undefined" in label for label in figure.legend)
    assert any("true place" in label for label in figure.legend)


def test_scatter_without_undefined_or_coinciding_points_adds_no_band_or_note(tmp_path: Path) -> None:
    summary = pd.DataFrame([_scatter_row("a", "standard", 80.0, 0.1), _scatter_row("b", "standard", 20.0, 0.3)])
    figure = plot_validity_vs_minimality(summary, tmp_path / "plain.png")
    assert figure.undefined_band == {}
    assert [p.offset_pt for p in figure.points] == [0.0, 0.0]
    assert not any("AM undefined" in label or "true place" in label for label in figure.legend)


def test_many_runs_without_a_valid_counterfactual_stay_inside_their_band(tmp_path: Path) -> None:
    undefined = [_scatter_row(f"timid-{m}", p, 0.0, math.nan) for m in range(12) for p in ("standard", "minimal")]
    anchors = [_scatter_row("a", "standard", 50.0, 0.0), _scatter_row("b", "standard", 80.0, 0.2)]  # lone points
    figure = plot_validity_vs_minimality(pd.DataFrame(undefined + anchors), tmp_path / "many.png")
    by_model = {p.model: p for p in figure.points}
    a, b = by_model["a"], by_model["b"]
    assert a.offset_pt == b.offset_pt == 0.0
    px_per_unit = (b.centre_px[0] - a.centre_px[0]) / (b.x - a.x)
    left, right = (a.centre_px[0] + (edge - a.x) * px_per_unit for edge in figure.undefined_band["income"])
    radius_px = MARKER_PT / 2 * DPI / 72
    xs = sorted(p.centre_px[0] for p in figure.points if math.isnan(p.am))
    assert len(xs) == 24
    assert left + radius_px <= xs[0] and xs[-1] <= right - radius_px, (left, xs, right)
    assert min(np.diff(xs)) >= radius_px, "packed markers must still show each one"
