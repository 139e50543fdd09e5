"""The Slurm profile (profiles/slurm) on a real single-node Slurm cluster.

Runs the default workflow on a tiny config through `--profile profiles/slurm`, with a test catalog
(tests/slurm_models.yaml) in which one synthetic model declares `gpus: 1`, then reads Slurm's job records:
that model's inference jobs (sce_predict, sce_elicit) ran in partition `gpu` with a GPU request, every other
Slurm job ran in partition `cpu` without one, and local rules never went to Slurm.

Skipped, with the reason, when Slurm is not up (or the executor plugin is not installed). To run it:

    sudo scripts/slurm_up.sh              # installs and starts munge + slurmctld + slurmd (root), ~20 s
    .venv/bin/pip install -e ".[slurm]"
    .venv/bin/pytest tests/test_slurm.py
    sudo scripts/slurm_down.sh

or let the test start (and afterwards stop) the cluster itself: SELFEXPLAIN_START_SLURM=1 .venv/bin/pytest ...
The cluster has no accounting database, so job records come from `scontrol show job` (kept for MinJobAge).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from tests.test_workflow import _command, _workdir

pytestmark = pytest.mark.workflow

PROFILE = REPO / "profiles" / "slurm"
CATALOG = REPO / "tests" / "slurm_models.yaml"
GPU_MODEL = "synthetic-gpu"
CPU_MODEL = "synthetic-exact"
TINY = {
    "studies": ["sce"],
    "sce": {
        "models": [CPU_MODEL, GPU_MODEL],
        "datasets": ["income"],
        "prompts": ["minimal"],
        "bootstrap": {"resamples": 50, "seed": 0},
    },
}
INFERENCE_RULES = {"sce_predict", "sce_elicit", "sce_requery"}  # the default config verifies by lookup and requery
SLURM_RULES = {*INFERENCE_RULES, "sce_score"}
LOCAL_RULES = {"sce_grid", "sce_summary", "sce_plot", "sce_plot_boundary", "usage_summary", "all"}
WORKFLOW_TIMEOUT_S = 240


def _run(*args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    """A Slurm client call that cannot hang (sinfo retries for minutes when the controller is down)."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(args, 124, e.stdout or "", f"timed out after {timeout} s")


def _slurm_problem() -> str | None:
    """Why this machine cannot run the test, or None when a cluster with partitions cpu and gpu is up."""
    if shutil.which("sinfo") is None:
        return "Slurm is not installed (sinfo not found); start a test cluster with `sudo scripts/slurm_up.sh`"
    # scontrol ping answers at once; sinfo would retry for about 10 s when the controller is down
    ping = _run("scontrol", "ping")
    info = _run("sinfo", "-h", "-o", "%R|%a|%t|%G") if ping.returncode == 0 else ping
    if info.returncode != 0:
        why = (info.stdout + info.stderr).split("\n")[0].strip()
        return f"Slurm is not up ({why}); start it with `sudo scripts/slurm_up.sh`"
    partitions = {line.split("|")[0]: line.split("|") for line in info.stdout.split()}
    for name in ("cpu", "gpu"):
        if name not in partitions:
            return f"the Slurm cluster has no partition '{name}' (sinfo: {info.stdout.strip()})"
    _, avail, state, gres = partitions["gpu"]
    if avail != "up" or state.rstrip("*~#") not in {"idle", "mix", "alloc", "comp"}:
        return f"partition gpu is not usable (sinfo: {info.stdout.strip()})"
    if "gpu" not in gres:
        return f"partition gpu advertises no GPU GRES (sinfo: {info.stdout.strip()})"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """Skip unless Slurm is up; with SELFEXPLAIN_START_SLURM=1 start it with scripts/slurm_up.sh (and stop it)."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip('snakemake-executor-plugin-slurm is not installed (pip install -e ".[slurm]")')
    started = False
    problem = _slurm_problem()
    if problem and os.environ.get("SELFEXPLAIN_START_SLURM") == "1":
        up = _run("bash", str(REPO / "scripts" / "slurm_up.sh"), timeout=900)
        started = up.returncode == 0
        problem = _slurm_problem() if started else f"scripts/slurm_up.sh failed: {up.stderr.strip()[-1000:]}"
    if problem:
        pytest.skip(problem)
    yield
    if started:
        _run("bash", str(REPO / "scripts" / "slurm_down.sh"), timeout=60)


def _field(record: str, key: str) -> str:
    match = re.search(rf"(?:^|\s){re.escape(key)}=(\S*)", record)
    return match.group(1) if match else ""


def _jobs_in(workdir: Path) -> list[dict]:
    """Slurm's records of the jobs submitted from workdir: id, rule, wildcards, partition, GPU request, state."""
    out = _run("scontrol", "show", "job", "-o", timeout=30)
    assert out.returncode == 0, out.stderr
    jobs = []
    for record in out.stdout.splitlines():
        if _field(record, "WorkDir") != str(workdir):
            continue
        rule, _, wildcards = _field(record, "Comment").removeprefix("rule_").partition("_wildcards_")
        jobs.append(
            {
                "id": _field(record, "JobId"),
                "rule": rule,
                "wildcards": wildcards,
                "partition": _field(record, "Partition"),
                "state": _field(record, "JobState"),
                # --gpus=N is recorded as TresPerJob, --gres=gpu:N as TresPerNode
                "gpu_request": ",".join(
                    v for v in (_field(record, "TresPerJob"), _field(record, "TresPerNode")) if "gpu" in v
                ),
            }
        )
    return jobs


