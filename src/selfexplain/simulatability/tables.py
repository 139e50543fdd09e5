"""Column contracts of the simulatability study's answer tables, shared by their writers (the inference stages and
the import of original answers) and their reader (the metrics), so the two can never drift apart.

reference table, one row per question (dataset, row, answer_first): the question, the reply (`response`,
`reasoning`), the parsed sections (answer, answer_status, answer_raw, explanation, factors, other_info, confidence,
confidence_raw, parse_status) and the usage columns of `llm.runner.completion_columns`.

predictions table, one row per (pair_id, condition, repeat): PREDICTION_COLUMNS, then the parsed prediction
(prediction, prediction_status, prediction_raw, confidence) and the usage columns.
"""

from __future__ import annotations

QUESTION_KEY = ("dataset", "row", "answer_first")
PREDICTION_KEY = ("pair_id", "condition", "repeat")
PREDICTION_COLUMNS = (
    "pair_id",
    "dataset",
    "centre_row",
    "counterfactual_row",
    "answer_first",
    "condition",
    "repeat",
    "reference",
    "predictor",
    "reference_centre_answer",
    "reference_counterfactual_answer",
)
