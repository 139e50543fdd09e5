"""Parsing of messy model replies: answers, counterfactual records and single feature values."""

from __future__ import annotations

import random

import pytest

from selfexplain.parsing.jsontext import extract_json_objects
from selfexplain.parsing.labels import normalise_label
from selfexplain.parsing.thinking import strip_thinking
from selfexplain.sce.parsing import (
    ANSWER_STATUSES,
    COUNTERFACTUAL_STATUSES,
    AnswerParse,
    CounterfactualParse,
    parse_answer,
    parse_counterfactual,
    parse_feature_value,
)
from selfexplain.tabular.features import Feature, load_dataset_spec

INCOME = load_dataset_spec("income")
HEART = load_dataset_spec("heart_disease")
HOUSE = load_dataset_spec("house_prices")
BELOW, ABOVE = INCOME.options
NO_HD, HD = HEART.options


# ------------------------------------------------------------------------------------------------ cleaning


def test_strip_thinking_variants() -> None:
    assert strip_thinking('<think>{"answer": "x"}</think>\nreply') == "\nreply"
    assert strip_thinking("<THINKING>a</thinking>b<think>c</think>d") == "bd"
    # the chat template opened the block: everything up to the last closing tag is reasoning
    assert strip_thinking("reasoning {x} </think> reply") == " reply"
    assert strip_thinking("<think>a <think> b</think> c </think>reply") == "reply"
    # the reply ended mid-reasoning: nothing after the opening tag is an answer
    assert strip_thinking('prefix <think>maybe {"answer": "x"}') == "prefix "
    assert strip_thinking("no tags at all") == "no tags at all"


def test_normalise_label() -> None:
    assert normalise_label("  Master’s   Degree ") == "masters degree"
    assert normalise_label("Above $50,000") == "above 50 000"
    assert normalise_label("N/A - no schooling completed") == "n a no schooling completed"
    assert normalise_label("“Café”") == "cafe"
    assert normalise_label("") == ""


def test_extract_json_objects_in_order_and_tolerant() -> None:
    text = 'a {"x": "}{"} b {bad c {"y": 1} d ```json\n{"z": [1, 2]}\n```'
    assert extract_json_objects(text) == [{"x": "}{"}, {"y": 1}, {"z": [1, 2]}]
    assert extract_json_objects("no braces") == []
    assert extract_json_objects('<think>{"a": 1}</think>{"b": 2}') == [{"b": 2}]
    # a failed outer object still yields the good object inside it
    assert extract_json_objects('{"a": {"b": 1}, broken} {"c": 2}') == [{"b": 1}, {"c": 2}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{'answer': 'Above $50,000'}", {"answer": "Above $50,000"}),
        ("{'education': 'Master's degree'}", {"education": "Master's degree"}),
        ("{“answer”: “Above $50,000”}", {"answer": "Above $50,000"}),
        ('{"age": 45, "education": "x",}', {"age": 45, "education": "x"}),
        ("{age: 45, education: Some college, 1 year}", {"age": 45, "education": "Some college, 1 year"}),
        ("{answer: Above $50,000}", {"answer": "Above $50,000"}),
        ('{\n "area": 2750, // bigger\n // comment line\n "floors": 1\n}', {"area": 2750, "floors": 1}),
        ('{"id": "#3", "url": "http://x.org/a"}', {"id": "#3", "url": "http://x.org/a"}),
        ("{'id': '#3', note: a # b}", {"id": "#3", "note": "a # b"}),
        ('{"a": 1\n "b": "two"}', {"a": 1, "b": "two"}),
        ("{'flag': True, 'none': None}", {"flag": True, "none": None}),
    ],
)
def test_extract_json_objects_repairs(text: str, expected: dict[str, object]) -> None:
    assert extract_json_objects(text) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"answer": "Above $50,000"', {"answer": "Above $50,000"}),
        ('{"age": 45, "education": "Bach', {"age": 45, "education": "Bach"}),
        ('{"age": 45, "educ', {"age": 45}),
        ('{"revised": {"age": 45, "education": "x"', {"revised": {"age": 45, "education": "x"}}),
        ('{"answer": "Above $50,000"\nThat is my answer.', {"answer": "Above $50,000"}),
    ],
)
def test_truncated_objects_are_closed(text: str, expected: dict[str, object]) -> None:
    assert extract_json_objects(text) == [expected]


