"""Atomic writes: nothing half-written is left, and outputs are readable by colleagues (the umask decides)."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from selfexplain.errors import InputError
from selfexplain.io import atomic_path, read_provenance, read_table, write_json, write_parquet


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_outputs_honour_the_umask(tmp_path, umask_022):
    write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet", {"stage": "x"})
    write_json({"a": 1}, tmp_path / "m.json")
    with atomic_path(tmp_path / "s.csv") as tmp:
        tmp.write_text("a\n1\n")
    assert [_mode(tmp_path / n) for n in ("t.parquet", "m.json", "s.csv")] == [0o644] * 3
    old = os.umask(0o077)
    try:
        write_json({"a": 2}, tmp_path / "private.json")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private.json") == 0o600


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "t.json"
    write_json({"a": 1}, target)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_provenance_round_trip_and_read_errors(tmp_path):
    path = tmp_path / "t.parquet"
    write_parquet(pd.DataFrame({"a": [1.5]}), path, {"seed": 3, "nan": float("nan")})
    assert read_provenance(path)["seed"] == 3 and read_provenance(path)["nan"] is None
    assert read_table(path)["a"].tolist() == [1.5]
    with pytest.raises(InputError, match=r"table not found: .*missing\.parquet"):
        read_table(tmp_path / "missing.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(InputError, match=r"bad\.parquet: not a readable Parquet table"):
        read_table(tmp_path / "bad.parquet")
