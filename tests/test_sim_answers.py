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
