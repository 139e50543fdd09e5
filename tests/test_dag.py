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
    # simulatability inference: 18 reference models, 5 predictors, every predictor on every reference
    "sim_reference": 18,
    "sim_predict": 90,
    "sim_testability": 18,
    "sim_metrics": 18,
    "sim_transcripts": 18,
    "sim_plot": 4,
    "sim_summary": 1,
    "sim_testability_summary": 1,
    # side analyses that need only the paper's two conditions (cot/no_reference and McNemar pairs are not run)
    "sim_side_agreement": 1,
    "sim_side_answer_order": 1,
    "sim_side_features": 1,
    "cross_study_summary": 1,
    "cross_study_plot": 1,
    # the report's front page and inline tables
    "report_front_page": 1,
    "report_sce_table": 1,
    "report_sim_table": 1,
    "report_usage_table": 1,
    "all": 1,
    "total": 984,
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
    for name in dict.fromkeys([*sim["references"], *sim["predictors"]]):
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
