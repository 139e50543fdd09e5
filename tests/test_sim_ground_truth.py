"""Synthetic models as ground truth for the simulatability metrics: a truthful explainer's NSG is 100 by
construction, a misleading one's is negative, and the cluster-bootstrap CIs of a sample cover the value over all
pairs of the dataset (the known value)."""

from __future__ import annotations

import pandas as pd
import pytest

from selfexplain.config import load_yaml, validate
from selfexplain.llm.backends import make_backend
from selfexplain.llm.catalog import parse_entry
from selfexplain.simulatability import metrics, steps
from selfexplain.simulatability.answers import predictor_answers, reference_answers
from selfexplain.simulatability.datasets import load_spec, read_raw
from selfexplain.simulatability.pairs import sample_eval_set
from tests.conftest import REPO, fixtures_dir

PROMPTS = REPO / "config" / "prompts" / "simulatability"
HAMMING = validate({}, load_yaml(REPO / "workflow/schemas/simulatability.schema.yaml"), "simulatability")["hamming"]
CONDITIONS = ["with_explanation", "without_explanation"]


def _entry(name: str, seed: int, **settings) -> object:
    block = {"backend": "synthetic", "model_id": f"x/{name}", "synthetic": {"seed": seed, "simulatability": settings}}
    return parse_entry(name, block)


@pytest.fixture(scope="module")
def population():
    raw = read_raw(load_spec("pima_diabetes"), fixtures_dir("simulatability_raw") / "pima-indians-diabetes.data.csv")
    table = steps.loaded_table("pima_diabetes", raw)
    return steps.pairs_from_table("pima_diabetes", table, steps.ball_params(HAMMING, "pima_diabetes"))


def _observations(pairs: pd.DataFrame, explanation: str, tmp_path, noise: dict | None = None) -> pd.DataFrame:
    reference = _entry("ref", 0, explanation=explanation, noise=noise or {})
    predictor = _entry("reader", 1000)
    ref_table = reference_answers(
        reference, make_backend(reference), pairs, PROMPTS, tmp_path / f"{explanation}-ref.jsonl", progress=False
    )
    predictions = predictor_answers(
        predictor,
        make_backend(predictor),
        "ref",
        pairs,
        ref_table,
        PROMPTS,
        tmp_path / f"{explanation}-p.jsonl",
        CONDITIONS,
        progress=False,
    )
    return metrics.observations(ref_table, [predictions], {"ref": "a", "reader": "b"}, pairs)


def _pooled(obs: pd.DataFrame, resamples: int, seed: int) -> dict:
    result = metrics.reference_metrics(obs, resamples=resamples, seed=seed)
    return result["comparisons"]["explanation"]["all"]["pooled"]


@pytest.mark.fixtures
def test_truthful_explanations_are_fully_simulatable(population, tmp_path):
    """With the stated rule, a noise-free reader predicts every counterfactual: NSG 100, whatever the sample."""
    whole = _pooled(_observations(population, "truthful", tmp_path), resamples=0, seed=0)
    assert whole["with_accuracy"] == 100.0 and whole["nsg"] == 100.0
    assert 60 < whole["without_accuracy"] < 95  # without the rule the reader keeps the first answer
    sample = sample_eval_set(population, 400, "rows", seed=3)
    block = _pooled(_observations(sample, "truthful", tmp_path), resamples=300, seed=1)
    assert block["nsg"] == 100.0 and block["nsg_ci"] == [100.0, 100.0]


@pytest.mark.fixtures
def test_misleading_explanations_lower_the_accuracy_and_the_ci_covers_the_known_value(population, tmp_path):
    whole = _pooled(_observations(population, "misleading", tmp_path), resamples=0, seed=0)
    assert whole["nsg"] < -20  # the stated rule sends the reader the wrong way
    covered = 0
    for seed in range(5):
        sample = sample_eval_set(population, 500, "rows", seed=seed)
        block = _pooled(_observations(sample, "misleading", tmp_path), resamples=400, seed=seed)
        low, high = block["nsg_ci"]
        assert high < 0
        covered += low <= whole["nsg"] <= high
    assert covered >= 4, covered


@pytest.mark.fixtures
def test_format_noise_costs_answers_not_truth(population, tmp_path):
    """Hedges, echoed templates and cut-off thinking make some replies unreadable; they are dropped and counted, and
    what can be read is still fully simulatable."""
    noise = {"hedged": 0.05, "echo": 0.03, "not_sure": 0.03, "unclosed_think": 0.03, "bold_tags": 0.2}
    sample = sample_eval_set(population, 600, "rows", seed=7)
    obs = _observations(sample, "truthful", tmp_path, noise)
    block = _pooled(obs, resamples=0, seed=0)
    assert block["nsg"] == 100.0
    assert block["dropped"]["reference_unreadable"] > 0 and block["n"] < len(sample)
