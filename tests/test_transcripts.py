"""Transcripts: the page escapes model text and has its filters, flagged cases are always chosen (up to the cap),
every file has one schema, one pandas call reads them all, and the sce rows' rebuilt prompts are what was sent."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from selfexplain import transcripts as tr
from tests.conftest import REPO

EVIL = '<script>alert("pwned")</script> & <b>bold</b>'


def _turn(case: str, **extra) -> dict:
    base = {
        "study": "sce",
        "run": "m__g__p",
        "case": case,
        "sampled_because": "random",
        "failure": False,
        "egregious": False,
        "invalid": False,
        "chat": case,
        "turn": 1,
        "stage": "first_pass",
        "model": "m",
        "dataset": "g",
        "prompt": "Question?",
        "prompt_verified": True,
        "answer": "YES",
        "parse_status": "ok",
    }
    return {**base, **extra}


def _cases(n: int, failures=(), egregious=(), invalid=()) -> pd.DataFrame:
    names = [f"c{i:04d}" for i in range(n)]
    return pd.DataFrame(
        {
            "case": names,
            "failure": [i in failures for i in range(n)],
            "egregious": [i in egregious for i in range(n)],
            "invalid": [i in invalid for i in range(n)],
        }
    )


# -- page ---------------------------------------------------------------------------------------------------------
def test_page_escapes_model_text_everywhere():
    table = tr.frame_of(
        [
            _turn(
                "c1",
                answer=EVIL,
                thinking=EVIL,
                prompt=EVIL,
                parsed=EVIL,
                score=EVIL,
                error=EVIL,
                system=EVIL,
                model="<img src=x onerror=alert(1)>",
                sampled_because="failure",
                failure=True,
                parse_status="<i>bad</i>",
            )
        ]
    )
    page = tr.render_page(table, "<title>", {"failure": 1}, n_cases=1)
    assert "<script>alert" not in page and "<b>bold</b>" not in page and "<img" not in page and "<i>bad" not in page
    assert page.count("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;") == 7
    # the only script element is the page's own filter code; nothing is loaded from elsewhere
    assert len(re.findall(r"<script\b", page)) == 1
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)


def test_page_has_the_four_filters_and_flags_on_each_case():
    table = tr.frame_of(
        [
            _turn("a", failure=True, sampled_because="failure"),
            _turn("b", invalid=True, sampled_because="invalid,random"),
            _turn("c", egregious=True, study="simulatability", sampled_because="egregious"),
            _turn("d"),
        ]
    )
    page = tr.render_page(table, "t", {"failure": 3, "egregious": 1, "invalid": 1}, n_cases=10)
    for flag in ("all", "failure", "egregious", "invalid"):
        assert f'data-filter="{flag}"' in page and f"show('{flag}')" in page
    assert "failures (1 of 3)" in page and "all (4)" in page
    sections = re.findall(r'<section class="case" ([^>]*)>', page)
    assert sections == [
        'data-failure="1" data-egregious="0" data-invalid="0"',
        'data-failure="0" data-egregious="0" data-invalid="1"',
        'data-failure="0" data-egregious="1" data-invalid="0"',
        'data-failure="0" data-egregious="0" data-invalid="0"',
    ]
    assert "function show(flag)" in page and "4 of 10 cases shown" in page


# -- choice of cases ------------------------------------------------------------------------------------------------
def test_every_flagged_case_is_chosen_below_the_cap():
    cases = _cases(1000, failures=range(0, 300, 10), egregious=(5, 6), invalid=range(500, 520))
    reasons = tr.choose_cases(cases, sample=5, max_flagged=100, seed=1)
    failures = {f"c{i:04d}" for i in range(0, 300, 10)}
    assert failures <= set(reasons.index)
    assert {"c0005", "c0006"} <= set(reasons.index)
    assert {f"c{i:04d}" for i in range(500, 520)} <= set(reasons.index)
    assert sum("random" in r for r in reasons) == 5
    assert len(reasons) <= 30 + 2 + 20 + 5
    assert all("failure" in reasons[c] for c in failures)


def test_the_cap_bounds_each_flag_and_the_draw_is_seeded_and_order_free():
    cases = _cases(400, failures=range(200))
    reasons = tr.choose_cases(cases, sample=0, max_flagged=10, seed=3)
    assert len(reasons) == 10 and set(reasons) == {"failure"}
    shuffled = cases.sample(frac=1, random_state=7)
    assert tr.choose_cases(shuffled, sample=0, max_flagged=10, seed=3).equals(reasons)
    assert not tr.choose_cases(cases, sample=0, max_flagged=10, seed=4).equals(reasons)
    assert tr.choose_cases(cases, sample=10_000, max_flagged=0, seed=0).size == 400  # sample larger than the run


def test_select_keeps_all_turns_of_chosen_cases_in_order():
    turns = tr.frame_of(
        [_turn(f"c{i:04d}", turn=t, failure=i == 3, chat=f"c{i:04d}") for i in range(6) for t in (2, 1)]
    )
    table = tr.select(turns, _cases(6, failures=(3,)), sample=1, max_flagged=5, seed=0)
    assert set(table["case"]) >= {"c0003"}
    assert table.groupby("case")["turn"].apply(list).map(lambda t: t == [1, 2]).all()
    assert table.loc[table["case"] == "c0003", "sampled_because"].str.contains("failure").all()


# -- schema and the one pandas call -----------------------------------------------------------------------------------
def test_files_share_one_schema_and_one_call_reads_them(tmp_path):
    sce = tr.frame_of([_turn("x", valid=1.0, distance=0.25, rcf_a=0.0), _turn("y", turn=2)])
    sim = tr.frame_of(
        [
            _turn("p", study="simulatability", run="ref", stage="predictor", condition="cot", correct=True),
            _turn("p", study="simulatability", run="ref", chat="q", correct=None, answer=None),
        ]
    )
    prov = {"stage": "test"}
    tr.write_run(sce, tmp_path / "transcripts/sce/a.parquet", tmp_path / "report/sce/a.html", "a", {}, 2, prov)
    tr.write_run(sim, tmp_path / "transcripts/simulatability/r.parquet", tmp_path / "report/r.html", "r", {}, 1, prov)
    for path in (tmp_path / "transcripts").rglob("*.parquet"):
        assert pq.read_schema(path).remove_metadata().equals(tr.SCHEMA)
    everything = pd.read_parquet(tmp_path / "transcripts")
    assert list(everything.columns) == list(tr.COLUMNS) and len(everything) == 4
    assert everything["study"].value_counts().to_dict() == {"sce": 2, "simulatability": 2}
    one = pd.read_parquet(tmp_path / "transcripts/sce/a.parquet")
    assert one["valid"].tolist()[0] == 1.0 and pd.isna(one["valid"].tolist()[1])
    assert one["failure"].dtype == "boolean" and one["turn"].tolist() == [1, 2]
    assert (tmp_path / "report/sce/a.html").read_text().startswith("<!DOCTYPE html>")


def test_frame_of_types_all_null_columns():
    frame = tr.frame_of([_turn("a")])
    assert frame["correct"].dtype == "boolean" and frame["distance"].dtype == "Float64"
    assert frame["condition"].dtype == "string" and frame["condition"].isna().all()


# -- sce rows: the rebuilt prompts are what was sent -------------------------------------------------------------------
@pytest.fixture(scope="module")
def sce_run(tmp_path_factory):
    from selfexplain.llm.backends import make_backend
    from selfexplain.llm.catalog import parse_entry
    from selfexplain.prompts import load_template
    from selfexplain.sce import elicit
    from selfexplain.sce.scoring import score_table
    from selfexplain.tabular.features import load_dataset_spec
    from selfexplain.tabular.grids import build_grid

    tmp = tmp_path_factory.mktemp("sce")
    entry = parse_entry(
        "timid",
        {
            "backend": "synthetic",
            "model_id": "test/timid",
            "system_prompt": "Be brief.",
            "synthetic": {"sce": {"counterfactual": "timid", "noise": {"malformed_json": 0.05}}},
        },
    )
    spec = load_dataset_spec("income")
    grid = build_grid(spec)
    prompts = REPO / "config/prompts/sce"
    first, followup = load_template(prompts, "first_pass", "income"), load_template(prompts, "minimal", "income")
    backend = make_backend(entry)
    predictions = elicit.predict(entry, backend, spec, grid, first, tmp / "p.jsonl", progress=False)
    table = elicit.elicit(entry, backend, spec, predictions, first, followup, tmp / "e.jsonl", progress=False)
    scores, _ = score_table(spec, grid, table, resamples=0)
    return entry, spec, predictions, table, scores, first, followup


def test_sce_turns_rebuild_the_sent_prompts_and_flag_failures(sce_run):
    from selfexplain.sce.transcripts import run_turns

    entry, spec, predictions, table, scores, first, followup = sce_run
    turns, cases = run_turns(entry, spec, "minimal", predictions, table, scores, first, followup)
    assert len(turns) == 2 * len(predictions) and len(cases) == len(predictions)
    assert turns["prompt_verified"].all()
    assert (turns["system"] == "Be brief.").all()
    failures = set(scores.loc[scores["failure"] != "", "row_id"])
    assert int(cases["failure"].sum()) >= len(failures) > 0
    assert int(cases["invalid"].sum()) == int((scores["valid"] == 0).sum()) > 0
    followups = turns[turns["stage"] == "followup"]
    assert followups["valid"].isin([0.0, 1.0]).sum() == scores["valid"].notna().sum()
    assert followups["score"].str.startswith("INVALID").sum() == int((scores["valid"] == 0).sum())
    # a template edited after the run no longer hashes to the journal key: the page says so
    edited = type(first)(first.name, first.path, first.text + "\nAnswer carefully.")
    turns2, _ = run_turns(entry, spec, "minimal", predictions, table, scores, edited, followup)
    assert not turns2["prompt_verified"].any()


def test_sce_sample_includes_every_failure(sce_run):
    from selfexplain.sce.transcripts import run_turns

    entry, spec, predictions, table, scores, first, followup = sce_run
    turns, cases = run_turns(entry, spec, "minimal", predictions, table, scores, first, followup)
    n_fail = int(cases["failure"].sum())
    chosen = tr.select(turns, cases, sample=3, max_flagged=n_fail, seed=0)
    assert set(chosen.loc[chosen["failure"], "case"]) == set(cases.loc[cases["failure"], "case"])
    assert np.all(chosen.groupby("case").size() == 2)


def test_config_default_and_readme_document_the_call():
    schema = (REPO / "workflow/schemas/config.schema.yaml").read_text()
    assert "max_flagged" in schema
    assert 'pd.read_parquet("results/transcripts/")' in (REPO / "README.md").read_text()
