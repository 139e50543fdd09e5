"""What the simulatability section of the workflow config may name, and what it must hold."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from selfexplain.errors import ConfigError
from selfexplain.llm.catalog import ModelEntry

MORAL_MACHINES = "moral_machines"


def tabular_dataset_names() -> list[str]:
    """Built-in tabular datasets: one spec file each under selfexplain/data/sim_datasets."""
    folder = resources.files("selfexplain").joinpath("data/sim_datasets")
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def name_enums(section: dict[str, Any], catalog: dict[str, ModelEntry], base: Path) -> dict[tuple[str, ...], list[str]]:
    """Schema paths (below `properties`) and the names allowed there."""
    tabular = tabular_dataset_names()
    return {
        ("datasets", "items"): [*tabular, MORAL_MACHINES],
        ("raw", "properties", "sources", "propertyNames"): tabular,
        ("hamming", "properties", "max_centres", "propertyNames"): tabular,
    }


def check_section(section: dict[str, Any], enabled: bool) -> None:
    for name, source in section["raw"]["sources"].items():
        where = f"config.simulatability.raw.sources.{name}"
        if source["kind"] == "file" and not source.get("path"):
            raise ConfigError(f"{where}.path: required for kind file (a CSV/Parquet in the original source's format)")
        if source["kind"] != "file" and "path" in source:
            raise ConfigError(f"{where}.path: only used with kind file (this source is kind {source['kind']})")
        if source["kind"] != "url" and "url" in source:
            raise ConfigError(f"{where}.url: only used with kind url (this source is kind {source['kind']})")
    hamming = section["hamming"]
    if hamming["min_group_size"] > hamming["max_group_size"]:
        raise ConfigError(
            "config.simulatability.hamming.min_group_size: larger than max_group_size "
            f"({hamming['min_group_size']} > {hamming['max_group_size']})"
        )
