"""File-level steps of the simulatability study: what each rule (and the CLI) does, from input paths to outputs.

Rule scripts stay thin by calling these; the functions here read and write files and stamp provenance, while the
science lives in the modules they call (datasets, sources, hamming, moral_machines, pairs, original).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from selfexplain.io import provenance, read_provenance, read_table, write_parquet
from selfexplain.simulatability import hamming
from selfexplain.simulatability import moral_machines as mm
from selfexplain.simulatability.pairs import check_pairs, sample_eval_set, tabular_pairs, write_pairs

log = logging.getLogger(__name__)

TEXT = "text"
LABEL = "label"
ROW = "row"


def fetch_raw(
    dataset: str,
    source: dict[str, Any],
    out: str | Path,
    lock_file: str | Path,
    download_dir: str | Path,
    timeout_s: float = 120.0,
) -> pd.DataFrame:
    """The dataset's raw table in the original source's format, from the configured source, as Parquet."""
    from selfexplain.fetch import ChecksumLock
    from selfexplain.simulatability.datasets import load_spec
    from selfexplain.simulatability.sources import default_source, obtain

    spec = load_spec(dataset)
    source = dict(source) or default_source(spec)
    raw, origin = obtain(spec, source, Path(download_dir), ChecksumLock(lock_file), timeout_s=timeout_s)
    write_parquet(raw, out, provenance(stage="fetch_raw", dataset=dataset, source=origin))
    log.info("%s raw table: %d rows x %d columns from %s", dataset, len(raw), raw.shape[1], origin)
    return raw


def loaded_table(dataset: str, raw: pd.DataFrame) -> pd.DataFrame:
    """The binned table (features and target, in the original's row order) with each row's position, label and
    text: what the pairs are made of."""
    from selfexplain.simulatability.datasets import describe_table, load_spec, load_table

    spec = load_spec(dataset)
    table = load_table(spec, raw)
    out = table.copy()
    out.insert(0, ROW, range(len(table)))
    out[LABEL] = [spec.format_target(v) for v in table["target"]]
    out[TEXT] = describe_table(spec, table)
    return out


def build_table(dataset: str, raw_path: str | Path, out: str | Path) -> pd.DataFrame:
    table = loaded_table(dataset, read_table(raw_path))
    upstream = read_provenance(raw_path)
    write_parquet(table, out, provenance(stage="sim_table", dataset=dataset, raw=upstream.get("source")))
    log.info("%s: %d rows, label counts %s", dataset, len(table), table[LABEL].value_counts().to_dict())
    return table


def ball_params(settings: dict[str, Any], dataset: str) -> hamming.BallParams:
    """The config's `hamming` block for one dataset: its max_centres entry, else the spec's (the paper's) cap."""
    from selfexplain.simulatability.datasets import load_spec

    caps = settings["max_centres"]
    return hamming.BallParams(
        max_distance=settings["max_distance"],
        min_group_size=settings["min_group_size"],
        max_group_size=settings["max_group_size"],
        max_imbalance=settings["max_imbalance"],
        seed=settings["seed"],
        max_centres=caps[dataset] if dataset in caps else load_spec(dataset).max_centres,
        cap_seed=settings["cap_seed"],
    )


def pairs_from_table(dataset: str, table: pd.DataFrame, params: hamming.BallParams) -> pd.DataFrame:
    from selfexplain.simulatability.datasets import load_spec

    columns = load_spec(dataset).feature_columns
    groups = hamming.build_groups(table, columns, LABEL, params)
    pairs = tabular_pairs(dataset, table, columns, groups, label_column=LABEL, text_column=TEXT)
    log.info(
        "%s: %d groups, %d pairs (both answer orders), group sizes %s",
        dataset,
        len(groups),
        len(pairs),
        pd.Series([g.size for g in groups]).value_counts().sort_index().to_dict(),
    )
    return pairs


def build_pairs(dataset: str, table_path: str | Path, out: str | Path, settings: dict[str, Any]) -> pd.DataFrame:
    params = ball_params(settings, dataset)
    pairs = pairs_from_table(dataset, read_table(table_path), params)
    upstream = read_provenance(table_path)
    write_pairs(
        pairs,
        out,
        provenance(stage="sim_pairs", dataset=dataset, hamming=dataclasses.asdict(params), raw=upstream.get("raw")),
    )
    return pairs


def build_pairs_from_source(
    dataset: str, source: str | Path, out: str | Path, seed: int = 42, max_centres: int | None = None
) -> pd.DataFrame:
    """`selfexplain simulatability build-pairs`: a user's raw file in the original source format -> pairs, with
    the paper's parameters (and the spec's cap on groups unless `max_centres` is given)."""
    from selfexplain.simulatability.datasets import load_spec, read_raw

    spec = load_spec(dataset)
    table = loaded_table(dataset, read_raw(spec, source))
    params = hamming.BallParams(seed=seed, max_centres=max_centres or spec.max_centres)
    pairs = pairs_from_table(dataset, table, params)
    write_pairs(
        pairs,
        out,
        provenance(stage="build-pairs", dataset=dataset, source=str(source), hamming=dataclasses.asdict(params)),
    )
    return pairs


def build_moral_machines(settings: dict[str, Any], scenarios_out: str | Path, pairs_out: str | Path) -> pd.DataFrame:
    scenarios = mm.generate_scenarios(settings["scenarios"], settings["seed"])
    pairs = mm.pair_scenarios(scenarios, settings["seed"], both_orders=settings["both_orders"])
    prov = provenance(stage="sim_moral_machines", moral_machines=settings)
    write_parquet(scenarios, scenarios_out, prov)
    write_pairs(pairs, pairs_out, prov)
    log.info("moral_machines: %d scenarios -> %d pair rows", len(scenarios), len(pairs))
    return pairs


def build_eval_set(pairs_paths: Sequence[str | Path], out: str | Path, settings: dict[str, Any]) -> pd.DataFrame:
    tables = [check_pairs(read_table(p), p) for p in pairs_paths]
    pairs = pd.concat(tables, ignore_index=True)
    chosen = sample_eval_set(pairs, settings["size"], settings["unit"], settings["seed"])
    inputs = {str(p): read_provenance(p).get("stage") for p in pairs_paths}
    write_pairs(chosen, out, provenance(stage="sim_eval_set", eval_set=settings, inputs=inputs))
    log.info("eval set: %s rows per dataset", chosen["dataset"].value_counts().to_dict())
    return chosen


def import_original_file(path: str | Path, out: str | Path) -> pd.DataFrame:
    from selfexplain.simulatability.original import import_original

    pairs = import_original(path)
    write_pairs(pairs, out, provenance(stage="import-original", input=str(path)))
    return pairs


# The rule's wildcards, inputs or params (Snakemake's named lists, or dicts), and what a stage's answering step
# returns: its table, the names of the templates it rendered, and its settings for the provenance.
_Rule = Mapping[str, Any]
_Staged = tuple[pd.DataFrame, list[str], dict[str, Any]]


def run_stage(stage: str, wildcards: _Rule, inputs: _Rule, params: _Rule, out: str | Path) -> pd.DataFrame:
    """Rules sim_reference, sim_predict and sim_testability (`stage`): the model the stage's wildcard names answers
    (`_STAGES`), and its table is written with the provenance every inference stage stamps (model, backend, stage,
    the stage's settings, what was skipped, the templates used). Wildcards `reference` (and `predictor`); inputs
    `eval_set` (and `reference`); params `model` (the catalog entry as JSON), `prompt_dir`, `journal`, `progress`
    (and sim_predict's `conditions`, `repeats`)."""
    from selfexplain.llm.backends import backend_provenance, make_backend
    from selfexplain.llm.catalog import entry_from_json

    if stage not in _STAGES:
        raise ValueError(f"unknown simulatability stage {stage!r}; known: {sorted(_STAGES)}")
    model_wildcard, answer = _STAGES[stage]
    entry = entry_from_json(wildcards[model_wildcard], params["model"])
    backend = make_backend(entry)
    eval_set = read_table(inputs["eval_set"])
    table, template_names, settings = answer(entry, backend, eval_set, wildcards, inputs, params)
    if "skipped" in table.attrs:
        settings["skipped"] = table.attrs["skipped"]
    prov = provenance(
        **entry.provenance(),
        backend=backend_provenance(backend),
        stage=stage,
        **settings,
        templates=_template_hashes(params["prompt_dir"], eval_set["dataset"].unique(), template_names),
    )
    write_parquet(table, out, prov)
    return table


def _asked(params: _Rule) -> dict[str, Any]:
    """How every stage sends its requests: the arguments of the answering functions named alike."""
    return {"prompt_dir": params["prompt_dir"], "journal_path": params["journal"], "progress": params["progress"]}


def _reference_stage(
    entry: Any, backend: Any, eval_set: pd.DataFrame, _: _Rule, inputs: _Rule, params: _Rule
) -> _Staged:
    from selfexplain.simulatability.answers import reference_answers
    from selfexplain.simulatability.prompts import REFERENCE_TEMPLATES

    table = reference_answers(entry, backend, eval_set, **_asked(params))
    return table, list(REFERENCE_TEMPLATES.values()), {"eval_set": str(inputs["eval_set"])}


def _predict_stage(
    entry: Any, backend: Any, eval_set: pd.DataFrame, wildcards: _Rule, inputs: _Rule, params: _Rule
) -> _Staged:
    from selfexplain.simulatability.answers import predictor_answers
    from selfexplain.simulatability.prompts import PREDICTOR_TEMPLATES

    reference, conditions, repeats = wildcards["reference"], params["conditions"], params["repeats"]
    reference_table = read_table(inputs["reference"])
    table = predictor_answers(
        entry, backend, reference, eval_set, reference_table, conditions=conditions, repeats=repeats, **_asked(params)
    )
    settings = {"reference": reference, "conditions": list(conditions), "repeats": repeats}
    return table, [PREDICTOR_TEMPLATES[c] for c in conditions], settings


def _testability_stage(
    entry: Any, backend: Any, eval_set: pd.DataFrame, wildcards: _Rule, inputs: _Rule, params: _Rule
) -> _Staged:
    from selfexplain.simulatability.testability import TEMPLATE, testability_scores

    reference, reference_table = wildcards["reference"], read_table(inputs["reference"])
    table = testability_scores(entry, backend, reference, eval_set, reference_table, **_asked(params))
    return table, [TEMPLATE], {"reference": reference}


# rule -> (the wildcard naming the model that answers, the answering step)
_STAGES: dict[str, tuple[str, Callable[..., _Staged]]] = {
    "sim_reference": ("reference", _reference_stage),
    "sim_predict": ("predictor", _predict_stage),
    "sim_testability": ("predictor", _testability_stage),
}


def _template_hashes(prompt_dir: str | Path, datasets: Sequence[str], names: Sequence[str]) -> dict[str, Any]:
    """Which template file (and its SHA-256) each prompt of each dataset came from."""
    from selfexplain.prompts import load_template

    out: dict[str, Any] = {}
    for name in names:
        for dataset in datasets:
            template = load_template(prompt_dir, name, dataset)
            out[f"{name}/{dataset}"] = {"path": str(template.path), "sha256": template.sha256}
    return out


def score_reference(
    reference_name: str,
    eval_set_path: str | Path,
    reference_path: str | Path,
    predictions_paths: Sequence[str | Path],
    families: dict[str, str | None],
    bootstrap: dict[str, int],
    metrics_out: str | Path,
    observations_out: str | Path,
) -> dict[str, Any]:
    """Rule sim_metrics: every metric of one reference model (one implementation: `metrics.reference_metrics`), and
    the observations it was computed from (one row per pair, predictor and repeat, the conditions side by side)."""
    from selfexplain.io import write_json
    from selfexplain.simulatability import metrics

    eval_set = read_table(eval_set_path)
    reference = read_table(reference_path)
    predictions = [read_table(p) for p in predictions_paths]
    obs = metrics.observations(reference, predictions, families, eval_set)
    result = metrics.reference_metrics(
        obs,
        resamples=bootstrap["resamples"],
        seed=bootstrap["seed"],
        questions=metrics.questions_from_reference(reference, eval_set),
    )
    prov = provenance(
        stage="sim_metrics",
        reference=reference_name,
        predictors=sorted({str(p) for frame in predictions for p in frame["predictor"].unique()}),
        families=families,
        bootstrap=bootstrap,
    )
    write_parquet(obs, observations_out, prov)
    write_json({**result, "provenance": prov}, metrics_out)
    for line in metrics.describe(result):
        log.info("%s", line)
    return result


def summarise_references(metrics_paths: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Rule sim_summary: one table over every reference model (see `metrics.summary_rows`)."""
    import json

    from selfexplain.simulatability import metrics

    results = {str(p): json.loads(Path(p).read_text(encoding="utf-8")) for p in metrics_paths}
    return metrics.write_summary(results, out)
