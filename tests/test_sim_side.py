"""Side analyses of the simulatability study on hand-made data: Kendall's W and Spearman (ties included), McNemar
(corrected chi-squared and exact binomial), relative risk per changed feature, NSG by answer order, one-to-one
pairing of two reference models, the conditions table, and that every figure is drawn."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from selfexplain.errors import InputError
from selfexplain.simulatability import agreement as ag
from selfexplain.simulatability import metrics as m
from selfexplain.simulatability import side
from selfexplain.simulatability import side_plots as sp


def obs_frame(rows: list[tuple], reference: str = "ref") -> pd.DataFrame:
    """rows: (pair_id, dataset, centre_row, predictor, repeat, answer_first, centre, cf, with, without)."""
    cols = ["pair_id", "dataset", "centre_row", "predictor", "repeat", "answer_first", "reference_centre_answer",
            "reference_counterfactual_answer", m.WITH, m.WITHOUT]  # fmt: skip
    frame = pd.DataFrame(rows, columns=cols)
    for c in cols[6:]:
        frame[c] = frame[c].astype("string")
    frame["reference"] = reference
    frame["predictor_family"] = pd.Series([None] * len(frame), dtype="string")
    frame["reference_family"] = pd.Series([None] * len(frame), dtype="string")
    return frame


# ---------------------------------------------------------------------------------------------------------------
# Kendall's W and Spearman
# ---------------------------------------------------------------------------------------------------------------
def test_kendalls_w_without_ties_by_hand():
    # ranks: [1,2,3,4], [1,3,2,4], [2,1,3,4] -> R = [4,6,8,12], mean 7.5, S = 35; W = 12*35 / (9*(64-4)) = 7/9
    scores = [[1, 2, 3, 4], [10, 30, 20, 40], [0.2, 0.1, 0.3, 0.4]]
    out = ag.kendalls_w(scores)
    assert out["w"] == pytest.approx(7 / 9)
    assert out["chi2"] == pytest.approx(3 * 3 * 7 / 9)  # m (n - 1) W = 7
    assert out["df"] == 3 and out["m"] == 3 and out["n"] == 4
    assert 0.05 < out["p_value"] < 0.1  # chi2(3) survival at 7 is 0.0719


def test_kendalls_w_tie_correction_by_hand():
    # rater 1 ties two items: ranks 1.5, 1.5, 3 (T = 2^3 - 2 = 6); rater 2: 1, 2, 3. R = [2.5, 3.5, 6], S = 6.5.
    # W = 12 * 6.5 / (2^2 * (27 - 3) - 2 * 6) = 78 / 84; without the correction it would be 78 / 96.
    out = ag.kendalls_w([[10, 10, 20], [1, 2, 3]])
    assert out["w"] == pytest.approx(13 / 14)
    assert ag.tie_term([10, 10, 20]) == 6.0
    assert ag.tie_term([5, 5, 5, 1]) == 24.0


def test_kendalls_w_perfect_and_degenerate():
    assert ag.kendalls_w([[1, 2, 3], [4, 5, 6]])["w"] == pytest.approx(1.0)
    assert ag.kendalls_w([[3, 2, 1], [1, 2, 3]])["w"] == pytest.approx(0.0)
    assert math.isnan(ag.kendalls_w([[1, 2, 3]])["w"])  # one rater
    assert math.isnan(ag.kendalls_w([[1, 1], [2, 2]])["w"])  # every rater ties every item
    with pytest.raises(ValueError):
        ag.kendalls_w([[1, np.nan], [1, 2]])


def test_spearman_by_hand():
    # no ties: d = [1, -1, 1, -1, 0], sum d^2 = 4 -> 1 - 6*4 / (5*24) = 0.8
    assert ag.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    # ties: ranks x [1, 2.5, 2.5, 4], y [1, 3, 2, 4]; centred sums 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert ag.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10))
    assert math.isnan(ag.spearman([1, 1, 1], [1, 2, 3]))
    assert ag.spearman([1, 2], [2, 1]) == pytest.approx(-1.0)


def summary_frame(nsg: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = []
    for ref, by_pred in nsg.items():
        rows.append({"reference": ref, "comparison": "explanation", "predictors": "all", "scope": "pooled",
                     "group": "all", "nsg": 0.0})  # fmt: skip
        for pred, value in by_pred.items():
            for comparison, predictors in (
                ("explanation", "all"),
                ("explanation", "exclude_same_family"),
                ("cot", "all"),
            ):
                nsg = value + (100 if comparison == "cot" else 0)  # other rows must not leak into the matrix
                rows.append({"reference": ref, "comparison": comparison, "predictors": predictors,
                             "scope": "predictor", "group": pred, "nsg": nsg})  # fmt: skip
    return pd.DataFrame(rows)


def test_predictor_agreement_from_summary():
    summary = summary_frame(
        {
            "r1": {"p": 10.0, "q": 5.0, "s": 1.0},
            "r2": {"p": 20.0, "q": 30.0, "s": 2.0},
            "r3": {"p": 30.0, "q": 20.0, "s": 3.0},
            "r4": {"p": 40.0, "q": math.nan, "s": 4.0},  # no NSG for q: out of W, out of the pairs with q
        }
    )
    matrix = ag.nsg_matrix(summary)
    assert list(matrix.index) == ["r1", "r2", "r3", "r4"] and list(matrix.columns) == ["p", "q", "s"]
    out = ag.predictor_agreement(matrix)
    assert out["references_used"] == ["r1", "r2", "r3"] and out["references_dropped"] == ["r4"]
    # ranks p [1,2,3], q [1,3,2], s [1,2,3]: R = [3, 7, 8], mean 6, S = 9 + 1 + 4 = 14; W = 12*14 / (9*24) = 7/9
    assert out["kendall"]["w"] == pytest.approx(7 / 9)
    pairs = {(p["predictor_a"], p["predictor_b"]): p for p in out["pairwise"]}
    assert pairs[("p", "s")]["spearman"] == pytest.approx(1.0) and pairs[("p", "s")]["n"] == 4
    assert pairs[("p", "q")]["spearman"] == pytest.approx(0.5) and pairs[("p", "q")]["n"] == 3
    assert out["spearman_mean"] == pytest.approx(2 / 3)
    assert out["spearman_sd"] == pytest.approx(float(np.std([0.5, 1.0, 0.5], ddof=1)))
    assert out["nsg"]["r4"]["q"] is None


def test_nsg_matrix_missing_column():
    with pytest.raises(InputError, match="nsg"):
        ag.nsg_matrix(pd.DataFrame({"reference": ["a"], "comparison": ["explanation"]}))


# ---------------------------------------------------------------------------------------------------------------
# McNemar
# ---------------------------------------------------------------------------------------------------------------
def test_mcnemar_corrected_chi2_by_hand():
    out = side.mcnemar(30, 10)
    assert out["test"] == "chi2_cc"
    assert out["statistic"] == pytest.approx((20 - 1) ** 2 / 40)  # 9.025
    assert out["p_value"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))  # chi2(1) tail = erfc(sqrt(x/2))
    # b == c: the correction cannot make the statistic negative or positive: p = 1
    same = side.mcnemar(20, 20)
    assert same["statistic"] == 0.0 and same["p_value"] == pytest.approx(1.0)


def test_clustered_mcnemar_by_hand():
    # clusters' discordant counts b = (2, 0, 1), c = (0, 1, 1): d = (2, -1, 0), X^2 = 1^2 / 5
    out = side.clustered_mcnemar([2, 0, 1], [0, 1, 1])
    assert out["statistic_clustered"] == pytest.approx(0.2)
    assert out["p_value_clustered"] == pytest.approx(0.6547208, abs=1e-6)
    # one observation per cluster: the uncorrected McNemar test, (b - c)^2 / (b + c) = (3 - 1)^2 / 4
    assert side.clustered_mcnemar([1, 1, 1, 0], [0, 0, 0, 1])["statistic_clustered"] == pytest.approx(1.0)
    # all discordance in one cluster: one effective observation, X^2 = d^2 / d^2 = 1 whatever its size
    assert side.clustered_mcnemar([30, 0], [0, 0])["statistic_clustered"] == pytest.approx(1.0)
    none = side.clustered_mcnemar([0, 0], [0, 0])
    assert math.isnan(none["statistic_clustered"]) and none["p_value_clustered"] == 1.0


def test_mcnemar_exact_by_hand():
    # b + c = 8 < 25: p = 2 * (C(8,0) + C(8,1)) / 2^8 = 18/256
    out = side.mcnemar(1, 7)
    assert out["test"] == "exact" and out["p_value"] == pytest.approx(18 / 256)
    assert side.mcnemar(7, 1)["p_value"] == pytest.approx(18 / 256)
    assert side.mcnemar(3, 3)["p_value"] == 1.0  # 2 * 42/64 capped at 1
    none = side.mcnemar(0, 0)
    assert none["test"] == "none" and none["p_value"] == 1.0 and math.isnan(none["statistic"])
    assert side.mcnemar(13, 12)["test"] == "chi2_cc"  # 25 discordant: the threshold is exclusive
    assert side.mcnemar(13, 11)["test"] == "exact"
    assert side.mcnemar(13, 12, exact_below=0)["test"] == "chi2_cc"
    with pytest.raises(ValueError):
        side.mcnemar(-1, 2)


def two_references() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two pairs x 2 predictors x 2 repeats; A and B answered differently, so correctness differs."""
    a_rows, b_rows = [], []
    truth_a = {"p1": "NO", "p2": "YES"}
    truth_b = {"p1": "YES", "p2": "YES"}
    preds = {  # (pair, predictor, repeat) -> (A's predictor answer, B's)
        ("p1", "x", 0): ("NO", "NO"),  # A right, B wrong
        ("p1", "x", 1): ("NO", "NO"),  # A right, B wrong
        ("p1", "y", 0): ("YES", "YES"),  # A wrong, B right
        ("p1", "y", 1): ("NO", "YES"),  # A right, B right
        ("p2", "x", 0): ("YES", "YES"),  # both right
        ("p2", "x", 1): ("NO", "NO"),  # both wrong
        ("p2", "y", 0): ("YES", None),  # B unreadable: dropped
        ("p2", "y", 1): ("YES", "NO"),  # A right, B wrong
    }
    for (pair, pred, rep), (ans_a, ans_b) in preds.items():
        a_rows.append((pair, "d", 1, pred, rep, True, "YES", truth_a[pair], ans_a, "NO"))
        b_rows.append((pair, "d", 1, pred, rep, True, "YES", truth_b[pair], ans_b, "NO"))
    a_rows.append(("p3", "d", 2, "x", 0, True, "YES", "NO", "NO", "NO"))  # only in A
    obs_a = obs_frame(a_rows, "A").sample(frac=1.0, random_state=3).reset_index(drop=True)
    obs_b = obs_frame(b_rows, "B").iloc[::-1].reset_index(drop=True)
    return obs_a, obs_b


