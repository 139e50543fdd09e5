"""The paper's DAG: job counts per rule, rule graph and DAG exports, the paper's models, and the scaling table."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, fixtures_dir
from tests.test_workflow import _snakemake, _workdir

pytestmark = pytest.mark.workflow
PAPER_JOBS = {
    "sce_grid": 3,
    # the sce paper's 7 models and the 3 simulatability references also run as sce models (the cross-study view)
    "sce_predict": 30,
    "sce_elicit": 150,
    "sce_requery": 150,
    "sce_score": 150,
    "sce_plot_boundary": 150,
    "sce_transcripts": 150,
    "sce_summary": 1,
    "sce_plot": 1,
    "usage_summary": 1,
    "fetch_raw": 6,
    "sim_table": 6,
    "sim_pairs": 6,
    "sim_moral_machines": 1,
    "sim_eval_set": 1,
    # simulatability inference: the paper's 18 reference models and the 6 reasoning-effort variants run for the
    # McNemar comparison only, 5 predictors, every predictor on every reference
    "sim_reference": 24,
    "sim_predict": 120,
    "sim_testability": 18,
    "sim_metrics": 24,
    "sim_transcripts": 18,
    "sim_plot": 4,
    "sim_summary": 1,
    "sim_testability_summary": 1,
    # every side analysis: cot/no_reference run for the Qwen3 references (side.extra_conditions), McNemar on the
    # reasoning-effort pairs (compare_references)
    "sim_side_agreement": 1,
    "sim_side_answer_order": 1,
    "sim_side_features": 1,
    "sim_side_conditions": 1,
    "sim_side_mcnemar": 1,
    "cross_study_summary": 1,
    "cross_study_plot": 1,
    # the report's front page and inline tables
    "report_front_page": 1,
    "report_sce_table": 1,
    "report_sim_table": 1,
    "report_usage_table": 1,
    "all": 1,
    "total": 1028,
}
PAPER_REFERENCES = 18
PAPER_PREDICTORS = 5


def _paper_workdir(tmp_path):
    return _workdir(tmp_path, yaml.safe_load((REPO / "config/paper.yaml").read_text()))


def test_paper_dry_run_job_counts(tmp_path):
    result = _snakemake(_paper_workdir(tmp_path), "-n")
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, flags=re.MULTILINE))
    assert {rule: int(stats[rule]) for rule in PAPER_JOBS} == PAPER_JOBS


def test_rulegraph_and_dag_exports(tmp_path):
    workdir = _paper_workdir(tmp_path)
    mermaid = _snakemake(workdir, "--rulegraph", "mermaid-js").stdout
    assert mermaid.lstrip().startswith("---") and "flowchart" in mermaid
    for rule in PAPER_JOBS:
        if rule != "total":
            assert f"[{rule}]" in mermaid
    dot = _snakemake(workdir, "--dag").stdout
    assert dot.lstrip().startswith("digraph") and dot.count("sce_predict") >= PAPER_JOBS["sce_predict"]
    assert dot.count("sim_predict") >= PAPER_JOBS["sim_predict"]


def _paper_models():
    from selfexplain.config import load_catalog

    sim = yaml.safe_load((REPO / "config/paper.yaml").read_text())["simulatability"]
    catalog = load_catalog(REPO / "config/models.yaml", REPO / "workflow/schemas/catalog.schema.yaml")
    return sim, catalog


def test_paper_lists_the_papers_models():
    sim, catalog = _paper_models()
    assert len(sim["references"]) == PAPER_REFERENCES and len(sim["predictors"]) == PAPER_PREDICTORS
    ids = {catalog[n].model_id for n in sim["predictors"]}
    assert ids == {
        "openai/gpt-oss-20b", "google/gemma-3-27b-it", "Qwen/Qwen3-32B", "google/gemini-3-flash-preview",
        "gpt-5-mini-2025-08-07",
    }  # fmt: skip
    # the same entry where the paper used the same model and settings in both roles
    assert {"gemma3_27B", "qwen3_32B", "gpt5_mini"} <= set(sim["references"]) & set(sim["predictors"])
    # Gemini-3-Flash predicted at the provider's default thinking, but answered as a reference at medium
    flash = [catalog[n] for n in (*sim["references"], *sim["predictors"]) if "gemini-3-flash" in catalog[n].model_id]
    assert sorted(e.sampling.reasoning_effort or "default" for e in flash) == ["default", "medium"]


def test_paper_models_pass_the_offline_checks():
    """Families as the original's same-family rule; API settings each backend can send; vLLM engines whose context
    holds the longest prompt (about 1,000 tokens: docs/scaling.md) plus a full max_tokens answer."""
    from selfexplain.llm import anthropic_backend, openai_backend
    from selfexplain.simulatability.original_answers import original_family

    sim, catalog = _paper_models()
    compared = [name for pair in sim["compare_references"] for name in pair]
    for name in dict.fromkeys([*sim["references"], *sim["predictors"], *compared]):
        entry = catalog[name]
        assert entry.family == original_family(entry.model_id), name
        if entry.backend == "openai":
            assert openai_backend.unsupported_settings(entry) == [], name
            assert entry.api_key_env
        elif entry.backend == "anthropic":
            assert anthropic_backend.unsupported_settings(entry) == [], name
            assert entry.api_key_env == "ANTHROPIC_API_KEY"
        else:
            assert entry.backend == "vllm"
            assert entry.gpus == entry.vllm["tensor_parallel_size"], name
            assert entry.vllm["max_model_len"] - entry.sampling.max_tokens >= 2000, name
            assert not entry.vllm.get("trust_remote_code"), name


def test_paper_reasoning_effort_pairs():
    """The paper's McNemar pairs (notebook 13): each pair is one model without reasoning against more of it, and the
    variants are not among the headline references."""
    sim, catalog = _paper_models()
    assert len(sim["compare_references"]) == 4
    for a, b in sim["compare_references"]:
        assert catalog[a].model_id == catalog[b].model_id and catalog[a].family == catalog[b].family
        assert a.endswith("_none") and a not in sim["references"] and b not in sim["references"]
        none, more = catalog[a].sampling, catalog[b].sampling
        assert none.reasoning_effort == "none" or none.thinking is False
        assert more.reasoning_effort in ("low", "high") or more.thinking_budget in (2000, 8000)
    qwen = [n for n in sim["references"] if n.startswith("qwen3_")]
    assert sim["side"]["extra_conditions"] == {"cot": qwen, "no_reference": qwen}


def test_scaling_table_is_generated_from_the_dag(tmp_path):
    fixtures = fixtures_dir()  # the simulatability eval set is built offline from the shared fixtures
    out = tmp_path / "scaling.md"
    subprocess.run(
        [sys.executable, str(REPO / "scripts/scaling.py"), "--out", str(out), "--fixtures", str(fixtures)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    text = out.read_text()
    assert f"| **total** | **{PAPER_JOBS['total']}** |" in text
    for rule in ("sim_reference", "sim_predict"):
        assert f"| {rule} | {PAPER_JOBS[rule]} |" in text
    for model in ("llama3_3_70B", "DeepSeek_70B", "gpt4_1", "claude_3_7_sonnet", "o3", "Gemma_2_27B", "DeepSeek_32B"):
        assert f"| {model} |" in text
    sim, _ = _paper_models()
    for model in sim["references"]:
        assert f"| {model} | reference |" in text
    for model in sim["predictors"]:
        assert f"| {model} | predictor |" in text
    # 1,000 rows for each of the seven datasets, every one with a stated source of its texts
    assert "| **total** | **7,000** | |" in text
    for dataset in sim["datasets"]:
        assert re.search(rf"\| {dataset} \| 1,000 \| (built from|the original study's|generated)", text), dataset
    assert re.search(r"\| 8 \| \d+\.\d \|", text)
    assert "## Decision: predictor engines" in text and "**Decision:" in text
    # every inference rule estimated: requery, the testability rater, the comparison-only references
    assert "Not yet in" not in text and f"| sce_requery | {PAPER_JOBS['sce_requery']} |" in text
    for model in dict.fromkeys(name for pair in sim["compare_references"] for name in pair):
        assert f"| {model} | comparison reference |" in text
    assert f"| {sim['predictors'][0]} | rater (testability) | vllm | {PAPER_JOBS['sim_testability']} |" in text
    for part in ("requery", "testability", "comparison references", "extra conditions"):
        assert re.search(rf"\| {part} \| .+ \| [\d,]+ \| \d+\.\d \| [\d,]+ \| \d+\.\d \|", text), part
    # a Qwen3 reference's predictors answer four conditions, the others two: 7,000 pairs each
    assert "so 14,000 or 28,000 questions per job" in text


def _scaling_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("scaling", REPO / "scripts/scaling.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_grouping_break_even_formulas():
    """Hand-computed: 18 jobs of 2 h inference on 2 GPUs, 6 min start + drain per job (3 min of it drain)."""
    scaling = _scaling_module()
    model = scaling.SimModel("p", "vllm", "org/model-32B", 2, 12000, True, 0.0, 800.0, None, None, None, 1)
    g = scaling.Grouping(model, 18, 36.0, 0.1, 0.05, (36 + 18 * 0.1) * 2, (36 + 0.1) * 2, 2.1, 36.1)
    assert g.saved == pytest.approx(3.4)
    # (n - 1) o = 0.1 (I + n o)  =>  o = 3.6 / (17 - 1.8)
    assert scaling.break_even_overhead_hours(g) == pytest.approx(3.6 / 15.2)
    # the same with the drain (0.05 h) fixed: start = o - drain
    assert scaling.break_even_start_s([g]) == pytest.approx((3.6 / 15.2 - 0.05) * 3600)
    # grouped: 235 GPU-h but a 37.5 h job; per job: 240 GPU-h, longest 2.2 h -> crossover at 240 / 37.5 GPUs
    assert scaling.crossover_gpus(240.0, 235.0, 2.2, 37.5) == pytest.approx(6.4)
    assert scaling.wall_clock(240.0, 2.2, 8) == pytest.approx(30.0)
    assert scaling.wall_clock(240.0, 2.2, 200) == pytest.approx(2.2)


def _sim_model(scaling, name, backend="openai", thinking=0.0, prices=(1.0, 2.0)):
    thinks = thinking > 0
    return scaling.SimModel(name, backend, f"org/{name}", 0, 1000, thinks, thinking, thinking, *prices, backend, 8)


def test_requery_estimate_formula():
    """Hand-computed: a grid of 3 rows whose first-pass prompts total 300 tokens, 12-token answers."""
    scaling = _scaling_module()
    # the upper bound the table uses: every row yields one readable counterfactual, asked once
    assert scaling.first_pass_estimate(3, 300.0, 12.0) == (3, 300.0, 36.0)
    # half the rows readable: half the requests and prompt tokens
    assert scaling.first_pass_estimate(4, 400.0, 12.0, share=0.5) == (2.0, 200.0, 24.0)
    # a thinking model answers at 60 % of max_tokens (3000): 1800 tokens per request
    assert scaling.first_pass_estimate(3, 300.0, 1800.0) == (3, 300.0, 5400.0)


def test_requery_job_costs_what_the_first_pass_does():
    """With every row readable, a re-query job asks the first pass again: same requests and tokens as sce_predict."""
    scaling = _scaling_module()
    catalog = yaml.safe_load((REPO / "config/models.yaml").read_text())["models"]
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    job = {"model": "llama3_3_70B", "grid": "heart_disease", "prompt": "minimal"}
    first = scaling.job_tokens({**job, "rule": "sce_predict"}, config, catalog)
    again = scaling.job_tokens({**job, "rule": "sce_requery"}, config, catalog)
    elicit = scaling.job_tokens({**job, "rule": "sce_elicit"}, config, catalog)
    assert again == first and first[0] == elicit[0] > 0
    assert first[2] == first[0] * scaling.ANSWER_TOKENS["first"]


def test_thinking_scales_with_reasoning_effort():
    """The medium figures (gpt-5.2 500 / 300, claude 800 / 500) scaled: none 0, low half, high twice; a Claude budget
    counts as the effort whose OpenRouter share of max_tokens (20 / 50 / 80 %) is nearest."""
    scaling = _scaling_module()
    gpt, claude = "gpt-5.2-2025-12-11", "claude-sonnet-4-5-20250929"
    assert scaling.thinking_tokens(gpt, {"reasoning_effort": "none"}, 10000) == (False, 0.0, 0.0)
    assert scaling.thinking_tokens(gpt, {"reasoning_effort": "low"}, 10000) == (True, 250.0, 150.0)
    assert scaling.thinking_tokens(gpt, {"reasoning_effort": "medium"}, 10000) == (True, 500.0, 300.0)
    assert scaling.thinking_tokens(gpt, {"reasoning_effort": "high"}, 10000) == (True, 1000.0, 600.0)
    assert scaling.thinking_tokens(claude, {"thinking": False}, 10000) == (False, 0.0, 0.0)
    low, medium, high = ({"thinking": True, "thinking_budget": b} for b in (2000, 5000, 8000))
    assert scaling.thinking_tokens(claude, low, 10000) == (True, 400.0, 250.0)
    assert scaling.thinking_tokens(claude, medium, 10000) == (True, 800.0, 500.0)
    assert scaling.thinking_tokens(claude, high, 10000) == (True, 1600.0, 1000.0)
    # no effort sent: the provider's default, unscaled
    assert scaling.thinking_tokens("google/gemini-3-flash-preview", {}, 10000) == (True, 1200.0, 800.0)


def test_predictor_and_testability_jobs_by_condition():
    """Hand-computed on 10 pairs: prompt tokens per condition (all 10 pairs) 1000 with, 900 without, 950 cot, 500
    no_reference, 2000 for the ratings; explanation 200 tokens, the reference thinks 1200 tokens, the predictor 400."""
    scaling = _scaling_module()
    conditions = ("with_explanation", "without_explanation", "cot", "no_reference")
    prompts = scaling.SimPrompts(
        eval_rows={},
        questions=0,
        reference_prompt_tokens=0.0,
        pairs=10,
        predictor_requests=dict.fromkeys(conditions, 10),
        predictor_prompt_tokens=dict(zip(conditions, (1000.0, 900.0, 950.0, 500.0), strict=True)),
        testability_prompt_tokens=2000.0,
    )
    reference = _sim_model(scaling, "ref", thinking=1200.0)
    predictor = _sim_model(scaling, "pred", thinking=400.0)
    two = scaling.predictor_job(predictor, reference, prompts, list(conditions[:2]))
    assert (two.requests, two.prompt_tokens) == (20, 1000 + 10 * 200 + 900)
    assert two.output_tokens == 20 * (20 + 400)
    four = scaling.predictor_job(predictor, reference, prompts, list(conditions))
    # cot shows the reference's thinking (1200 per pair), no_reference the counterfactual alone
    assert (four.requests, four.prompt_tokens) == (40, 3900 + 950 + 10 * 1200 + 500)
    assert four.output_tokens == 40 * 420
    # a reference that does not think has no cot rows
    plain = scaling.predictor_job(predictor, _sim_model(scaling, "plain"), prompts, list(conditions))
    assert plain.requests == 30
    rating = scaling.testability_job(predictor, reference, prompts)
    assert (rating.rule, rating.requests, rating.prompt_tokens) == ("sim_testability", 10, 2000 + 10 * 200)
    assert rating.output_tokens == 10 * (5 + 400)


def test_optional_parts_count_each_job_once():
    """Hand-computed on API jobs priced 1 USD per M input and 2 per M output tokens: reference A (headline), C
    (comparison only), one predictor P."""
    scaling = _scaling_module()
    a, c, p = (_sim_model(scaling, n) for n in "ACP")
    job = scaling.SimJob
    jobs = [
        job("sim_reference", a, a, 100, 1e6, 2e6, 0.0),  # core: in no part
        job("sim_reference", c, c, 100, 1e6, 1e6, 0.0),  # 3 USD
        job("sim_predict", p, a, 40, 4e6, 2e6, 0.0),  # 8 USD, of which the base conditions' 20 requests 4 USD
        job("sim_predict", p, c, 40, 4e6, 2e6, 0.0),  # 8 USD
        job("sim_testability", p, a, 10, 1e6, 0.5e6, 0.0),  # 2 USD
    ]

    def base(j):
        return job("sim_predict", j.model, j.reference, 20, 2e6, 1e6, 0.0)

    parts = scaling.sim_parts(jobs, ["C"], base)
    assert parts["testability"] == scaling.Part(10, 0.0, 2.0)
    assert parts["comparison references"] == scaling.Part(140, 0.0, 11.0)
    assert parts["extra conditions"] == scaling.Part(20, 0.0, 4.0)
    # the table: 100 GPU-h in all, longest job 2 h; a 20 GPU-h part saves 12.5 - 10 h on 8 GPUs
    lines = scaling.part_lines(
        {"requery": scaling.Part(5, 20.0, 1.0)}, scaling.Part(50, 100.0, 30.0), scaling.Plan(100.0, 2.0), 8
    )
    assert "| requery | `sce.verify: [lookup]` (drops `sce_requery`) | 0 | 20.0 | 1 | 2.5 |" in lines
    assert "| **without all of them** | | 0 | 80.0 | 29 | 10.0 h in all |" in lines


def test_unestimated_inference_rule_is_reported():
    """A rule with an api_<provider> resource (an inference rule) and no estimate is named; others are not."""
    scaling = _scaling_module()
    jobs = [
        {"rule": "sce_requery", "res_api_openai": "1"},
        {"rule": "sim_new_inference", "res_api_local": "0"},
        {"rule": "sce_summary", "res_mem_mb": "2000"},
    ]
    assert scaling.unestimated_rules(jobs) == ["sim_new_inference"]
