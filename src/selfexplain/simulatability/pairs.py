"""The question-pairs table: one documented schema for every source of counterfactual pairs, and the eval set.

Hamming balls, Moral Machines and imported original files all end up as this table, so the inference stages and
other tools read one thing. One row is one (centre, counterfactual) pair asked in one answer order:

  dataset              str     dataset name (attrition, ..., moral_machines)
  pair_id              str     "{dataset}/{centre_row}/{counterfactual_row}/{first|last}", unique per row
  centre_row           int64   the centre's row position in the loaded table (the original's question_idx);
                               for Moral Machines the scenario's index
  counterfactual_row   int64   the counterfactual's row position (scenario index)
  centre_text          str     the centre rendered as text (what the reference model is asked about)
  counterfactual_text  str     the counterfactual rendered as text
  centre_label         str     ground-truth label of the centre in the dataset's answer terms; null when there is
                               none (Moral Machines)
  counterfactual_label str     ground-truth label of the counterfactual; null when there is none
  answer_first         bool    whether the reference prompt asks for the answer before the explanation
  hamming_distance     Int64   features that differ (0..max_distance); null for Moral Machines
  changed_features     list<struct<feature: str, centre: str, counterfactual: str>>
                               every feature whose value differs, with both values as text
  generator            str     "hamming_ball", "moral_machines", or "original:<generator>" for imported files
  group_size           Int64   members of the centre's Hamming ball, centre included; null otherwise

Provenance (package version, git state, seeds, parameters, inputs) is in the Parquet metadata
(`selfexplain.io.read_provenance`). `pd.read_parquet` gives `changed_features` as arrays of dicts.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfexplain.errors import InputError

PAIR_COLUMNS = (
    "dataset",
    "pair_id",
    "centre_row",
    "counterfactual_row",
    "centre_text",
    "counterfactual_text",
    "centre_label",
    "counterfactual_label",
    "answer_first",
    "hamming_distance",
    "changed_features",
    "generator",
    "group_size",
)
HAMMING_GENERATOR = "hamming_ball"
EVAL_UNITS = ("rows", "pairs")


def arrow_schema() -> Any:
    """The Parquet schema of a pairs table (explicit, so an empty list column never becomes list<null>)."""
    import pyarrow as pa

    change = pa.struct([("feature", pa.string()), ("centre", pa.string()), ("counterfactual", pa.string())])
    return pa.schema(
        [
            ("dataset", pa.string()),
            ("pair_id", pa.string()),
            ("centre_row", pa.int64()),
            ("counterfactual_row", pa.int64()),
            ("centre_text", pa.string()),
            ("counterfactual_text", pa.string()),
            ("centre_label", pa.string()),
            ("counterfactual_label", pa.string()),
            ("answer_first", pa.bool_()),
            ("hamming_distance", pa.int64()),
            ("changed_features", pa.list_(change)),
            ("generator", pa.string()),
            ("group_size", pa.int64()),
        ]
    )


def pair_id(dataset: str, centre_row: int, counterfactual_row: int, answer_first: bool) -> str:
    return f"{dataset}/{int(centre_row)}/{int(counterfactual_row)}/{'first' if answer_first else 'last'}"


def check_pairs(frame: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    """The table's columns in schema order, or an InputError naming the file and what is wrong."""
    missing = [c for c in PAIR_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: not a pairs table, missing column(s) {missing}")
    duplicated = frame["pair_id"][frame["pair_id"].duplicated()]
    if len(duplicated):
        raise InputError(f"{source}: pair_id must be unique; repeated: {sorted(set(duplicated))[:3]}")
    return frame.loc[:, list(PAIR_COLUMNS)]


def changed_features(
    centre: pd.Series | dict[str, Any], other: pd.Series | dict[str, Any], columns: Sequence[str]
) -> list[dict[str, str]]:
    """The features whose values differ, in column order; a missing value (NaN) differs from everything, itself
    included, as in the Hamming distance, and is written "nan"."""
    out = []
    for column in columns:
        a, b = centre[column], other[column]
        if pd.isna(a) or pd.isna(b) or a != b:
            out.append({"feature": column, "centre": _text(a), "counterfactual": _text(b)})
    return out


def _text(value: Any) -> str:
    return "nan" if pd.isna(value) else str(value)


def tabular_pairs(
    dataset: str,
    table: pd.DataFrame,
    feature_columns: Sequence[str],
    groups: Sequence[Any],
    label_column: str = "label",
    text_column: str = "text",
) -> pd.DataFrame:
    """Pairs of every (centre, member) of each Hamming group, in group order then draw order, each in both answer
    orders (answer first, then last), as the original exported them. `groups` are `hamming.BallGroup`s whose row
    numbers are positions in `table`."""
    records = []
    for answer_first in (True, False):
        for group in groups:
            centre = table.iloc[group.centre]
            for member, distance in zip(group.members, group.distances, strict=True):
                other = table.iloc[member]
                records.append(
                    {
                        "dataset": dataset,
                        "pair_id": pair_id(dataset, group.centre, member, answer_first),
                        "centre_row": int(group.centre),
                        "counterfactual_row": int(member),
                        "centre_text": centre[text_column],
                        "counterfactual_text": other[text_column],
                        "centre_label": centre[label_column],
                        "counterfactual_label": other[label_column],
                        "answer_first": answer_first,
                        "hamming_distance": int(distance),
                        "changed_features": changed_features(centre, other, feature_columns),
                        "generator": HAMMING_GENERATOR,
                        "group_size": len(group.members) + 1,
                    }
                )
    return as_pairs_frame(records)


def as_pairs_frame(records: Sequence[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Records (or a frame) as a pairs table with the schema's dtypes."""
    frame = pd.DataFrame(records, columns=list(PAIR_COLUMNS)) if not isinstance(records, pd.DataFrame) else records
    frame = frame.loc[:, list(PAIR_COLUMNS)].copy()
    for column in ("centre_row", "counterfactual_row"):
        frame[column] = frame[column].astype("int64")
    for column in ("hamming_distance", "group_size"):
        frame[column] = frame[column].astype("Int64")
    frame["answer_first"] = frame["answer_first"].astype(bool)
    for column in ("dataset", "pair_id", "centre_text", "counterfactual_text", "generator"):
        frame[column] = frame[column].astype("str")
    for column in ("centre_label", "counterfactual_label"):  # missing stays missing (no "None" strings)
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None).astype("str")
    # null means unknown (e.g. an imported text that could not be read back), [] means nothing changed
    frame["changed_features"] = [None if v is None else [dict(d) for d in v] for v in frame["changed_features"]]
    return frame.reset_index(drop=True)


def write_pairs(frame: pd.DataFrame, path: str | Path, provenance: dict[str, Any]) -> None:
    from selfexplain.io import write_parquet

    write_parquet(as_pairs_frame(frame), path, provenance, schema=arrow_schema())


def _dataset_rng(seed: int, dataset: str) -> np.random.Generator:
    """One generator per dataset, so adding or dropping a dataset never changes another dataset's draw."""
    return np.random.default_rng([seed, zlib.crc32(dataset.encode("utf-8"))])


def sample_eval_set(pairs: pd.DataFrame, size: int, unit: str = "rows", seed: int = 42) -> pd.DataFrame:
    """Per dataset, `size` rows drawn without replacement (unit "rows", as the original's 1,000 per dataset), or
    `size` whole pairs with every answer order the table holds for them (unit "pairs"); all of a dataset when it
    has fewer. Kept rows stay in the pairs table's order; datasets in order of first appearance."""
    if unit not in EVAL_UNITS:
        raise InputError(f"eval set unit {unit!r} is not one of {list(EVAL_UNITS)}")
    if size < 1:
        raise InputError(f"eval set size must be at least 1, got {size}")
    parts = []
    for dataset, rows in pairs.groupby("dataset", sort=False):
        rng = _dataset_rng(seed, str(dataset))
        if unit == "rows":
            take = np.sort(rng.choice(len(rows), size=min(size, len(rows)), replace=False))
            parts.append(rows.iloc[take])
            continue
        keys = list(zip(rows["centre_row"], rows["counterfactual_row"], strict=True))
        unique = list(dict.fromkeys(keys))
        chosen = {unique[i] for i in rng.choice(len(unique), size=min(size, len(unique)), replace=False)}
        parts.append(rows[[k in chosen for k in keys]])
    if not parts:
        return as_pairs_frame([])
    return as_pairs_frame(pd.concat(parts, ignore_index=True))
