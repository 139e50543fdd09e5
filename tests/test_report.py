"""The report's HTML: number and CI formatting, escaping, the summary tables, the front page from a fake results
folder, and the built Snakemake report as headless Chromium shows it to a reader."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from selfexplain import report as R
from selfexplain.errors import InputError
from selfexplain.io import write_json, write_parquet
from tests.conftest import REPO


class _Text(HTMLParser):
    """The text of an HTML fragment and the tags it opens (what a browser would draw)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible(html: str) -> tuple[str, list[str]]:
    parser = _Text()
    parser.feed(html)
    return re.sub(r"\s+", " ", " ".join(parser.parts)), parser.tags


# -- formatting ------------------------------------------------------------------------------------------------------
def test_numbers_and_intervals_are_rounded_as_a_reader_expects():
    assert R.fmt_ci(34.56, 26.44, 42.0) == "34.6 [26.4, 42.0]"
    assert R.fmt_ci(0.14512, 0.1409, 0.149, digits=3) == "0.145 [0.141, 0.149]"
    assert R.fmt_ci(-33.8, -48.31, -21.07) == "-33.8 [-48.3, -21.1]"
    assert R.fmt_number(-0.04) == "0.0"  # never "-0.0"
    assert R.fmt_number(1234.5) == "1,234.5" and R.fmt_count(1920) == "1,920"
    assert R.fmt_ci(50.0, math.nan, 60.0) == "50.0"  # no half interval
    assert R.fmt_ci(None, 1, 2) == R.MISSING == R.fmt_number(float("nan")) == R.fmt_count(pd.NA)
    # the HTML puts the interval on a second line but keeps the text
    html = R.ci_html(34.56, 26.44, 42.0)
    assert 'class="ci"' in html and visible(html)[0] == "34.6 [26.4, 42.0]" and html.startswith("34.6<span")


def test_every_string_from_data_is_escaped():
    evil = '<script>alert("x")</script> & <b>'
    columns = [R.Column("Name", R.text("name"), note=evil), R.Column("n", R.count("n"), True)]
    html = R.render_table(columns, [R.Group(evil, [{"name": evil, "n": 3}])])
    text, tags = visible(html)
    assert "script" not in tags and "b" not in tags
    assert text.count(evil) == 2  # the group heading and the cell, drawn as text
    assert "&lt;script&gt;" in html and "&amp;" in html
    assert R.model_html("<m>", {"<m>"}) == '&lt;m&gt;<span class="badge">synthetic</span>'


# -- summary tables --------------------------------------------------------------------------------------------------
def _sce_summary() -> pd.DataFrame:
    rows = []
    for dataset, points in (("income", 1920), ("house_prices", 1600)):
        for model, validity, rcf in (("synthetic-exact", 100.0, 0.0), ("<b>timid</b>", 0.0, math.nan)):
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "prompt": "minimal",
                    "validity_percent": validity,
                    "validity_ci_low": validity - 1.04 if validity else 0.0,
                    "validity_ci_high": validity,
                    "mean_RCF_A": rcf,
                    "mean_RCF_A_ci_low": rcf,
                    "mean_RCF_A_ci_high": rcf,
                    "mean_RCF": rcf,
                    "distance_metric": "gower",
                    "strict_validity_percent": validity * 0.97,
                    "exact_match": validity,
                    "n_rows": points,
                    "n_kept": points - 60,
                    "n_first_answer_unreadable": 17,
                    "n_cf_status_no_json": 5,
                }
            )
    return pd.DataFrame(rows)


def test_sce_table_groups_by_dataset_with_intervals_and_failures():
    html = R.sce_summary_html(_sce_summary(), synthetic={"synthetic-exact"})
    text, tags = visible(html)
    assert "b" not in tags and "<b>timid</b>" in text  # a model name is text
    assert text.index("Dataset income (1,920 grid points)") < text.index("Dataset house_prices (1,600 grid points)")
    assert "100.0 [99.0, 100.0]" in text  # 98.96 rounds up
    assert "0.000 [0.000, 0.000]" in text  # RCF_A with 3 decimals
    assert "Counterfactual answer: no json" in text and "First answer unreadable" in text
    assert text.count("synthetic") >= 4  # one model is synthetic, one is not: badges on the synthetic rows
    with pytest.raises(InputError, match="validity_percent"):
        R.sce_summary_html(_sce_summary().drop(columns="validity_percent"))