# ------------------------------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    "text",
    [
        '{"answer": "Above $50,000"}',
        '```json\n{"answer": "Above $50,000"}\n```',
        '```\n{"answer": "Above $50,000"}\n```\n```\nmore\n```',
        '```json\n{"answer": "Above $50,000"}',
        '<think>I think {"answer": "Below"} maybe</think>\n{"answer": "Above $50,000"}',
        '<think>Below $50,000 seems likely {"answer": "Below $50,000"}</think>{"answer": "Above $50,000"}',
        'Let me think. The person is well educated.\n{"answer": "Above $50,000"}\nI hope this helps {}!',
        "{'answer': 'Above $50,000'}",
        '{"answer": "Above $50,000"',
        '{"answer": "above $50,000"}',
        '{"answer": "  ABOVE   $50,000 "}',
        '{"answer": "Above $50000"}',
        '{"Answer": "Above $50,000."}',
        '{"answer": "The income is likely above $50,000"}',
        '{"answer": ["Above $50,000"]}',
        '{"result": {"answer": "Above $50,000", "confidence": 0.8}}',
        '{"answer": "Below $50,000"} Wait, correction: {"answer": "Above $50,000"}',
        '{"answer": "Above $50,000"} {"confidence": 0.9}',
        "Above $50,000",
        '"Above $50,000."',
        "**above $50,000**",
    ],
)
def test_answer_above(text: str) -> None:
    parsed = parse_answer(text, INCOME.options)
    assert parsed.answer == ABOVE
    assert parsed.status == "ok"


def test_answer_raw_value_is_what_the_model_wrote() -> None:
    assert parse_answer('{"answer": "above $50,000"}', INCOME.options).raw_value == "above $50,000"
    assert parse_answer('{"answer": ["Below $50,000"]}', INCOME.options) == AnswerParse(
        BELOW, "ok", '["Below $50,000"]'
    )
    assert parse_answer('{"answer": 3}', INCOME.options) == AnswerParse(None, "not_an_option", "3")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"answer": "No heart disease"}', NO_HD),
        ('{"answer": "no heart disease"}', NO_HD),
        ('{"answer": "Heart disease"}', HD),
        ('{"answer": "HEART-DISEASE"}', HD),
        ('{"answer": "The patient has no heart disease."}', NO_HD),
        ('{"answer": "The patient likely has heart disease"}', HD),
    ],
)
def test_answer_prefers_longest_option(text: str, expected: str) -> None:
    parsed = parse_answer(text, HEART.options)
    assert (parsed.answer, parsed.status) == (expected, "ok")


