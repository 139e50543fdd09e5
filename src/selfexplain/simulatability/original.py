"""Import the original study's counterfactual datasets (its flattened 33-column parquet files) as a pairs table.

So a user can run our inference stages on the paper's own question pairs: the per-dataset files and the combined
files of the original repository (reference §2.6) become rows of `selfexplain.simulatability.pairs`. Texts,
labels, row indices and answer orders are taken as they are; `changed_features` is read back from the two texts
with the dataset's spec (the raw rows are not needed), and is null where a text cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from selfexplain.errors import InputError
from selfexplain.io import read_table
from selfexplain.simulatability import moral_machines as mm
from selfexplain.simulatability.builtin import MORAL_MACHINES, tabular_dataset_names
from selfexplain.simulatability.pairs import as_pairs_frame, changed_features, check_pairs, pair_id

REQUIRED = (
    "original_dataset",
    "original_question",
    "original_question_idx",
    "original_ground_truth",
    "original_answer_first",
    "counterfactual_generator_model",
    "counterfactual_question",
    "counterfactual_question_idx",
    "counterfactual_ground_truth",
    "counterfactual_hamming_distance",
)
_STALE_MM = " Respond with one word only."


def read_original(path: str | Path) -> pd.DataFrame:
    frame = read_table(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: not an original counterfactual dataset (flattened FaithfulnessRecord), missing column(s) "
            f"{missing}"
        )
    return frame


class _ChangeReader:
    """Which features differ between two texts of one dataset, read back from the texts themselves."""

    def __init__(self) -> None:
        self._tabular = set(tabular_dataset_names())
        self.unreadable = 0

    def _values(self, dataset: str, text: str) -> Any:
        if dataset == MORAL_MACHINES:
            return mm.parse_scenario_text(text.replace(_STALE_MM, ""))
        if dataset not in self._tabular:
            return None
        from selfexplain.simulatability.datasets import load_spec, parse_description

        return parse_description(load_spec(dataset), text)

    def changes(self, dataset: str, centre: str, other: str) -> list[dict[str, str]] | None:
        if dataset == MORAL_MACHINES:
            a, b = self._values(dataset, centre), self._values(dataset, other)
            if a is None or b is None:
                self.unreadable += 1
                return None
            return mm.changed_features(a, b, text_only=True)
        a, b = self._values(dataset, centre), self._values(dataset, other)
        if a is None or b is None:
            self.unreadable += 1
            return None
        return changed_features(a, b, list(a))


def _label(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def import_original(path: str | Path) -> pd.DataFrame:
    """The file's rows as a pairs table, in file order."""
    frame = read_original(path)
    reader = _ChangeReader()
    records = []
    for row in frame.to_dict("records"):
        dataset = str(row["original_dataset"])
        # BBQ-style files leave answer_first empty: their prompts were built answer first.
        answer_first = True if row["original_answer_first"] is None else bool(row["original_answer_first"])
        hamming = row["counterfactual_hamming_distance"]
        centre_text, cf_text = str(row["original_question"]), str(row["counterfactual_question"])
        records.append(
            {
                "dataset": dataset,
                "pair_id": pair_id(
                    dataset, row["original_question_idx"], row["counterfactual_question_idx"], answer_first
                ),
                "centre_row": int(row["original_question_idx"]),
                "counterfactual_row": int(row["counterfactual_question_idx"]),
                "centre_text": centre_text,
                "counterfactual_text": cf_text,
                "centre_label": _label(row["original_ground_truth"]),
                "counterfactual_label": _label(row["counterfactual_ground_truth"]),
                "answer_first": answer_first,
                "hamming_distance": None if hamming is None or pd.isna(hamming) else int(hamming),
                "changed_features": reader.changes(dataset, centre_text, cf_text),
                "generator": f"original:{row['counterfactual_generator_model']}",
                # A file may hold a sample of a group's pairs (the combined files do), so its size is unknown.
                "group_size": None,
            }
        )
    pairs = as_pairs_frame(records)
    check_pairs(pairs, path)
    pairs.attrs["unreadable_texts"] = reader.unreadable
    return pairs
