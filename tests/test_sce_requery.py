"""verify: requery — counterfactuals asked again in a fresh chat, scored beside lookup, and the two compared."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from selfexplain.config import load_yaml, validate
from selfexplain.errors import ConfigError, InputError
from selfexplain.llm.backends import make_backend
from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.synthetic import SyntheticModel
from selfexplain.llm.types import Completion
from selfexplain.prompts import load_template
from selfexplain.sce import elicit
from selfexplain.sce.config import verify_methods
from selfexplain.sce.requery import describe_counterfactual, render_value, requery
from selfexplain.sce.scoring import cohen_kappa, mean_ci, requery_columns, score_table
from selfexplain.sce.steps import summarise_runs
from selfexplain.tabular.features import load_dataset_spec, parse_dataset_spec
from tests.conftest import REPO

PROMPTS = REPO / "config" / "prompts" / "sce"
LINE = parse_dataset_spec(
    {
        "name": "line",
        "options": ["No", "Yes"],
        "features": [
            {"column": "x", "key": "x", "kind": "integer", "levels": [0, 1, 2, 3, 4, 5], "description": "- x: {label}"}
        ],
    }
)


# -- pure pieces -------------------------------------------------------------------------------------------------
def test_cohen_kappa_against_hand_computed_values():
    # p_o = 3/4; p_a = 1/2, p_b = 1/4; p_e = 1/2*1/4 + 1/2*3/4 = 1/2; kappa = (3/4 - 1/2) / (1/2) = 1/2
    assert cohen_kappa(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])) == pytest.approx(0.5)
    assert cohen_kappa(np.array([1, 0, 1, 0]), np.array([1, 0, 1, 0])) == pytest.approx(1.0)
    # complete disagreement with balanced margins: p_o = 0, p_e = 1/2 -> -1
    assert cohen_kappa(np.array([1, 0]), np.array([0, 1])) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa(np.array([1, 1]), np.array([1, 1])))  # p_e = 1: undefined
    assert math.isnan(cohen_kappa(np.array([]), np.array([])))


def test_mean_ci_bounds_and_degenerate_cases():
    assert mean_ci(np.array([1.0, 1.0, np.nan]), resamples=50) == [100.0, 100.0]
    low, high = mean_ci(np.array([0.0, 1.0] * 50), resamples=500, seed=3)
    assert 30 < low < 50 < high < 70
    assert all(math.isnan(x) for x in mean_ci(np.array([1.0]), resamples=0))
    assert all(math.isnan(x) for x in mean_ci(np.array([np.nan]), resamples=10))


def test_render_counterfactual_on_and_off_the_grid():
    income = load_dataset_spec("income")
    on = {"AGEP": 40.0, "SCHL": 22.0}
    assert describe_counterfactual(income, on) == income.describe(on)
    assert describe_counterfactual(income, {"AGEP": 40.5, "SCHL": 22.0}).startswith("- The age is: 40.5 years old.")
    assert describe_counterfactual(income, {"AGEP": 120.0, "SCHL": 22.0}).startswith("- The age is: 120 years old.")
    # a worded feature between its levels cannot be shown; nor can a missing value
    assert describe_counterfactual(income, {"AGEP": 40.0, "SCHL": 21.5}) is None
    assert describe_counterfactual(income, {"AGEP": math.nan, "SCHL": 22.0}) is None
    heart = load_dataset_spec("heart_disease")
    assert render_value(heart.feature("SEX"), 1.0) == "- The sex is: Male."
    assert render_value(heart.feature("SEX"), 3.0) is None


def _scored(answers, cf_x, requery_rows):
    """Scores of the LINE dataset with first answers `answers`, counterfactual x values and a requery table."""
    table = pd.DataFrame(
        {
            "row_id": range(len(answers)),
            "answer": answers,
            "target": ["Yes" if a == "No" else "No" for a in answers],
            "cf_status": "ok",
            "cf_x": cf_x,
        }
    )
    from selfexplain.tabular.grids import build_grid

    rows, metrics = score_table(LINE, build_grid(LINE), table, resamples=0, requery=requery_rows)
    return rows, metrics


def test_requery_scores_against_a_hand_made_table():
    # grid answers by row 0..5: No No No Yes Yes Yes (boundary between 2 and 3)
    answers = ["No", "No", "No", "Yes", "Yes", "Yes"]
    cf_x = [3.0, 2.5, 1.0, 2.0, np.nan, 5.0]
    # lookup: row0 -> x=3 (Yes) valid; row1 off grid (not kept); row2 -> x=1 (No) invalid; row3 -> x=2 (No) valid;
    #         row4 unreadable; row5 -> x=5 (Yes) invalid.  lookup validity over kept rows 0,2,3,5 = 2/4
    # requery (row 4 not asked): row0 "Yes" (valid), row1 "Yes" (valid, off grid), row2 "Yes" (valid: the model
    #   changed its mind), row3 unreadable, row5 "Yes" (invalid)
    asked = pd.DataFrame(
        {
            "row_id": [0, 1, 2, 3, 5],
            "requery_on_grid": [True, False, True, True, True],
            "requery_answer": pd.Series(["Yes", "Yes", "Yes", None, "Yes"], dtype=object),
            "requery_status": ["ok", "ok", "ok", "no_json", "ok"],
        }
    )
    rows, m = _scored(answers, cf_x, asked)
    assert m["validity_percent"] == 50
    assert list(rows["requery_status"]) == ["ok", "ok", "ok", "no_json", "not_asked", "ok"]
    np.testing.assert_array_equal(rows["requery_valid"], [1, 1, 1, np.nan, np.nan, 0])
    np.testing.assert_array_equal(rows["requery_strict_valid"], [1, 1, 1, 0, 0, 0])
    assert m["validity_requery_percent"] == 75  # 3 of the 4 judged rows
    assert m["strict_validity_requery_percent"] == 50
    assert m["validity_requery_off_grid_percent"] == 100
    assert (m["n_requery"], m["n_requery_judged"], m["n_requery_unreadable"]) == (5, 4, 1)
    assert (m["n_requery_not_asked"], m["n_requery_off_grid"]) == (1, 1)
    # both judge rows 0, 2, 5: lookup 1 0 0, requery 1 1 0 -> agree on 2 of 3
    assert m["n_verify_both"] == 3
    assert m["verify_agreement_percent"] == pytest.approx(200 / 3)
    # p_o = 2/3; p_requery = 2/3, p_lookup = 1/3; p_e = 2/9 + 2/9 = 4/9; kappa = (2/3 - 4/9) / (5/9) = 2/5
    assert m["verify_kappa"] == pytest.approx(0.4)
    # lookup numbers are the same with and without a requery table
    _, without = _scored(answers, cf_x, None)
    assert "validity_requery_percent" not in without
    for key, value in without.items():
        same = value == m[key] or (isinstance(value, float) and math.isnan(value) and math.isnan(m[key]))
        assert same or key == "ci95", key


def test_requery_table_errors_name_the_problem():
    spec_rows = {"row_id": np.arange(3), "answer": np.array(["No", "No", "Yes"], dtype=object)}
    with pytest.raises(InputError, match="missing column"):
        requery_columns(LINE, spec_rows, {"row_id": [0]})
    bad = {"row_id": [7], "requery_answer": ["No"], "requery_status": ["ok"], "requery_on_grid": [True]}
    with pytest.raises(InputError, match="not rows of the counterfactuals table"):
        requery_columns(LINE, spec_rows, bad)


def test_verify_setting_forms():
    assert verify_methods({}) == ["lookup"]
    assert verify_methods({"verify": "lookup"}) == ["lookup"]
    assert verify_methods({"verify": "requery"}) == ["lookup", "requery"]
    assert verify_methods({"verify": ["requery", "lookup"]}) == ["lookup", "requery"]
    with pytest.raises(ConfigError, match=r"config\.sce\.verify"):
        verify_methods({"verify": ["bogus"]})
    schema = load_yaml(REPO / "workflow" / "schemas" / "sce.schema.yaml")
    assert validate({}, schema, root="config.sce")["verify"] == ["lookup"]
    for ok in ("lookup", "requery", ["lookup", "requery"]):
        validate({"verify": ok}, schema, root="config.sce")
    for bad in ("both", ["lookup", "lookup"], []):
        with pytest.raises(ConfigError, match=r"config\.sce\.verify"):
            validate({"verify": bad}, schema, root="config.sce")


# -- with the synthetic respondent ---------------------------------------------------------------------------------
def test_synthetic_respondent_answers_off_grid_records_by_its_rule():
    spec = load_dataset_spec("income")
    model = SyntheticModel({"sce": {"counterfactual": "exact"}})
    # income rule: 0.35 * (age - 17) / 79 + 0.65 * (SCHL - 1) / 23 >= 0.62; at SCHL 21 the age term must be
    # >= 0.62 - 0.65 * 20/23 = 0.0548 -> age >= 17 + 79 * 0.0548 / 0.35 = 29.4
    for age, expected in ((29.0, "Below $50,000"), (29.5, "Above $50,000"), (200.0, "Above $50,000")):
        record = describe_counterfactual(spec, {"AGEP": age, "SCHL": 21.0})
        assert json.loads(model.respond([{"role": "user", "content": record}])) == {"answer": expected}


def _runs(tmp_path, noise, dataset="income", backend_wrapper=None):
    entry = parse_entry(
        "exact",
        {
            "backend": "synthetic",
            "model_id": "test/exact",
            "synthetic": {"sce": {"counterfactual": "exact", "noise": noise}},
        },
    )
    spec = load_dataset_spec(dataset)
    from selfexplain.tabular.grids import build_grid

    grid = build_grid(spec)
    first = load_template(PROMPTS, "first_pass", dataset)
    followup = load_template(PROMPTS, "minimal", dataset)
    backend = make_backend(entry)
    predictions = elicit.predict(entry, backend, spec, grid, first, tmp_path / "p.jsonl", progress=False)
    table = elicit.elicit(entry, backend, spec, predictions, first, followup, tmp_path / "e.jsonl", progress=False)
    again = requery(
        entry,
        backend_wrapper(backend) if backend_wrapper else backend,
        spec,
        table,
        first,
        tmp_path / "r.jsonl",
        progress=False,
    )
    rows, metrics = score_table(spec, grid, table, resamples=100, requery=again)
    return predictions, again, rows, metrics


def test_requery_equals_lookup_for_the_exact_model_on_the_grid(tmp_path):
    predictions, again, rows, m = _runs(tmp_path, {})
    assert len(again) == m["n_requery"] == m["n_rows"] == 1920
    assert again["requery_on_grid"].all() and (again["requery_status"] == "ok").all()
    # a fresh chat: repeat 1 of the first-pass chat, so its own journal key
    assert not set(again["requery_request_key"]) & set(predictions["first_request_key"])
    np.testing.assert_array_equal(rows["requery_valid"], rows["valid"])
    assert m["validity_requery_percent"] == m["validity_percent"] == 100
    assert m["verify_agreement_percent"] == 100 and m["n_verify_both"] == 1920
    assert m["ci95"]["validity_requery_percent"] == [100.0, 100.0]


def test_requery_judges_off_grid_counterfactuals_that_lookup_drops(tmp_path):
    _, again, rows, m = _runs(tmp_path, {"off_grid": 0.3})
    off = ~again["requery_on_grid"]
    assert m["n_requery_off_grid"] == off.sum() > 400
    assert m["failures"]["counterfactual_off_grid"] == off.sum()
    # lookup keeps only the on-grid rows; requery judges the off-grid ones too, where moving a feature past its
    # level sometimes crosses the boundary back
    assert m["n_kept"] == 1920 - off.sum()
    assert m["n_requery_judged"] == 1920
    assert m["validity_percent"] == 100
    assert 0 < m["validity_requery_off_grid_percent"] < 100
    assert m["validity_requery_percent"] < 100
    on_grid = rows["requery_on_grid"].astype(bool).to_numpy()
    np.testing.assert_array_equal(rows["requery_valid"][on_grid], rows["valid"][on_grid])
    assert m["verify_agreement_percent"] == 100 and m["n_verify_both"] == m["n_kept"]


def _flips(key: str) -> bool:
    return hashlib.sha256(key.encode()).digest()[0] < 256 // 5


class _Sampled:
    """A backend whose re-asked answers are noisy, as a model sampled at temperature > 0: a fifth of the requery
    requests (decided by their key) get the other label."""

    def __init__(self, inner):
        self.inner = inner

    def preflight(self):
        self.inner.preflight()

    def complete(self, requests):
        for i, completion in self.inner.complete(requests):
            if requests[i].identity.get("repeat") == 1 and _flips(requests[i].key) and completion.text:
                flipped = {"Below $50,000": "Above $50,000", "Above $50,000": "Below $50,000"}
                answer = json.loads(completion.text)["answer"]
                completion = Completion(text=json.dumps({"answer": flipped[answer]}), finish_reason="stop")
            yield i, completion


def test_noisy_answers_make_requery_differ_from_lookup(tmp_path):
    _, again, rows, m = _runs(tmp_path, {}, backend_wrapper=_Sampled)
    disagree = rows["requery_valid"] != rows["valid"]
    # exactly the rows whose request was flipped (counterfactuals naming one point share one request)
    flipped = {r for r, k in zip(again["row_id"], again["requery_request_key"], strict=True) if _flips(k)}
    assert set(rows["row_id"][disagree]) == flipped
    assert 0.1 < disagree.mean() < 0.5
    assert m["validity_requery_percent"] == pytest.approx(100 * (1 - disagree.mean()))
    assert m["verify_agreement_percent"] == pytest.approx(100 * (1 - disagree.mean()))
    # lookup is constant (all valid): p_e = p_o, so kappa is 0 however often they agree
    assert m["validity_percent"] == 100 and m["verify_kappa"] == pytest.approx(0.0)
    low, high = m["ci95"]["validity_requery_percent"]
    assert low < m["validity_requery_percent"] < high


def test_summary_has_requery_columns_beside_lookup(tmp_path):
    _, _, _, m = _runs(tmp_path, {"off_grid": 0.1})
    with_rq = tmp_path / "a.json"
    with_rq.write_text(json.dumps(m))
    lookup_only = tmp_path / "b.json"
    lookup_only.write_text(json.dumps({k: v for k, v in m.items() if "requery" not in k and "verify" not in k}))
    frame = summarise_runs(
        [str(with_rq), str(lookup_only)],
        [("exact", "income", "minimal"), ("x", "income", "standard")],
        tmp_path / "summary.csv",
    )
    row = frame.iloc[0]
    assert row["validity_requery_percent"] == m["validity_requery_percent"]
    assert row["validity_requery_ci_low"] <= row["validity_requery_percent"] <= row["validity_requery_ci_high"]
    assert row["n_requery_unreadable"] == m["n_requery_unreadable"]
    assert row["verify_agreement_percent"] == 100
    assert pd.isna(frame.iloc[1]["validity_requery_percent"]) and pd.isna(frame.iloc[1]["n_requery"])
    assert frame.iloc[1]["n_counterfactual_off_grid"] == m["failures"]["counterfactual_off_grid"]