@pytest.mark.parametrize(
    ("text", "options", "status"),
    [
        (None, INCOME.options, "empty"),
        ("", INCOME.options, "empty"),
        ("   \n ", INCOME.options, "empty"),
        ('<think>only reasoning {"answer": "Above $50,000"}</think>', INCOME.options, "empty"),
        ('{"answer": null}', INCOME.options, "empty"),
        ('{"answer": ""}', INCOME.options, "empty"),
        ('{"answer": []}', INCOME.options, "empty"),
        ("I cannot decide.", INCOME.options, "no_json"),
        ("Answer: Above $50,000", INCOME.options, "no_json"),
        ('{"prediction": "Above $50,000"}', INCOME.options, "no_answer_key"),
        ('{"answer": "Maybe"}', INCOME.options, "not_an_option"),
        ('{"answer": "A"}', INCOME.options, "not_an_option"),
        ('{"answer": "1"}', INCOME.options, "not_an_option"),
        ('{"answer": 2}', INCOME.options, "not_an_option"),
        ('{"answer": true}', INCOME.options, "not_an_option"),
        ('{"answer": {"label": "Above $50,000"}}', INCOME.options, "not_an_option"),
        ('{"answer": ["Below $50,000", "Above $50,000"]}', INCOME.options, "not_an_option"),
        ('{"answer": "Below $50,000 or Above $50,000"}', INCOME.options, "ambiguous"),
        ('{"answer": "Heart disease or no heart disease"}', HEART.options, "ambiguous"),
        ('{"answer": "The patient does not have heart disease"}', HEART.options, "ambiguous"),
        ('{"answer": "not above $50,000"}', INCOME.options, "ambiguous"),
    ],
)
def test_answer_failure_statuses(text: str | None, options: tuple[str, str], status: str) -> None:
    parsed = parse_answer(text, options)
    assert parsed.status == status
    assert parsed.answer is None
    assert parsed.status in ANSWER_STATUSES


def test_answer_ignores_braces_inside_thinking() -> None:
    text = '<think>{"answer": "Above $50,000"} {unbalanced</think>\n{"answer": "Below $50,000"}'
    assert parse_answer(text, INCOME.options).answer == BELOW


# -------------------------------------------------------------------------------------------- feature values


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (45, 45.0),
        (45.0, 45.0),
        ("45", 45.0),
        ("45.0", 45.0),
        (" 45 ", 45.0),
        ("45.7", 45.7),
        ("45 years old", 45.0),
        ("45 years", 45.0),
        ("45 y/o", 45.0),
        ("forty-five", 45.0),
        ("forty five", 45.0),
        ("Forty-Five years old", 45.0),
        ("three", 3.0),
        (16, 16.0),  # off the grid, but readable: grid checks happen elsewhere
        ("16", 16.0),
        (["45"], 45.0),
        ("about forty", None),
        ("45-50", None),
        ("45–50", None),
        ("between 40 and 45", None),
        ("45 or 50", None),
        ("-3", None),
        ("45+", None),
        ("~45", None),
        ("45 (was 30)", None),
        ("N/A", None),
        ("", None),
        (None, None),
        (True, None),
        (False, None),
        ({"value": 45}, None),
        ([45, 50], None),
        (float("nan"), None),
        (float("inf"), None),
        (10**400, None),
        ("9" * 400, None),
        ("hundred", None),
        ("five six", None),
    ],
)
def test_numeric_feature_values(raw: object, expected: float | None) -> None:
    assert parse_feature_value(raw, INCOME.feature("age")) == expected


