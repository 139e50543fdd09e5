"""What the sce section of the workflow config may name, and what it must hold when the study runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfexplain.errors import ConfigError
from selfexplain.llm.catalog import ModelEntry
from selfexplain.prompts import available_prompts, load_template
from selfexplain.sce.prompts import first_pass_fields, followup_fields
from selfexplain.tabular.features import builtin_dataset_names, load_dataset_spec


def name_enums(section: dict[str, Any], catalog: dict[str, ModelEntry], base: Path) -> dict[tuple[str, ...], list[str]]:
    """Schema paths (below `properties`) and the names allowed there."""
    prompt_dir = base / section["prompt_dir"]
    prompts = available_prompts(prompt_dir)
    if not prompts:
        raise ConfigError(f"config.sce.prompt_dir: no prompt templates (*.txt) in {prompt_dir}")
    return {
        ("models", "items"): list(catalog),
        ("datasets", "items"): builtin_dataset_names(),
        ("prompts", "items"): prompts,
        ("first_pass",): prompts,
    }


def check_section(section: dict[str, Any]) -> None:
    if not section["models"]:
        raise ConfigError("config.sce.models: name at least one catalog model, or leave sce out of config.studies")


def check_templates(section: dict[str, Any], base: Path) -> None:
    """Every template the run will fill (per dataset, so overrides count) is non-empty and uses only the
    placeholders of its kind (`selfexplain.sce.prompts`)."""
    prompt_dir = base / section["prompt_dir"]
    for dataset in section["datasets"]:
        spec = load_dataset_spec(dataset)
        first = load_template(prompt_dir, section["first_pass"], dataset)
        first.check(first_pass_fields(spec, ""), key="config.sce.first_pass")
        followup = followup_fields(spec, spec.options[0])
        for name in section["prompts"]:
            load_template(prompt_dir, name, dataset).check(followup, key="config.sce.prompts")


VERIFY_METHODS = ("lookup", "requery")


def verify_methods(section: dict[str, Any]) -> list[str]:
    """The validity checks a run scores, lookup first: `verify` may be one name or a list. Lookup is always scored
    (it asks nothing and the original's aggregates are defined with it); requery adds a request per counterfactual."""
    given = section.get("verify", "lookup")
    names = [given] if isinstance(given, str) else list(given)
    unknown = [n for n in names if n not in VERIFY_METHODS]
    if unknown:
        raise ConfigError(f"config.sce.verify: {unknown} not among {list(VERIFY_METHODS)}")
    return list(dict.fromkeys(["lookup", *names]))
