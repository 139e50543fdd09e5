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


def _command(workdir: Path, *args: str, cores: int = 2, configfile: str = "tiny.yaml") -> list[str]:
    return [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "config" / configfile),
        "--cores",
        str(cores),
        *args,
    ]


def _snakemake(workdir: Path, *args: str, check: bool = True, configfile: str = "tiny.yaml"):
    result = subprocess.run(
        _command(workdir, *args, configfile=configfile), capture_output=True, text=True, timeout=600
    )
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
                f"{run}/requery.parquet",  # the default config verifies by lookup and requery
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
    assert set(metrics["ci95"]) == {"validity_percent", "mean_RCF_A", "validity_requery_percent"}
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
            "results/sce/synthetic-exact/income/minimal/requery.parquet",
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


def _files(root: Path, skip: Path | None = None) -> dict[str, tuple[bytes, int]]:
    """Content and modification time of every file under root (except under skip)."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and (skip is None or skip not in p.parents)
    }


def _dry_run_outputs(result) -> list[str]:
    text = result.stdout + result.stderr
    return [o.strip() for line in re.findall(r"^\s*output: (.*)$", text, flags=re.MULTILINE) for o in line.split(",")]


def test_configs_with_their_own_results_folder_never_overwrite_each_other(tmp_path):
    """The default config, then a serve-style config (another model, config/serve.yaml's results_dir), in one folder.

    Before results_dir, the second run rewrote the first one's summary, scatter and usage table with its own models.
    """
    other_results = yaml.safe_load((REPO / "config/serve.yaml").read_text())["results_dir"]
    assert Path(other_results) != Path("results")
    one_run = {"datasets": ["income"], "prompts": ["minimal"], "bootstrap": {"resamples": 20, "seed": 0}}
    workdir = _workdir(tmp_path, {"studies": ["sce"], "sce": {"models": ["synthetic-exact"], **one_run}})
    # Like config/serve.yaml: merged over config/config.yaml, other models, its own results folder.
    other = {"results_dir": other_results, "studies": ["sce"], "sce": {"models": ["synthetic-overshoot"], **one_run}}
    (workdir / "config/other.yaml").write_text(yaml.safe_dump(other))

    _snakemake(workdir)
    results = workdir / "results"
    before = _files(results)
    assert {"sce/summary.csv", "usage.csv", "sce/figures/validity_vs_minimality.png"} <= set(before)

    _snakemake(workdir, configfile="other.yaml")
    _snakemake(workdir, "--report", f"{other_results}/report.html", configfile="other.yaml")
    ours = workdir / other_results
    assert _files(results, skip=ours) == before, "the second config changed the first one's results"
    for name in (
        "sce/summary.csv",
        "usage.csv",
        "sce/figures/validity_vs_minimality.png",
        "sce/figures/boundary/synthetic-overshoot__income__minimal.png",
        "report/front_page.html",
        "report/sce_summary.html",
        "report/usage.html",
        "report.html",
    ):
        assert (ours / name).stat().st_size > 0, name
    assert set(pd.read_csv(ours / "sce/summary.csv")["model"]) == {"synthetic-overshoot"}
    assert set(pd.read_csv(ours / "usage.csv")["model"]) == {"synthetic-overshoot"}
    assert set(pd.read_csv(results / "sce/summary.csv")["model"]) == {"synthetic-exact"}
    assert "synthetic-overshoot" not in (results / "report/front_page.html").read_text()
    # the HTML report opens on its own config's front page (workflow.rst reads results_dir)
    assert "synthetic-overshoot" in (ours / "report.html").read_text()
    # The second run did not make the first one out of date.
    dry = _snakemake(workdir, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr

    # Every output of both studies (and the report pages) lies in the config's results folder or resources/.
    (workdir / "config/both.yaml").write_text(yaml.safe_dump({"results_dir": other_results}))
    outputs = _dry_run_outputs(_snakemake(workdir, "-n", configfile="both.yaml"))
    assert any("simulatability/" in o for o in outputs) and any("/report/" in o for o in outputs)
    strays = [o for o in outputs if not o.startswith((f"{other_results}/", "resources/"))]
    assert not strays, strays


def test_readme_writes_reports_and_graphs_under_results_and_git_ignores_strays():
    """The README's report and graph commands write under results/; what a user still writes in the root is ignored."""
    commands = re.findall(r"^\.venv/bin/snakemake [^\n]*$", (REPO / "README.md").read_text(), flags=re.MULTILINE)
    targets = []
    for line in commands:
        code = line.split("#", 1)[0]
        assert "| dot" not in code, f"needs Graphviz: {line}"
        targets += re.findall(r"--report\s+(\S+)", code) + re.findall(r">\s*(\S+)", code)
    assert len(targets) >= 4, commands
    assert all(t.startswith("results/") for t in targets), targets
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = [
        "report.html",
        "report.zip",
        "dag.svg",
        "dag.dot",
        "dag.mmd",
        "rules.mmd",
        "rulegraph.pdf",
        "screenshots/a.png",
    ]
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", *names], capture_output=True, text=True)
    assert ignored.stdout.split() == names
    kept = subprocess.run(["git", "-C", str(REPO), "check-ignore", "README.md", "rules/sce.smk"], capture_output=True)
    assert kept.returncode == 1, "a tracked file would be ignored"