def test_paired_correctness_one_to_one():
    obs_a, obs_b = two_references()
    paired = side.paired_correctness(obs_a, obs_b)
    frame = paired["frame"]
    assert len(frame) == 7  # 8 matched keys, one unreadable; never 2 x 2 x 2 x 2 rows of a many-to-many merge
    assert paired["unmatched_a"] == 1 and paired["unmatched_b"] == 0 and paired["unreadable"] == 1
    row = frame.set_index(["pair_id", "predictor", "repeat"]).loc[("p1", "y", 0)]
    assert (bool(row["correct_a"]), bool(row["correct_b"])) == (False, True)
    dup = pd.concat([obs_b, obs_b.iloc[:1]], ignore_index=True)
    with pytest.raises(InputError, match="duplicated"):
        side.paired_correctness(obs_a, dup)


def test_mcnemar_table_counts_by_hand():
    obs_a, obs_b = two_references()
    table = side.mcnemar_table({"A": obs_a, "B": obs_b}, [["A", "B"]], resamples=50, seed=1)
    pooled = table.loc[table["scope"] == "pooled"].iloc[0]
    # A right: p1x0 p1x1 p1y1 p2x0 p2y1 = 5 of 7; B right: p1y0 p1y1 p2x0 = 3 of 7
    assert pooled["n"] == 7
    assert pooled["accuracy_a"] == pytest.approx(500 / 7) and pooled["accuracy_b"] == pytest.approx(300 / 7)
    assert pooled["difference"] == pytest.approx(-200 / 7)
    assert (pooled["only_a_correct"], pooled["only_b_correct"]) == (3, 1)
    assert (pooled["both_correct"], pooled["both_wrong"]) == (2, 1)
    assert pooled["test"] == "exact" and pooled["p_value"] == pytest.approx(2 * 5 / 16)  # 2 P(X <= 1), X ~ B(4, .5)
    assert pooled["unmatched_a"] == 1
    # one cluster: d = 3 - 1 = 2, X^2 = 2^2 / 2^2 = 1
    assert pooled["statistic_clustered"] == pytest.approx(1.0)
    # one cluster (dataset d, centre row 1) holds every paired observation: every replicate equals the estimate
    assert pooled["difference_ci_lower"] == pytest.approx(-200 / 7)
    assert set(table["scope"]) == {"pooled", "dataset", "predictor"}
    with pytest.raises(InputError, match="two different"):
        side.mcnemar_table({"A": obs_a}, [["A", "A"]])
    with pytest.raises(InputError, match="no observations"):
        side.mcnemar_table({"A": obs_a}, [["A", "C"]])