@pytest.mark.parametrize(
    ("feature", "raw", "expected"),
    [
        (HOUSE.feature("area"), "2,750 sq ft", 2750.0),
        (HOUSE.feature("area"), "2750", 2750.0),
        (HOUSE.feature("area"), "2500 sqft", 2500.0),
        (HOUSE.feature("area"), "2,500 square feet", 2500.0),
        (HOUSE.feature("area"), "two thousand five hundred", 2500.0),
        (HOUSE.feature("area"), "twelve hundred", 1200.0),
        (HOUSE.feature("area"), "$1,200", 1200.0),
        (HOUSE.feature("area"), "2 500", None),
        (HOUSE.feature("area"), "2.5k", None),
        (HOUSE.feature("bedrooms"), "3 bedrooms", 3.0),
        (HOUSE.feature("bedrooms"), "1 bedroom", 1.0),
        (HOUSE.feature("floors"), "two floors", 2.0),
        (HEART.feature("systolic_bp"), "140 mmHg", 140.0),
        (HEART.feature("systolic_bp"), "one hundred twenty", 120.0),
        (HEART.feature("systolic_bp"), "one hundred and forty mmHg", 140.0),
        (HEART.feature("total_cholesterol"), "200 mg/dL", 200.0),
        (HEART.feature("age"), "50 years", 50.0),
    ],
)
def test_units_words_and_separators(feature: Feature, raw: str, expected: float | None) -> None:
    assert parse_feature_value(raw, feature) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Male", 1.0),
        ("male", 1.0),
        ("female", 2.0),
        ("FEMALE ", 2.0),
        ("M", 1.0),
        ("f", 2.0),
        ("man", 1.0),
        ("Woman", 2.0),
        ("1", None),  # a code is not a label: sex has no number_offset
        (1, None),
        ("not male", None),
        ("x", None),
        ("unknown", None),
    ],
)
def test_sex_labels(raw: object, expected: float | None) -> None:
    assert parse_feature_value(raw, HEART.feature("sex")) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Bachelor's degree", 21.0),
        ("bachelor’s degree", 21.0),
        ("bachelors", 21.0),
        ("Bachelor", 21.0),
        ("masters degree", 22.0),
        ("Master's", 22.0),
        ("Doctorate", 24.0),
        ("Regular high school diploma", 16.0),
        ("high school diploma", 16.0),
        ("GED", 17.0),
        ("Professional degree beyond a bachelor's degree", 23.0),
        ("12th grade, no diploma", 15.0),
        ("9th grade", 12.0),
        ("grade 9", 12.0),
        ("ninth grade", 12.0),
        ("9", 12.0),  # bare grade number -> grade + number_offset
        (9, 12.0),
        ("12", 15.0),
        ("1st grade", 4.0),
        ("21", None),  # no "21st grade" label: a level code is not accepted
        (21, None),
        ("13", None),
        ("0", None),
        ("grade 13", None),
        ("Some college", None),  # two labels start with it
        ("degree", None),
        ("PhD", None),
        ("Wizard school", None),
        ("not a bachelor's degree", None),
    ],
)
def test_education_labels(raw: object, expected: float | None) -> None:
    assert parse_feature_value(raw, INCOME.feature("education")) == expected


# ------------------------------------------------------------------------------------------ counterfactuals


def test_counterfactual_extra_key_first() -> None:
    text = '{"explanation": "x", "age": "22", "education": "Regular high school diploma"}'
    assert parse_counterfactual(text, INCOME) == CounterfactualParse(
        {"AGEP": 22.0, "SCHL": 16.0}, "ok", ("explanation",), ()
    )


def test_counterfactual_in_fences_with_prose_and_nesting() -> None:
    text = (
        '<think>Lower the age? {"age": 17}</think>Here is the revised record:\n```json\n'
        '{"revised_data": {"age": 45, "education": "Master\'s degree"}, "note": "raised education"}\n```\n'
        "This should flip the prediction."
    )
    parsed = parse_counterfactual(text, INCOME)
    assert parsed.values == {"AGEP": 45.0, "SCHL": 22.0}
    assert parsed.status == "ok"


def test_counterfactual_prefers_last_object_with_feature_keys() -> None:
    text = '{"age": 30, "education": "GED"}\nNew: {"age": 45, "education": "Bachelors"}\n{"confidence": 1}'
    assert parse_counterfactual(text, INCOME).values == {"AGEP": 45.0, "SCHL": 21.0}
    both = '{"original": {"area": 1000, "bedrooms": 1}, "revised": {"area": 3000, "bedrooms": 3}}'
    assert parse_counterfactual(both, HOUSE).values["area"] == 3000.0


def test_counterfactual_key_spellings_heart() -> None:
    text = '{"Age": "50 years", "SEX": "female", "Systolic BP": "140 mmHg", "total-cholesterol": "200 mg/dL"}'
    parsed = parse_counterfactual(text, HEART)
    assert parsed.values == {"AGEP": 50.0, "SEX": 2.0, "systolic_bp": 140.0, "total_cholesterol": 200.0}
    assert parsed.status == "ok"
    assert parse_counterfactual('{"sex": "Male"}', HEART).values["SEX"] == 1.0


