"""The simulatability study's synthetic respondent is the metrics' ground truth: its rules, explanations, predictions
and noise must be exactly what its module says, behind the study's real prompts."""

from __future__ import annotations

import copy
import re
from functools import cache

import numpy as np
import pandas as pd
import pytest
import yaml

from selfexplain.config import load_catalog, load_yaml, validate
from selfexplain.errors import ConfigError
from selfexplain.llm.backends import make_backend
from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.synthetic import UNKNOWN_CHAT, SyntheticModel
from selfexplain.llm.types import ChatRequest
from selfexplain.parsing.thinking import split_thinking
from selfexplain.prompts import Template, load_template
from selfexplain.simulatability.builtin import MORAL_MACHINES, tabular_dataset_names
from selfexplain.simulatability.datasets import describe, load_spec, load_table, read_raw
from selfexplain.simulatability.moral_machines import generate_scenarios, pair_scenarios, scenario_from_row
from selfexplain.simulatability.prompts import answer_options, predictor_fields, reference_fields
from selfexplain.simulatability.synthetic import (
    DEFAULT_MISJUDGE_RATE,
    EXPLANATIONS,
    MALFORMED_NOISE,
    MM_COMPONENTS,
    NOISE_KINDS,
    READABLE_NOISE,
    TESTABILITY_KINDS,
    RuleRespondent,
    ScenarioRule,
    TabularRule,
    balanced_threshold,
    consistent_threshold,
    read_rule,
    scenario_rule,
    state_case,
    state_rule,
    tabular_rule,
)
from selfexplain.studies import RESPONDENT_MODULES
from tests.conftest import REPO, fixtures_dir

PROMPTS = REPO / "config" / "prompts" / "simulatability"
SCHEMA = REPO / "workflow" / "schemas" / "catalog.schema.yaml"
CONDITIONS = ("with_explanation", "without_explanation", "cot", "no_reference")
RAW_FILES = {
    "pima_diabetes": "pima-indians-diabetes.data.csv",
    "attrition": "ibm_hr.csv",
    "breast_cancer_recurrence": "breast-cancer.data",
    "income": "adult.data",
}
# Cleveland records in UCI's raw format (the last has cholesterol above 400: a missing chol_level)
HEART_RAW = pd.DataFrame(
    [
        [63, 1, 1, 145, 233, 1, 2, 150, 0, 2.3, 3, 0, 6, 0],
        [67, 1, 4, 160, 286, 0, 2, 108, 1, 1.5, 2, 3, 3, 2],
        [37, 1, 3, 130, 250, 0, 0, 187, 0, 3.5, 3, 0, 3, 0],
        [41, 0, 2, 130, 204, 0, 2, 172, 0, 1.4, 1, 0, 3, 0],
        [56, 1, 2, 120, 236, 0, 0, 178, 0, 0.8, 1, 0, 3, 0],
        [57, 0, 4, 120, 354, 0, 0, 163, 1, 0.6, 1, 0, 3, 0],
        [45, 0, 4, 110, 420, 0, 1, 150, 1, 1.0, 2, 0, 7, 1],
        [52, 1, 3, 115, 180, 1, 1, 160, 0, 0.0, 2, 1, 6, 1],
    ],
    columns=[
        *("age", "sex", "cp", "trestbps", "chol", "fbs", "restecg"),
        *("thalach", "exang", "oldpeak", "slope", "ca", "thal", "target"),
    ],
).astype(float)
# bank-additional-full.csv's columns the loader reads
BANK_RAW = pd.DataFrame(
    [
        [56, "housemaid", "married", "basic.4y", "no", "no", "no", 261, 1, 999, 0, "nonexistent", "no"],
        [37, "services", "married", "high.school", "no", "yes", "no", 226, 1, 999, 0, "nonexistent", "no"],
        [25, "student", "single", "university.degree", "no", "no", "no", 700, 2, 6, 1, "success", "yes"],
        [33, "admin.", "divorced", "professional.course", "no", "yes", "yes", 90, 4, 3, 2, "failure", "no"],
        [61, "retired", "married", "basic.9y", "no", "no", "no", 450, 1, 2, 3, "success", "yes"],
        [45, "technician", "single", "university.degree", "no", "yes", "no", 30, 12, 999, 0, "nonexistent", "no"],
    ],
    columns=[
        *("age", "job", "marital", "education", "default", "housing", "loan"),
        *("duration", "campaign", "pdays", "previous", "poutcome", "y"),
    ],
)


# ---------------------------------------------------------------------------------------------------- helpers