def _sim_row(reference, comparison, predictors, scope, group, nsg, **extra):
    conditions = {"explanation": ("with_explanation", "without_explanation"), "cot": ("cot", "without_explanation")}
    with_c, without_c = conditions[comparison]
    return {
        "reference": reference,
        "comparison": comparison,
        "with_condition": with_c,
        "without_condition": without_c,
        "predictors": predictors,
        "scope": scope,
        "group": group,
        "n": 100,
        "nsg": nsg,
        "nsg_ci_lower": nsg - 10,
        "nsg_ci_upper": nsg + 10,
        "with_accuracy": 90.0,
        "without_accuracy": 75.0,
        "dropped": 4,
        "egregious_rate": extra.get("egregious", math.nan),
        "egregious_rate_ci_lower": extra.get("egregious", math.nan) - 1,
        "egregious_rate_ci_upper": extra.get("egregious", math.nan) + 1,
        "switch_rate": extra.get("switch", math.nan),
        "switch_rate_ci_lower": math.nan,
        "switch_rate_ci_upper": math.nan,
    }


def _sim_summary() -> pd.DataFrame:
    rows = []
    for comparison, shift in (("explanation", 0.0), ("cot", 5.0)):
        for predictors, egregious in (("all", 2.0), ("exclude_same_family", 12.0)):
            rows.append(
                _sim_row("truthful", comparison, predictors, "pooled", "all", 60.0 - shift, egregious=egregious)
            )
            rows.append(_sim_row("truthful", comparison, predictors, "dataset", "income", 50.0, egregious=egregious))
            rows.append(_sim_row("truthful", comparison, predictors, "predictor", "reader-b", 40.0 + shift))
    rows.append(_sim_row("truthful", "explanation", "all", "predictor", "reader-a", 77.0))
    return pd.DataFrame(rows)


def test_sim_table_shows_pooled_rows_first_then_datasets_and_predictors():
    text, _ = visible(R.sim_summary_html(_sim_summary()))
    sections = ["Pooled over datasets", "Per dataset", "Per predictor", "The reference models' own rates"]
    positions = [text.index(s) for s in sections]
    assert positions == sorted(positions)
    pooled = text[positions[0] : positions[1]]
    assert "explanation vs answer only" in pooled and "thinking (CoT) vs answer only" in pooled
    assert "60.0 [50.0, 70.0]" in pooled and "other families only" in pooled
    per_predictor = text[positions[2] : positions[3]]
    assert "reader-a" in per_predictor and "77.0 [67.0, 87.0]" in per_predictor
    assert "45.0 [35.0, 55.0]" in per_predictor  # cot, all predictors
    assert per_predictor.count("reader-b") == 2  # explanation and cot, all predictors only
    own = text[positions[3] :]
    assert "2.0 [1.0, 3.0]" in own and "12.0 [11.0, 13.0]" in own  # egregious, both predictor sets
    assert "dataset income" in own


def test_sim_reference_rows_come_from_one_comparison():
    rows = R._reference_rows(_sim_summary())
    assert [(r["scope"], r["group"]) for r in rows] == [("pooled", "all"), ("dataset", "income")]
    assert rows[0]["egregious_all"] == 2.0 and rows[0]["egregious_exclude_same_family"] == 12.0


