"""Transcripts: the page escapes model text and has a filter for each flag its study's rows can set (none for
another study's), flagged cases are always chosen (up to the cap), every file has one schema, one pandas call reads
them all, and the sce rows' rebuilt prompts are what was sent."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from selfexplain import transcripts as tr
from selfexplain.io import read_provenance, write_parquet
from tests.conftest import REPO

EVIL = '<script>alert("pwned")</script> & <b>bold</b>'
SCE_ENTRY = {
    "backend": "synthetic",
    "model_id": "test/timid",
    "system_prompt": "Be brief.",
    "synthetic": {"sce": {"counterfactual": "timid", "noise": {"malformed_json": 0.05}}},
}
WITH, WITHOUT = "with_explanation", "without_explanation"


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
    entry = parse_entry("timid", SCE_ENTRY)
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


# -- each study's page offers only the filters its rows can set -------------------------------------------------------
def test_page_filters_are_the_flags_counted():
    table = tr.frame_of([_turn("a", failure=True, sampled_because="failure"), _turn("b", invalid=True)])
    page = tr.render_page(table, "t", {"failure": 3, "invalid": 1}, n_cases=10)
    assert 'data-filter="invalid"' in page and "invalid counterfactuals (1 of 1)" in page
    assert 'data-filter="egregious"' not in page and "data-egregious" not in page
    assert re.findall(r'<section class="case" ([^>]*)>', page) == [
        'data-failure="1" data-invalid="0"',
        'data-failure="0" data-invalid="1"',
    ]


def test_a_flag_outside_the_study_chooses_nothing_and_is_not_counted():
    cases = _cases(50, failures=(1, 2), egregious=(3, 4), invalid=(5,))
    reasons = tr.choose_cases(cases, sample=0, max_flagged=10, seed=0, flags=["failure", "invalid"])
    assert dict(reasons) == {"c0001": "failure", "c0002": "failure", "c0005": "invalid"}
    assert tr.flag_counts(cases, ["failure", "egregious"]) == {"failure": 2, "egregious": 2}


def _sim_run(tmp_path):
    """A small simulatability run on disk (reference, one predictor, observations) and its catalog entries."""
    from selfexplain.simulatability.steps import run_stage, score_reference
    from tests.test_sim_answers import PROMPTS, _eval_set

    def entry_json(name: str, **simulatability) -> str:
        blob = {"backend": "synthetic", "model_id": f"x/{name}", "synthetic": {"simulatability": simulatability}}
        return json.dumps(blob)

    ref_json, pred_json = entry_json("ref", explanation="truthful"), entry_json("pred", predictor={"flip_rate": 0.3})
    write_parquet(_eval_set(), tmp_path / "eval_set.parquet")
    inputs = {"eval_set": tmp_path / "eval_set.parquet", "reference": tmp_path / "reference.parquet"}
    common = {"prompt_dir": PROMPTS, "progress": False}
    ref_params = {"model": ref_json, "journal": tmp_path / "r.jsonl", **common}
    run_stage("sim_reference", {"reference": "ref"}, inputs, ref_params, tmp_path / "reference.parquet")
    pred_params = {"model": pred_json, "journal": tmp_path / "p.jsonl", "conditions": [WITH, WITHOUT], "repeats": 2}
    wildcards = {"reference": "ref", "predictor": "pred"}
    run_stage("sim_predict", wildcards, inputs, {**pred_params, **common}, tmp_path / "predictions.parquet")
    paths = [tmp_path / "predictions.parquet"]
    bootstrap = {"resamples": 0, "seed": 0}
    score_reference(
        "ref",
        inputs["eval_set"],
        inputs["reference"],
        paths,
        {"pred": None},
        bootstrap,
        tmp_path / "m.json",
        tmp_path / "o.parquet",
    )
    return ref_json, pred_json, PROMPTS


def test_sim_page_has_no_invalid_filter_and_the_sce_page_has_one(sce_run, tmp_path):
    from selfexplain.sce.transcripts import build as sce_build
    from selfexplain.simulatability.transcripts import build as sim_build

    ref_json, pred_json, prompts = _sim_run(tmp_path)
    out = tmp_path / "transcripts"
    sim = sim_build(
        "ref",
        ref_json,
        {"pred": pred_json},
        tmp_path / "eval_set.parquet",
        tmp_path / "reference.parquet",
        [tmp_path / "predictions.parquet"],
        tmp_path / "o.parquet",
        prompts,
        out / "simulatability/ref.parquet",
        tmp_path / "sim.html",
        tr.Sampling(sample=2, max_flagged=3, seed=1),
    )
    _, _, predictions, table, scores, first, followup = sce_run
    for frame, name in ((predictions, "p"), (table, "c"), (scores, "s")):
        write_parquet(frame, tmp_path / f"{name}.parquet")
    sce = sce_build(
        "timid",
        json.dumps(SCE_ENTRY),
        "income",
        "minimal",
        *(tmp_path / f"{name}.parquet" for name in ("p", "c", "s")),
        first.path,
        followup.path,
        out / "sce/timid.parquet",
        tmp_path / "sce.html",
        tr.Sampling(sample=2, max_flagged=3, seed=1),
    )
    sim_page, sce_page = (tmp_path / "sim.html").read_text(), (tmp_path / "sce.html").read_text()
    assert 'data-filter="egregious"' in sim_page and 'data-filter="failure"' in sim_page
    assert 'data-filter="invalid"' not in sim_page and "data-invalid" not in sim_page
    assert "invalid counterfactuals" not in sim_page
    assert 'data-filter="invalid"' in sce_page and 'data-filter="failure"' in sce_page
    assert 'data-filter="egregious"' not in sce_page and "data-egregious" not in sce_page
    n_invalid = int((scores["valid"] == 0).sum())
    shown = re.search(rf"invalid counterfactuals \((\d+) of {n_invalid}\)", sce_page)
    assert shown and 3 <= int(shown.group(1)) <= 3 + 2  # the cap, and the sample may add some
    # the notes name the study's flags in its words; the provenance counts only those flags
    assert re.search(r"Flags in the whole run: \d+ failures, \d+ invalid counterfactuals; cap 3", sce_page)
    assert re.search(r"Flags in the whole run: \d+ pairs with a failure, \d+ egregious pairs", sim_page)
    assert set(read_provenance(out / "sce/timid.parquet")["flagged"]) == {"failure", "invalid"}
    assert set(read_provenance(out / "simulatability/ref.parquet")["flagged"]) == {"failure", "egregious"}
    # one schema still: both files read in one call, and the flag a study cannot set is false in its rows
    everything = pd.read_parquet(out)
    assert list(everything.columns) == list(tr.COLUMNS) and len(everything) == len(sim) + len(sce)
    assert not everything.loc[everything["study"] == "simulatability", "invalid"].any()
    assert not everything.loc[everything["study"] == "sce", "egregious"].any()
    assert everything[["failure", "egregious", "invalid"]].notna().all().all()  # false, not null


def test_sampling_is_the_config_block():
    import yaml

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    defaults = {k: v["default"] for k, v in schema["properties"]["transcripts"]["properties"].items()}
    assert tr.Sampling.of(defaults) == tr.Sampling()
    assert tr.Sampling.of({"enabled": True, "sample": 3, "max_flagged": 4, "seed": 5}) == tr.Sampling(3, 4, 5)