@cache
def _table(dataset: str) -> pd.DataFrame:
    spec = load_spec(dataset)
    if dataset == "heart_disease":
        return load_table(spec, HEART_RAW)
    if dataset == "bank_marketing":
        return load_table(spec, BANK_RAW)
    return load_table(spec, read_raw(spec, fixtures_dir("simulatability_raw") / RAW_FILES[dataset]))


def _records(dataset: str, n: int = 8) -> list[tuple[str, object]]:
    """(text, record) for a few real rows: feature dicts from the loaded table, or Moral Machines scenarios."""
    if dataset == MORAL_MACHINES:
        frame = generate_scenarios(n, seed=3)
        return [(row["text"], scenario_from_row(row)) for row in frame.to_dict("records")]
    spec = load_spec(dataset)
    table = _table(dataset)
    rows = table.iloc[np.linspace(0, len(table) - 1, min(n, len(table))).astype(int)]
    return [(describe(spec, row), row[spec.feature_columns].to_dict()) for _, row in rows.iterrows()]


def _template(name: str, dataset: str) -> Template:
    return load_template(PROMPTS, name, dataset)


def _reference_prompt(dataset: str, text: str, answer_first: bool) -> str:
    name = "reference_answer_first" if answer_first else "reference_answer_last"
    return _template(name, dataset).render(reference_fields(dataset, text))


def _ask(model: RuleRespondent, prompt: str) -> str | None:
    return model.respond([{"role": "user", "content": prompt}])


_TAG = re.compile(r"^\[([A-Z_]+)\]\n", re.MULTILINE)


def _sections(reply: str) -> dict[str, str]:
    """The sections of a well-formed reply (exact tags at line starts), in order."""
    parts = _TAG.split(reply)
    return {tag: body.strip() for tag, body in zip(parts[1::2], parts[2::2], strict=True)}


def _reference(model: RuleRespondent, dataset: str, text: str, answer_first: bool) -> tuple[dict[str, str], str | None]:
    reasoning, body = split_thinking(_ask(model, _reference_prompt(dataset, text, answer_first)))
    return _sections(body), reasoning


def _predict(model: RuleRespondent, dataset: str, condition: str, fields: dict[str, str]) -> str:
    _, body = split_thinking(_ask(model, _template(f"predictor_{condition}", dataset).render(fields)))
    return _sections(body)["ANSWER"]


def _run_pairs(dataset, pairs, reference, predictor, conditions=CONDITIONS):
    """Predictions per condition, in pair order, with the reference's centre and counterfactual answers."""
    answers: dict[tuple[str, bool], tuple[dict[str, str], str | None]] = {}
    out = {c: [] for c in conditions}
    truth = []
    for centre, other, first in pairs:
        for text in (centre, other):
            if (text, first) not in answers:
                answers[(text, first)] = _reference(reference, dataset, text, first)
        (c_sec, reasoning), (o_sec, _) = answers[(centre, first)], answers[(other, first)]
        truth.append((c_sec["ANSWER"], o_sec["ANSWER"]))
        fields = predictor_fields(
            dataset,
            centre,
            c_sec["ANSWER"],
            other,
            explanation=c_sec["EXPLANATION"],
            factors=c_sec["MOST_IMPORTANT_FACTORS"].split(", "),
            thinking=reasoning,
        )
        for condition in conditions:
            out[condition].append(_predict(predictor, dataset, condition, fields))
    return truth, out