def test_counterfactual_house_values() -> None:
    text = "{'area': '2,750 sq ft', 'bedrooms': 'three', 'bathrooms': 2, 'floors': '1',}"
    parsed = parse_counterfactual(text, HOUSE)
    assert parsed.values == {"area": 2750.0, "bedrooms": 3.0, "bathrooms": 2.0, "floors": 1.0}
    assert parsed.status == "ok"


def test_counterfactual_bad_value() -> None:
    parsed = parse_counterfactual('{"age": 45, "education": "Wizard school"}', INCOME)
    assert parsed.values == {"AGEP": 45.0, "SCHL": None}
    assert parsed.status == "bad_value"
    assert parsed.problems == ("education: could not read 'Wizard school'",)


def test_counterfactual_missing_beats_bad_value() -> None:
    parsed = parse_counterfactual('{"age": "about forty", "note": 1}', INCOME)
    assert parsed.status == "missing_feature"
    assert parsed.values == {"AGEP": None, "SCHL": None}
    assert parsed.extra_keys == ("note",)
    assert "age: could not read 'about forty'" in parsed.problems
    assert "education: missing" in parsed.problems


def test_counterfactual_truncated() -> None:
    parsed = parse_counterfactual('{"age": 45, "education": "Bachelors"', INCOME)
    assert (parsed.status, parsed.values) == ("ok", {"AGEP": 45.0, "SCHL": 21.0})
    parsed = parse_counterfactual('{"age": 45, "educ', INCOME)
    assert (parsed.status, parsed.values) == ("missing_feature", {"AGEP": 45.0, "SCHL": None})


@pytest.mark.parametrize(
    ("text", "status"),
    [
        (None, "empty"),
        ("", "empty"),
        ('<think>{"age": 3}</think>', "empty"),
        ("I would change the age.", "no_json"),
        ("{not json at all", "no_json"),
        ('{"foo": 1}', "missing_feature"),
    ],
)
def test_counterfactual_statuses(text: str | None, status: str) -> None:
    parsed = parse_counterfactual(text, INCOME)
    assert parsed.status == status
    assert set(parsed.values) == {"AGEP", "SCHL"}
    assert parsed.status in COUNTERFACTUAL_STATUSES
    if status != "missing_feature":
        assert all(v is None for v in parsed.values.values())


# ---------------------------------------------------------------------------------------------------- fuzz

_ATOMS = [
    "{", "}", "[", "]", '"', "'", ":", ",", "\\", "\n", " ", "<think>", "</think>", "```json", "```",
    "answer", "age", "education", "sex", "area", "Above $50,000", "No heart disease", "45", "forty", "-",
    ".", "//", "#", "“", "’", "null", "true", "None", "1e999", "\\u12", "é", "\x00", "$", ",000",
]  # fmt: skip


def _garbage(rng: random.Random, size: int) -> str:
    def piece() -> str:
        return rng.choice(_ATOMS) if rng.random() < 0.7 else chr(rng.randrange(0x20, 0x3000))

    return "".join(piece() for _ in range(size))


def test_never_raises_on_garbage() -> None:
    rng = random.Random(0)
    texts = [_garbage(rng, rng.randrange(n)) for n in (5, 40, 200) for _ in range(60)]
    texts += ["{" * 2000, "[" * 2000, '{"a":' * 500, "{'" + " '" * 1000, '{"answer": ' + '"x", ' * 1000]
    for text in texts:
        assert isinstance(strip_thinking(text), str)
        assert all(isinstance(obj, dict) for obj in extract_json_objects(text))
        for spec in (INCOME, HEART, HOUSE):
            answer = parse_answer(text, spec.options)
            assert answer.status in ANSWER_STATUSES
            assert answer.answer is None or answer.answer in spec.options
            record = parse_counterfactual(text, spec)
            assert record.status in COUNTERFACTUAL_STATUSES
            assert set(record.values) == set(spec.columns)
            for feature in spec.features:
                value = parse_feature_value(text, feature)
                assert value is None or isinstance(value, float)
