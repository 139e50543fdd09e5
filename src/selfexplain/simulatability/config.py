"""What the simulatability section of the workflow config may name, and what it must hold."""

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


def name_enums(section: dict[str, Any], catalog: dict[str, ModelEntry], base: Path) -> dict[tuple[str, ...], list[str]]:
    """Schema paths (below `properties`) and the names allowed there."""
    tabular = tabular_dataset_names()
    prompt_dir = base / section["prompt_dir"]
    prompts = available_prompts(prompt_dir)
    needed = [
        REFERENCE_TEMPLATES[True],
        REFERENCE_TEMPLATES[False],
        *(PREDICTOR_TEMPLATES[c] for c in section["conditions"]),
        *([TESTABILITY_TEMPLATE] if section["testability"]["enabled"] else []),
    ]
    missing = [name for name in needed if name not in prompts]
    if section["references"] and missing:
        raise ConfigError(f"config.simulatability.prompt_dir: {prompt_dir} lacks template(s) {missing} (<name>.txt)")
    return {
        ("references", "items"): list(catalog),
        ("predictors", "items"): list(catalog),
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
        missing = [name for name in pair if name not in section["references"]]
        if missing:
            raise ConfigError(f"{where}: {missing} not in simulatability.references {section['references']}")
        if pair[0] == pair[1]:
            raise ConfigError(f"{where}: {pair} names the same model twice; compare two different catalog entries")
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
        for condition in section["conditions"]:
            template = load_template(prompt_dir, PREDICTOR_TEMPLATES[condition], dataset)
            template.check(predictor_fields(dataset, "", "", ""), key="config.simulatability.conditions")
        if section["testability"]["enabled"]:
            template = load_template(prompt_dir, TESTABILITY_TEMPLATE, dataset)
            template.check(predictor_fields(dataset, "", "", ""), key="config.simulatability.testability")
