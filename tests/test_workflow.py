"""Snakemake end to end on a tiny config in a temporary directory."""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.workflow
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def _workdir(tmp_path: Path, config: dict, catalog: dict | None = None) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    if catalog is not None:
        (tmp_path / "config" / "test_models.yaml").write_text(yaml.safe_dump(catalog))
        config = {**config, "catalog": "config/test_models.yaml"}
    (tmp_path / "config" / "tiny.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def _command(workdir: Path, *args: str, cores: int = 2) -> list[str]:
    return [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "config" / "tiny.yaml"),
        "--cores",
        str(cores),
        *args,
    ]


def _snakemake(workdir: Path, *args: str, check: bool = True):
    result = subprocess.run(_command(workdir, *args), capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


TINY = {
    "studies": ["sce"],
    "sce": {
        "models": ["synthetic-exact", "synthetic-timid"],
        "datasets": ["income"],
        "prompts": ["standard", "minimal"],
        "bootstrap": {"resamples": 50, "seed": 0},
    },
}


def test_tiny_workflow_produces_every_declared_output(tmp_path):
    workdir = _workdir(tmp_path, TINY)
    _snakemake(workdir)
    summary = pd.read_csv(workdir / "results/sce/summary.csv")
    assert len(summary) == 4
    expected = [
        "resources/sce/income/grid.parquet",
        "results/usage.csv",
        "results/sce/validity_vs_minimality.png".replace("sce/", "sce/figures/"),
    ]
    for model in TINY["sce"]["models"]:
        expected.append(f"results/sce/{model}/income/predictions.parquet")
        for prompt in TINY["sce"]["prompts"]:
            run = f"results/sce/{model}/income/{prompt}"
            expected += [
                f"{run}/counterfactuals.parquet",
                f"{run}/scores.parquet",
                f"{run}/metrics.json",
                f"results/sce/figures/boundary/{model}__income__{prompt}.png",
                f"logs/sce_elicit/{model}/income/{prompt}.log",
                f"benchmarks/sce_elicit/{model}/income/{prompt}.tsv",
            ]
    for path in expected:
        assert (workdir / path).stat().st_size > 0, path
    exact = summary.set_index(["model", "prompt"]).loc[("synthetic-exact", "minimal")]
    assert exact["validity_percent"] == 100 and exact["mean_RCF_A"] == 0
    timid = summary.set_index(["model", "prompt"]).loc[("synthetic-timid", "minimal")]
    assert timid["validity_percent"] < 20
    metrics = json.loads((workdir / "results/sce/synthetic-exact/income/minimal/metrics.json").read_text())
    assert metrics["provenance"]["model"] == "synthetic-exact"
    assert set(metrics["ci95"]) == {"validity_percent", "mean_RCF_A"}
    # nothing left to do on a second run, and the HTML report builds
    again = _snakemake(workdir, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    _snakemake(workdir, "--report", str(workdir / "report.html"))
    assert (workdir / "report.html").stat().st_size > 100_000
    # rebuilding one result file re-runs only what feeds it
    target = "results/sce/synthetic-exact/income/minimal/metrics.json"
    dry = _snakemake(workdir, "-n", target, "--forcerun", "sce_elicit")
    scheduled = re.findall(r"^\s*output: (.*)$", dry.stdout + dry.stderr, flags=re.MULTILINE)
    assert sorted(scheduled) == sorted(
        [
            "results/sce/synthetic-exact/income/minimal/counterfactuals.parquet",
            "results/sce/synthetic-exact/income/minimal/scores.parquet, " + target,
        ]
    ), scheduled


def test_changing_one_models_settings_reruns_only_its_jobs(tmp_path):
    catalog = yaml.safe_load((REPO / "config/models.yaml").read_text())
    workdir = _workdir(tmp_path, {**TINY, "sce": {**TINY["sce"], "prompts": ["minimal"]}}, catalog)
    _snakemake(workdir)
    catalog["models"]["synthetic-timid"]["sampling"] = {"temperature": 0.5}
    (workdir / "config/test_models.yaml").write_text(yaml.safe_dump(catalog))
    dry = _snakemake(workdir, "-n")
    outputs = [
        line.split(":", 1)[1] for line in (dry.stdout + dry.stderr).splitlines() if line.strip().startswith("output:")
    ]
    assert any("results/sce/synthetic-timid/income/predictions.parquet" in o for o in outputs)
    assert not any("synthetic-exact" in o for o in outputs), outputs


def test_unknown_model_fails_at_parse_time_naming_the_key(tmp_path):
    workdir = _workdir(tmp_path, {**TINY, "sce": {**TINY["sce"], "models": ["synthetic-exact", "gpt-7"]}})
    result = _snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    assert "config.sce.models[1]: 'gpt-7' is not one of" in result.stdout + result.stderr


def _journal_lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_killed_inference_job_resumes_without_asking_twice(tmp_path):
    call_log = tmp_path / "calls.jsonl"
    catalog = {
        "models": {
            "slow-synthetic": {
                "backend": "synthetic",
                "model_id": "selfexplain/slow",
                "synthetic": {"sce": {"counterfactual": "exact"}, "latency_s": 0.004, "call_log": str(call_log)},
            }
        }
    }
    config = {
        "studies": ["sce"],
        "sce": {
            "models": ["slow-synthetic"],
            "datasets": ["income"],
            "prompts": ["minimal"],
            "bootstrap": {"resamples": 0},
        },
    }
    workdir = _workdir(tmp_path, config, catalog)
    journal = workdir / "journal/slow-synthetic/sce_predict/income.jsonl"
    proc = subprocess.Popen(
        _command(workdir, cores=1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 120
    while _journal_lines(journal) < 400 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    answered_before = _journal_lines(journal)
    assert 400 <= answered_before < 1920, "the job should have been killed part-way"
    assert not (workdir / "results/sce/slow-synthetic/income/predictions.parquet").exists()

    _snakemake(workdir, "--unlock")
    _snakemake(workdir)
    calls = [json.loads(line)["key"] for line in call_log.read_text().splitlines()]
    repeats = [k for k, n in collections.Counter(calls).items() if n > 1]
    # Only a request in flight at the kill (answered, not yet journaled) may be asked again.
    assert len(repeats) <= 1
    predictions = pd.read_parquet(workdir / "results/sce/slow-synthetic/income/predictions.parquet")
    assert len(predictions) == 1920 and predictions["row_id"].tolist() == list(range(1920))
    assert predictions["first_request_key"].nunique() == 1920
    assert set(predictions["first_request_key"]) <= set(calls)
    log = (workdir / "logs/sce_predict/slow-synthetic/income.log").read_text()
    assert f"{answered_before} from the journal" in log or f"{answered_before - 1} from the journal" in log