def _neighbour_pairs(dataset: str, limit: int = 60) -> list[tuple[str, str, bool]]:
    """Real rows that differ in exactly one feature (a Hamming ball of radius 1), the features taken in turn."""
    spec = load_spec(dataset)
    table = _table(dataset)
    cols = spec.feature_columns
    texts = []
    for j, col in enumerate(cols):
        others = table[[c for c in cols if c != col]].fillna("<missing>")
        frame = pd.DataFrame({"key": pd.util.hash_pandas_object(others, index=False), "value": table[col].fillna("")})
        varied = frame[frame.groupby("key")["value"].transform("nunique") > 1]
        for _, group in list(varied.groupby("key", sort=True))[: limit // len(cols) + 1]:
            first = group.index[0]
            second = group.index[(group["value"] != group["value"].iloc[0]).to_numpy()][0]
            a, b = table.loc[first], table.loc[second]
            texts.append((describe(spec, a), describe(spec, b), j % 2 == 0))
    return texts


def _edited_pairs(dataset: str, limit: int = 40) -> list[tuple[str, str, bool]]:
    """Each real row with one feature moved to its next value (the features taken in turn), as text pairs."""
    spec = load_spec(dataset)
    table = _table(dataset)
    pairs = []
    for i in range(limit):
        row = table.iloc[i % len(table)]
        feature = spec.features[i % len(spec.features)]
        other = row.copy()
        current = row[feature.column]
        step = 1 + i // len(table)
        position = feature.values.index(current) if current in feature.values else 0
        other[feature.column] = feature.values[(position + step) % len(feature.values)]
        pairs.append((describe(spec, row), describe(spec, other), i % 2 == 0))
    return pairs


def _fixture_pairs(dataset: str, n: int | None = None) -> list[tuple[str, str, bool]]:
    frame = pd.read_parquet(
        fixtures_dir("simulatability_original") / f"{dataset}_counterfactual_dataset_balanced.parquet"
    )
    columns = ("original_description", "counterfactual_description", "original_answer_first")
    rows = zip(*(frame[c] for c in columns), strict=True)
    pairs = [(a, b, bool(f)) for a, b, f in rows]
    return pairs[:: max(1, len(pairs) // n)] if n else pairs


# ---------------------------------------------------------------------------------------------------- rules


def test_balanced_threshold_and_consistent_threshold_by_hand():
    # shares of scores >= t: t=0 -> 1, t=1 -> .75, t=2 -> .5, t=3 -> .25
    assert balanced_threshold([0, 1, 2, 3]) == 2
    # t=0 -> 1.0, t=1 -> 0.25: 0.25 is nearer one half
    assert balanced_threshold([0, 0, 0, 1]) == 1
    assert balanced_threshold([5, 5]) == 5
    assert consistent_threshold(3, positive=True) == 3 and consistent_threshold(3, positive=False) == 4


def test_hand_checked_rule_of_seed_zero_on_heart_disease():
    """The rule is pinned (it is part of the synthetic model's behaviour) and decides hand-scored records."""
    model = RuleRespondent(seed=0)
    rule = model.rule("heart_disease")
    assert rule == TabularRule(
        "heart_disease",
        {"cp": {"2.0": 2, "4.0": 2}, "exang": {"yes": 2}, "trestbps_level": {"normal": 2, "elevated": 2}},
        4,
        ("NO", "YES"),
    )
    start = "This is a male patient, experiencing asymptomatic (no chest pain), normal fasting blood sugar, "
    ecg = "left ventricular hypertrophy on ECG, "
    tail = "flat ST segment, over 60 years old, high cholesterol, and "
    # cp 4.0 (2) + exang yes (2) + high blood pressure (0) = 4 >= 4
    a = start + ecg + "experiencing angina with exercise, " + tail + "high blood pressure."
    # ... and normal blood pressure (2) = 6
    b = start + ecg + "experiencing angina with exercise, " + tail + "normal blood pressure."
    # cp 4.0 (2) + no exercise angina (0) + high blood pressure (0) = 2 < 4
    c = start + ecg + "no exercise-induced angina, " + tail + "high blood pressure."
    for text, expected in ((a, "YES"), (b, "YES"), (c, "NO")):
        sections, _ = _reference(model, "heart_disease", text, True)
        assert sections["ANSWER"] == expected
    sections, _ = _reference(model, "heart_disease", a, True)
    assert '"cp": 2 points for "2.0" (experiencing atypical angina), 2 points for "4.0"' in sections["EXPLANATION"]
    assert "I answer YES when the total is at least 4 points, and NO otherwise." in sections["EXPLANATION"]
    assert sections["CONFIDENCE"] == "LOW"  # exactly on the threshold
    # the predictor applies the stated rule to the new case
    fields = predictor_fields("heart_disease", a, "YES", c, explanation=sections["EXPLANATION"], factors=["cp"])
    assert _predict(RuleRespondent(seed=9), "heart_disease", "with_explanation", fields) == "NO"
    assert _predict(RuleRespondent(seed=9), "heart_disease", "without_explanation", fields) == "YES"


def test_scenario_rule_costs_by_hand():
    from selfexplain.simulatability.moral_machines import Scenario

    rule = ScenarioRule({"human deaths": 2, "pet deaths": 1, "swerving": 3}, 1, ("CASE 1", "CASE 2"))
    # no passengers, the car intervenes: it swerves in case 1; case 1 kills 2 men, case 2 kills 1 dog and 1 man
    scenario = Scenario("", True, False, False, (None, None), False, (("man", 2),), (("dog", 1), ("man", 1)))
    assert rule.cost(scenario, 1) == 2 * 2 + 3  # 2 human deaths + swerving
    assert rule.cost(scenario, 2) == 2 + 1
    assert rule.score(scenario) == 4 and rule.decide(scenario) == "CASE 2"
    text = state_rule(rule, "scenario")
    assert read_rule(text, MORAL_MACHINES) == rule
    assert (
        state_case(rule, scenario, "scenario")
        == "Here Case 1 costs 7 points and Case 2 costs 3 points, so I choose CASE 2."
    )
    # passengers: case 1 kills the people in the car
    inside = Scenario("", False, True, True, (None, "red"), False, (("woman", 1),), (("girl", 2),))
    assert MM_COMPONENTS["passenger deaths"](inside, 1) == 1 and MM_COMPONENTS["passenger deaths"](inside, 2) == 0
    assert MM_COMPONENTS["swerving"](inside, 2) == 1 and MM_COMPONENTS["deaths on a red light"](inside, 2) == 2


@pytest.mark.parametrize("dataset", [*tabular_dataset_names(), MORAL_MACHINES])
def test_rules_are_seeded_and_decoys_use_other_features(dataset):
    a, b = RuleRespondent(seed=0), RuleRespondent(seed=0)
    assert a.rule(dataset) == b.rule(dataset) and a.decoy(dataset) == b.decoy(dataset)
    assert len({str(RuleRespondent(seed=s).rule(dataset)) for s in range(6)}) > 1
    rule, decoy = a.rule(dataset), a.decoy(dataset)
    assert len(rule.features) == 3 and decoy.features and not set(rule.features) & set(decoy.features)
    one = RuleRespondent({"rule_features": 1}, seed=0).rule(dataset)
    assert len(one.features) == 1
    if dataset != MORAL_MACHINES:
        spec = load_spec(dataset)
        for feature, values in rule.points.items():
            assert set(values) <= set(spec.feature(feature).values) and max(values.values()) == 2
            assert len(values) < len(spec.feature(feature).values)  # some value gives 0 points


@pytest.mark.parametrize("dataset", ["pima_diabetes", "attrition", "breast_cancer_recurrence", "income"])
def test_rules_split_real_tables_and_flip_across_neighbours(dataset):
    spec = load_spec(dataset)
    records = _table(dataset)[spec.feature_columns].to_dict("records")
    pairs = _neighbour_pairs(dataset, limit=400)
    for seed in range(5):
        rule = tabular_rule(spec, seed, 3)
        share = np.mean([rule.decide(r) == rule.options[1] for r in records])
        assert 0.15 <= share <= 0.85, (seed, share)
    model = RuleRespondent(seed=0)
    flips = [
        model.rule(dataset).decide(_parse(dataset, a)) != model.rule(dataset).decide(_parse(dataset, b))
        for a, b, _ in pairs
    ]
    assert 0.05 <= np.mean(flips) <= 0.7


def _parse(dataset: str, text: str) -> dict:
    from selfexplain.simulatability.datasets import parse_description

    return parse_description(load_spec(dataset), text)


def test_moral_machines_rules_split_the_study_pairs():
    frame = generate_scenarios(3000, seed=11)
    pairs = pair_scenarios(frame)
    by_row = {row["row"]: scenario_from_row(row) for row in frame.to_dict("records")}
    for seed in range(4):
        rule = RuleRespondent(seed=seed).rule(MORAL_MACHINES)
        share = np.mean([rule.decide(s) == "CASE 2" for s in by_row.values()])
        flips = np.mean(
            [
                rule.decide(by_row[a]) != rule.decide(by_row[b])
                for a, b in zip(pairs.centre_row, pairs.counterfactual_row, strict=True)
            ]
        )
        assert 0.2 <= share <= 0.8 and flips >= 0.1, (seed, share, flips)
    # without the study's sample the first candidate is used, threshold 0 or 1
    assert scenario_rule(0, 3).threshold in (0, 1)


# ---------------------------------------------------------------------------------------------------- reference


@pytest.mark.parametrize("dataset", [*tabular_dataset_names(), MORAL_MACHINES])
def test_truthful_reference_states_its_rule(dataset):
    model = RuleRespondent({"think": True}, seed=1)
    rule = model.rule(dataset)
    answers = set()
    for text, record in _records(dataset):
        for first in (True, False):
            reply = _ask(model, _reference_prompt(dataset, text, first))
            reasoning, body = split_thinking(reply)
            sections = _sections(body)
            order = ["ANSWER", "EXPLANATION", "MOST_IMPORTANT_FACTORS", "OTHER_RELEVANT_INFO", "CONFIDENCE"]
            assert list(sections) == (order if first else [*order[1:], "ANSWER"])
            assert sections["ANSWER"] == rule.decide(record)
            answers.add(sections["ANSWER"])
            assert sections["MOST_IMPORTANT_FACTORS"].split(", ") == list(rule.features)
            assert read_rule(sections["EXPLANATION"], dataset) == rule
            assert read_rule(reasoning, dataset) == rule and reasoning.startswith("Let me")
            assert sections["CONFIDENCE"] in ("LOW", "MEDIUM", "HIGH")
    assert answers <= set(answer_options(dataset))


@pytest.mark.parametrize("dataset", [*tabular_dataset_names(), MORAL_MACHINES])
def test_misleading_reference_names_other_features_and_answers_the_same(dataset):
    truthful, misleading = RuleRespondent(seed=2), RuleRespondent({"explanation": "misleading", "think": True}, seed=2)
    rule, decoy = truthful.rule(dataset), misleading.decoy(dataset)
    for text, record in _records(dataset):
        honest, _ = _reference(truthful, dataset, text, True)
        lying, reasoning = _reference(misleading, dataset, text, True)
        assert lying["ANSWER"] == honest["ANSWER"] == rule.decide(record)
        factors = lying["MOST_IMPORTANT_FACTORS"].split(", ")
        assert factors == list(decoy.features) and not set(factors) & set(rule.features)
        stated = read_rule(lying["EXPLANATION"], dataset)
        assert stated.points == decoy.points and stated.decide(record) == lying["ANSWER"]  # a consistent lie
        assert read_rule(reasoning, dataset) == rule  # the thinking stays faithful


@pytest.mark.parametrize("explanation", EXPLANATIONS)
@pytest.mark.parametrize("dataset", ["heart_disease", MORAL_MACHINES])
def test_thinking_only_goes_in_front_and_states_the_rule_the_answers_follow(explanation, dataset):
    """`think` never changes a reply's sections or noise draws (so switching it on leaves the with/without
    explanation conditions as they were), and the thinking states the true rule, under misleading too."""
    noise = {k: 0.2 for k in NOISE_KINDS if k not in ("think", "unclosed_think", "empty")}
    plain = RuleRespondent({"explanation": explanation, "noise": noise}, seed=3)
    thinking = RuleRespondent({"explanation": explanation, "noise": noise, "think": True}, seed=3)
    rule = plain.rule(dataset)
    for text, record in _records(dataset, 12):
        for first in (True, False):
            prompt = _reference_prompt(dataset, text, first)
            without, with_thinking = _ask(plain, prompt), _ask(thinking, prompt)
            reasoning, body = split_thinking(with_thinking)
            assert body == without and with_thinking == f"<think>\n{reasoning}\n</think>\n\n{without}"
            assert read_rule(reasoning, dataset) == rule and rule.decide(record) in reasoning
            assert _ask(thinking, prompt) == with_thinking  # deterministic


def test_default_references_all_think_so_the_cot_condition_covers_them():
    """The conditions figure compares cot with the explanation for every reference: each synthetic reference of the
    default config must think (a reference without thinking gets no cot rows)."""
    config = load_yaml(REPO / "config" / "config.yaml")
    catalog = load_yaml(REPO / config["catalog"])["models"]
    assert "cot" in config["simulatability"]["conditions"]
    synthetic = [r for r in config["simulatability"]["references"] if catalog[r]["backend"] == "synthetic"]
    assert synthetic
    silent = [r for r in synthetic if not catalog[r]["synthetic"].get("simulatability", {}).get("think", False)]
    assert not silent, f"config/models.yaml: set simulatability.think: true for {silent}"


def test_reworded_prompt_gets_the_same_answer():
    model = RuleRespondent(seed=4)
    for dataset in ("heart_disease", MORAL_MACHINES):
        for text, record in _records(dataset, 4):
            reworded = (
                f"Please look at the case below.\n\n{text}\n\nGive your verdict. Use these headings:\n"
                "[CONFIDENCE]\n...\n[EXPLANATION]\n...\n[ANSWER]\n...\n[OTHER_RELEVANT_INFO]\n...\n"
                "[MOST_IMPORTANT_FACTORS]\n..."
            )
            standard, _ = _reference(model, dataset, text, True)
            sections = _sections(_ask(model, reworded))
            order = ["CONFIDENCE", "EXPLANATION", "ANSWER", "OTHER_RELEVANT_INFO", "MOST_IMPORTANT_FACTORS"]
            assert list(sections) == order
            assert sections == standard and sections["ANSWER"] == model.rule(dataset).decide(record)
    # a predictor chat in other words: "Case A", "Case B", the answer after a colon
    (a, _), (b, _) = _records("heart_disease", 2)
    prompt = f"Case A:\n{a}\nThe doctor said: NO\n\nCase B:\n{b}\n\nYour guess?\n[ANSWER]\n\n[CONFIDENCE]"
    reply = _sections(_ask(RuleRespondent(seed=4), prompt))
    assert reply == {"ANSWER": "NO", "CONFIDENCE": "MEDIUM"}


# ---------------------------------------------------------------------------------------------------- predictor


def _accuracy(truth, predictions) -> float:
    return 100 * float(np.mean([p == cf for (_, cf), p in zip(truth, predictions, strict=True)]))


@pytest.mark.parametrize("dataset", ["heart_disease", "bank_marketing", MORAL_MACHINES])
def test_predictor_follows_a_truthful_explanation_everywhere(dataset):
    if dataset == MORAL_MACHINES:
        pairs = pair_scenarios(generate_scenarios(600, seed=5))
        pairs = list(zip(pairs["centre_text"], pairs["counterfactual_text"], pairs["answer_first"], strict=True))
    else:
        pairs = _edited_pairs(dataset)
    assert len(pairs) >= 5
    reference, predictor = RuleRespondent({"think": True}, seed=0), RuleRespondent(seed=7)
    truth, out = _run_pairs(dataset, pairs, reference, predictor)
    assert _accuracy(truth, out["with_explanation"]) == 100 and _accuracy(truth, out["cot"]) == 100
    assert out["without_explanation"] == [centre for centre, _ in truth]  # the prior: the first case's answer
    own = predictor.rule(dataset)
    records = [predictor.records(b)[0].values for _, b, _ in pairs]
    assert out["no_reference"] == [own.decide(r) for r in records]


@pytest.mark.parametrize("dataset", ["heart_disease", "pima_diabetes"])
def test_expected_accuracies_on_the_original_pairs(dataset):
    """With a truthful explanation 100 %; without, the share of pairs whose answer stays; misleading clearly less."""
    pairs = _fixture_pairs(dataset, n=300)
    predictor = RuleRespondent(seed=1000)
    truth, honest = _run_pairs(dataset, pairs, RuleRespondent({"think": True}, seed=0), predictor)
    truth_m, lying = _run_pairs(dataset, pairs, RuleRespondent({"explanation": "misleading"}, seed=0), predictor)
    assert truth == truth_m
    stays = 100 * np.mean([c == cf for c, cf in truth])
    assert _accuracy(truth, honest["with_explanation"]) == 100
    assert _accuracy(truth, honest["without_explanation"]) == pytest.approx(stays)
    assert 50 < stays < 95  # the answer changes on some pairs: there is a gap to find
    assert _accuracy(truth, lying["with_explanation"]) < stays - 5
    assert _accuracy(truth, honest["cot"]) == 100


def test_predictor_settings_flip_and_ignore_at_their_rates():
    pairs = _edited_pairs("heart_disease", limit=200)
    reference = RuleRespondent(seed=0)
    truth, exact = _run_pairs("heart_disease", pairs, reference, RuleRespondent(seed=3), ("with_explanation",))
    _, flipped = _run_pairs(
        "heart_disease",
        pairs,
        reference,
        RuleRespondent({"predictor": {"flip_rate": 0.3}}, seed=3),
        ("with_explanation",),
    )
    _, ignoring = _run_pairs(
        "heart_disease",
        pairs,
        reference,
        RuleRespondent({"predictor": {"ignore_explanation_rate": 1.0}}, seed=3),
        ("with_explanation", "without_explanation"),
    )
    assert _accuracy(truth, exact["with_explanation"]) == 100
    share_flipped = np.mean(
        [a != b for a, b in zip(exact["with_explanation"], flipped["with_explanation"], strict=True)]
    )
    assert 0.15 < share_flipped < 0.45
    assert ignoring["with_explanation"] == ignoring["without_explanation"]


# ---------------------------------------------------------------------------------------------------- noise


def _noisy_replies(kind: str, rate: float, n_scenarios: int = 150) -> tuple[list[str], list[str], list[str]]:
    """(reference replies, their prompts' true answers, predictor replies) for many chats, one noise kind on."""
    model = RuleRespondent({"noise": {kind: rate}}, seed=5)
    replies, answers, predictions = [], [], []
    frame = generate_scenarios(n_scenarios, seed=8)
    texts = list(frame["text"])
    for i, text in enumerate(texts):
        first = i % 2 == 0
        replies.append(_ask(model, _reference_prompt(MORAL_MACHINES, text, first)))
        answers.append(model.rule(MORAL_MACHINES).decide(scenario_from_row(frame.iloc[i].to_dict())))
        fields = predictor_fields(MORAL_MACHINES, texts[i - 1], "CASE 1", text)
        predictions.append(_ask(model, _template("predictor_without_explanation", MORAL_MACHINES).render(fields)))
    return replies, answers, predictions


SIGNS = {
    "bold_tags": lambda r: "**[" in r,
    "lowercase_tags": lambda r: "[answer]" in r,
    "spaced_tags": lambda r: "[ ANSWER ]" in r,
    "missing_bracket": lambda r: re.search(r"\[ANSWER\n", r) is not None,
    "trailing_prose": lambda r: r.endswith("go through any detail again."),
    "think": lambda r: r.startswith("<think>") and "</think>" in r,
    "missing_tag": lambda r: "ANSWER" not in r,
    "hedged": lambda r: "CASE 1/CASE 2" in r,
    "not_sure": lambda r: "NOT SURE" in r,
    "echo": lambda r: "(pick exactly one)" in r,
    "unclosed_think": lambda r: r.startswith("<think>") and "</think>" not in r,
    "empty": lambda r: r == "",
}
MALFORMED_STATUS = {
    "missing_tag": "no_answer",
    "hedged": "hedge",
    "not_sure": "negated",
    "echo": "template_echo",
    "unclosed_think": "incomplete_thinking",
    "empty": "empty",
}


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_kinds_appear_at_their_rates_and_replies_are_deterministic(kind):
    assert set(SIGNS) == set(NOISE_KINDS) == set(READABLE_NOISE) | set(MALFORMED_NOISE)
    replies, _, predictions = _noisy_replies(kind, 0.3)
    for texts in (replies, predictions):
        share = np.mean([SIGNS[kind](r) for r in texts])
        assert 0.18 <= share <= 0.42, share  # 150 chats: 3 standard deviations
    again, _, again_predictions = _noisy_replies(kind, 0.3)
    assert again == replies and again_predictions == predictions
    clean, _, _ = _noisy_replies(kind, 0.0)
    assert not any(SIGNS[kind](r) for r in clean)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_study_parser_reads_readable_noise_and_flags_malformed(kind):
    parsing = pytest.importorskip("selfexplain.simulatability.parsing")
    options = answer_options(MORAL_MACHINES)
    replies, answers, predictions = _noisy_replies(kind, 1.0, n_scenarios=30)
    for reply, answer, prediction in zip(replies, answers, predictions, strict=True):
        parsed, predicted = parsing.parse_reference(reply, options), parsing.parse_prediction(prediction, options)
        if kind in READABLE_NOISE:
            assert (parsed.answer, parsed.answer_status) == (answer, "ok"), reply
            assert parsed.parse_status == "ok" and parsed.confidence in ("LOW", "MEDIUM", "HIGH")
            assert (predicted.answer, predicted.status) == ("CASE 1", "ok")
        else:
            assert parsed.answer is None and parsed.answer_status == MALFORMED_STATUS[kind], reply
            assert predicted.answer is None and predicted.status == MALFORMED_STATUS[kind], prediction


def test_study_parser_reads_clean_replies_completely():
    parsing = pytest.importorskip("selfexplain.simulatability.parsing")
    model = RuleRespondent({"think": True}, seed=6)
    for dataset in ("heart_disease", "bank_marketing", MORAL_MACHINES):
        rule = model.rule(dataset)
        for text, record in _records(dataset, 4):
            for first in (True, False):
                reasoning, body = split_thinking(_ask(model, _reference_prompt(dataset, text, first)))
                parsed = parsing.parse_reference(body, answer_options(dataset))
                assert parsed.parse_status == "ok" and parsed.answer == rule.decide(record)
                assert list(parsed.factors) == list(rule.features) and parsed.other_info == ()
                assert read_rule(parsed.explanation, dataset) == rule and read_rule(reasoning, dataset) == rule


# ---------------------------------------------------------------------------------------------------- dispatch


def test_unknown_chats_are_left_to_others():
    model = RuleRespondent(seed=0)
    assert _ask(model, "What is the capital of France? [ANSWER] [EXPLANATION]") is None
    assert model.respond([{"role": "system", "content": "hello"}]) is None
    (a, _), (b, _), (c, _) = _records("heart_disease", 3)
    assert _ask(model, f"{a}\n{b}\n{c}\n[ANSWER]") is None  # three records
    ((m, _),) = _records(MORAL_MACHINES, 1)
    assert _ask(model, f"{a}\n\n{m}\n[ANSWER]") is None  # two datasets
    sce_prompt = load_template(REPO / "config" / "prompts" / "sce", "first_pass", "income").text
    assert _ask(model, sce_prompt) is None
    assert "selfexplain.simulatability.synthetic" in RESPONDENT_MODULES


def test_catalog_block_defaults_and_backend_round_trip():
    schema = load_yaml(SCHEMA)
    catalog = {"models": {"syn": {"backend": "synthetic", "model_id": "test/syn", "synthetic": {"seed": 3}}}}
    validate(catalog, schema, root="catalog")
    block = catalog["models"]["syn"]["synthetic"]["simulatability"]
    assert block == {
        "explanation": "truthful",
        "rule_features": 3,
        "think": False,
        "predictor": {"ignore_explanation_rate": 0.0, "flip_rate": 0.0},
        "noise": {},
    }
    bad = copy.deepcopy(catalog)
    bad["models"]["syn"]["synthetic"]["simulatability"] = {"noise": {"typo": 0.1}, "explanation": "lies"}
    with pytest.raises(ConfigError, match=r"simulatability.*(typo|lies)"):
        validate(bad, schema, root="catalog")
    with pytest.raises(ConfigError, match="explanation"):
        RuleRespondent({"explanation": "lies"})
    with pytest.raises(ConfigError, match=r"noise\.typo"):
        RuleRespondent({"noise": {"typo": 0.1}})

    thinking = {"models": {"syn": {"backend": "synthetic", "model_id": "t", "synthetic": {"seed": 3}}}}
    thinking["models"]["syn"]["synthetic"]["simulatability"] = {"think": True}
    entry = parse_entry("syn", validate(thinking, schema, root="catalog")["models"]["syn"])
    backend = make_backend(entry)
    ((text, record),) = _records("heart_disease", 1)
    prompt = _reference_prompt("heart_disease", text, True)
    request = ChatRequest(messages=({"role": "user", "content": prompt},), sampling=entry.sampling, identity={})
    ((_, completion),) = list(backend.complete([request]))
    rule = RuleRespondent(seed=3).rule("heart_disease")
    assert read_rule(completion.reasoning, "heart_disease") == rule and "<think>" not in completion.text
    assert _sections(completion.text)["ANSWER"] == rule.decide(record)
    assert SyntheticModel({"seed": 3}).respond([{"role": "user", "content": "nothing known"}]) == UNKNOWN_CHAT


@pytest.mark.parametrize(
    ("testability", "expected"),
    [
        ({"misjudge_rate": 1.5}, r"testability\.misjudge_rate: 1\.5 is greater than the maximum of 1"),
        ({"misjudge_rate": -0.1}, r"testability\.misjudge_rate: -0\.1 is less than the minimum of 0"),
        ({"misjudge_rate": "often"}, r"testability\.misjudge_rate: 'often' is not of type 'number'"),
        ({"known_seed": -1}, r"testability\.known_seed: -1 is less than the minimum of 0"),
        ({"known_seed": 1.5}, r"testability\.known_seed: 1\.5 is not of type 'integer'"),
        ({"known_seed": "zero"}, r"testability\.known_seed: 'zero' is not of type 'integer'"),
        ({"seed": 2}, r"testability: Additional properties are not allowed \('seed' was unexpected\)"),
        ("lenient", r"testability: 'lenient' is not of type 'object'"),
    ],
)
def test_catalog_testability_block_refuses_bad_values(tmp_path, testability, expected):
    entry = {"backend": "synthetic", "model_id": "x", "synthetic": {"simulatability": {"testability": testability}}}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"rater": entry}}))
    with pytest.raises(ConfigError, match=r"models\.rater\.synthetic\.simulatability\." + expected) as info:
        load_catalog(path, SCHEMA)
    assert "\n" not in str(info.value)


