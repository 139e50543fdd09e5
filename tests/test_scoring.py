"""Scoring formulas against a tiny hand-computed example."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from selfexplain.errors import InputError
from selfexplain.sce.scoring import (
    ORIGINAL_METRICS,
    bootstrap_ci,
    failure_counts,
    score_columns_summary,
    score_table,
)
from selfexplain.tabular.features import parse_dataset_spec
from selfexplain.tabular.grids import build_grid
from tests.conftest import age_sex_spec

LINE = parse_dataset_spec(
    {
        "name": "line",
        "options": ["No", "Yes"],
        "features": [
            {"column": "x", "key": "x", "kind": "integer", "levels": [0, 1, 2, 3, 4, 5], "description": "- x: {label}"}
        ],
    }
)


def _table(answers, cfs, targets=None):
    if targets is None:
        targets = ["Yes" if a == "No" else "No" for a in answers]
    return pd.DataFrame(
        {
            "row_id": range(len(answers)),
            "answer": answers,
            "answer_status": ["ok" if a else "no_json" for a in answers],
            "target": targets,
            "target_source": "complement",
            "cf_status": ["ok" if not math.isnan(c) else "no_json" for c in cfs],
            "cf_x": cfs,
            "cf_extra_keys": "",
        }
    )


def test_hand_computed_example():
    # Labels: x = 0, 1, 2 "No"; x = 3, 4 "Yes"; x = 5 unreadable. Gower on one feature = |dx| / 5.
    table = _table(
        ["No", "No", "No", "Yes", "Yes", None],
        [3.0, 4.0, 2.0, 2.5, math.nan, 1.0],
        ["Yes", "Yes", "Yes", "No", "No", "Yes"],
    )
    rows, m = score_table(LINE, build_grid(LINE), table, resamples=0)
    # row 0: cf 3 = x_min, valid, RCF 0 | row 1: cf 4, d 0.6 vs d_min 0.4 -> RCF 0.5, RCF_A 0.2
    # row 2: cf 2 unchanged -> invalid, 0.2 from the boundary -> ICF 1, ICF_A 0.2
    # row 3: off grid | row 4: unreadable counterfactual | row 5: unreadable first answer -> all dropped
    assert rows["kept"].tolist() == [True, True, True, False, False, False]
    assert rows["failure"].tolist() == [
        "",
        "",
        "",
        "counterfactual_off_grid",
        "counterfactual_unreadable",
        "first_answer_unreadable",
    ]
    assert m["validity_percent"] == pytest.approx(200 / 3)
    assert m["mean_distance"] == pytest.approx(0.4)
    assert m["mean_RCF"] == pytest.approx(0.25) and m["median_RCF"] == pytest.approx(0.25)
    assert m["mean_RCF_A"] == pytest.approx(0.1) and m["median_RCF_A"] == pytest.approx(0.1)
    assert m["mean_ICF"] == pytest.approx(1.0) and m["median_ICF"] == pytest.approx(1.0)
    assert m["mean_ICF_A"] == pytest.approx(0.2) and m["median_ICF_A"] == pytest.approx(0.2)
    assert m["total_minimality"] == pytest.approx(2 / 3 * 0.25 + 1 / 3 * 1.0)
    assert m["total_minimality_A"] == pytest.approx(2 / 3 * 0.1 + 1 / 3 * 0.2)
    assert m["exact_match"] == pytest.approx(100 / 3)
    # strict: rows with a readable first answer (0..4); off-grid and unreadable count as invalid
    assert m["strict_validity_percent"] == pytest.approx(40.0)
    assert m["failures"]["counterfactual_off_grid"] == 1
    assert m["failures"]["counterfactual_unreadable"] == 1
    assert m["failures"]["first_answer_unreadable"] == 1
    assert m["n_kept"] == 3 and m["n_rows"] == 6
    assert set(ORIGINAL_METRICS) <= set(m)


def test_total_minimality_is_nan_without_valid_counterfactuals_as_in_the_original():
    table = _table(["No", "No", "No", "Yes", "Yes", "Yes"], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    _, m = score_table(LINE, build_grid(LINE), table, resamples=0)
    assert m["validity_percent"] == 0
    assert math.isnan(m["mean_RCF_A"]) and m["mean_ICF_A"] > 0
    # 0 * NaN is NaN: the original reports no total minimality when nothing is valid
    assert math.isnan(m["total_minimality"]) and math.isnan(m["total_minimality_A"])


def test_ici_nan_at_full_validity():
    table = _table(["No", "No", "No", "Yes", "Yes", "Yes"], [3.0, 3.0, 3.0, 2.0, 2.0, 2.0])
    _, m = score_table(LINE, build_grid(LINE), table, resamples=0)
    assert m["validity_percent"] == 100
    assert math.isnan(m["mean_ICF"])
    # every counterfactual is its row's x_min (3 for the "No" rows, 2 for the "Yes" rows)
    assert m["exact_match"] == 100


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"kept": True, "valid": rng.integers(0, 2, 400).astype(float), "RCF_A": rng.random(400)})
    a = bootstrap_ci(rows, resamples=300, seed=7)
    b = bootstrap_ci(rows, resamples=300, seed=7)
    assert a == b
    estimate = 100 * rows["valid"].mean()
    assert a["validity_percent"][0] < estimate < a["validity_percent"][1]


def test_missing_column_is_named():
    table = _table(["No"] * 6, [1.0] * 6).drop(columns=["cf_x"])
    with pytest.raises(InputError, match=r"cf_x"):
        score_table(LINE, build_grid(LINE), table, source="mine.parquet")


def test_repeated_row_ids_are_rejected():
    table = _table(["No"] * 6, [1.0] * 6)
    table.loc[1, "row_id"] = 0
    with pytest.raises(InputError, match="repeats"):
        score_table(LINE, build_grid(LINE), table)


def test_named_arrays_score_like_the_dataframe():
    # the pandas-free path (what one-step scoring of an original results file uses) gives the same rows and metrics
    table = _table(
        ["No", "No", "No", "Yes", "Yes", None],
        [3.0, 4.0, 2.0, 2.5, math.nan, 1.0],
        ["Yes", "Yes", "Yes", "No", "No", "Yes"],
    )
    frame_rows, frame_metrics = score_table(LINE, build_grid(LINE), table, resamples=50)
    columns = {c: table[c].to_numpy(dtype=object if table[c].dtype != float else float) for c in table.columns}
    array_rows, array_metrics = score_columns_summary(LINE, columns, resamples=50)
    assert list(array_rows) == list(frame_rows.columns)
    pd.testing.assert_frame_equal(pd.DataFrame(array_rows), frame_rows)
    assert json.dumps(array_metrics, sort_keys=True) == json.dumps(frame_metrics, sort_keys=True)


def test_failure_counts_most_frequent_status_first():
    rows = {
        "failure": np.array(["", "counterfactual_unreadable", "", "", ""], dtype=object),
        "cf_status": np.array(["ok", "no_json", "extra_keys", "extra_keys", None], dtype=object),
    }
    counts = failure_counts(rows)
    assert counts["counterfactual_unreadable"] == 1 and counts["first_answer_unreadable"] == 0
    assert [k for k in counts if k.startswith("cf_status_")] == ["cf_status_extra_keys", "cf_status_no_json"]
    assert counts["cf_status_extra_keys"] == 2


AGE_SEX = age_sex_spec()


def test_original_convention_scores_a_sex_flip_as_two_by_hand():
    # Grid (age, sex): ids 0 (30,F) 1 (30,M) 2 (40,F) 3 (40,M) 4 (50,F) 5 (50,M) 6 (60,F) 7 (60,M).
    # "Yes" at ages >= 50 and at (40, M). Row 2 = (40, F) answers "No"; its counterfactual (40, M) is valid.
    # L1 with age MAD 10: ours costs the sex flip 1 and (50, F) 1: d = d_min = 1 -> RCF 0 (exact match).
    # The original's L1 costs the flip |2 - 1| / 0.5 = 2 while x_min = (50, F) stays at 1: RCF 1, RCF_A 1.
    answers = ["No", "No", "No", "Yes", "Yes", "Yes", "Yes", "Yes"]
    table = pd.DataFrame(
        {
            "row_id": range(8),
            "answer": answers,
            "target": ["Yes" if a == "No" else "No" for a in answers],
            "cf_status": "ok",
            "cf_age": [40.0, 40.0, 40.0, 30.0, 30.0, 30.0, 30.0, 30.0],
            "cf_sex": [1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 2.0, 1.0],
            "cf_extra_keys": "",
        }
    )
    grid = build_grid(AGE_SEX)
    ours, _ = score_table(AGE_SEX, grid, table, "l1", resamples=0)
    orig, _ = score_table(AGE_SEX, grid, table, "l1", resamples=0, convention="original")
    assert (ours.loc[2, "distance"], ours.loc[2, "distance_to_min"], ours.loc[2, "RCF"]) == (1.0, 1.0, 0.0)
    assert (orig.loc[2, "distance"], orig.loc[2, "distance_to_min"], orig.loc[2, "RCF"]) == (2.0, 1.0, 1.0)
    assert orig.loc[2, "min_row_id"] == 4 and orig.loc[2, "RCF_A"] == 1.0
    # row 0 = (30, F) -> (40, M). Ours: 1 + 1 = 2, tied with (50, F) at 2; the first in grid order, (40, M), is
    # x_min, so RCF 0. The original: 1 + 2 = 3 against x_min (50, F) at 2: RCF 3 / 2 - 1 = 0.5.
    assert (ours.loc[0, "distance"], ours.loc[0, "min_row_id"], ours.loc[0, "RCF"]) == (2.0, 3, 0.0)
    assert (orig.loc[0, "distance"], orig.loc[0, "min_row_id"], orig.loc[0, "RCF"]) == (3.0, 4, 0.5)