# ---------------------------------------------------------------------------------------------------------------
# Rates per changed feature
# ---------------------------------------------------------------------------------------------------------------
def pairs_table(order: list[int] | None = None) -> pd.DataFrame:
    changes = {
        "p1": ["a"],
        "p2": ["a"],
        "p3": ["a", "b"],
        "p4": ["b"],
        "p5": ["b"],
        "p6": ["b"],
    }
    rows = [
        {"pair_id": pid, "dataset": "d",
         "changed_features": [{"feature": f, "centre": "0", "counterfactual": "1"} for f in feats]}
        for pid, feats in changes.items()
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    return frame.iloc[order].reset_index(drop=True) if order else frame


def test_relative_risk_formula():
    assert side.relative_risk(50.0, 25.0) == 2.0
    assert math.isnan(side.relative_risk(50.0, 0.0))
    np.testing.assert_allclose(side.relative_risk([10.0, 0.0], [20.0, 5.0]), [0.5, 0.0])


def test_feature_rows_by_hand():
    units = pd.DataFrame(
        {
            "pair_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "dataset": "d",
            "centre_row": [1, 2, 3, 4, 5, 6],
            "hit": [True, True, False, True, False, False],
        }
    )
    features = side.changed_feature_sets(pairs_table([5, 3, 1, 0, 4, 2]))  # row order must not matter
    rows = side.feature_rows(
        units, features, resampler=m.Resampler(resamples=100, seed=0), reference="r", table="features/test"
    )
    by = {r["feature"]: r for r in rows}
    a, b = by["a"], by["b"]
    # a: changed p1 p2 p3 -> 2/3; unchanged p4 p5 p6 -> 1/3; RR 2; overall 3/6
    assert (a["hits_changed"], a["n_changed"], a["hits_unchanged"], a["n_unchanged"]) == (2, 3, 1, 3)
    assert a["rate_changed"] == pytest.approx(200 / 3) and a["rate_unchanged"] == pytest.approx(100 / 3)
    assert a["relative_risk"] == pytest.approx(2.0) and a["change_effect"] == pytest.approx(200 / 3 - 50)
    # b: changed p3..p6 -> 1/4; unchanged p1 p2 -> 2/2; RR 0.25; effect 25 - 50
    assert b["relative_risk"] == pytest.approx(0.25) and b["change_effect"] == pytest.approx(-25.0)
    assert a["relative_risk_ci_lower"] <= a["relative_risk_ci_upper"]
    with pytest.raises(InputError, match="no row"):
        side.feature_rows(units, features.drop("p6"), resampler=m.Resampler(resamples=0), reference="r", table="t")


def test_feature_table_from_observations():
    # pair p1..p6 of dataset d; predictors x and y; egregious = both predictors agree on a wrong answer
    rows = []
    for k, (egregious, changed) in enumerate([(True, True), (True, False), (False, True), (True, True),
                                              (False, False), (False, True)], start=1):  # fmt: skip
        cf = "NO" if changed else "YES"
        wrong = "YES" if cf == "NO" else "NO"
        for pred in ("x", "y"):
            answer = wrong if egregious else (cf if pred == "x" else wrong)
            rows.append((f"p{k}", "d", k, pred, 0, True, "YES", cf, answer, "YES"))
    obs = obs_frame(rows, "R")
    table = side.feature_table({"R": obs}, pairs_table(), resamples=20, seed=0)
    eg = table.loc[(table["analysis"] == "egregious")].set_index("feature")
    assert eg.loc["a", "hits_changed"] == 2 and eg.loc["a", "relative_risk"] == pytest.approx(2.0)
    ch = table.loc[(table["analysis"] == "answer_change")].set_index("feature")
    # answer changed on p1 p3 p4 p6: feature a (p1 p2 p3) 2/3 vs 2/3 -> RR 1; feature b (p3..p6) 3/4 vs 1/2 -> 1.5
    assert ch.loc["a", "relative_risk"] == pytest.approx(1.0)
    assert ch.loc["b", "relative_risk"] == pytest.approx(1.5)
    with pytest.raises(InputError, match="changed_features"):
        side.feature_table({"R": obs}, pairs_table().drop(columns="changed_features"))


# ---------------------------------------------------------------------------------------------------------------
# NSG by answer order
# ---------------------------------------------------------------------------------------------------------------
def test_answer_order_by_hand():
    rows = []
    # first: with right 3/4, without right 2/4 -> NSG 50; last: 2/4 and 2/4 -> NSG 0
    firsts = [("NO", "NO"), ("NO", "NO"), ("NO", "YES"), ("YES", "YES")]
    lasts = [("NO", "NO"), ("NO", "YES"), ("YES", "NO"), ("YES", "YES")]
    for flag, answers in ((True, firsts), (False, lasts)):
        for k, (w, wo) in enumerate(answers):
            rows.append((f"q{k}/{flag}", "d", 7, "x", 0, flag, "YES", "NO", w, wo))
    obs = obs_frame(rows)
    out = {r["answer_order"]: r for r in side.answer_order(obs, resampler=m.Resampler(resamples=30, seed=0))}
    assert out["first"]["nsg"] == pytest.approx(50.0) and out["last"]["nsg"] == pytest.approx(0.0)
    assert out["first"]["with_accuracy"] == pytest.approx(75.0) and out["first"]["n"] == 4
    diff = out["first - last"]
    assert diff["nsg"] == pytest.approx(50.0) and diff["gain"] == pytest.approx(25.0) and diff["n"] == 8
    # one cluster: every replicate draws it, so the interval is the estimate
    assert diff["nsg_ci_lower"] == pytest.approx(50.0) and diff["nsg_ci_upper"] == pytest.approx(50.0)
    # the per-order rows are metrics.compare's numbers
    part = obs.loc[obs["answer_first"]]
    assert out["first"]["nsg"] == m.compare(part, resampler=m.Resampler(resamples=0))["nsg"]


def test_answer_order_table_is_deterministic_and_has_both_sets():
    rows = [(f"q{k}", "d", k % 3, "x", 0, k % 2 == 0, "YES", "NO" if k % 4 else "YES",
             "NO" if k % 3 else "YES", "YES") for k in range(24)]  # fmt: skip
    obs = obs_frame(rows)
    one = side.answer_order_table({"ref": obs}, resamples=40, seed=5)
    two = side.answer_order_table({"ref": obs}, resamples=40, seed=5)
    pd.testing.assert_frame_equal(one, two)
    assert set(one["predictors"]) == {"all", "exclude_same_family"}
    assert list(one["answer_order"][:3]) == ["first", "last", "first - last"]


# ---------------------------------------------------------------------------------------------------------------
# Conditions and figures
# ---------------------------------------------------------------------------------------------------------------
def conditions_summary() -> pd.DataFrame:
    base = {"predictors": "all", "scope": "pooled", "group": "all", "n": 10}
    rows = []
    for ref, shift in (("r1", 0.0), ("r2", 10.0)):
        for comparison, (w, wo, nsg) in {"explanation": (80, 60, 50), "cot": (70, 60, 25),
                                         "no_reference": (80, 40, 66.7)}.items():  # fmt: skip
            row = {**base, "reference": ref, "comparison": comparison, "with_accuracy": w - shift,
                   "without_accuracy": wo - shift, "nsg": nsg}  # fmt: skip
            for name in ("with_accuracy", "without_accuracy", "nsg"):
                row[f"{name}_ci_lower"], row[f"{name}_ci_upper"] = row[name] - 1, row[name] + 1
            rows.append(row)
    rows.append({**rows[0], "scope": "dataset", "group": "d", "with_accuracy": 0.0})
    return pd.DataFrame(rows)


def test_condition_table():
    table = side.condition_table(conditions_summary())
    acc = table.loc[(table["kind"] == "accuracy") & (table["reference"] == "r1")].set_index("name")["value"]
    assert acc.to_dict() == {"with_explanation": 80, "without_explanation": 60, "cot": 70, "no_reference": 40}
    nsg = table.loc[(table["kind"] == "nsg") & (table["reference"] == "r2")].set_index("name")["value"]
    assert nsg.to_dict() == {"explanation": 50, "cot": 25, "no_reference": 66.7}
    only_explanation = conditions_summary().query("comparison == 'explanation'")
    assert set(side.condition_table(only_explanation)["name"]) == {"with_explanation", "without_explanation",
                                                                    "explanation"}  # fmt: skip


def test_conditions_figure_keeps_the_references_that_ran_cot_or_no_reference():
    summary = conditions_summary()
    # r2 ran only with and without the explanation (as the paper's non-Qwen references)
    summary = summary.loc[~((summary["reference"] == "r2") & (summary["comparison"] != "explanation"))]
    table = side.condition_table(summary)
    assert set(table["reference"]) == {"r1", "r2"}
    assert set(side.with_extra_conditions(table)["reference"]) == {"r1"}
    assert side.with_extra_conditions(
        side.condition_table(conditions_summary().query("comparison == 'explanation'"))
    ).empty


def test_figures_are_drawn(tmp_path):
    obs_a, obs_b = two_references()
    sp.plot_mcnemar(side.mcnemar_table({"A": obs_a, "B": obs_b}, [["A", "B"]], resamples=10), tmp_path / "m.png")
    sp.plot_mcnemar(side.mcnemar_table({}, []), tmp_path / "m0.png")
    sp.plot_conditions(side.condition_table(conditions_summary()), tmp_path / "c.png")
    sp.plot_answer_order(side.answer_order_table({"A": obs_a}, resamples=10), tmp_path / "o.png")
    matrix = ag.nsg_matrix(summary_frame({"r1": {"p": 1.0, "q": 2.0}, "r2": {"p": 3.0, "q": 1.0}}))
    sp.plot_agreement(ag.predictor_agreement(matrix), tmp_path / "a.png")
    units = pd.DataFrame({"pair_id": [f"p{k}" for k in range(1, 7)], "dataset": "d", "centre_row": range(6),
                          "hit": [True, True, False, True, False, False]})  # fmt: skip
    rows = side.feature_rows(units, side.changed_feature_sets(pairs_table()), resampler=m.Resampler(resamples=10),
                             reference="r", table="t")  # fmt: skip
    features = pd.DataFrame([{"reference": "r", "analysis": "egregious", **r} for r in rows])
    sp.plot_features(features, "egregious", tmp_path / "f.png", min_changed=1)
    sp.plot_features(features, "answer_change", tmp_path / "f0.png", min_changed=1)  # nothing to draw: says so
    for name in ("m", "m0", "c", "o", "a", "f", "f0"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