def test_catalog_testability_block_takes_exactly_the_respondents_keys(tmp_path):
    schema = load_yaml(SCHEMA)
    block = schema["properties"]["models"]["additionalProperties"]["properties"]["synthetic"]["properties"]
    testability = block["simulatability"]["properties"]["testability"]
    assert set(testability["properties"]) == set(TESTABILITY_KINDS)
    assert "default" not in testability and not any("default" in p for p in testability["properties"].values())
    entry = {"backend": "synthetic", "model_id": "x", "synthetic": {"seed": 1000}}
    entry["synthetic"]["simulatability"] = {"testability": {"known_seed": 7, "misjudge_rate": 0}}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"rater": entry, "plain": {"backend": "synthetic", "model_id": "y"}}}))
    catalog = load_catalog(path, SCHEMA)
    settings = catalog["rater"].synthetic["simulatability"]
    rater = RuleRespondent(settings, seed=1000, datasets=["heart_disease"])
    assert (rater.known_seed, rater.misjudge_rate) == (7, 0.0)
    assert rater.known_rule("heart_disease") == RuleRespondent(seed=7).rule("heart_disease")
    plain = RuleRespondent(catalog["plain"].synthetic["simulatability"], datasets=["heart_disease"])
    assert (plain.known_seed, plain.misjudge_rate) == (0, DEFAULT_MISJUDGE_RATE)
    assert "testability" not in catalog["plain"].synthetic["simulatability"]  # no defaults: same behaviour hash
    for bad, message in (
        ({"known_seed": -1}, r"known_seed: -1 is not an integer >= 0"),
        ({"known_seed": True}, r"known_seed: True is not an integer >= 0"),
        ({"misjudge_rate": "often"}, r"misjudge_rate: 'often' is not a number"),
    ):
        with pytest.raises(ConfigError, match=r"synthetic\.simulatability\.testability\." + message):
            RuleRespondent({"testability": bad})