def test_usage_table_totals_and_missing_cost():
    usage = pd.DataFrame(
        [
            {"model": "a", "rule": "sce_predict", "requests": 10, "errors": 1, "prompt_tokens": 1000,
             "completion_tokens": 50, "cost_usd": 0.5},
            {"model": "a", "rule": "TOTAL", "requests": 10, "errors": 1, "prompt_tokens": 1000,
             "completion_tokens": 50, "cost_usd": 0.5},
            {"model": "b", "rule": "sim_predict", "requests": 2500, "errors": 0, "prompt_tokens": 3,
             "completion_tokens": 4, "cost_usd": None},
            {"model": "b", "rule": "TOTAL", "requests": 2500, "errors": 0, "prompt_tokens": 3,
             "completion_tokens": 4, "cost_usd": None},
        ]
    )  # fmt: skip
    html = R.usage_html(usage, synthetic={"b"})
    text, _ = visible(html)
    assert "All models" in text and "all rules 2,510 1 1,003 54 0.5000" in text
    assert f"4 {R.MISSING}" in text  # no price: a dash, not 0
    assert html.count('class="total"') == 3
    assert "words, not tokens" in text and "synthetic" in text


def test_synthetic_models_are_marked_once_when_all_are():
    note, badges = R.synthetic_note(["a", "b"], {"a", "b", "c"})
    assert "synthetic" in note and badges == set()
    note, badges = R.synthetic_note(["a", "b"], {"a"})
    assert note == "" and badges == {"a"}


def test_table_page_is_a_self_contained_document():
    page = R.render_table_page("sce_summary", _sce_summary())
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert "<title>Self-generated counterfactuals: summary</title>" in page
    with pytest.raises(InputError, match="unknown report table"):
        R.render_table_page("nope", _sce_summary())


# -- provenance and the front page -----------------------------------------------------------------------------------
def _stamp(commit: str = "a" * 40, dirty: bool = True, created: str = "2026-01-01T00:00:00+00:00") -> dict:
    return {
        "selfexplain": "0.1.0",
        "git": {"commit": commit, "dirty": dirty},
        "python": "3.11.7",
        "libraries": {"numpy": "2.4.6", "vllm": None},
        "created": created,
    }


def test_version_groups_split_on_code_not_on_time():
    stamps = {
        "x.parquet": _stamp(created="2026-01-01T00:00:00+00:00"),
        "y.parquet": _stamp(created="2026-01-02T00:00:00+00:00"),
        "z.json": _stamp(dirty=False),
    }
    groups = R.version_groups(stamps)
    assert [len(g["paths"]) for g in groups] == [2, 1]
    assert sorted(groups[0]["created"]) == ["2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"]
    assert R.commit_html(_stamp()) == "<code>aaaaaaaaaaaa</code> with uncommitted changes"
    assert R.commit_html({"git": {"commit": None}}) == "unknown (not a git checkout)"


def test_model_facts_list_each_model_once_with_its_roles():
    def entry(backend, family=None, description=None):
        sampling = SimpleNamespace(to_dict=lambda: {"temperature": 0.0, "seed": 42})
        return SimpleNamespace(
            backend=backend,
            family=family,
            model_id=f"id/{backend}",
            raw={"description": description},
            sampling=sampling,
        )

    catalog = {"m1": entry("synthetic", description="Synthetic: x"), "m2": entry("vllm", "qwen")}
    facts = R.model_facts(catalog, sce=["m1"], references=["m1", "m2"], predictors=["m2"])
    assert [(f["name"], f["roles"]) for f in facts] == [
        ("m1", ["sce", "reference"]),
        ("m2", ["reference", "predictor"]),
    ]
    assert facts[1]["family"] == "qwen" and facts[0]["sampling"] == {"temperature": 0.0, "seed": 42}


