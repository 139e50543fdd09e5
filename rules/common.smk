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

from selfexplain.config import (
    exit_message,
    models_of_jobs,
    preflight,
    validate_config,
)
from selfexplain.errors import ConfigError
from selfexplain.llm.sizing import job_resources
from selfexplain.prompts import load_template
from selfexplain.simulatability.builtin import MORAL_MACHINES, tabular_dataset_names
from selfexplain.simulatability.config import conditions_for, run_references
from selfexplain.tabular.features import load_dataset_spec

SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"
# A config error is printed as one line per problem and stops the run: a raised exception would be printed with
# Snakemake's traceback frames, while sys.exit prints only the message.
try:
    config, CATALOG = validate_config(
        config,
        SCHEMAS / "config.schema.yaml",
        SCHEMAS / "catalog.schema.yaml",
        config_files=workflow.configfiles,
    )
except ConfigError as exc:
    sys.exit(exit_message(exc))


# Before the first job starts (not in a dry run, and only when there is work to do): every model whose inference
# jobs will run passes its backend's preflight here (API key variable set, vLLM installed, endpoint answering).
# Snakemake retries every failed job (the profiles' `retries`), with more memory; a job that would fail this way
# is certain to fail again, so it is never started. --no-hooks skips this: such a job then fails on the same check
# in its first second (no request sent), and is retried once.
onstart:
    try:
        preflight(
            CATALOG[m] for m in models_of_jobs(workflow.dag.needrun_jobs(), CATALOG)
        )
    except ConfigError as exc:
        sys.exit(exit_message(exc))


ENV = "../workflow/envs/selfexplain.yaml"
STUDIES = config["studies"]
SCE = config["sce"]
SIM = config["simulatability"]
# Every result path goes through RESULTS (config key results_dir, default results): two configs with different
# results folders never overwrite each other's tables, figures, usage or report pages. Journals stay shared (keyed
# by the request itself, so a second config reuses the first one's answers and pays nothing twice), and so does
# resources/ (grids and raw tables depend only on the dataset and its source).
RESULTS = os.path.normpath(config["results_dir"])
# Anthropic batch ids live beside the journals, so a killed batch job resumes its batch instead of paying twice.
os.environ.update(
    SELFEXPLAIN_BATCH_STATE_DIR=str(Path(config["journal_dir"]) / "anthropic_batches")
)


def result_path(path):
    """`path` inside this run's results folder."""
    return f"{RESULTS}/{path}"


def _alternatives(names):
    """A wildcard pattern matching exactly these names (a never-matching one when there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def study_models(study):
    """Catalog names of the models a study runs."""
    if study not in STUDIES:
        return []
    if study == "sce":
        return SCE["models"]
    return list(dict.fromkeys(sim_run_references() + sim_predictors()))


def sim_references():
    """The reference models of the summary, figures and side analyses."""
    return SIM["references"] if "simulatability" in STUDIES else []


def sim_run_references():
    """Every model answering as a reference: the references and those named only in compare_references."""
    return run_references(SIM) if "simulatability" in STUDIES else []


def sim_conditions(wildcards):
    """The conditions a reference's predictors answer (conditions plus its side.extra_conditions)."""
    return conditions_for(SIM, wildcards.reference)


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
    reference=_alternatives(sim_run_references()),
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
        return rows * len(sim_conditions(wildcards)) * SIM["repeats"]
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
    return [result_path(f"sce/{m}/{d}/{p}/metrics.json") for m, d, p in sce_runs()]


def sce_boundary_figures():
    return [
        result_path(f"sce/figures/boundary/{m}__{d}__{p}.png") for m, d, p in sce_runs()
    ]


# -- simulatability ------------------------------------------------------------------------------------------------
def raw_source(wildcards):
    """The configured source of a dataset's raw table (empty: the spec's default)."""
    return SIM["raw"]["sources"].get(wildcards.dataset, {})


