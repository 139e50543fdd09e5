"""`selfexplain sce import-original` + `sce score` reproduce the original scorer on its own output files."""

from __future__ import annotations

import json
import math

import pytest

from selfexplain.cli import main
from selfexplain.sce.scoring import ORIGINAL_METRICS
from tests.conftest import fixtures_dir

CASES = [
    ("income", "income"),
    ("income_minimal", "income"),
    ("heart_disease", "heart_disease"),
    ("heart_disease_minimal", "heart_disease"),
]
EXACT = ("validity_percent", "exact_match")


@pytest.mark.parametrize(("name", "dataset"), CASES)
def test_cli_reproduces_original_aggregates(tmp_path, name, dataset):
    folder = fixtures_dir("sces_upstream_format")
    table = tmp_path / "table.parquet"
    out = tmp_path / "metrics.json"
    assert (
        main(["sce", "import-original", str(folder / f"{name}.raw.json.gz"), "--dataset", dataset, "--out", str(table)])
        == 0
    )
    assert main(["sce", "score", str(table), "--dataset", dataset, "--json", str(out), "--resamples", "100"]) == 0
    ours = json.loads(out.read_text())
    expected = json.loads((folder / f"{name}.expected_scores.json").read_text())
    assert set(expected) == set(ORIGINAL_METRICS)
    for key, want in expected.items():
        got = ours[key]
        if want is None:
            assert got is None, key
        elif key in EXACT:
            assert got == want, key
        else:
            assert math.isclose(got, want, rel_tol=0, abs_tol=1e-6), (key, got, want)


def test_import_original_names_missing_fields(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"0": {"dataset_id": 0}}))
    assert main(["sce", "import-original", str(bad), "--dataset", "income", "--out", str(tmp_path / "t.parquet")]) == 2
    assert not (tmp_path / "t.parquet").exists()


def test_import_original_rejects_partial_grids(tmp_path, capsys):
    rows = {
        str(i): {"dataset_id": i, "original_answer": "NA", "selected_complement": "Above $50,000"} for i in range(10)
    }
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(rows))
    assert main(["sce", "import-original", str(path), "--dataset", "income", "--out", str(tmp_path / "t.parquet")]) == 2
    assert "validity needs the full grid" in capsys.readouterr().err
