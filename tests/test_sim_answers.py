"""The simulatability inference stages: the original's dedupe, keys instead of list positions, repeats, conditions,
statuses, and resume through the journal."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from selfexplain.errors import InputError
from selfexplain.llm.backends import make_backend
from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.types import Completion
from selfexplain.simulatability import answers
from selfexplain.simulatability.answers import predictor_answers, questions, reference_answers
from selfexplain.simulatability.datasets import describe, load_spec
from selfexplain.simulatability.pairs import as_pairs_frame, pair_id
from tests.conftest import REPO

PROMPTS = REPO / "config" / "prompts" / "simulatability"
HEART = load_spec("heart_disease")


def _row(**values) -> dict:
    base = {
        "sex": "male",
        "cp": "4.0",
        "fbs": "false",
        "restecg": "2.0",
        "exang": "yes",
        "slope": "2.0",
        "age_group": "60+",
        "chol_level": "high",
        "trestbps_level": "high",
    }
    return {**base, **values}


ROWS = [_row(), _row(exang="no"), _row(cp="2.0"), _row(trestbps_level="normal", exang="no")]


def _eval_set() -> pd.DataFrame:
    """Pairs of four hand-made heart rows: 0 is a centre and a counterfactual, in both answer orders."""
    records = []
    for centre, other in ((0, 1), (0, 2), (1, 0), (2, 3)):
        for first in (True, False):
            records.append(
                {
                    "dataset": "heart_disease",
                    "pair_id": pair_id("heart_disease", centre, other, first),
                    "centre_row": centre,
                    "counterfactual_row": other,
                    "centre_text": describe(HEART, ROWS[centre]),
                    "counterfactual_text": describe(HEART, ROWS[other]),
                    "centre_label": "YES",
                    "counterfactual_label": "NO",
                    "answer_first": first,
                    "hamming_distance": 1,
                    "changed_features": [],
                    "generator": "hamming_ball",
                    "group_size": 5,
                }
            )
    return as_pairs_frame(records)


def _entry(name="syn", **simulatability):
    return parse_entry(
        name, {"backend": "synthetic", "model_id": f"x/{name}", "synthetic": {"simulatability": simulatability}}
    )


def test_questions_are_deduped_across_centres_and_counterfactuals():
    eval_set = _eval_set()
    table = questions(eval_set)
    # rows 0..3 in two answer orders: 8 questions for 16 (pair, side) uses
    assert len(table) == 8 and not table.duplicated(["dataset", "row", "answer_first"]).any()
    bad = eval_set.copy()
    bad.loc[0, "centre_text"] = "something else"
    with pytest.raises(InputError, match="heart_disease row 0 has two different texts"):
        questions(bad)


def test_reference_and_predictor_tables_are_keyed(tmp_path):
    eval_set = _eval_set()
    entry = _entry(explanation="truthful")
    reference = reference_answers(entry, make_backend(entry), eval_set, PROMPTS, tmp_path / "ref.jsonl", progress=False)
    assert len(reference) == 8 and (reference["answer_status"] == "ok").all()
    assert set(reference["answer"]) <= {"YES", "NO"} and reference["explanation"].notna().all()
    assert reference["factors"].map(len).gt(0).all()

    predictor = _entry("pred", predictor={"flip_rate": 0.0})
    conditions = ["with_explanation", "without_explanation", "no_reference"]
    table = predictor_answers(
        predictor,
        make_backend(predictor),
        "syn",
        eval_set,
        reference,
        PROMPTS,
        tmp_path / "p.jsonl",
        conditions,
        2,
        progress=False,
    )
    assert len(table) == len(eval_set) * 3 * 2
    assert not table.duplicated(["pair_id", "condition", "repeat"]).any()
    # each row carries the reference answers of its own pair, whatever the row order
    answers_by_key = {(r.row, r.answer_first): r.answer for r in reference.itertuples()}
    for row in table.sample(frac=1.0, random_state=0).itertuples():
        assert row.reference_centre_answer == answers_by_key[(row.centre_row, row.answer_first)]
        assert row.reference_counterfactual_answer == answers_by_key[(row.counterfactual_row, row.answer_first)]
    truthful = table[table["condition"] == "with_explanation"]
    assert (truthful["prediction"] == truthful["reference_counterfactual_answer"]).all()
    # repeats are separate requests (their own journal keys) even when the answers agree
    assert table.groupby(["pair_id", "condition"])["request_key"].nunique().eq(2).all()


def test_unreadable_centre_answers_are_skipped_and_cot_needs_thinking(tmp_path):
    eval_set = _eval_set()
    entry = _entry(explanation="truthful")
    reference = reference_answers(entry, make_backend(entry), eval_set, PROMPTS, tmp_path / "ref.jsonl", progress=False)
    reference.loc[(reference["row"] == 0) & reference["answer_first"], ["answer", "answer_status"]] = [None, "hedge"]
    predictor = _entry("pred")
    table = predictor_answers(
        predictor,
        make_backend(predictor),
        "syn",
        eval_set,
        reference,
        PROMPTS,
        tmp_path / "p.jsonl",
        ["with_explanation", "cot"],
        progress=False,
    )
    assert not ((table["centre_row"] == 0) & table["answer_first"]).any()
    assert table.attrs["skipped"] == {"centre_unreadable": 2, "no_thinking": 6}  # no thinking without `think`
    assert set(table["condition"]) == {"with_explanation"}


def test_statuses_say_why_there_is_no_answer():
    assert answers._status("ok", Completion(text=None, error="HTTP 500")) == "request_failed"
    assert answers._status("empty", Completion(text="", reasoning="let me think about")) == "incomplete_thinking"
    assert answers._status("empty", Completion(text="")) == "empty"


def test_a_rerun_reads_the_journal(tmp_path):
    eval_set = _eval_set()
    entry = _entry(explanation="truthful")
    journal = tmp_path / "ref.jsonl"
    first = reference_answers(entry, make_backend(entry), eval_set, PROMPTS, journal, progress=False)
    lines = journal.read_text().splitlines()
    again = reference_answers(entry, make_backend(entry), eval_set, PROMPTS, journal, progress=False)
    assert journal.read_text().splitlines() == lines
    pd.testing.assert_frame_equal(first.drop(columns="latency_s"), again.drop(columns="latency_s"))
    assert {json.loads(line)["key"] for line in lines} == set(first["request_key"])


def test_run_stage_writes_each_stage_with_its_provenance(tmp_path):
    """The one file-level step of the three inference rules: the table is the stage's own function's, and the
    provenance names the model, the stage, its settings, what was skipped and every template it rendered."""
    from selfexplain.io import read_provenance, read_table, write_parquet
    from selfexplain.simulatability.steps import run_stage
    from selfexplain.simulatability.testability import testability_scores

    def entry_json(name: str, **simulatability) -> str:
        return json.dumps(
            {"backend": "synthetic", "model_id": f"x/{name}", "synthetic": {"simulatability": simulatability}}
        )

    write_parquet(_eval_set(), tmp_path / "eval_set.parquet")
    inputs = {"eval_set": tmp_path / "eval_set.parquet", "reference": tmp_path / "reference.parquet"}

    def params(model: str, journal: str, **extra) -> dict:
        return {"model": model, "prompt_dir": PROMPTS, "journal": tmp_path / journal, "progress": False, **extra}

    ref_json = entry_json("ref", explanation="truthful")
    reference = run_stage(
        "sim_reference", {"reference": "ref"}, inputs, params(ref_json, "ref.jsonl"), tmp_path / "reference.parquet"
    )
    conditions = ["with_explanation", "cot"]
    wildcards = {"reference": "ref", "predictor": "pred"}
    predictions = run_stage(
        "sim_predict",
        wildcards,
        inputs,
        params(entry_json("pred"), "pred.jsonl", conditions=conditions, repeats=2),
        tmp_path / "predictions.parquet",
    )
    rater_json = entry_json("pred", testability={"misjudge_rate": 0.0})
    ratings = run_stage("sim_testability", wildcards, inputs, params(rater_json, "t.jsonl"), tmp_path / "t.parquet")

    # each table is the stage function's (the journals answer the second asking), and is what was written
    entry = _entry("ref", explanation="truthful")
    again = reference_answers(entry, make_backend(entry), _eval_set(), PROMPTS, tmp_path / "ref.jsonl", progress=False)
    pd.testing.assert_frame_equal(reference.drop(columns="latency_s"), again.drop(columns="latency_s"))
    rater = _entry("pred", testability={"misjudge_rate": 0.0})
    rated = testability_scores(
        rater, make_backend(rater), "ref", _eval_set(), again, PROMPTS, tmp_path / "t.jsonl", False
    )
    pd.testing.assert_series_equal(ratings["score"], rated["score"])
    for table, name in ((reference, "reference"), (predictions, "predictions"), (ratings, "t")):
        pd.testing.assert_frame_equal(read_table(tmp_path / f"{name}.parquet"), table, check_dtype=False)

    ref_prov = read_provenance(tmp_path / "reference.parquet")
    assert ref_prov["stage"] == "sim_reference" and ref_prov["model"] == "ref"
    assert ref_prov["eval_set"] == str(tmp_path / "eval_set.parquet") and "skipped" not in ref_prov
    assert set(ref_prov["templates"]) == {
        "reference_answer_first/heart_disease",
        "reference_answer_last/heart_disease",
    }
    pred_prov = read_provenance(tmp_path / "predictions.parquet")
    assert (pred_prov["stage"], pred_prov["model"], pred_prov["reference"]) == ("sim_predict", "pred", "ref")
    assert pred_prov["conditions"] == conditions and pred_prov["repeats"] == 2
    assert pred_prov["skipped"] == predictions.attrs["skipped"] == {"centre_unreadable": 0, "no_thinking": 8}
    assert list(pred_prov)[-5:] == ["reference", "conditions", "repeats", "skipped", "templates"]
    assert set(pred_prov["templates"]) == {"predictor_with_explanation/heart_disease", "predictor_cot/heart_disease"}
    t_prov = read_provenance(tmp_path / "t.parquet")
    assert (t_prov["stage"], t_prov["reference"], list(t_prov["templates"])) == (
        "sim_testability",
        "ref",
        ["testability/heart_disease"],
    )
    assert t_prov["skipped"] == {"centre_unreadable": 0, "no_explanation": 0}
    assert t_prov["templates"]["testability/heart_disease"]["sha256"]
    with pytest.raises(ValueError, match="unknown simulatability stage 'sim_metrics'"):
        run_stage("sim_metrics", wildcards, inputs, params(ref_json, "x.jsonl"), tmp_path / "x.parquet")