def raw_source_files(wildcards):
    """A user's own raw file is an input, so replacing it rebuilds what depends on it."""
    source = raw_source(wildcards)
    return [source["path"]] if source.get("kind") == "file" else []


def sim_pairs_files():
    return [result_path(f"simulatability/pairs/{d}.parquet") for d in SIM["datasets"]]


def sim_prompt_dir():
    return SIM["prompt_dir"]


def sim_prediction_files(reference):
    return [
        result_path(f"simulatability/{reference}/{p}/predictions.parquet")
        for p in sim_predictors()
    ]


def sim_predictions_of(wildcards):
    return sim_prediction_files(wildcards.reference)


def sim_families():
    """Catalog family of every model of the study (same-family predictors are left out by this, not by name)."""
    return {m: CATALOG[m].family for m in study_models("simulatability")}


def sim_metrics_files():
    return [result_path(f"simulatability/{r}/metrics.json") for r in sim_references()]


# -- usage and targets ---------------------------------------------------------------------------------------------
def usage_items(study):
    """(table, model, rule, column prefix) of every inference output of a study, for the usage table."""
    items = []
    if study == "simulatability":
        for r in sim_run_references():
            items.append(
                (
                    result_path(f"simulatability/{r}/reference.parquet"),
                    r,
                    "sim_reference",
                    "",
                )
            )
            for p in sim_predictors():
                path = result_path(f"simulatability/{r}/{p}/predictions.parquet")
                items.append((path, p, "sim_predict", ""))
        # SIM_TESTABILITY_FILES and _SCORER: defined in rules/simulatability.smk
        for path in SIM_TESTABILITY_FILES.values():
            items.append((path, SIM_TESTABILITY_SCORER, "sim_testability", ""))
    if study == "sce":
        from selfexplain.sce.config import verify_methods

        for m in study_models("sce"):
            for d in SCE["datasets"]:
                path = result_path(f"sce/{m}/{d}/predictions.parquet")
                items.append((path, m, "sce_predict", "first_"))
                for p in SCE["prompts"]:
                    path = result_path(f"sce/{m}/{d}/{p}/counterfactuals.parquet")
                    items.append((path, m, "sce_elicit", "followup_"))
                    if "requery" in verify_methods(SCE):
                        path = result_path(f"sce/{m}/{d}/{p}/requery.parquet")
                        items.append((path, m, "sce_requery", "requery_"))
    return items


def all_usage_items():
    return [item for study in STUDIES for item in usage_items(study)]


def study_targets(study):
    """A study's outputs, with the report pages of its summary (report/ in the results folder, for `--report`)."""
    if study == "sce":
        return [
            result_path("sce/summary.csv"),
            result_path("report/sce_summary.html"),
            result_path("sce/figures/validity_vs_minimality.png"),
            *sce_boundary_figures(),
        ]
    if study == "simulatability":
        figures = [result_path(f"simulatability/figures/{f}.png") for f in SIM_FIGURES]
        summary = [
            result_path("simulatability/summary.csv"),
            result_path("report/sim_summary.html"),
        ]
        if SIM_TESTABILITY_FILES:
            summary += [
                result_path("simulatability/testability.csv"),
                result_path("report/sim_testability.html"),
            ]
        return [
            result_path("simulatability/eval_set.parquet"),
            *([*summary, *figures] if sim_references() else []),
            *SIM_SIDE_TARGETS,  # rules/simulatability.smk
        ]
    return []


def all_targets():
    """Every study's targets, the cross-study view (rules/cross_study.smk), the usage table and the front page."""
    targets = [t for study in STUDIES for t in study_targets(study)]
    targets += CROSS_TARGETS  # rules/cross_study.smk
    targets += TRANSCRIPT_TARGETS  # rules/transcripts.smk
    if all_usage_items():
        targets[:0] = [result_path("usage.csv"), result_path("report/usage.html")]
    return [result_path("report/front_page.html"), *targets]
