"""Synthetic models are the ground truth for the metrics: their behaviour is known by construction."""

from __future__ import annotations

import json

import pytest

from selfexplain.llm.backends import make_backend
from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.synthetic import SyntheticModel
from selfexplain.parsing.numbers import number_to_words
from selfexplain.prompts import load_template
from selfexplain.sce import elicit
from selfexplain.sce.scoring import score_table
from selfexplain.tabular.features import load_dataset_spec
from selfexplain.tabular.grids import build_grid
from tests.conftest import REPO

PROMPTS = REPO / "config" / "prompts" / "sce"
NOISE = {
    "malformed_json": 0.02,
    "code_fence": 0.1,
    "think_prefix": 0.05,
    "single_quotes": 0.05,
    "off_grid": 0.03,
    "extra_keys": 0.05,
    "number_words": 0.05,
}


def _run(tmp_path, behaviour, dataset, noise=None, prompt="minimal"):
    entry = parse_entry(
        behaviour,
        {
            "backend": "synthetic",
            "model_id": f"test/{behaviour}",
            "synthetic": {"sce": {"counterfactual": behaviour, "noise": noise or {}}},
        },
    )
    spec = load_dataset_spec(dataset)
    grid = build_grid(spec)
    first = load_template(PROMPTS, "first_pass", dataset)
    followup = load_template(PROMPTS, prompt, dataset)
    backend = make_backend(entry)
    predictions = elicit.predict(entry, backend, spec, grid, first, tmp_path / "p.jsonl", progress=False)
    table = elicit.elicit(entry, backend, spec, predictions, first, followup, tmp_path / "e.jsonl", progress=False)
    return score_table(spec, grid, table, resamples=100)


@pytest.mark.parametrize("dataset", ["income", "house_prices", "heart_disease"])
def test_exact_is_valid_and_minimal_despite_noise(tmp_path, dataset):
    _, m = _run(tmp_path, "exact", dataset, NOISE)
    assert m["validity_percent"] == 100
    assert m["mean_RCF_A"] == 0 and m["exact_match"] == 100
    # noise shows up only in the counts and in strict validity
    assert m["failures"]["first_answer_unreadable"] > 0
    assert m["failures"]["counterfactual_off_grid"] > 0
    assert 85 < m["strict_validity_percent"] < 100


@pytest.mark.parametrize("dataset", ["income", "house_prices", "heart_disease"])
def test_overshoot_is_valid_but_not_minimal(tmp_path, dataset):
    _, m = _run(tmp_path, "overshoot", dataset)
    assert m["validity_percent"] == 100
    assert m["mean_RCF_A"] > 0.05 and m["exact_match"] < 50


@pytest.mark.parametrize("dataset", ["income", "house_prices", "heart_disease"])
def test_timid_is_mostly_invalid(tmp_path, dataset):
    _, m = _run(tmp_path, "timid", dataset)
    assert m["validity_percent"] < 20
    assert m["mean_ICF_A"] > 0


def test_noise_free_exact_model_answers_clean_json(tmp_path):
    _, m = _run(tmp_path, "exact", "heart_disease", prompt="standard")
    assert m["n_kept"] == m["n_rows"] == 1936
    assert m["strict_validity_percent"] == 100


def test_synthetic_model_reads_the_record_behind_any_wording():
    spec = load_dataset_spec("income")
    model = SyntheticModel({"sce": {"counterfactual": "exact"}})
    record = spec.describe({"AGEP": 40.0, "SCHL": 22.0})
    first = model.respond([{"role": "user", "content": f"Tell me.\n{record}\nanswer in JSON"}])
    assert json.loads(first) == {"answer": "Above $50,000"}
    followup = model.respond(
        [
            {"role": "user", "content": record},
            {"role": "assistant", "content": first},
            {"role": "user", "content": "Change it so the answer becomes Below $50,000."},
        ]
    )
    assert set(json.loads(followup)) == {"age", "education"}
    assert model.respond([{"role": "user", "content": "What is the capital of France?"}]).startswith("I can only")


def test_number_to_words():
    assert number_to_words(45) == "forty-five"
    assert number_to_words(2500) == "two thousand five hundred"
    assert number_to_words(110) == "one hundred ten"