def _fake_results(root: Path) -> dict:
    """A tiny results folder as the workflow writes it: summaries, metrics with provenance, an eval set and an
    inference table whose provenance comes from another commit."""
    sce = _sce_summary()
    sce.to_csv(root / "sce_summary.csv", index=False)
    sim = _sim_summary()
    sim.to_csv(root / "sim_summary.csv", index=False)
    write_json({"reference": "truthful", "n_pairs": 758, "n_observations": 1516, "provenance": _stamp()},
               root / "metrics.json")  # fmt: skip
    eval_set = pd.DataFrame({"dataset": ["income"] * 3 + ["moral_machines"] * 2, "pair_id": list("abcde")})
    write_parquet(eval_set, root / "eval_set.parquet", _stamp())
    write_parquet(pd.DataFrame({"x": [1]}), root / "predictions.parquet", _stamp(commit="b" * 40, dirty=False))
    models = [
        {"name": "synthetic-exact", "roles": ["sce"], "backend": "synthetic", "family": None,
         "model_id": "selfexplain/synthetic-exact", "description": "Synthetic: <rule> & co", "sampling": {"seed": 42}},
        {"name": "truthful", "roles": ["reference"], "backend": "vllm", "family": "qwen", "model_id": "Qwen/Qwen3-8B",
         "description": None, "sampling": {"temperature": 0.6, "seed": 7}},
    ]  # fmt: skip
    return {
        "studies": ["sce", "simulatability"],
        "models": models,
        "sce": {"datasets": ["income", "house_prices"], "prompts": ["minimal"], "distance": "gower",
                "prompt_distances": {}, "first_pass": "first_pass", "prompt_dir": "config/prompts/sce",
                "verify": "lookup", "seed": 42, "bootstrap": {"resamples": 1000, "seed": 0}},
        "simulatability": {"datasets": ["income", "moral_machines"], "references": ["truthful"],
                           "predictors": ["reader-a", "reader-b"], "conditions": ["with_explanation", "cot"],
                           "repeats": 1, "eval_set": {"size": 3, "unit": "rows", "seed": 42},
                           "bootstrap": {"resamples": 1000, "seed": 42}, "hamming": {"seed": 5, "cap_seed": 6},
                           "moral_machines": {"seed": 9}, "prompt_dir": "config/prompts/simulatability"},
        "sce_summary": root / "sce_summary.csv",
        "sim_summary": root / "sim_summary.csv",
        "sim_metrics": [root / "metrics.json"],
        "eval_set": root / "eval_set.parquet",
        "stamped": [root / "metrics.json", root / "eval_set.parquet", root / "predictions.parquet"],
        "built": _stamp(commit="c" * 40, dirty=False),
    }  # fmt: skip


def test_front_page_from_a_fake_results_folder(tmp_path):
    page = R.load_front_page(**_fake_results(tmp_path))
    assert page.eval_set_counts == {"income": 3, "moral_machines": 2}
    assert page.synthetic == {"synthetic-exact"} and page.badges == {"synthetic-exact"}
    document = R.front_page_document(page)
    text, tags = visible(document)
    # headline numbers, each with its one-sentence explanation
    assert "100.0 [99.0, 100.0]" in text and R.SENTENCES["validity"] in text and R.SENTENCES["rcf_a"] in text
    headline = text[text.index("Simulatability NSG") : text.index("What was run")]
    assert "truthful" in headline and "explanation vs answer only" in headline  # the main comparison
    assert "60.0 [50.0, 70.0]" in headline and "2.0 [1.0, 3.0]" in headline and "12.0 [11.0, 13.0]" in headline
    assert "55.0" not in headline  # the cot comparison is in the table, not the headline
    # what was run: the synthetic model is said to be one; the description is text; sizes and seeds
    assert "Synthetic models (synthetic-exact) are rule-based stand-ins" in text
    assert "Synthetic: <rule> & co" in text and "rule" not in tags
    assert "income (1,920 grid points), house_prices (1,600 grid points)" in text
    assert "5 rows in all: income 3, moral_machines 2" in text
    assert "truthful: 758 pairs, 1,516 observations" in text
    assert "eval set 42; Hamming groups 5 (cap 6); Moral Machines 9; bootstrap 42 (1,000 resamples)" in text
    assert "temperature 0.6, seed 7" in text and "Qwen/Qwen3-8B" in text
    # versions: two kinds of stamps, the dirty one first (two outputs), and a warning that they differ
    versions = text[text.index("Versions") :]
    assert "made by selfexplain 0.1.0 at git commit cccccccccccc" in versions and "Python 3.11.7" in versions
    assert versions.index("aaaaaaaaaaaa with uncommitted changes") < versions.index("bbbbbbbbbbbb")
    assert "2 different versions" in versions and "numpy 2.4.6, vllm not installed" in versions
    assert "javascript:" not in document  # links into the report's app only in the fragment
    fragment = R.front_page_fragment(page)
    assert fragment.isascii() and 'id="se-front"' in fragment and "javascript:app.showCategory(" in fragment
    assert visible(fragment)[0].count("60.0 [50.0, 70.0]") == text.count("60.0 [50.0, 70.0]") == 2  # both sets