def _snakemake_on_slurm(workdir: Path) -> subprocess.CompletedProcess:
    # The profile by absolute path: it names partitions.yaml relative to itself, and -d changes the directory.
    cmd = _command(
        workdir,
        "--profile",
        str(PROFILE),
        # first status check after 2 s instead of the profile's 10 s: the test's jobs take seconds
        "--slurm-init-seconds-before-status-checks",
        "2",
    )
    # Own process group: on a timeout, kill snakemake and its children (SIGTERM alone may not stop it).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=WORKFLOW_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        ids = [job["id"] for job in _jobs_in(workdir)]
        if ids:
            _run("scancel", *ids)
        raise AssertionError(f"snakemake on Slurm did not finish in {WORKFLOW_TIMEOUT_S} s:\n{out[-6000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


@pytest.mark.timeout(300)
def test_gpu_models_inference_jobs_go_to_the_gpu_partition(slurm_cluster, tmp_path):
    catalog = yaml.safe_load(CATALOG.read_text())
    assert catalog["models"][GPU_MODEL]["gpus"] == 1 and not catalog["models"][CPU_MODEL].get("gpus")
    workdir = _workdir(tmp_path, TINY, catalog)

    result = _snakemake_on_slurm(workdir)
    assert result.returncode == 0, f"snakemake failed ({result.returncode}):\n{result.stdout[-6000:]}"
    summary = pd.read_csv(workdir / "results/sce/summary.csv")
    assert sorted(summary["model"]) == sorted(TINY["sce"]["models"])

    jobs = _jobs_in(workdir)
    described = "\n".join(str(job) for job in jobs)
    # exactly the non-local jobs went to Slurm, once each, and all completed
    expected = sorted((rule, model) for rule in SLURM_RULES for model in TINY["sce"]["models"])
    assert sorted((job["rule"], job["wildcards"].split("_")[0]) for job in jobs) == expected, described
    assert all(job["state"] == "COMPLETED" for job in jobs), described
    for job in jobs:
        needs_gpu = job["rule"] in INFERENCE_RULES and job["wildcards"].startswith(f"{GPU_MODEL}_")
        if needs_gpu:
            assert job["partition"] == "gpu", job
            assert job["gpu_request"] == "gres:gpu:1", job
        else:
            assert job["partition"] == "cpu", job
            assert job["gpu_request"] == "", job

    # local rules ran in the snakemake process: reported as localrule, no Slurm job, no Slurm log
    log = result.stdout
    for rule in LOCAL_RULES:
        assert f"localrule {rule}:" in log, rule
        assert f"\nrule {rule}:" not in log, rule
    slurm_logs = workdir / ".snakemake" / "slurm_logs"
    assert {p.name.removeprefix("rule_") for p in slurm_logs.iterdir()} == SLURM_RULES
    assert "Auto-selected partition 'gpu' for job sce_predict" in log
