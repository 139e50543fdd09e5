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
