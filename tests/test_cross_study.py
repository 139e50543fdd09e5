"""Cross-study view: formulas against hand-computed values, the table from hand-made summaries, the figure."""

import math

import numpy as np
import pandas as pd
import pytest

from selfexplain import cross_study as C
from selfexplain.errors import InputError


def test_ranks_average_ties():
    assert C._ranks(np.array([10.0, 30.0, 20.0, 30.0])).tolist() == [1.0, 3.5, 2.0, 3.5]


def test_spearman_hand_computed():
    # ranks x 1 2 3 4, y 1 3 2 4: d = 0 -1 1 0, rho = 1 - 6*2/(4*15) = 0.8
    assert C.spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)
    assert C.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ties: x ranks 1.5 1.5 3, y ranks 1 2 3 -> centred (-.5 -.5 1), (-1 0 1): 1.5 / sqrt(1.5 * 2) = 0.8660
    assert C.spearman([5, 5, 9], [1, 2, 3]) == pytest.approx(1.5 / math.sqrt(3.0))
    # NaN pairs dropped; fewer than 3 left or a constant variable: NaN
    assert C.spearman([1, 2, np.nan, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert math.isnan(C.spearman([1, 2], [1, 2]))
    assert math.isnan(C.spearman([1, 1, 1], [1, 2, 3]))


def test_spearman_ci_resamples_models_seeded():
    x, y = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    low, high, n = C.spearman_ci(x, y, resamples=400, seed=3)
    assert (low, high, n) == C.spearman_ci(x, y, resamples=400, seed=3)
    assert -1 <= low <= C.spearman(x, y) <= high <= 1 and 0 < n <= 400
    # hand check: the same draws, computed here model by model
    draws = np.random.default_rng(3).integers(0, 5, size=(400, 5))
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    values = [C.spearman(xs[d], ys[d]) for d in draws if len(set(d)) >= 3]
    values = np.array([v for v in values if not math.isnan(v)])
    assert n == values.size
    assert (low, high) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    # three models, perfectly concordant: every defined resample is +1
    low, high, n = C.spearman_ci([0, 50, 100], [-30, 10, 70], resamples=200, seed=0)
    assert (low, high) == (1.0, 1.0) and 0 < n < 200


def test_correlation_notes():
    few = C.correlation([1, 2, np.nan], [1, 2, 3], resamples=50, seed=0)
    assert math.isnan(few["spearman"]) and few["n_models"] == 2 and "fewer than 3" in few["note"]
    flat = C.correlation([1, 1, 1], [1, 2, 3], resamples=50, seed=0)
    assert math.isnan(flat["spearman"]) and "constant" in flat["note"]
    ok = C.correlation([1, 2, 3, 4], [10, 30, 20, 40], resamples=50, seed=0)
    assert ok["spearman"] == pytest.approx(0.8) and ok["resampled"] == "models, with replacement"


def test_grid_stats_and_pooling_hand_computed():
    # grid A: 3 of 4 valid, RCF_A of the valid 0.1 0.2 0.3 -> 75 %, 0.2; grid B: 1 of 2 valid, 0.5 -> 50 %, 0.5
    a = (np.array([1, 1, 0, 1.0]), np.array([0.1, 0.2, np.nan, 0.3]))
    b = (np.array([0, 1.0]), np.array([np.nan, 0.5]))
    assert C.grid_stats(*a) == pytest.approx((75.0, 0.2))
    pooled = C.pooled_grid_stats([a, b], resamples=200, seed=1)
    assert pooled["validity_percent"] == pytest.approx(62.5)  # equal weight per grid, not 4/6 of rows
    assert pooled["mean_RCF_A"] == pytest.approx(0.35) and pooled["n_grids_minimality"] == 2
    low, high = pooled["validity_percent_ci"]
    assert 0 <= low <= 62.5 <= high <= 100
    # a grid with no valid counterfactual: minimality from the other grid only
    c = (np.array([0, 0.0]), np.array([np.nan, np.nan]))
    pooled = C.pooled_grid_stats([a, c], resamples=0)
    assert pooled["mean_RCF_A"] == pytest.approx(0.2) and pooled["n_grids_minimality"] == 1
    assert pooled["validity_percent"] == pytest.approx(37.5) and math.isnan(pooled["validity_percent_ci"][0])


def test_pooled_ci_is_a_stratified_bootstrap():
    # every row valid in one grid, none in the other: every resample averages to exactly 50 %
    pooled = C.pooled_grid_stats([(np.ones(5), np.zeros(5)), (np.zeros(7), np.full(7, np.nan))], resamples=100)
    assert pooled["validity_percent_ci"] == [50.0, 50.0]


def test_spread_offsets():
    assert C.spread_offsets(np.array([100.0, 100.0, 0.0]), np.array([69.0, 69.0, -35.0]), 100.0) == [-1.5, 1.5, 0.0]
    # near-coinciding (y 69.2 and 68.9 of a 104.8 range): still spread; far apart: not
    assert C.spread_offsets(np.array([100.0, 100.0, 0.0]), np.array([69.2, 68.9, -35.6]), 100.0) == [-1.5, 1.5, 0.0]
    assert C.spread_offsets(np.array([0.0, 0.11]), np.array([69.2, 68.9]), 0.11) == [0.0, 0.0]


def _inputs():
    sce = pd.DataFrame(
        {
            "model": ["m1", "m1", "m2", "m2", "m3", "m3"],
            "dataset": ["g1", "g2"] * 3,
            "prompt": ["standard"] * 6,
            "validity_percent": [100.0, 50.0, 50.0, 50.0, 0.0, 0.0],
            "mean_RCF_A": [0.1, 0.3, 0.2, 0.2, np.nan, np.nan],
        }
    )
    scores = {}
    for _, r in sce.iterrows():
        n_valid = int(r["validity_percent"] / 50)
        valid = np.array([1.0] * n_valid + [0.0] * (2 - n_valid))
        rcf = np.where(valid == 1, r["mean_RCF_A"], np.nan)
        scores[(r["model"], r["dataset"], "standard")] = pd.DataFrame(
            {"kept": [True, True, False], "valid": [*valid, 1.0], "RCF_A": [*rcf, 9.0]}
        )
    rows = []
    for ref, nsg in (("m1", 60.0), ("m2", 40.0), ("m3", -20.0), ("other", 5.0)):
        for predictors, value in (("all", nsg), ("exclude_same_family", nsg - 1)):
            rows.append(
                {
                    "reference": ref,
                    "comparison": "explanation",
                    "predictors": predictors,
                    "scope": "pooled",
                    "group": "all",
                    "n": 100,
                    "nsg": value,
                    "nsg_ci_lower": value - 5,
                    "nsg_ci_upper": value + 5,
                }
            )
        rows.append(
            {
                "reference": ref,
                "comparison": "cot",
                "predictors": "all",
                "scope": "pooled",
                "group": "all",
                "n": 100,
                "nsg": 99.0,
                "nsg_ci_lower": 0.0,
                "nsg_ci_upper": 0.0,
            }
        )
    return sce, pd.DataFrame(rows), scores


def test_summary_table_and_correlations():
    sce, sim, scores = _inputs()
    assert C.shared_models(["m1", "m2", "m3", "x"], ["other", "m3", "m1", "m2"]) == ["m1", "m2", "m3"]
    table = C.summary_table(sce, sim, scores, ["m1", "m2", "m3"], ["standard"], resamples=100, seed=0)
    by = table.set_index("model")
    assert by["validity_percent"].tolist() == pytest.approx([75.0, 50.0, 0.0])
    assert by.loc["m1", "mean_RCF_A"] == pytest.approx(0.2) and math.isnan(by.loc["m3", "mean_RCF_A"])
    assert by["nsg"].tolist() == [60.0, 40.0, -20.0] and by.loc["m1", "nsg_ci_low"] == 55.0
    assert by["n_kept"].tolist() == [4, 4, 4] and by.loc["m1", "grids"] == "g1 g2"
    corr = C.correlation_table(table, resamples=100, seed=0).set_index("sce_measure")
    assert corr.loc["validity_percent", "spearman"] == pytest.approx(1.0)
    assert corr.loc["mean_RCF_A", "n_models"] == 2 and math.isnan(corr.loc["mean_RCF_A", "spearman"])


def test_summary_table_refuses_inconsistent_inputs():
    sce, sim, scores = _inputs()
    stale = sce.copy()
    stale.loc[0, "validity_percent"] = 90.0
    with pytest.raises(InputError, match="m1/g1/standard: validity_percent"):
        C.summary_table(stale, sim, scores, ["m1"], ["standard"], resamples=0)
    with pytest.raises(InputError, match="no pooled explanation NSG for reference m4"):
        C.summary_table(sce, sim, scores, ["m4"], ["standard"], resamples=0)
    with pytest.raises(InputError, match="missing column"):
        C.nsg_rows(sim.drop(columns="nsg"))


def test_summarise_and_figure(tmp_path):
    sce, sim, scores = _inputs()
    sce.to_csv(tmp_path / "sce.csv", index=False)
    sim.to_csv(tmp_path / "sim.csv", index=False)
    paths = {}
    for key, frame in scores.items():
        paths[key] = tmp_path / ("__".join(key) + ".parquet")
        frame.to_parquet(paths[key])
    table, corr = C.summarise(
        tmp_path / "sce.csv",
        tmp_path / "sim.csv",
        paths,
        ["m1", "m2", "m3"],
        ["standard"],
        tmp_path / "out/summary.csv",
        tmp_path / "out/correlations.csv",
        resamples=50,
        seed=0,
    )
    assert pd.read_csv(tmp_path / "out/summary.csv").columns.tolist() == C.SUMMARY_COLUMNS
    drawn = C.plot_validity_vs_nsg(table, corr, tmp_path / "out/fig.png")
    assert (tmp_path / "out/fig.png").read_bytes()[:4] == b"\x89PNG"
    assert drawn["standard/validity_percent"]["models"] == ["m1", "m2", "m3"]
    assert drawn["standard/mean_RCF_A"]["undefined"] == ["m3"]
    with pytest.raises(InputError, match="empty"):
        C.plot_validity_vs_nsg(table.iloc[0:0], corr, tmp_path / "out/none.png")
