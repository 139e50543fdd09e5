"""Integration over real HTTP: our OpenAI and Anthropic backends against `selfexplain serve`, with real clients."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from selfexplain.llm.backends import make_backend
from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.runner import run_requests
from selfexplain.llm.synthetic import SyntheticModel
from selfexplain.llm.types import ChatRequest
from selfexplain.parsing.thinking import split_thinking
from selfexplain.prompts import load_template
from selfexplain.sce.elicit import first_pass_messages
from selfexplain.serve import FaultConfig, ServerThread
from selfexplain.tabular.features import load_dataset_spec
from selfexplain.tabular.grids import build_grid
from tests.conftest import REPO
from tests.test_workflow import _command, _snakemake, _workdir

pytestmark = pytest.mark.workflow
PROMPTS = REPO / "config" / "prompts" / "sce"
NOISE = {"malformed_json": 0.02, "code_fence": 0.1, "think_prefix": 0.05, "extra_keys": 0.05}


def _chats(n: int) -> list[tuple[dict, ...]]:
    """n distinct first-pass chats over the income and heart grids."""
    chats = []
    for dataset in ("income", "heart_disease"):
        spec = load_dataset_spec(dataset)
        template = load_template(PROMPTS, "first_pass", dataset)
        entry = parse_entry("x", {"backend": "synthetic", "model_id": "x"})
        for description in build_grid(spec)["description"]:
            chats.append(tuple(first_pass_messages(entry, spec, template, description)))
    return chats[:n]


def _requests(entry, chats):
    return [ChatRequest(messages=m, sampling=entry.sampling, identity=entry.identity) for m in chats]


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_two_thousand_requests_at_concurrency_64(tmp_path, backend):
    model = SyntheticModel({"sce": {"counterfactual": "exact", "noise": NOISE}})
    chats = _chats(2000)
    with ServerThread({"m": model}, request_log=tmp_path / "requests.jsonl") as server:
        url = server.base_url if backend == "openai" else server.root_url
        entry = parse_entry(
            "served", {"backend": backend, "model_id": "m", "base_url": url, "concurrency": 64, "api_key_env": None}
        )
        client = make_backend(entry)
        start = time.perf_counter()
        out = run_requests(client, _requests(entry, chats), tmp_path / "journal.jsonl", progress=False)
        elapsed = time.perf_counter() - start
    assert [(c.reasoning, c.text) for c in out] == [split_thinking(model.respond(m)) for m in chats]
    assert all(c.ok and c.prompt_tokens and c.completion_tokens for c in out)
    assert any(c.reasoning for c in out)
    log = _log(tmp_path / "requests.jsonl")
    assert len(log) == 2000 and len({r["request_hash"] for r in log}) == 2000
    assert client.stats()["max_in_flight"] <= 64
    print(f"{backend}: 2000 requests in {elapsed:.1f} s ({2000 / elapsed:.0f}/s)")


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_injected_429_and_500_are_retried_until_everything_completes(tmp_path, backend):
    model = SyntheticModel({"sce": {"counterfactual": "exact"}})
    chats = _chats(1000)
    faults = FaultConfig(rate_limit_rate=0.05, error_rate=0.05, retry_after=0.05, seed=3)
    with ServerThread({"m": model}, faults=faults, request_log=tmp_path / "requests.jsonl") as server:
        url = server.base_url if backend == "openai" else server.root_url
        entry = parse_entry(
            "served", {"backend": backend, "model_id": "m", "base_url": url, "concurrency": 32, "max_retries": 10}
        )
        client = make_backend(entry)
        out = run_requests(client, _requests(entry, chats), tmp_path / "journal.jsonl", progress=False)
    assert all(c.ok for c in out) and [c.text for c in out] == [model.respond(m) for m in chats]
    statuses = collections.Counter(r["status"] for r in _log(tmp_path / "requests.jsonl"))
    assert statuses[200] == 1000 and statuses[429] > 0 and statuses[500] > 0
    assert client.retries == statuses[429] + statuses[500]


def test_two_models_with_identical_prompts_never_share_an_answer(tmp_path):
    spec = load_dataset_spec("income")
    first = load_template(PROMPTS, "first_pass", "income")
    followup = load_template(PROMPTS, "standard", "income")
    from selfexplain.sce.prompts import followup_fields

    base = parse_entry("x", {"backend": "synthetic", "model_id": "x"})
    chats = []
    for description in build_grid(spec)["description"][::10]:
        messages = first_pass_messages(base, spec, first, description)
        reply = SyntheticModel({}).respond(messages)
        target = spec.options[1 - spec.options.index(json.loads(reply)["answer"])]
        chats.append(
            (
                *messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": followup.render(followup_fields(spec, target))},
            )
        )
    models = {
        "exact": SyntheticModel({"sce": {"counterfactual": "exact"}}),
        "timid": SyntheticModel({"sce": {"counterfactual": "timid"}}),
    }
    journal = tmp_path / "shared-journal.jsonl"  # the worst case: both models write the same journal
    with ServerThread(models, request_log=tmp_path / "requests.jsonl") as server:
        answers = {}
        for name in models:
            entry = parse_entry(name, {"backend": "openai", "model_id": name, "base_url": server.base_url})
            answers[name] = [
                c.text for c in run_requests(make_backend(entry), _requests(entry, chats), journal, progress=False)
            ]
    assert answers["exact"] == [models["exact"].respond(m) for m in chats]
    assert answers["timid"] == [models["timid"].respond(m) for m in chats]
    assert sum(a != b for a, b in zip(answers["exact"], answers["timid"], strict=True)) > len(chats) // 2
    assert collections.Counter(r["model"] for r in _log(tmp_path / "requests.jsonl")) == {"exact": 192, "timid": 192}


def _start_server(tmp_path: Path, catalog: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        "-m",
        "selfexplain.cli",
        "serve",
        "--catalog",
        str(catalog),
        "--catalog-schema",
        str(REPO / "workflow/schemas/catalog.schema.yaml"),
        "--port",
        "0",
        "--request-log",
        str(tmp_path / "requests.jsonl"),
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise AssertionError(f"serve did not start: {line}{proc.stderr.read()}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def _served_catalog(url: str) -> dict:
    catalog = yaml.safe_load((REPO / "config/models.yaml").read_text())
    for name in ("served-exact", "served-overshoot", "served-timid"):
        catalog["models"][name]["base_url"] = url + "/v1"
    return catalog


def test_workflow_through_serve_equals_in_process(tmp_path):
    config = {
        "studies": ["sce"],
        "sce": {
            "models": ["synthetic-exact", "synthetic-timid", "served-exact", "served-timid"],
            "datasets": ["heart_disease"],
            "prompts": ["minimal"],
            "bootstrap": {"resamples": 100},
        },
    }
    catalog_path = tmp_path / "serve_catalog.yaml"
    catalog_path.write_text((REPO / "config/models.yaml").read_text())
    server, url = _start_server(tmp_path, catalog_path)
    try:
        workdir = _workdir(tmp_path / "work", config, _served_catalog(url))
        _snakemake(workdir)
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = pd.read_csv(workdir / "results/sce/summary.csv").set_index("model")
    metrics = ["validity_percent", "mean_RCF_A", "strict_validity_percent", "exact_match", "n_kept"]
    for behaviour in ("exact", "timid"):
        local = summary.loc[f"synthetic-{behaviour}", metrics]
        served = summary.loc[f"served-{behaviour}", metrics]
        pd.testing.assert_series_equal(local, served, check_names=False)
    usage = pd.read_csv(workdir / "results/usage.csv")
    assert set(usage["model"]) == set(config["sce"]["models"])


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_killed_snakemake_resumes_without_paying_twice(tmp_path, backend):
    catalog_path = tmp_path / "serve_catalog.yaml"
    catalog_path.write_text((REPO / "config/models.yaml").read_text())
    server, url = _start_server(tmp_path, catalog_path, "--latency", "0.01")
    try:
        catalog = _served_catalog(url)
        catalog["models"]["served-exact"]["concurrency"] = 8
        if backend == "anthropic":
            served = catalog["models"]["served-exact"]
            served.update(backend="anthropic", base_url=url, sampling={"temperature": None})
        config = {
            "studies": ["sce"],
            "sce": {
                "models": ["served-exact"],
                "datasets": ["income"],
                "prompts": ["minimal"],
                "bootstrap": {"resamples": 0},
            },
        }
        workdir = _workdir(tmp_path / "work", config, catalog)
        journal = workdir / "journal/served-exact/sce_predict/income.jsonl"
        proc = subprocess.Popen(
            _command(workdir, cores=1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.time() + 120
        while (not journal.exists() or journal.read_text().count("\n") < 300) and time.time() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        journaled = journal.read_text().count("\n")
        assert 300 <= journaled < 1920, "the job should have been killed part-way"
        _snakemake(workdir, "--unlock")
        _snakemake(workdir)
    finally:
        server.terminate()
        server.wait(timeout=30)
    log = [r for r in _log(tmp_path / "requests.jsonl") if r["status"] == 200]
    counts = collections.Counter(r["request_hash"] for r in log)
    predictions = pd.read_parquet(workdir / "results/sce/served-exact/income/predictions.parquet")
    assert len(predictions) == 1920 and predictions["answer"].notna().mean() > 0.95
    # With `verify: requery` each readable counterfactual is asked again as a first-pass question in a fresh chat,
    # on purpose another sample (`repeat` shifts the seed). The server tells such a chat from the first-pass one by
    # its seed; Anthropic has no seed, so there it is the same chat asked twice by design, not a resend.
    requery = pd.DataFrame({"requery_request_key": [], "requery_description": []})
    for path in workdir.glob("results/sce/served-exact/income/minimal/requery.parquet"):
        requery = pd.read_parquet(path)
    asked_again = set(requery["requery_description"]) & set(predictions["description"])
    by_design = len(asked_again) if backend == "anthropic" else 0
    repeats = sum(n - 1 for n in counts.values()) - by_design
    # Only requests in flight at the kill (at most `concurrency`) may have been answered twice.
    assert 0 <= repeats <= 8
    # every first-pass, follow-up and re-query chat answered
    assert len(counts) == 1920 * 2 + requery["requery_request_key"].nunique() - by_design
