# Config access, model and dataset tables, wildcard constraints, resources and target lists of both studies.
# All logic lives in the selfexplain package; this file only wires it to Snakemake. Helpers that differ by study
# take the study as a parameter.
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
from selfexplain.prompts import load_template
from selfexplain.simulatability.builtin import MORAL_MACHINES, tabular_dataset_names
from selfexplain.tabular.features import load_dataset_spec

SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"
config, CATALOG = validate_config(
    config,
    SCHEMAS / "config.schema.yaml",
    SCHEMAS / "catalog.schema.yaml",
)
ENV = "../workflow/envs/selfexplain.yaml"
STUDIES = config["studies"]
SCE = config["sce"]
SIM = config["simulatability"]
# Anthropic batch ids live beside the journals, so a killed batch job resumes its batch instead of paying twice.
os.environ.update(
    SELFEXPLAIN_BATCH_STATE_DIR=str(Path(config["journal_dir"]) / "anthropic_batches")
)


def _alternatives(names):
    """A wildcard pattern matching exactly these names (a never-matching one when there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def study_models(study):
    """Catalog names of the models a study runs."""
    if study not in STUDIES:
        return []
    if study == "sce":
        return SCE["models"]
    return list(dict.fromkeys(sim_references() + sim_predictors()))


def sim_references():
    return SIM["references"] if "simulatability" in STUDIES else []


def sim_predictors():
    return SIM["predictors"] if sim_references() else []


def sim_tabular_datasets():
    """The simulatability datasets built from raw tables (Moral Machines is generated)."""
    return [d for d in SIM["datasets"] if d != MORAL_MACHINES]


# The simulatability study's figures (file stem -> what it shows); drawn by selfexplain.simulatability.plots.
SIM_FIGURES = {
    "nsg_by_reference": "NSG per reference model",
    "nsg_by_dataset": "NSG per dataset",
    "nsg_by_predictor": "NSG per reference model and predictor",
    "egregious": "egregious rate",
}


# One block for both studies. sce grids and simulatability datasets share names (income, heart_disease) but are
# different things, so each study has its own wildcard: {grid} for sce, {dataset} for simulatability.
wildcard_constraints:
    model=_alternatives(study_models("sce")),
    grid=_alternatives(SCE["datasets"]),
    prompt=_alternatives(SCE["prompts"]),
    dataset=_alternatives(tabular_dataset_names()),
    reference=_alternatives(sim_references()),
    predictor=_alternatives(sim_predictors()),
    figure=_alternatives(SIM_FIGURES),


# -- models ------------------------------------------------------------------------------------------------------
def model_entry(wildcard="model"):
    """The catalog entry as JSON: a params value, so editing a model's settings reruns its jobs."""

    def entry(wildcards):
        return json.dumps(CATALOG[wildcards[wildcard]].raw, sort_keys=True)

    return entry


def model_gpus(wildcard="model"):
    def gpus(wildcards):
        return CATALOG[wildcards[wildcard]].gpus

    return gpus


def api_slot(provider, wildcard="model"):
    """1 for jobs of a model served by `provider`, so a global api_<provider> limit caps them."""

    def slot(wildcards):
        return int(CATALOG[wildcards[wildcard]].api_provider == provider)

    return slot


def catalog_entries():
    models = dict.fromkeys(m for s in STUDIES for m in study_models(s))
    return {m: CATALOG[m].raw for m in models}


# -- inference jobs ----------------------------------------------------------------------------------------------
def _request_count(study, wildcards):
    """Requests one inference job of the study sends (sizes its memory and runtime)."""
    if study == "sce":
        return load_dataset_spec(wildcards.grid).n_rows
    # simulatability (before the eval set exists): its rows, twice for whole pairs
    rows = SIM["eval_set"]["size"] * len(SIM["datasets"])
    rows *= 2 if SIM["eval_set"]["unit"] == "pairs" else 1
    if "predictor" in wildcards.keys():
        return rows * len(SIM["conditions"]) * SIM["repeats"]
    return 2 * rows  # each pair asks about its centre and its counterfactual


def inference_resource(study, key, wildcard="model"):
    """mem_mb, runtime (minutes) or cpus_per_task of an inference job, from its model and size; grows with attempt."""

    def resource(wildcards, attempt):
        sizes = job_resources(
            CATALOG[wildcards[wildcard]], _request_count(study, wildcards), attempt
        )
        return getattr(sizes, key)

    return resource


