"""Simulatability metrics on hand-made data: formulas, observations by key, splits, egregious, switch rate,
reference accuracy, and the bootstrap (determinism, the original's RNG stream, coverage)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from selfexplain.errors import InputError
from selfexplain.io import _clean
from selfexplain.simulatability import metrics as m

OPTIONS = ("NO", "YES")


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
def obs_frame(rows: list[tuple], reference: str = "ref", **extra) -> pd.DataFrame:
    """rows: (pair_id, dataset, centre_row, predictor, repeat, centre, cf, with, without)."""
    cols = ["pair_id", "dataset", "centre_row", "predictor", "repeat", "reference_centre_answer",
            "reference_counterfactual_answer", m.WITH, m.WITHOUT]  # fmt: skip
    frame = pd.DataFrame(rows, columns=cols)
    for c in cols[5:]:
        frame[c] = frame[c].astype("string")
    frame["reference"] = reference
    frame["answer_first"] = True
    frame["predictor_family"] = pd.Series([None] * len(frame), dtype="string")
    frame["reference_family"] = pd.Series([None] * len(frame), dtype="string")
    for k, v in extra.items():
        frame[k] = v
    return frame


def prediction_rows(reference, predictor, pair, condition, repeat, prediction, centre="YES", cf="NO"):
    dataset, c_row, cf_row = pair
    return {
        "pair_id": f"{dataset}/{c_row}/{cf_row}/first",
        "dataset": dataset,
        "centre_row": c_row,
        "counterfactual_row": cf_row,
        "answer_first": True,
        "condition": condition,
        "repeat": repeat,
        "reference": reference,
        "predictor": predictor,
        "reference_centre_answer": centre,
        "reference_counterfactual_answer": cf,
        "prediction": prediction,
    }


def reference_table(answers: dict[tuple, str | None]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": d, "row": r, "answer_first": True, "answer": a} for (d, r), a in answers.items()])


# ---------------------------------------------------------------------------------------------------------------
# formulas
# ---------------------------------------------------------------------------------------------------------------
def test_formulas_by_hand():
    assert m.accuracy(3, 4) == 75.0
    assert math.isnan(m.accuracy(0, 0))
    assert m.accuracy(0, 0, 0.0) == 0.0
    assert m.gain(80.0, 60.0) == 20.0
    assert m.nsg(80.0, 60.0) == pytest.approx(50.0)  # closes half of the remaining 40 points
    assert m.nsg(60.0, 60.0) == 0.0
    assert m.nsg(50.0, 60.0) == pytest.approx(-25.0)
    assert m.nsg(100.0, 90.0) == pytest.approx(100.0)
    # zero denominator: a perfect baseline leaves no error to close -> undefined (null); the original writes 0
    assert math.isnan(m.nsg(100.0, 100.0))
    assert math.isnan(m.nsg(95.0, 100.0 - 1e-7))
    assert m.nsg(95.0, 100.0, undefined=0.0) == 0.0
    assert m.nsg(95.0, 99.0) == pytest.approx(-400.0)
    np.testing.assert_allclose(m.nsg(np.array([80.0, 70.0]), np.array([60.0, 100.0]), 0.0), [50.0, 0.0])


def test_rates_from_counts_by_hand():
    # with 7/10, without 5/10; changed 4 (with 3, without 1); unchanged 6 (with 4, without 4)
    r = m.rates(np.array([7, 5, 10, 3, 1, 4, 4, 4, 6]))
    assert r["with_accuracy"] == 70.0 and r["without_accuracy"] == 50.0 and r["gain"] == 20.0
    assert r["nsg"] == pytest.approx(40.0)
    assert r["with_accuracy_changed"] == 75.0 and r["without_accuracy_changed"] == 25.0
    assert r["with_accuracy_unchanged"] == pytest.approx(400 / 6) and r["without_accuracy_unchanged"] == pytest.approx(
        400 / 6
    )
    assert r["diff_pct"] == 40.0
    empty = m.rates(np.array([2, 1, 2, 0, 0, 0, 2, 1, 2]))
    assert math.isnan(empty["with_accuracy_changed"])  # no changed observation: undefined for us ...
    assert m.rates(np.array([2, 1, 2, 0, 0, 0, 2, 1, 2]), 0.0)["with_accuracy_changed"] == 0.0  # ... 0 in the original
    assert m.rates(np.zeros(9), 0.0)["nsg"] == 0.0


def test_percentile_bounds_are_the_originals():
    lo, hi = m.percentile_bounds(0.95)
    assert lo == (1 - 0.95) / 2 * 100 and lo != 2.5  # 2.5000000000000022, kept for bit-identical CIs
    assert hi == 97.5


def test_percentile_ci_per_column_equals_percentile_of_a_list():
    values = np.random.default_rng(3).normal(size=(1000, 5)) * 37.1
    lo, hi = m.percentile_bounds()
    ci = m.percentile_ci(values)
    for j in range(5):
        column = list(values[:, j])
        assert ci[0, j] == np.percentile(column, lo) and ci[1, j] == np.percentile(column, hi)
    values[:10, 0] = np.nan
    ci = m.percentile_ci(values)
    assert ci[0, 0] == np.percentile(values[10:, 0], lo)


# ---------------------------------------------------------------------------------------------------------------
# observations
# ---------------------------------------------------------------------------------------------------------------
def _two_predictor_tables():
    ref = reference_table({("d", 1): "YES", ("d", 2): "NO", ("d", 3): "YES", ("d", 4): "YES"})
    rows = []
    # pair (d, 1 -> 2): centre YES, cf NO; pair (d, 3 -> 4): centre YES, cf YES
    for pred, answers in (
        ("p", {"a": ("NO", "YES"), "b": ("YES", "YES")}),
        ("q", {"a": ("NO", "NO"), "b": (None, "NO")}),
    ):
        for name, pair, cf in (("a", ("d", 1, 2), "NO"), ("b", ("d", 3, 4), "YES")):
            w, wo = answers[name]
            rows.append(prediction_rows("ref", pred, pair, m.WITH, 0, w, "YES", cf))
            rows.append(prediction_rows("ref", pred, pair, m.WITHOUT, 0, wo, "YES", cf))
    return ref, pd.DataFrame(rows)


def test_observations_join_by_key_not_position():
    ref, preds = _two_predictor_tables()
    fams = {"ref": "x", "p": "x", "q": "y"}
    obs = m.observations(ref, [preds[preds.predictor == "p"], preds[preds.predictor == "q"]], fams)
    assert len(obs) == 4
    row = obs.set_index(["pair_id", "predictor"])
    assert row.loc[("d/1/2/first", "p"), m.WITH] == "NO" and row.loc[("d/1/2/first", "p"), m.WITHOUT] == "YES"
    assert pd.isna(row.loc[("d/3/4/first", "q"), m.WITH]) and row.loc[("d/3/4/first", "q"), m.WITHOUT] == "NO"
    assert row.loc[("d/3/4/first", "q"), "reference_counterfactual_answer"] == "YES"
    assert (
        row.loc[("d/1/2/first", "q"), "predictor_family"] == "y"
        and row.loc[("d/1/2/first", "q"), "reference_family"] == "x"
    )
    # shuffled rows (and shuffled reference table) give the same observations
    shuffled = m.observations(ref.sample(frac=1, random_state=1), preds.sample(frac=1, random_state=7), fams)
    pd.testing.assert_frame_equal(obs, shuffled)


def test_observations_labels_from_pairs_and_unknown_family():
    ref, preds = _two_predictor_tables()
    pairs = pd.DataFrame({"pair_id": ["d/1/2/first", "d/3/4/first"], "centre_label": ["YES", None],
                          "counterfactual_label": ["NO", "YES"]})  # fmt: skip
    obs = m.observations(ref, preds, {"ref": "x"}, pairs)
    assert obs["predictor_family"].isna().all()  # not in the mapping: no family, never guessed from the name
    first = obs[obs.pair_id == "d/1/2/first"].iloc[0]
    assert first["centre_label"] == "YES" and first["counterfactual_label"] == "NO"
    assert obs[obs.pair_id == "d/3/4/first"]["centre_label"].isna().all()


def test_observations_repeats_pair_by_repeat_else_repeat_0():
    ref = reference_table({("d", 1): "YES", ("d", 2): "NO"})
    pair = ("d", 1, 2)
    rows = [prediction_rows("ref", "p", pair, m.WITH, r, a) for r, a in enumerate(["NO", "YES", "NO"])]
    rows.append(prediction_rows("ref", "p", pair, m.WITHOUT, 0, "YES"))
    obs = m.observations(ref, pd.DataFrame(rows), {})
    assert list(obs["repeat"]) == [0, 1, 2]
    assert list(obs[m.WITH]) == ["NO", "YES", "NO"]
    assert list(obs[m.WITHOUT]) == ["YES", "YES", "YES"]  # the single without-answer pairs with every repeat
    rows.append(prediction_rows("ref", "p", pair, m.WITHOUT, 1, "NO"))  # now repeat 1 has its own
    obs = m.observations(ref, pd.DataFrame(rows).sample(frac=1, random_state=3), {})
    assert list(obs[m.WITHOUT]) == ["YES", "NO", "YES"]


def test_observations_reject_bad_input():
    ref, preds = _two_predictor_tables()
    with pytest.raises(InputError, match="one reference model"):
        m.observations(ref, pd.concat([preds, preds.assign(reference="other")]), {})
    with pytest.raises(InputError, match="duplicated"):
        m.observations(ref, pd.concat([preds, preds.iloc[:1]]), {})
    stale = preds.copy()
    stale.loc[0, "reference_counterfactual_answer"] = "YES"
    with pytest.raises(InputError, match="stale"):
        m.observations(ref, stale, {})
    with pytest.raises(InputError, match="missing column"):
        m.observations(ref, preds.drop(columns=["repeat"]), {})


# ---------------------------------------------------------------------------------------------------------------
# one comparison
# ---------------------------------------------------------------------------------------------------------------
def test_compare_hand_computed():
    rows = [
        # pair, ds, centre_row, predictor, repeat, centre, cf, with, without
        ("a", "d", 1, "p", 0, "YES", "NO", "NO", "YES"),  # changed; with right, without wrong
        ("a", "d", 1, "q", 0, "YES", "NO", "NO", "NO"),  # changed; both right
        ("b", "d", 1, "p", 0, "YES", "YES", "YES", "YES"),  # unchanged; both right
        ("b", "d", 1, "q", 0, "YES", "YES", "NO", "YES"),  # unchanged; only without right
        ("c", "d", 2, "p", 0, "NO", "NO", "YES", "YES"),  # unchanged; both wrong
        ("c", "d", 2, "q", 0, "NO", "NO", None, "NO"),  # dropped: with unreadable
        ("e", "d", 3, "p", 0, "NO", None, "NO", "NO"),  # dropped: reference unreadable
    ]
    b = m.compare(obs_frame(rows), resampler=m.Resampler(resamples=200))
    assert b["n"] == 5 and b["n_clusters"] == 2
    assert b["with_accuracy"] == pytest.approx(60.0) and b["without_accuracy"] == pytest.approx(60.0)
    assert b["gain"] == pytest.approx(0.0) and b["nsg"] == pytest.approx(0.0)
    assert b["with_accuracy_changed"] == 100.0 and b["without_accuracy_changed"] == 50.0
    assert b["with_accuracy_unchanged"] == pytest.approx(100 / 3) and b["without_accuracy_unchanged"] == pytest.approx(
        200 / 3
    )
    assert b["diff_pct"] == 40.0 and (b["n_changed"], b["n_unchanged"]) == (2, 3)
    assert (b["both_correct"], b["both_wrong"], b["only_with_correct"], b["only_without_correct"]) == (2, 1, 1, 1)
    assert b["dropped"] == {"observations": 7, "reference_unreadable": 1, "with_explanation_unreadable": 1,
                            "without_explanation_unreadable": 0, "any": 2, "centre_unreadable": 0}  # fmt: skip
    lo, hi = b["nsg_ci"]
    assert lo <= hi


def test_compare_other_conditions_and_no_changed():
    rows = [("a", "d", 1, "p", 0, "YES", "YES", "YES", "NO"), ("b", "d", 2, "p", 0, "NO", "NO", "NO", "NO")]
    frame = obs_frame(rows)
    frame[m.COT] = pd.array(["NO", "NO"], dtype="string")
    b = m.compare(frame, m.COT, m.WITHOUT, resampler=m.Resampler(resamples=50))
    assert b["with_accuracy"] == 50.0 and b["without_accuracy"] == 50.0 and "cot_unreadable" in b["dropped"]
    assert math.isnan(b["with_accuracy_changed"]) and b["n_changed"] == 0  # no changed answer: undefined
    orig = m.compare(frame, m.COT, m.WITHOUT, resampler=m.Resampler("original", resamples=50), convention="original")
    assert orig["with_accuracy_changed"] == 0.0 and orig["with_accuracy_changed_ci"] == [0.0, 0.0]


def test_family_exclusion_uses_the_given_families_only():
    rows = [("a", "d", 1, p, 0, "YES", "NO", "NO", "YES") for p in ("p", "q", "r")]
    frame = obs_frame(rows)
    frame["predictor_family"] = pd.array(["qwen", "gemma", None], dtype="string")
    frame["reference_family"] = pd.array(["qwen"] * 3, dtype="string")
    assert list(m.exclude_same_family(frame)["predictor"]) == ["q", "r"]
    frame["reference_family"] = pd.array([None] * 3, dtype="string")
    assert len(m.exclude_same_family(frame)) == 3  # a reference without a family excludes nothing


# ---------------------------------------------------------------------------------------------------------------
# pair- and question-level rates
# ---------------------------------------------------------------------------------------------------------------
def test_egregious_cases():
    rows = [
        ("agree_wrong", "d", 1, "p", 0, "YES", "NO", "YES", "NO"),
        ("agree_wrong", "d", 1, "q", 0, "YES", "NO", "YES", "NO"),
        ("agree_right", "d", 2, "p", 0, "YES", "NO", "NO", "NO"),
        ("agree_right", "d", 2, "q", 0, "YES", "NO", "NO", "NO"),
        ("split", "d", 3, "p", 0, "YES", "NO", "YES", "NO"),
        ("split", "d", 3, "q", 0, "YES", "NO", "NO", "NO"),
        ("one_unreadable", "d", 4, "p", 0, "YES", "NO", "YES", "NO"),
        ("one_unreadable", "d", 4, "q", 0, "YES", "NO", None, "NO"),
        ("all_unreadable", "d", 5, "p", 0, "YES", "NO", None, "NO"),
        ("all_unreadable", "d", 5, "q", 0, "YES", "NO", None, "NO"),
        ("ref_unreadable", "d", 6, "p", 0, "YES", None, "YES", "NO"),
        ("ref_unreadable", "d", 6, "q", 0, "YES", None, "YES", "NO"),
        ("q_missing", "d", 7, "p", 0, "YES", "NO", "YES", "NO"),
    ]
    per = m.egregious_pairs(obs_frame(rows)).set_index("pair_id")
    assert per.loc["agree_wrong", "egregious"]
    for pid in ("agree_right", "split", "one_unreadable", "all_unreadable", "ref_unreadable", "q_missing"):
        assert not per.loc[pid, "egregious"], pid
    assert per.loc["all_unreadable", "all_unreadable"] and not per.loc["ref_unreadable", "eligible"]
    metrics = m.reference_metrics(obs_frame(rows), resamples=100)
    e = metrics["egregious"]["all"]["pooled"]
    assert (e["hits"], e["n"], e["not_eligible"], e["all_unreadable"]) == (1, 6, 1, 1)
    assert e["value"] == pytest.approx(100 / 6)


def test_egregious_single_predictor_and_repeats():
    single = [("x", "d", 1, "p", 0, "YES", "NO", "YES", "NO"), ("y", "d", 2, "p", 0, "YES", "NO", "NO", "NO")]
    per = m.egregious_pairs(obs_frame(single)).set_index("pair_id")
    assert per.loc["x", "egregious"] and not per.loc["y", "egregious"]
    repeats = [("x", "d", 1, "p", r, "YES", "NO", "YES", "NO") for r in range(3)]
    repeats += [("y", "d", 2, "p", r, "YES", "NO", a, "NO") for r, a in enumerate(["YES", "YES", "NO"])]
    per = m.egregious_pairs(obs_frame(repeats)).set_index("pair_id")
    assert per.loc["x", "egregious"]  # every repeat agrees and is wrong
    assert not per.loc["y", "egregious"]  # one dissenting repeat clears the pair


def test_switch_rate_and_reference_accuracy():
    rows = [
        ("a", "d", 1, "p", 0, "YES", "NO", "NO", "NO"),
        ("a", "d", 1, "q", 0, "YES", "NO", "NO", "NO"),  # same pair twice: counted once
        ("b", "d", 2, "p", 0, "YES", "YES", "NO", "NO"),
        ("c", "e", 3, "p", 0, "NO", "NO", "NO", "NO"),
        ("f", "e", 4, "p", 0, "NO", None, "NO", "NO"),  # cf unreadable: not eligible
    ]
    frame = obs_frame(rows)
    frame["counterfactual_row"] = [11, 11, 12, 13, 14]
    frame["centre_label"] = pd.array(["YES", "YES", "NO", None, "NO"], dtype="string")
    frame["counterfactual_label"] = pd.array(["NO", "NO", "NO", None, "YES"], dtype="string")
    metrics = m.reference_metrics(frame, resamples=100)
    s = metrics["switch_rate"]["pooled"]
    assert (s["hits"], s["n"], s["not_eligible"]) == (1, 3, 1) and s["value"] == pytest.approx(100 / 3)
    assert metrics["switch_rate"]["by_dataset"]["d"]["value"] == 50.0
    r = metrics["reference_accuracy"]["pooled"]
    # labelled questions: d1 YES=YES, d11 NO=NO, d2 YES!=NO, d12 YES!=NO, e4 NO=NO, e14 unreadable (dropped)
    assert (r["hits"], r["n"], r["unreadable"], r["no_label"]) == (3, 5, 1, 2)
    assert r["value"] == 60.0
    assert set(metrics["reference_accuracy"]["by_dataset"]) == {"d", "e"}


# ---------------------------------------------------------------------------------------------------------------
# the bootstrap
# ---------------------------------------------------------------------------------------------------------------
def test_original_draws_equal_the_legacy_global_stream():
    """One RandomState(42) drawing (B, n) at once, model after model, gives exactly the draws of the original:
    np.random.seed(42) once, then randint(0, n, size=n) per replicate, the stream running on across models."""
    sizes, b = [7, 1, 467, 123], 50
    np.random.seed(42)
    legacy = [np.stack([np.random.randint(0, n, size=n) for _ in range(b)]) for n in sizes]
    state = np.random.RandomState(42)
    ours = [m.original_draws(state, n, b) for n in sizes]
    for a, c in zip(legacy, ours, strict=True):
        np.testing.assert_array_equal(a, c)


def test_resampled_sums_equal_gathered_sums():
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 9, size=(40, 9))
    draws = rng.integers(0, 40, size=(300, 40))
    direct = np.stack([counts[d].sum(axis=0) for d in draws])
    np.testing.assert_array_equal(m.resampled_sums(counts, draws, chunk_cells=1000), direct)
    via_rng = m.resampled_sums(counts, rng=np.random.default_rng(9), resamples=300)
    assert via_rng.shape == (300, 9) and np.all(via_rng[:, 2] == via_rng[:, 2].astype(int))


def _original_algorithm(records_by_model, resamples=200):
    """The original's metric routine, re-written plainly: per-observation pass into per-cluster lists of 9
    counts (clusters in order of first appearance), one seed per call, randint per replicate, sums, percentiles."""
    np.random.seed(42)
    alpha = 1 - 0.95
    out = {}
    for model, records in records_by_model.items():
        clusters: dict = {}
        for key, w, wo, diff in records:
            c = clusters.setdefault(key, [0] * 9)
            c[2] += 1
            c[0] += w
            c[1] += wo
            base = 3 if diff else 6
            c[base + 2] += 1
            c[base] += w
            c[base + 1] += wo
        arr = np.array(list(clusters.values()))
        boots = []
        for _ in range(resamples):
            s = arr[np.random.randint(0, len(arr), size=len(arr))].sum(axis=0)
            acc_w, acc_wo = s[0] / s[2] * 100, s[1] / s[2] * 100
            den = 100 - acc_wo
            boots.append((acc_w - acc_wo) / den * 100 if den > 1e-6 else 0.0)
        out[model] = (np.percentile(boots, alpha / 2 * 100), np.percentile(boots, (1 - alpha / 2) * 100))
    return out


def test_original_mode_reproduces_the_original_algorithm_across_models():
    rng = np.random.default_rng(11)
    frames, records = {}, {}
    for model in ("m1", "m2"):
        n = 300
        rows = []
        for i in range(n):
            centre_row = int(rng.integers(0, 60))
            centre, cf = rng.choice(OPTIONS), rng.choice(OPTIONS)
            rows.append((f"{model}{i}", str(rng.choice(["x", "y"])), centre_row, "p", 0, centre, cf,
                         rng.choice(OPTIONS), rng.choice(OPTIONS)))  # fmt: skip
        frame = obs_frame(rows, reference=model, source_row=np.arange(n))
        frames[model] = frame
        records[model] = [((r[1], r[2]), r[7] == r[6], r[8] == r[6], r[6] != r[5]) for r in rows]
    expected = _original_algorithm(records)
    resampler = m.Resampler("original", resamples=200)
    resampler.reset()
    for model in ("m1", "m2"):  # the stream runs on from m1 to m2, as in the original
        b = m.compare(frames[model], resampler=resampler, table="t", convention="original")
        assert tuple(b["nsg_ci"]) == expected[model]


def test_ours_is_deterministic_order_free_and_independent_of_other_models():
    rng = np.random.default_rng(2)
    rows = [(f"p{i}", "d", int(rng.integers(0, 40)), "p", 0, *rng.choice(OPTIONS, size=4)) for i in range(400)]
    frame = obs_frame(rows, reference="A", source_row=np.arange(400))
    one = m.compare(frame, resampler=m.Resampler(seed=3), table="pooled")
    assert m.compare(frame, resampler=m.Resampler(seed=3), table="pooled") == one
    shuffled = frame.sample(frac=1, random_state=4)
    assert m.compare(shuffled, resampler=m.Resampler(seed=3), table="pooled")["nsg_ci"] == one["nsg_ci"]
    assert m.compare(frame, resampler=m.Resampler(seed=4), table="pooled")["nsg_ci"] != one["nsg_ci"]
    # another model in the file: our CIs of A do not move; the original's do (its stream runs on across models)
    other = obs_frame(rows[:100], reference="0-first", source_row=np.arange(100) - 1000)
    alone = m.original_tables({"A": frame}, bootstrap="ours")["averaged"]
    both = m.original_tables({"A": frame, "0-first": other}, bootstrap="ours")["averaged"]
    assert alone.set_index("model").loc["A"].equals(both.set_index("model").loc["A"])
    alone = m.original_tables({"A": frame}, bootstrap="original")["averaged"].set_index("model").loc["A"]
    both = (
        m.original_tables({"A": frame, "0-first": other}, bootstrap="original")["averaged"].set_index("model").loc["A"]
    )
    assert alone["total"] == both["total"] and alone["normalized_gain"] == both["normalized_gain"]
    assert alone["norm_gain_ci_lower"] != both["norm_gain_ci_lower"]


def test_cluster_bootstrap_coverage_on_synthetic_data():
    """95 % CIs of the with-accuracy cover the true value (70 %) in about 95 % of simulated studies with strongly
    clustered outcomes (cluster effects); an iid bootstrap would under-cover here."""
    rng = np.random.default_rng(12345)
    n_clusters, per_cluster, sims, covered = 80, 6, 200, 0
    resampler = m.Resampler(seed=0, resamples=300)
    for s in range(sims):
        p = rng.beta(1.4, 0.6, size=n_clusters)  # mean 0.7, very spread: strong within-cluster correlation
        hits = rng.random((n_clusters, per_cluster)) < p[:, None]
        rows = []
        for c in range(n_clusters):
            for j in range(per_cluster):
                rows.append((f"{c}/{j}", "d", c, "p", 0, "YES", "YES", "YES" if hits[c, j] else "NO", "NO"))
        b = m.compare(obs_frame(rows), resampler=resampler, table=f"sim{s}")
        lo, hi = b["with_accuracy_ci"]
        covered += lo <= 70.0 <= hi
    assert 0.89 <= covered / sims <= 0.99, covered


# ---------------------------------------------------------------------------------------------------------------
# everything for one reference model
# ---------------------------------------------------------------------------------------------------------------
def test_reference_metrics_layout_and_summary_rows():
    ref = reference_table({("d", 1): "YES", ("d", 2): "NO", ("e", 3): "NO", ("e", 4): "NO"})
    rows = []
    for pred in ("p", "q"):
        for pair, cf in ((("d", 1, 2), "NO"), (("e", 3, 4), "NO")):
            for cond, ans in ((m.WITH, "NO"), (m.WITHOUT, "YES"), (m.COT, "NO"), (m.NO_REFERENCE, "YES")):
                rows.append(prediction_rows("ref", pred, pair, cond, 0, ans, "YES" if pair[1] == 1 else "NO", cf))
    obs = m.observations(ref, pd.DataFrame(rows), {"ref": "f", "p": "f", "q": "g"})
    metrics = m.reference_metrics(obs, resamples=50, seed=1)
    assert set(metrics["comparisons"]) == {"explanation", "cot", "no_reference"}
    assert metrics["comparisons"]["no_reference"]["without_condition"] == m.NO_REFERENCE
    pooled = metrics["comparisons"]["explanation"]["all"]["pooled"]
    assert (pooled["n"], pooled["with_accuracy"], pooled["without_accuracy"], pooled["gain"]) == (4, 100.0, 0.0, 100.0)
    assert metrics["comparisons"]["explanation"]["exclude_same_family"]["pooled"]["n"] == 2
    assert list(metrics["comparisons"]["explanation"]["exclude_same_family"]["by_predictor"]) == ["q"]
    json.dumps(_clean(metrics))  # JSON-able
    rows = m.summary_rows(metrics)
    # 3 comparisons x 2 predictor sets x (pooled + 2 datasets + predictors: 2 for all, 1 excluding the family)
    assert len(rows) == 3 * ((1 + 2 + 2) + (1 + 2 + 1))
    first = rows[0]
    assert first["scope"] == "pooled" and first["nsg_ci_lower"] <= first["nsg_ci_upper"]
    assert "egregious_rate" in first and "switch_rate_ci_upper" in first and "reference_accuracy" in first
    lines = m.describe(metrics)
    assert lines[0].startswith("ref") and any("NSG" in line for line in lines)


def test_catalog_families(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  a: {backend: x, family: qwen}\n  b: {backend: x}\n", encoding="utf-8")
    assert m.catalog_families(path) == {"a": "qwen", "b": None}