def test_front_page_with_only_synthetic_models_says_so_once(tmp_path):
    inputs = _fake_results(tmp_path)
    inputs["models"][1]["backend"] = "synthetic"
    page = R.load_front_page(**inputs)
    text, _ = visible(R.front_page_document(page))
    assert "Every model in this run is synthetic" in text and page.badges == set()


def test_front_page_of_a_run_without_reference_models(tmp_path):
    inputs = _fake_results(tmp_path)
    inputs.update(studies=["simulatability"], sce=None, sce_summary=None, sim_summary=None, sim_metrics=[])
    inputs["simulatability"]["references"] = []
    text, _ = visible(R.front_page_document(R.load_front_page(**inputs)))
    assert "No simulatability results (no reference model configured)" in text
    assert "5 rows in all" in text and "Self-generated counterfactuals" not in text


def test_sim_headline_falls_back_to_the_first_comparison():
    summary = _sim_summary()
    only_cot = summary[summary["comparison"] == "cot"]
    (row,) = R.sim_headline(only_cot)
    assert row["comparison"] == "thinking (CoT) vs answer only" and row["nsg_all"] == "55.0 [45.0, 65.0]"
    (row,) = R.sim_headline(summary)
    assert (
        row["comparison"] == "explanation vs answer only"
        and row["egregious_exclude_same_family"] == "12.0 [11.0, 13.0]"
    )


def test_sce_headline_is_model_by_prompt_with_a_column_per_dataset():
    table = R.sce_headline(_sce_summary(), "validity_percent", "validity_ci_low", "validity_ci_high", 1)
    assert list(table.columns) == ["model", "prompt", "income", "house_prices"]
    assert table.iloc[0].tolist() == ["synthetic-exact", "minimal", "100.0 [99.0, 100.0]", "100.0 [99.0, 100.0]"]


