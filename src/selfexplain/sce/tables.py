"""Column names of the sce tables, shared by the writer (elicitation, import) and the reader (scoring).

counterfactuals table, one row per grid point (written by `sce_elicit` and `selfexplain sce import-original`):
  row_id            int    grid id of the original point x
  answer            str    first-pass answer normalised to an option label, or null when unreadable
  answer_status     str    parse status of the first answer ("ok", "no_json", "not_an_option", ...)
  target            str    the label the follow-up asked for (the other option)
  target_source     str    "complement" (other option of a readable answer) or "random" (seeded draw)
  cf_status         str    parse status of the counterfactual ("ok", "no_json", "missing_feature", ...)
  cf_<column>       float  counterfactual value of each feature (NaN where missing or unreadable)
  cf_extra_keys     str    keys the model added beyond the features, comma-separated
"""

from __future__ import annotations

from selfexplain.tabular.features import DatasetSpec

ROW_ID = "row_id"
ANSWER = "answer"
ANSWER_STATUS = "answer_status"
TARGET = "target"
TARGET_SOURCE = "target_source"
CF_STATUS = "cf_status"
CF_EXTRA_KEYS = "cf_extra_keys"
CF_PREFIX = "cf_"

REQUIRED = (ROW_ID, ANSWER, TARGET, CF_STATUS)


def cf_columns(spec: DatasetSpec) -> list[str]:
    return [CF_PREFIX + c for c in spec.columns]
