"""The study's built-in dataset names: cheap to import (the workflow reads them when it is parsed)."""

from __future__ import annotations

from importlib import resources

MORAL_MACHINES = "moral_machines"


def tabular_dataset_names() -> list[str]:
    """Built-in tabular datasets: one spec file each under selfexplain/data/sim_datasets."""
    folder = resources.files("selfexplain").joinpath("data/sim_datasets")
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
