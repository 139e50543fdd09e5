"""The sce scoring steps: scoring an original results file in one go and importing it then scoring the table give
the same metrics and stamp the same provenance (one helper writes both), and only the outputs asked for are
written."""

from __future__ import annotations

import json

import pandas as pd

from selfexplain.io import read_provenance
from selfexplain.sce.scoring import ORIGINAL_METRICS
from selfexplain.sce.steps import score_file, score_original_file
from tests.conftest import fixtures_dir

VOLATILE = ("created", "git")


def _stable(prov: dict) -> dict:
    return {k: v for k, v in prov.items() if k not in VOLATILE}


def test_scoring_in_one_go_and_scoring_the_imported_table_agree(tmp_path):
    raw = fixtures_dir("sces_upstream_format") / "income_minimal.raw.json.gz"
    settings = {"distance": "l1", "resamples": 5, "seed": 3}
    direct = score_original_file(
        raw,
        "income",
        tmp_path / "direct.parquet",
        tmp_path / "direct.json",
        table_out=tmp_path / "t.parquet",
        **settings,
    )
    imported = score_file(tmp_path / "t.parquet", "income", tmp_path / "s.parquet", tmp_path / "s.json", **settings)
    assert {k: direct[k] for k in ORIGINAL_METRICS} == {k: imported[k] for k in ORIGINAL_METRICS}
    # one provenance: the same keys in the same order; score_file adds what the scored table came from
    one_go, scored = _stable(direct["provenance"]), _stable(imported["provenance"])
    stamp = ["selfexplain", "python", "libraries", "dataset", "stage", "distance", "distance_convention", "input"]
    assert list(one_go) == [*stamp, "seeds"]
    assert list(scored) == [*stamp, "requery", "model", "prompt", "seeds"]
    assert one_go["stage"] == scored["stage"] == "sce_score" and one_go["seeds"] == {"bootstrap": 3}
    assert (one_go["input"], scored["input"]) == (str(raw), str(tmp_path / "t.parquet"))
    assert scored["requery"] is None and scored["model"] is None  # an imported table names no model
    # the per-row scores carry the provenance that the metrics file has
    for scores, metrics in (("direct.parquet", "direct.json"), ("s.parquet", "s.json")):
        written = json.loads((tmp_path / metrics).read_text())["provenance"]
        assert _stable(read_provenance(tmp_path / scores)) == _stable(written)
    assert len(pd.read_parquet(tmp_path / "direct.parquet")) == len(pd.read_parquet(tmp_path / "s.parquet"))
    assert read_provenance(tmp_path / "t.parquet")["stage"] == "import-original"


def test_only_the_outputs_asked_for_are_written(tmp_path):
    raw = fixtures_dir("sces_upstream_format") / "income_minimal.raw.json.gz"
    nothing = score_original_file(raw, "income", resamples=0)
    assert "provenance" not in nothing and not list(tmp_path.iterdir())
    metrics_only = score_original_file(raw, "income", metrics_out=tmp_path / "m.json", resamples=0)
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
    assert metrics_only["provenance"]["stage"] == "sce_score"
    (tmp_path / "m.json").unlink()
    score_original_file(raw, "income", scores_out=tmp_path / "s.parquet", resamples=0)
    assert [p.name for p in tmp_path.iterdir()] == ["s.parquet"]
    assert read_provenance(tmp_path / "s.parquet")["stage"] == "sce_score"