def journal_path(study, stage, *names, wildcard="model"):
    """journal/<model>/<study>_<stage>/<wildcard values>.jsonl, outside the rule's outputs."""

    def path(wildcards):
        parts = [config["journal_dir"], wildcards[wildcard], f"{study}_{stage}"]
        return str(Path(*parts, *(wildcards[n] for n in names))) + ".jsonl"

    return path


# -- sce ---------------------------------------------------------------------------------------------------------
def first_pass_template(wildcards):
    return str(load_template(SCE["prompt_dir"], SCE["first_pass"], wildcards.grid).path)


def followup_template(wildcards):
    return str(load_template(SCE["prompt_dir"], wildcards.prompt, wildcards.grid).path)


def prompt_distance(wildcards):
    return SCE["prompt_distances"].get(wildcards.prompt, SCE["distance"])


def sce_runs():
    """(model, grid, prompt) of every scored run, in config order."""
    return [
        (m, d, p)
        for m in study_models("sce")
        for d in SCE["datasets"]
        for p in SCE["prompts"]
    ]


def sce_metrics_files():
    return [f"results/sce/{m}/{d}/{p}/metrics.json" for m, d, p in sce_runs()]


def sce_boundary_figures():
    return [f"results/sce/figures/boundary/{m}__{d}__{p}.png" for m, d, p in sce_runs()]


# -- simulatability ------------------------------------------------------------------------------------------------
def raw_source(wildcards):
    """The configured source of a dataset's raw table (empty: the spec's default)."""
    return SIM["raw"]["sources"].get(wildcards.dataset, {})


def raw_source_files(wildcards):
    """A user's own raw file is an input, so replacing it rebuilds what depends on it."""
    source = raw_source(wildcards)
    return [source["path"]] if source.get("kind") == "file" else []


def sim_pairs_files():
    return [f"results/simulatability/pairs/{d}.parquet" for d in SIM["datasets"]]


def sim_prompt_dir():
    return SIM["prompt_dir"]


def sim_prediction_files(reference):
    return [
        f"results/simulatability/{reference}/{p}/predictions.parquet"
        for p in sim_predictors()
    ]


def sim_predictions_of(wildcards):
    return sim_prediction_files(wildcards.reference)


def sim_families():
    """Catalog family of every model of the study (same-family predictors are left out by this, not by name)."""
    return {m: CATALOG[m].family for m in study_models("simulatability")}


def sim_metrics_files():
    return [f"results/simulatability/{r}/metrics.json" for r in sim_references()]


# -- usage and targets ---------------------------------------------------------------------------------------------
def usage_items(study):
    """(table, model, rule, column prefix) of every inference output of a study, for results/usage.csv."""
    items = []
    if study == "simulatability":
        for r in sim_references():
            items.append(
                (
                    f"results/simulatability/{r}/reference.parquet",
                    r,
                    "sim_reference",
                    "",
                )
            )
            for p in sim_predictors():
                path = f"results/simulatability/{r}/{p}/predictions.parquet"
                items.append((path, p, "sim_predict", ""))
    if study == "sce":
        for m in study_models("sce"):
            for d in SCE["datasets"]:
                path = f"results/sce/{m}/{d}/predictions.parquet"
                items.append((path, m, "sce_predict", "first_"))
                for p in SCE["prompts"]:
                    path = f"results/sce/{m}/{d}/{p}/counterfactuals.parquet"
                    items.append((path, m, "sce_elicit", "followup_"))
    return items


def all_usage_items():
    return [item for study in STUDIES for item in usage_items(study)]


def study_targets(study):
    """A study's outputs, with the report pages of its summary (results/report/, shown by `snakemake --report`)."""
    if study == "sce":
        return [
            "results/sce/summary.csv",
            "results/report/sce_summary.html",
            "results/sce/figures/validity_vs_minimality.png",
            *sce_boundary_figures(),
        ]
    if study == "simulatability":
        figures = [f"results/simulatability/figures/{f}.png" for f in SIM_FIGURES]
        summary = [
            "results/simulatability/summary.csv",
            "results/report/sim_summary.html",
        ]
        return [
            "results/simulatability/eval_set.parquet",
            *([*summary, *figures] if sim_references() else []),
        ]
    return []


def all_targets():
    """Every study's targets, the usage table and the report's front page."""
    targets = [t for study in STUDIES for t in study_targets(study)]
    if all_usage_items():
        targets[:0] = ["results/usage.csv", "results/report/usage.html"]
    return ["results/report/front_page.html", *targets]
