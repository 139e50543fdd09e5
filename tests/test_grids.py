"""Grids must equal the original study's prebuilt grids row by row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from selfexplain.tabular.features import load_dataset_spec
from selfexplain.tabular.grids import build_grid, lookup_rows
from tests.conftest import fixtures_dir

DATASETS = ["income", "house_prices", "heart_disease"]


def _original(dataset: str):
    folder = fixtures_dir("sces_grids", dataset)
    with pa.memory_map(str(folder / "data-00000-of-00001.arrow")) as source:
        return pa.ipc.open_stream(source).read_all().to_pandas()


@pytest.mark.parametrize("dataset", DATASETS)
def test_grid_matches_original_row_by_row(dataset):
    spec = load_dataset_spec(dataset)
    ours = build_grid(spec)
    theirs = _original(dataset)
    assert len(ours) == len(theirs) == spec.n_rows
    assert ours["id"].tolist() == theirs["id"].tolist()
    assert ours["description"].tolist() == theirs["description"].tolist()
    for column in spec.columns:
        assert ours[column].tolist() == theirs[column].astype(float).tolist(), column


def test_documented_row_order():
    heart = build_grid(load_dataset_spec("heart_disease"))
    assert heart.loc[0, ["AGEP", "SEX", "systolic_bp", "total_cholesterol"]].tolist() == [30, 2, 110, 150]
    assert heart.loc[88, ["AGEP", "SEX", "systolic_bp", "total_cholesterol"]].tolist() == [30, 1, 110, 150]
    income = build_grid(load_dataset_spec("income"))
    assert income.loc[23, ["AGEP", "SCHL"]].tolist() == [17, 24]
    assert income.loc[24, ["AGEP", "SCHL"]].tolist() == [18, 1]
    house = build_grid(load_dataset_spec("house_prices"))
    assert house.loc[1, ["area", "bedrooms", "bathrooms", "floors"]].tolist() == [500, 1, 1, 2]


@pytest.mark.parametrize("dataset", DATASETS)
def test_lookup_rows_finds_every_point_and_rejects_off_grid(dataset):
    spec = load_dataset_spec(dataset)
    grid = build_grid(spec)
    values = grid[spec.columns].to_numpy()
    assert (lookup_rows(spec, grid, values) == grid["id"].to_numpy()).all()
    off = values[:3].copy()
    off[0, 0] += 0.5
    off[1, -1] = np.nan
    off[2, 0] = -1000
    assert lookup_rows(spec, grid, off).tolist() == [-1, -1, -1]
