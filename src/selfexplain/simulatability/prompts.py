"""Prompt fields of the simulatability study: what its templates' placeholders are filled with.

Templates are files (`config/prompts/simulatability/*.txt`, see `selfexplain.prompts`); the words that depend on the
dataset (who is described, who answers, the labels of the answer and explanation lines, the question) come from
the dataset's YAML (`words:`), so the templates hold no dataset. Templates and their placeholders:

  reference_answer_first, reference_answer_last
      subject, context, base_rate, question, options, header, description
  predictor_with_explanation, predictor_without_explanation, predictor_cot, predictor_no_reference
      Assessor_article, assessor, subject, SUBJECT, question, context, description_label, answer_label,
      explanation_label, factors_label, options, centre_description, centre_answer, explanation, factors,
      thinking, counterfactual_description

A predictor template may leave out any placeholder it does not need (the without-explanation one has no
explanation), but may not name one that is not listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from selfexplain.simulatability.builtin import MORAL_MACHINES

REFERENCE_TEMPLATES = {True: "reference_answer_first", False: "reference_answer_last"}
CONDITIONS = ("with_explanation", "without_explanation", "cot", "no_reference")
PREDICTOR_TEMPLATES = {condition: f"predictor_{condition}" for condition in CONDITIONS}
NO_FACTORS = "(none named)"
NO_EXPLANATION = "(no explanation given)"


@dataclass(frozen=True)
class DatasetWords:
    """What a prompt says about one dataset: its answer options (positive first, as the question lists them), its
    words, and its base-rate sentence (empty when it has none)."""

    name: str
    options: tuple[str, str]
    words: dict[str, str]
    base_rate: str


@cache
def dataset_words(dataset: str) -> DatasetWords:
    if dataset == MORAL_MACHINES:
        from selfexplain.simulatability.moral_machines import load_vocabulary

        vocabulary = load_vocabulary()
        return DatasetWords(dataset, vocabulary.options, dict(vocabulary.words), "")
    from selfexplain.simulatability.datasets import load_spec

    spec = load_spec(dataset)
    base_rate = (spec.base_rate or {}).get("sentence", "")
    return DatasetWords(dataset, (spec.positive_label, spec.negative_label), dict(spec.words), base_rate)


def answer_options(dataset: str) -> tuple[str, str]:
    """The two answers a model may give for a dataset's questions."""
    return dataset_words(dataset).options


def _options(words: DatasetWords) -> str:
    return f"{words.options[0]} or {words.options[1]}"


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"


def reference_fields(dataset: str, description: str) -> dict[str, str]:
    w = dataset_words(dataset)
    return {
        "subject": w.words["subject"],
        "context": w.words["context"],
        "base_rate": f" {w.base_rate}" if w.base_rate else "",
        "question": w.words["question"],
        "options": _options(w),
        "header": w.words["description_header"],
        "description": description,
    }


def factor_list(factors: Sequence[str]) -> str:
    """The reference's factors as a bulleted list, as the predictor sees them."""
    items = [f.strip() for f in factors if f and f.strip()]
    return "\n".join(f"- {item}" for item in items) if items else NO_FACTORS


def predictor_fields(
    dataset: str,
    centre_description: str,
    centre_answer: str,
    counterfactual_description: str,
    explanation: str | None = None,
    factors: Sequence[str] = (),
    thinking: str | None = None,
) -> dict[str, str]:
    w = dataset_words(dataset)
    return {
        "Assessor_article": _article(w.words["assessor"]),
        "assessor": w.words["assessor"],
        "subject": w.words["subject"],
        "SUBJECT": w.words["subject"].upper(),
        "question": w.words["question"],
        "context": w.words["context"],
        "description_label": w.words["description_label"],
        "answer_label": w.words["answer_label"],
        "explanation_label": w.words["explanation_label"],
        "factors_label": w.words["factors_label"],
        "options": _options(w),
        "centre_description": centre_description,
        "centre_answer": centre_answer,
        "explanation": (explanation or "").strip() or NO_EXPLANATION,
        "factors": factor_list(factors),
        "thinking": (thinking or "").strip() or NO_EXPLANATION,
        "counterfactual_description": counterfactual_description,
    }
