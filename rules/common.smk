# Config access, model and dataset tables, wildcard constraints and target lists.
# All logic lives in the selfexplain package; this file only wires it to Snakemake.
import json
import os
import re
import sys
from pathlib import Path

# Jobs import the selfexplain package from this checkout, whatever else is installed.
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)

from selfexplain.config import validate_config
from selfexplain.llm.sizing import job_resources
from selfexplain.sce.prompts import load_template
from selfexplain.tabular.features import load_dataset_spec

SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"
config, CATALOG = validate_config(
    config,
    SCHEMAS / "config.schema.yaml",
    SCHEMAS / "catalog.schema.yaml",
)
ENV = "../workflow/envs/selfexplain.yaml"
MODELS = config["models"]
# Anthropic batch ids live beside the journals, so a killed batch job resumes its batch instead of paying twice.
os.environ.update(
    SELFEXPLAIN_BATCH_STATE_DIR=str(Path(config["journal_dir"]) / "anthropic_batches")
)
SCE = config["sce"]


def _alternatives(names):
    return "|".join(re.escape(n) for n in names)


wildcard_constraints:
    model=_alternatives(MODELS),
    dataset=_alternatives(SCE["datasets"]),
    prompt=_alternatives(SCE["prompts"]),


def model_entry(wildcards):
    """The catalog entry as JSON: a params value, so editing a model's settings reruns its jobs."""
    return json.dumps(CATALOG[wildcards.model].raw, sort_keys=True)


def model_gpus(wildcards):
    return CATALOG[wildcards.model].gpus


def _job(wildcards, attempt):
    """Resources of one inference job: one request per grid point of the dataset."""
    n_requests = load_dataset_spec(wildcards.dataset).n_rows
    return job_resources(CATALOG[wildcards.model], n_requests, attempt)


def inference_mem_mb(wildcards, attempt):
    return _job(wildcards, attempt).mem_mb


def inference_runtime(wildcards, attempt):
    """Minutes; grows with the attempt."""
    return _job(wildcards, attempt).runtime


def inference_cpus(wildcards, attempt):
    return _job(wildcards, attempt).cpus_per_task


def first_pass_template(wildcards):
    return str(
        load_template(SCE["prompt_dir"], SCE["first_pass"], wildcards.dataset).path
    )


def followup_template(wildcards):
    return str(
        load_template(SCE["prompt_dir"], wildcards.prompt, wildcards.dataset).path
    )


def journal_path(stage):
    def path(wildcards):
        parts = [config["journal_dir"], wildcards.model, stage, wildcards.dataset]
        if "prompt" in wildcards.keys():
            parts.append(wildcards.prompt)
        return str(Path(*parts)) + ".jsonl"

    return path


def prompt_distance(wildcards):
    return SCE["prompt_distances"].get(wildcards.prompt, SCE["distance"])


def sce_runs():
    """(model, dataset, prompt) of every scored run, in config order."""
    return [(m, d, p) for m in MODELS for d in SCE["datasets"] for p in SCE["prompts"]]


def sce_metrics_files():
    return [f"results/sce/{m}/{d}/{p}/metrics.json" for m, d, p in sce_runs()]


def sce_boundary_figures():
    return [f"results/sce/figures/boundary/{m}__{d}__{p}.png" for m, d, p in sce_runs()]


def usage_items():
    """(table, model, rule, column prefix) of every inference output, for results/usage.csv."""
    items = []
    for m in MODELS:
        for d in SCE["datasets"]:
            items.append(
                (f"results/sce/{m}/{d}/predictions.parquet", m, "sce_predict", "first_")
            )
            for p in SCE["prompts"]:
                path = f"results/sce/{m}/{d}/{p}/counterfactuals.parquet"
                items.append((path, m, "sce_elicit", "followup_"))
    return items


def catalog_entries():
    return {m: CATALOG[m].raw for m in MODELS}


def api_slot(provider):
    """1 for jobs of a model served by `provider`, so a global api_<provider> limit caps them."""

    def slot(wildcards):
        return int(CATALOG[wildcards.model].api_provider == provider)

    return slot


def all_targets():
    return [
        "results/usage.csv",
        "results/sce/summary.csv",
        "results/sce/figures/validity_vs_minimality.png",
        *sce_boundary_figures(),
    ]
