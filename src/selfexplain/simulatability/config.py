"""What the simulatability section of the workflow config may name, and what it must hold; and the two derived lists
the rules need (which reference models run, which conditions each one's predictors answer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfexplain.errors import ConfigError
from selfexplain.llm.catalog import ModelEntry
from selfexplain.prompts import available_prompts, load_template
from selfexplain.simulatability.builtin import MORAL_MACHINES, tabular_dataset_names
from selfexplain.simulatability.prompts import (
    PREDICTOR_TEMPLATES,
    REFERENCE_TEMPLATES,
    predictor_fields,
    reference_fields,
)
from selfexplain.simulatability.testability import TEMPLATE as TESTABILITY_TEMPLATE


def comparison_only_references(section: dict[str, Any]) -> list[str]:
    """Models named in `compare_references` but not in `references`: they are run like references (answers,
    predictions, observations) for the McNemar comparison only, and stay out of the summary and the headline figures,
    so adding a reasoning-effort variant does not change the paper's table of reference models."""
    if not section["references"]:
        return []
    named = dict.fromkeys(name for pair in section["compare_references"] for name in pair)
    return [name for name in named if name not in section["references"]]


def run_references(section: dict[str, Any]) -> list[str]:
    """Every model that answers as a reference: the references, then the comparison-only ones."""
    return [*section["references"], *comparison_only_references(section)]


def conditions_for(section: dict[str, Any], reference: str) -> list[str]:
    """The conditions the predictors answer for `reference`: `conditions`, plus the `side.extra_conditions` that name
    it (e.g. the paper's cot and no_reference runs, which used only the Qwen references)."""
    extra = [c for c, names in section["side"]["extra_conditions"].items() if reference in names]
    return list(dict.fromkeys([*section["conditions"], *extra]))


def all_conditions(section: dict[str, Any]) -> list[str]:
    """Every condition some reference's predictors answer (so every template the run fills)."""
    return list(dict.fromkeys([*section["conditions"], *section["side"]["extra_conditions"]]))


def name_enums(section: dict[str, Any], catalog: dict[str, ModelEntry], base: Path) -> dict[tuple[str, ...], list[str]]:
    """Schema paths (below `properties`) and the names allowed there."""
    tabular = tabular_dataset_names()
    prompt_dir = base / section["prompt_dir"]
    prompts = available_prompts(prompt_dir)
    needed = [
        REFERENCE_TEMPLATES[True],
        REFERENCE_TEMPLATES[False],
        *(PREDICTOR_TEMPLATES[c] for c in all_conditions(section)),
        *([TESTABILITY_TEMPLATE] if section["testability"]["enabled"] else []),
    ]
    missing = [name for name in needed if name not in prompts]
    if section["references"] and missing:
        raise ConfigError(f"config.simulatability.prompt_dir: {prompt_dir} lacks template(s) {missing} (<name>.txt)")
    return {
        ("references", "items"): list(catalog),
        ("predictors", "items"): list(catalog),
        ("compare_references", "items", "items"): list(catalog),
        ("side", "properties", "extra_conditions", "additionalProperties", "items"): list(catalog),
        ("datasets", "items"): [*tabular, MORAL_MACHINES],
        ("raw", "properties", "sources", "propertyNames"): tabular,
        ("hamming", "properties", "max_centres", "propertyNames"): tabular,
    }


def check_section(section: dict[str, Any]) -> None:
    if section["references"] and not section["predictors"]:
        raise ConfigError("config.simulatability.predictors: name at least one predictor for the reference models")
    for name, source in section["raw"]["sources"].items():
        where = f"config.simulatability.raw.sources.{name}"
        if source["kind"] == "file" and not source.get("path"):
            raise ConfigError(f"{where}.path: required for kind file (a CSV/Parquet in the original source's format)")
        if source["kind"] != "file" and "path" in source:
            raise ConfigError(f"{where}.path: only used with kind file (this source is kind {source['kind']})")
        if source["kind"] != "url" and "url" in source:
            raise ConfigError(f"{where}.url: only used with kind url (this source is kind {source['kind']})")
    scorer = section["testability"]["predictor"]
    if section["testability"]["enabled"] and scorer is not None and scorer not in section["predictors"]:
        raise ConfigError(
            f"config.simulatability.testability.predictor: {scorer} is not one of the predictors "
            f"{section['predictors']}; name one of them (null: the first)"
        )
    for i, pair in enumerate(section["compare_references"] if section["references"] else []):
        where = f"config.simulatability.compare_references[{i}]"
        if pair[0] == pair[1]:
            raise ConfigError(f"{where}: {pair} names the same model twice; compare two different catalog entries")
        lacking = [name for name in pair if "with_explanation" not in conditions_for(section, name)]
        if lacking:
            raise ConfigError(
                f"{where}: McNemar compares WITH-explanation answers, but with_explanation is not among the "
                f"conditions of {lacking} (simulatability.conditions / side.extra_conditions)"
            )
    runs = run_references(section)
    for condition, names in section["side"]["extra_conditions"].items():
        unknown = [name for name in names if name not in runs]
        if unknown:
            raise ConfigError(
                f"config.simulatability.side.extra_conditions.{condition}: {unknown} not among the reference models "
                f"{runs} (simulatability.references or compare_references)"
            )
    hamming = section["hamming"]
    if hamming["min_group_size"] > hamming["max_group_size"]:
        raise ConfigError(
            "config.simulatability.hamming.min_group_size: larger than max_group_size "
            f"({hamming['min_group_size']} > {hamming['max_group_size']})"
        )


def check_templates(section: dict[str, Any], base: Path) -> None:
    """Every template the run will fill (per dataset, so overrides count) is non-empty and uses only the
    placeholders of its kind (`selfexplain.simulatability.prompts`). Without references no template is used."""
    if not section["references"]:
        return
    prompt_dir = base / section["prompt_dir"]
    for dataset in section["datasets"]:
        for name in REFERENCE_TEMPLATES.values():
            template = load_template(prompt_dir, name, dataset)
            template.check(reference_fields(dataset, ""), key="config.simulatability.prompt_dir")
        for condition in all_conditions(section):
            template = load_template(prompt_dir, PREDICTOR_TEMPLATES[condition], dataset)
            template.check(predictor_fields(dataset, "", "", ""), key="config.simulatability.conditions")
        if section["testability"]["enabled"]:
            template = load_template(prompt_dir, TESTABILITY_TEMPLATE, dataset)
            template.check(predictor_fields(dataset, "", "", ""), key="config.simulatability.testability")