# -- the built report in a browser -----------------------------------------------------------------------------------
def _screenshot_module():
    spec = importlib.util.spec_from_file_location("screenshot_report", REPO / "scripts" / "screenshot_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHOTS = _screenshot_module()
CHROMIUM = SHOTS.find_chromium()
TINY = {
    "studies": ["sce", "simulatability"],
    "sce": {
        "models": ["synthetic-exact"],
        "datasets": ["income"],
        "prompts": ["minimal"],
        "bootstrap": {"resamples": 50, "seed": 0},
    },
    "simulatability": {
        "references": ["synthetic-truthful", "synthetic-misleading"],
        "predictors": ["synthetic-reader-a", "synthetic-reader-b"],
        "conditions": ["with_explanation", "without_explanation"],
        "datasets": ["moral_machines"],
        "moral_machines": {"scenarios": 3000},
        "eval_set": {"size": 120, "unit": "rows", "seed": 1},
        "bootstrap": {"resamples": 100, "seed": 0},
    },
}
EVIL = 'Synthetic: <i>tags</i> & "quotes" stay text'


def _non_blank(png: Path) -> int:
    """Distinct colours of a screenshot (a blank page has one or two)."""
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (1400, 1000)
        return len(image.convert("RGB").getcolors(maxcolors=1 << 24))


@pytest.mark.workflow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install chromium)")
def test_report_as_a_reader_sees_it_in_chromium(tmp_path):
    from tests.test_workflow import _snakemake, _workdir

    catalog = yaml.safe_load((REPO / "config/models.yaml").read_text())
    catalog["models"]["synthetic-exact"]["description"] = EVIL
    workdir = _workdir(tmp_path / "run", TINY, catalog)
    _snakemake(workdir)
    report = workdir / "report.html"
    _snakemake(workdir, "--report", str(report))
    sce = pd.read_csv(workdir / "results/sce/summary.csv").set_index("model")
    sim = pd.read_csv(workdir / "results/simulatability/summary.csv")
    exact = sce.loc["synthetic-exact"]
    validity = R.fmt_ci(exact["validity_percent"], exact["validity_ci_low"], exact["validity_ci_high"])
    pooled = sim[(sim["scope"] == "pooled") & (sim["comparison"] == "explanation")].set_index(
        ["reference", "predictors"]
    )
    nsg = {key: R.fmt_ci(row["nsg"], row["nsg_ci_lower"], row["nsg_ci_upper"]) for key, row in pooled.iterrows()}
    egregious = pooled.loc[("synthetic-misleading", "all")]
    egregious = R.fmt_ci(
        egregious["egregious_rate"], egregious["egregious_rate_ci_lower"], egregious["egregious_rate_ci_upper"]
    )

    # 1. Chromium's command line, as a person opening the file: screenshot, and the DOM after the app's scripts ran
    profile = tmp_path / "profile"
    shot = tmp_path / "landing.png"
    flags = SHOTS.chromium_command(CHROMIUM, profile, "--virtual-time-budget=15000")
    subprocess.run([*flags, f"--screenshot={shot}", report.as_uri()], check=True, capture_output=True, timeout=120)
    assert _non_blank(shot) > 100
    dom = subprocess.run(
        [*flags, "--dump-dom", report.as_uri()], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    app = dom[dom.index('<div id="app">') :]
    app = app[: app.index("<script")]  # what React drew, not the data the page carries
    text, tags = visible(app)
    assert "Snakemake" in text and "1 Overview" in text and "3 Simulatability" in text  # the menu
    assert "selfexplain: do language models know why they answer as they do?" in text  # opens on the front page
    assert "Every model in this run is synthetic" in text
    assert validity in text and nsg[("synthetic-truthful", "all")] in text
    assert nsg[("synthetic-misleading", "exclude_same_family")] in text and egregious in text
    assert EVIL in text and "i" not in tags  # the description is drawn as text

    # 2. Clicking through the menu to the inline tables (DevTools protocol on loopback)
    async def read_tables() -> dict[str, str]:
        seen = {}
        async with SHOTS.Browser(CHROMIUM) as browser:
            for category in ("2 Counterfactuals (sce)", "3 Simulatability"):
                await browser.open_report(report)
                await browser.click(category)
                await browser.click("1 Summary")
                rows = await browser.result_rows()
                assert rows[:2] == ["summary table", "summary table (CSV download)"]
                assert await browser.view(0) == "frame"  # shown inline, not offered as a download
                assert await browser.view(1) == "download"
                seen[category] = await browser.frame_text()
                await browser.screenshot(tmp_path / f"{category[0]}.png")
        return seen

    # the interval sits on its own line in the cell: innerText has a line break before it
    tables = {k: re.sub(r"\s*\n\s*\[", " [", v) for k, v in asyncio.run(read_tables()).items()}
    sce_table = tables["2 Counterfactuals (sce)"]
    assert "Self-generated counterfactuals: summary" in sce_table and "Dataset income (1,920 grid points)" in sce_table
    assert validity in sce_table
    sim_table = tables["3 Simulatability"]
    assert sim_table.index("Pooled over datasets") < sim_table.index("Per dataset") < sim_table.index("Per predictor")
    assert nsg[("synthetic-truthful", "all")] in sim_table and nsg[("synthetic-misleading", "all")] in sim_table
    for name in ("2", "3"):
        assert _non_blank(tmp_path / f"{name}.png") > 100
    print(json.dumps({"landing_colours": _non_blank(shot)}))
