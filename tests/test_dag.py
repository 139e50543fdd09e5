"""The paper's DAG: job counts per rule, rule graph and DAG exports, and the generated scaling table."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.test_workflow import _snakemake, _workdir

pytestmark = pytest.mark.workflow
PAPER_JOBS = {
    "sce_grid": 3,
    "sce_predict": 21,
    "sce_elicit": 105,
    "sce_score": 105,
    "sce_plot_boundary": 105,
    "sce_summary": 1,
    "sce_plot": 1,
    "usage_summary": 1,
    "fetch_raw": 6,
    "sim_table": 6,
    "sim_pairs": 6,
    "sim_moral_machines": 1,
    "sim_eval_set": 1,
    "all": 1,
    "total": 363,
}


def _paper_workdir(tmp_path):
    import yaml

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
    assert dot.lstrip().startswith("digraph") and dot.count("sce_predict") >= 21


def test_scaling_table_is_generated_from_the_dag(tmp_path):
    out = tmp_path / "scaling.md"
    subprocess.run(
        [sys.executable, str(REPO / "scripts/scaling.py"), "--out", str(out)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    text = out.read_text()
    assert "| **total** | **363** |" in text
    for model in ("llama3_3_70B", "DeepSeek_70B", "gpt4_1", "claude_3_7_sonnet", "o3", "Gemma_2_27B", "DeepSeek_32B"):
        assert f"| {model} |" in text
    assert re.search(r"\| 8 \| \d+\.\d \|", text)
