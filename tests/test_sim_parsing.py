"""Parsing of the simulatability study's tagged replies: sections, answers, confidence, and the original's reading."""

from __future__ import annotations

import collections
import math
import random
import time

import numpy as np
import pandas as pd
import pytest

from selfexplain.parsing.tags import extract_all_sections, extract_sections, split_list
from selfexplain.simulatability.datasets import load_spec
from selfexplain.simulatability.moral_machines import answer_options
from selfexplain.simulatability.parsing import (
    ANSWER_STATUSES,
    CONFIDENCE_LEVELS,
    PARSE_STATUSES,
    SECTIONS,
    PredictionParse,
    ReferenceParse,
    original_normalize,
    original_normalize_answer,
    original_parse,
    parse_prediction,
    parse_reference,
    read_answer,
    read_confidence,
)
from tests.conftest import fixtures_dir

NAMES = list(SECTIONS)
YN = ("NO", "YES")
BC = ("NO RECURRENCE", "RECURRENCE")
BM = ("NO SUBSCRIPTION", "SUBSCRIBED")
MM = ("CASE 1", "CASE 2")
TABULAR = ("attrition", "bank_marketing", "breast_cancer_recurrence", "heart_disease", "income", "pima_diabetes")


def options_of(dataset: str) -> tuple[str, str]:
    return answer_options() if dataset == "moral_machines" else load_spec(dataset).options


def test_dataset_options_are_the_ones_these_tests_use() -> None:
    assert {options_of(d) for d in TABULAR} == {YN, BC, BM}
    assert options_of("moral_machines") == MM


# ------------------------------------------------------------------------------------------------ sections


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[ANSWER]\nYES\n\n[CONFIDENCE]\nHIGH", {"ANSWER": "YES", "CONFIDENCE": "HIGH"}),
        ("[ ANSWER ]\nyes\n[  CONFIDENCE  ]\nlow", {"ANSWER": "yes", "CONFIDENCE": "low"}),
        ("**[ANSWER]**\nYES\n**[CONFIDENCE]**\nHIGH", {"ANSWER": "YES", "CONFIDENCE": "HIGH"}),
        ("[**ANSWER**]\nYES", {"ANSWER": "YES"}),
        ("**ANSWER:** YES\n**Confidence:** Medium", {"ANSWER": "YES", "CONFIDENCE": "Medium"}),
        ("**Answer**: NO\n**Confidence**: LOW", {"ANSWER": "NO", "CONFIDENCE": "LOW"}),
        ("ANSWER: YES\nCONFIDENCE: HIGH", {"ANSWER": "YES", "CONFIDENCE": "HIGH"}),
        ("## Answer\nNo\n\n### Confidence\nHigh", {"ANSWER": "No", "CONFIDENCE": "High"}),
        ("## Answer: No", {"ANSWER": "No"}),
        ("[answer]\nyes\n[Confidence]\nhigh", {"ANSWER": "yes", "CONFIDENCE": "high"}),
        (
            "[MOST IMPORTANT FACTORS]\nage\n[Other-Relevant_Info]\nsex",
            {"MOST_IMPORTANT_FACTORS": "age", "OTHER_RELEVANT_INFO": "sex"},
        ),
        ("[ANSWER\nYES\n[CONFIDENCE\nHIGH", {"ANSWER": "YES", "CONFIDENCE": "HIGH"}),
        ("ANSWER]\nYES\nCONFIDENCE]\nHIGH", {"ANSWER": "YES", "CONFIDENCE": "HIGH"}),
        ("[ANSWER] YES\n[CONFIDENCE] HIGH", {"ANSWER": "YES", "CONFIDENCE": "HIGH"}),
        ("Here it is: [ANSWER] YES [CONFIDENCE] HIGH", {"ANSWER": "YES", "CONFIDENCE": "HIGH"}),
        ("- **Answer:** YES\n- **Confidence:** HIGH", {"ANSWER": "YES", "CONFIDENCE": "HIGH"}),
        ("```\n[ANSWER]\nYES\n[CONFIDENCE]\nHIGH\n```", {"ANSWER": "YES", "CONFIDENCE": "HIGH"}),
        ("```text\n[ANSWER]\nYES\n```\nThanks!", {"ANSWER": "YES\n\n\nThanks!"}),
        ("<think>[ANSWER] NO</think>\n[ANSWER]\nYES", {"ANSWER": "YES"}),
        ("[ANSWER]\nYES\n\n---\n\n[CONFIDENCE]\nHIGH", {"ANSWER": "YES", "CONFIDENCE": "HIGH"}),
        # trailing prose stays in the last section; the readers use its first line
        ("[CONFIDENCE]\nHIGH\n\nI hope this helps!", {"CONFIDENCE": "HIGH\n\nI hope this helps!"}),
        # not tags: a word at a line start followed by prose, a heading with more words
        ("Answer the question\nConfidence is high", {}),
        ("# Answer the question\nYES", {}),
    ],
)
def test_extract_sections_forms(text: str, expected: dict[str, str]) -> None:
    assert extract_sections(text, NAMES) == expected


def test_sections_in_any_order_and_both_answer_orders() -> None:
    answer, rest = "[ANSWER]\nYES\n", "[EXPLANATION]\nWhy.\n[MOST_IMPORTANT_FACTORS]\na, b\n"
    rest += "[OTHER_RELEVANT_INFO]\nc\n[CONFIDENCE]\nLOW\n"
    first, last = answer + rest, rest + answer
    shuffled = "[CONFIDENCE]\nLOW\n[OTHER_RELEVANT_INFO]\nc\n[ANSWER]\nYES\n"
    shuffled += "[MOST_IMPORTANT_FACTORS]\na, b\n[EXPLANATION]\nWhy."
    want = {"ANSWER": "YES", "EXPLANATION": "Why.", "MOST_IMPORTANT_FACTORS": "a, b", "OTHER_RELEVANT_INFO": "c"}
    want["CONFIDENCE"] = "LOW"
    for text in (first, last, shuffled):
        assert extract_sections(text, NAMES) == want


def test_repeated_tag_last_complete_one_wins() -> None:
    echo_then_reply = (
        "You asked for:\n[ANSWER]\nYES or NO (you must choose only one)\n[CONFIDENCE]\nLOW/MEDIUM/HIGH\n\n"
        "[ANSWER]\nNO\n[CONFIDENCE]\nHIGH"
    )
    assert extract_sections(echo_then_reply, NAMES) == {"ANSWER": "NO", "CONFIDENCE": "HIGH"}
    assert extract_all_sections(echo_then_reply, NAMES)["ANSWER"] == ["YES or NO (you must choose only one)", "NO"]
    # a reply cut off right after a repeated tag: the last complete one wins
    assert extract_sections("[ANSWER]\nYES\n[CONFIDENCE]\nLOW\n[ANSWER]\n", NAMES)["ANSWER"] == "YES"
    assert extract_sections("[ANSWER]\n", NAMES) == {"ANSWER": ""}


def test_weak_tags_yield_to_a_later_strong_tag_only() -> None:
    text = "[EXPLANATION]\nAge matters.\nConfidence: I am fairly sure\n[CONFIDENCE]\nHIGH\n[ANSWER]\nYES"
    assert extract_sections(text, NAMES)["EXPLANATION"] == "Age matters.\nConfidence: I am fairly sure"
    echo = (
        "[ANSWER]\nYES or NO (you must choose only one)\n[CONFIDENCE]\nLOW/MEDIUM/HIGH\n\nAnswer: NO\nConfidence: HIGH"
    )
    assert extract_sections(echo, NAMES) == {"ANSWER": "NO", "CONFIDENCE": "HIGH"}


def test_aliases_and_non_string_input() -> None:
    assert extract_sections("**Final Answer:** YES", {"ANSWER": ["FINAL ANSWER"]}) == {"ANSWER": "YES"}
    for bad in (None, float("nan"), 3, b"[ANSWER] YES", ""):
        assert extract_sections(bad, NAMES) == {}
        assert split_list(bad) == []


@pytest.mark.parametrize(
    ("section", "items"),
    [
        ("age, sex, cholesterol", ["age", "sex", "cholesterol"]),
        ("age, sex, and chest pain (typical, exertional)", ["age", "sex", "chest pain (typical, exertional)"]),
        ("is between 30 and 40 years old, male", ["is between 30 and 40 years old", "male"]),
        ("a, b and c", ["a", "b and c"]),
        ("- age\n- sex, male\n* cholesterol", ["age", "sex, male", "cholesterol"]),
        ("1. age\n2) sex\n3. cholesterol.", ["age", "sex", "cholesterol"]),
        ("Factors:\n- a\n- b", ["a", "b"]),
        ("1. age, 2. sex, 3. chol", ["age", "sex", "chol"]),
        ("a; b; c", ["a", "b", "c"]),
        ("**Age**, 'Sex', `chol`", ["Age", "Sex", "chol"]),
        ("age\nsex", ["age", "sex"]),
        ("age, sex\n\nLet me know if you need more.", ["age", "sex"]),
        ("- age\n\n- sex\n\nThat is all.", ["age", "sex"]),
        ("None.", []),
        ("N/A", []),
        ("", []),
        ("---", []),
    ],
)
def test_split_list(section: str, items: list[str]) -> None:
    assert split_list(section) == items


# ------------------------------------------------------------------------------------------------ answers


@pytest.mark.parametrize(
    ("options", "text", "answer", "status"),
    [
        (YN, "YES", "YES", "ok"),
        (YN, "no", "NO", "ok"),
        (YN, "Yes (likely)", "YES", "ok"),
        (YN, "**Yes.**", "YES", "ok"),
        (YN, "yes, the patient is not at high risk", "YES", "ok"),
        (YN, "YES because the patient does not exercise", "YES", "ok"),
        (YN, "No (the patient is unlikely to have it)", "NO", "ok"),
        (YN, "NO, not YES", "NO", "ok"),
        (YN, "Yes (high confidence/certainty)", "YES", "ok"),
        (YN, "[YES]", "YES", "ok"),
        (YN, "The doctor would say YES", "YES", "ok"),
        (YN, "Likely YES", "YES", "ok"),
        (YN, "Final answer:\nNO", "NO", "ok"),
        (YN, "YES or NO (you must choose only one)\nYES", "YES", "ok"),
        (YN, "YES (you must choose only one)", "YES", "ok"),
        (YN, "NOT SURE", None, "negated"),
        (YN, "not YES", None, "negated"),
        (YN, "I cannot tell", None, "negated"),
        (YN, "NOPE", None, "not_an_option"),
        (YN, "MEDIUM", None, "not_an_option"),
        (YN, "Uncertain", None, "not_an_option"),
        (YN, "YES or NO (you must choose only one)", None, "template_echo"),
        (YN, "YES or NO (pick exactly one)", None, "template_echo"),
        (YN, "YES/NO", None, "hedge"),
        (YN, "NO / YES", None, "hedge"),
        (YN, "YES or NO", None, "hedge"),
        (YN, "Yes and no", None, "hedge"),
        (YN, "YES NO", None, "hedge"),
        (YN, "either", None, "hedge"),
        (YN, "Both", None, "hedge"),
        (YN, "", None, "no_answer"),
        (YN, "**", None, "no_answer"),
        (BC, "NO RECURRENCE", "NO RECURRENCE", "ok"),
        (BC, "RECURRENCE", "RECURRENCE", "ok"),
        (BC, "no_recurrence", "NO RECURRENCE", "ok"),
        (BC, "No recurrence expected", "NO RECURRENCE", "ok"),
        (BC, "NO RECURRENCE (based on factors)", "NO RECURRENCE", "ok"),
        (BC, "No, recurrence is likely", None, "negated"),
        (BC, "Recurrence is unlikely", None, "negated"),
        (BC, "RECURRENCE/NO RECURRENCE", None, "hedge"),
        (BC, "NO RECURRENCE or RECURRENCE (you must choose only one)", None, "template_echo"),
        (BM, "NO SUBSCRIPTION", "NO SUBSCRIPTION", "ok"),
        (BM, "Subscribed.", "SUBSCRIBED", "ok"),
        (BM, "**SUBSCRIBED**.", "SUBSCRIBED", "ok"),
        (BM, "not subscribed", None, "negated"),
        (BM, "SUBSCRIBED/NO SUBSCRIPTION", None, "hedge"),
        (BM, "YES", None, "not_an_option"),
        (MM, "CASE 1", "CASE 1", "ok"),
        (MM, "Case 1.", "CASE 1", "ok"),
        (MM, "**Case 2.**", "CASE 2", "ok"),
        (MM, "CASE 1 (based on the overall profile)", "CASE 1", "ok"),
        (MM, "Case 12", None, "not_an_option"),
        (MM, "CASE 1/CASE 2", None, "hedge"),
        (MM, "Case 2 or Case 1", None, "hedge"),
    ],
)
def test_read_answer(options: tuple[str, str], text: str, answer: str | None, status: str) -> None:
    assert read_answer(text, options) == (answer, status)


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("HIGH", "HIGH"),
        ("low", "LOW"),
        ("Medium – fairly sure", "MEDIUM"),
        ("high confidence", "HIGH"),
        ("**High**", "HIGH"),
        ("very high", "HIGH"),
        ("Moderate", "MEDIUM"),
        ("Confidence: HIGH", "HIGH"),
        ("High, no doubt", "HIGH"),
        ("HIGH\n\nThanks for asking.", "HIGH"),
        ("7/10", None),
        ("80%", None),
        ("low-to-medium", None),
        ("medium-high", None),
        ("Low to medium", None),
        ("LOW/MEDIUM/HIGH", None),
        ("LOW, MEDIUM or HIGH", None),
        ("not high", None),
        ("", None),
        (None, None),
    ],
)
def test_read_confidence(text: str | None, level: str | None) -> None:
    assert read_confidence(text) == level


# ------------------------------------------------------------------------------------------------ whole replies


def reference_reply(answer: str, answer_first: bool, confidence: str = "MEDIUM") -> str:
    head = f"[ANSWER]\n{answer}"
    body = (
        "[EXPLANATION]\nThe age pushed towards the answer; the blood pressure mattered less.\n\n"
        "[MOST_IMPORTANT_FACTORS]\nage, blood pressure (high, 150), and sex\n\n"
        f"[OTHER_RELEVANT_INFO]\nsmoking history\n\n[CONFIDENCE]\n{confidence}"
    )
    return f"{head}\n\n{body}" if answer_first else f"{body}\n\n{head}"


@pytest.mark.parametrize("dataset", [*TABULAR, "moral_machines"])
@pytest.mark.parametrize("answer_first", [True, False])
def test_parse_reference_every_dataset_both_orders(dataset: str, answer_first: bool) -> None:
    options = options_of(dataset)
    for option in options:
        parsed = parse_reference(reference_reply(option.title(), answer_first), options)
        assert parsed == ReferenceParse(
            answer=option,
            answer_status="ok",
            answer_raw=option.title(),
            explanation="The age pushed towards the answer; the blood pressure mattered less.",
            factors=("age", "blood pressure (high, 150)", "sex"),
            other_info=("smoking history",),
            confidence="MEDIUM",
            confidence_raw="MEDIUM",
            parse_status="ok",
            missing_sections=(),
        )


def test_parse_reference_failures() -> None:
    def status(text: object) -> tuple[str, str]:
        p = parse_reference(text, YN)
        return p.answer_status, p.parse_status

    assert status("") == ("empty", "empty")
    assert status("   \n") == ("empty", "empty")
    assert status(None) == ("empty", "empty")
    assert status("<think>all thinking</think>") == ("empty", "empty")
    assert status("<think>\nLet me weigh the features: [ANSWER] YES") == ("incomplete_thinking", "incomplete_thinking")
    assert status("I would lean towards yes.") == ("no_sections", "no_sections")
    assert status("YES") == ("no_sections", "no_sections")
    assert status("[EXPLANATION]\nBecause.\n[CONFIDENCE]\nLOW") == ("no_answer", "missing_sections")
    assert status("[ANSWER]\n\n[CONFIDENCE]\nLOW") == ("no_answer", "missing_sections")
    assert status(reference_reply("YES or NO (you must choose only one)", True)) == ("template_echo", "ok")
    assert status(reference_reply("YES/NO", False)) == ("hedge", "ok")
    assert status(reference_reply("MEDIUM", True)) == ("not_an_option", "ok")
    assert status(reference_reply("NOT SURE", True)) == ("negated", "ok")
    # thinking before a complete reply is removed; an answer before a second, unfinished block still counts
    assert parse_reference("<think>NO?</think>" + reference_reply("YES", True), YN).answer == "YES"
    assert parse_reference("[ANSWER]\nYES\n<think>hmm", YN).answer_status == "ok"
    cut = parse_reference("[EXPLANATION]\nAge.\n<think>and then", YN)
    assert (cut.answer_status, cut.parse_status, cut.explanation) == (
        "incomplete_thinking",
        "incomplete_thinking",
        "Age.",
    )


def test_parse_reference_partial_and_echoed() -> None:
    p = parse_reference("[ANSWER] YES\n[CONFIDENCE] 7/10", YN)
    assert (p.answer, p.confidence, p.confidence_raw) == ("YES", None, "7/10")
    assert p.parse_status == "missing_sections"
    assert p.missing_sections == ("EXPLANATION", "MOST_IMPORTANT_FACTORS", "OTHER_RELEVANT_INFO")
    assert (p.explanation, p.factors, p.other_info) == (None, (), ())
    template = reference_reply("YES or NO (you must choose only one)", True, "LOW/MEDIUM/HIGH")
    p = parse_reference(template + "\n\n" + reference_reply("No.", False, "High"), YN)
    assert (p.answer, p.answer_status, p.answer_raw, p.confidence) == ("NO", "ok", "No.", "HIGH")


def test_parse_prediction() -> None:
    assert parse_prediction("[ANSWER]\nCase 2.\n\n[CONFIDENCE]\nHigh confidence", MM) == PredictionParse(
        "CASE 2", "ok", "Case 2.", "HIGH", "High confidence"
    )
    assert parse_prediction("**Answer:** no recurrence\n**Confidence:** low", BC) == PredictionParse(
        "NO RECURRENCE", "ok", "no recurrence", "LOW", "low"
    )
    assert parse_prediction("[ANSWER]\nSUBSCRIBED/NO SUBSCRIPTION\n[CONFIDENCE]\nLOW", BM).status == "hedge"
    assert parse_prediction("", YN) == PredictionParse(None, "empty", None, None, None)
    assert parse_prediction("<think>The reference case was judged YES", YN).status == "incomplete_thinking"
    assert parse_prediction("My prediction is YES (confidence high).", YN).status == "no_sections"
    assert parse_prediction("[CONFIDENCE]\nHIGH", YN) == PredictionParse(None, "no_answer", None, "HIGH", "HIGH")


# ------------------------------------------------------------------------------------------------ properties

ATOMS = (
    "[ANSWER]",
    "[ ANSWER ]",
    "**[ANSWER]**",
    "ANSWER:",
    "## Answer",
    "[answer",
    "ANSWER]",
    "[CONFIDENCE]",
    "Confidence:",
    "[EXPLANATION]",
    "[MOST_IMPORTANT_FACTORS]",
    "[OTHER RELEVANT INFO]",
    "YES",
    "NO",
    "yes/no",
    "NOT SURE",
    "either",
    "MEDIUM",
    "HIGH",
    "low-to-medium",
    "(you must choose only one)",
    "<think>",
    "</think>",
    "```",
    "\n",
    "\n\n",
    " ",
    "**",
    "_",
    "[",
    "]",
    "(",
    ")",
    ":",
    "/",
    ",",
    "-",
    "#",
    "é",
    "—",
    "\x00",
    "\r\n",
    "\t",
)


def check_reference(p: ReferenceParse, options: tuple[str, ...]) -> None:
    assert p.answer_status in ANSWER_STATUSES and p.parse_status in PARSE_STATUSES
    assert (p.answer is not None) == (p.answer_status == "ok")
    assert p.answer is None or p.answer in options
    assert p.confidence is None or p.confidence in CONFIDENCE_LEVELS
    assert all(isinstance(f, str) and f for f in (*p.factors, *p.other_info))


def test_tag_soup_never_raises_and_statuses_stay_in_the_vocabulary() -> None:
    rng = random.Random(20240601)
    seen = collections.Counter()
    for _ in range(1500):
        text = "".join(rng.choice(ATOMS) for _ in range(rng.randint(0, 60)))
        options = rng.choice((YN, BC, BM, MM))
        p = parse_reference(text, options)
        check_reference(p, options)
        q = parse_prediction(text, options)
        assert q.status in ANSWER_STATUSES and (q.answer is not None) == (q.status == "ok")
        assert q.answer is None or q.answer in options
        assert original_normalize(text, options) in (None, *options)
        assert isinstance(split_list(text), list)
        seen[p.answer_status] += 1
    # the soup reaches the failure modes as well as readable answers
    assert {"ok", "hedge", "no_sections", "empty", "incomplete_thinking"} <= set(seen)


def test_tag_decoration_never_changes_the_answer() -> None:
    """Every tag spelling, answer spelling, order and surrounding noise gives the same reading."""
    rng = random.Random(7)
    spellings = (
        "[{t}]\n",
        "[ {t} ]\n",
        "**[{t}]**\n",
        "[{t}] ",
        "**{t}:** ",
        "{t}:\n",
        "## {t}\n",
        "[{t}\n",
        "{t}]\n",
        "### **{t}**\n",
    )
    for _ in range(400):
        options = rng.choice((YN, BC, BM, MM))
        option = rng.choice(options)
        said = rng.choice((option, option.lower(), option.title(), f"**{option}**", f"{option}.", f"{option} (likely)"))
        tag = rng.choice(spellings)

        def name(n: str) -> str:
            n = n.replace("_", rng.choice(("_", " ")))
            return rng.choice((n, n.lower(), n.title()))

        parts = {
            "ANSWER": tag.format(t=name("ANSWER")) + said,
            "EXPLANATION": tag.format(t=name("EXPLANATION")) + "Age mattered most.",
            "MOST_IMPORTANT_FACTORS": tag.format(t=name("MOST_IMPORTANT_FACTORS")) + "age, sex",
            "CONFIDENCE": tag.format(t=name("CONFIDENCE")) + rng.choice(("High", "HIGH", "high confidence")),
        }
        order = list(parts)
        rng.shuffle(order)
        text = rng.choice(("", "Sure.\n\n", "<think>maybe NO</think>")) + "\n\n".join(parts[k] for k in order)
        text += rng.choice(("", "\n\nLet me know if you need more.", "\n```"))
        p = parse_reference(text, options)
        assert (p.answer, p.answer_status, p.confidence) == (option, "ok", "HIGH"), text
        assert p.factors == ("age", "sex"), text


def test_huge_garbage_stays_fast() -> None:
    rng = random.Random(1)
    texts = [
        "".join(rng.choice(ATOMS) for _ in range(150_000)),
        "[ANSWER]" * 100_000,
        " " * 1_000_000,
        "[" * 500_000,
        "*" * 500_000 + "ANSWER",
        "a, " * 200_000,
        ("ANSWER" + " " * 500 + "x\n") * 1000,
        "[ANSWER]\n" + "YES or " * 100_000,
    ]
    start = time.perf_counter()
    for text in texts:
        check_reference(parse_reference(text, YN), YN)
        parse_prediction(text, BC)
        original_parse(text, YN)
    assert time.perf_counter() - start < 20  # about 2 s on one core


# ------------------------------------------------------------------------------------------------ the original


@pytest.mark.parametrize(
    ("options", "raw", "answer"),
    [
        (YN, "**NO**", "NO"),
        (YN, "YES.", "YES"),
        (YN, "Yes (likely)", "YES"),
        (YN, "NOT SURE", "NO"),  # the prefix quirk
        (YN, "NOPE", "NO"),
        (YN, "YES or NO (you must choose only one)", "YES"),
        (YN, "YES/NO", None),
        (YN, "YES or NO", "YES"),  # hedges are caught only through slashes
        (YN, "YES (high confidence/certainty)", "YES"),
        (YN, "MEDIUM", None),
        (YN, "(with confidence)", None),
        (YN, "yes, the patient is fine", "YES"),
        (YN, "\n  YES\nNO", "YES"),
        (YN, "", None),
        (BC, "NO RECURRENCE (based on factors)", "NO RECURRENCE"),
        (BC, "RECURRENCE/NO RECURRENCE", None),
        (BC, "no_recurrence", "NO RECURRENCE"),
        (BC, "NO, RECURRENCE", None),
        (MM, "**Case 1.**", "CASE 1"),
        (MM, "Case 12", "CASE 1"),
    ],
)
def test_original_normalize_answer(options: tuple[str, str], raw: str, answer: str | None) -> None:
    assert original_normalize_answer(raw, options) == answer


def test_original_parse_structure() -> None:
    full = "[ANSWER]\nYES\n\n[EXPLANATION]\nBecause.\n[MOST_IMPORTANT_FACTORS]\na, b ,, c\n[CONFIDENCE]\nMedium – sure"
    assert original_parse(full, YN) == {
        "answer": "YES",
        "explanation": "Because.",
        "most_important_factors": ["a", "b", "c"],
        "confidence": "Medium – sure",
    }
    assert original_parse("", YN) is None
    assert original_parse(None, YN) is None
    assert original_parse("<think>still going", YN) == {"error": "incomplete_thinking"}
    assert original_parse("<think>done</think>  ", YN) is None
    assert original_parse("no tags here", YN) == {"error": "invalid_format", "raw_response": "no tags here"}
    # case-sensitive tags, at most three spaces inside the brackets, the first occurrence wins
    assert original_parse("[answer]\nYES", YN) == {"error": "invalid_format", "raw_response": "[answer]\nYES"}
    assert original_parse("[    ANSWER]\nYES", YN)["error"] == "invalid_format"
    assert original_parse("[   ANSWER   ]\nNO", YN) == {"answer": "NO"}
    assert original_normalize("[ANSWER]\nYES or NO (you must choose only one)\n[ANSWER]\nNO", YN) == "YES"
    assert original_normalize("text [ANSWER] NO", YN) == "NO"
    # an empty section swallows the next tag's line, as the original's pattern does
    assert original_parse("[ANSWER]\n\n[EXPLANATION]\nWhy.", YN) == {"answer": None, "explanation": "Why."}
    # a section ends only at a "[" that starts a line
    assert original_parse("[ANSWER] NO [CONFIDENCE] HIGH", YN) == {"answer": "NO", "confidence": "HIGH"}
    assert original_parse("[CONFIDENCE] HIGH [ANSWER] NO", YN)["confidence"] == "HIGH [ANSWER] NO"
    # text after the FIRST closing think tag is read
    assert original_normalize("a</think>[ANSWER] NO</think>[ANSWER] YES", YN) == "NO"


# ------------------------------------------------------------------------------------------------ fixture parity

FIXTURE = "fake_qwen3_8b_shared4_with_predictor_answers.parquet"
BLOCKS = (
    "original_reference_response",
    "counterfactual_reference_response",
    "counterfactual_predictor_response_with_explanation",
    "counterfactual_predictor_response_without_explanation",
)


def _null(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return list(value) if isinstance(value, np.ndarray) else value


@pytest.fixture(scope="module")
def answers_table() -> pd.DataFrame:
    return pd.read_parquet(fixtures_dir("simulatability_answers") / FIXTURE)


def test_original_normalize_reproduces_every_stored_answer(answers_table: pd.DataFrame) -> None:
    compared = 0
    for block in BLOCKS:
        columns = ["original_dataset", f"{block}_raw_response", f"{block}_answer", f"{block}_predictor_answers"]
        for dataset, raw, stored, per_predictor in answers_table[columns].itertuples(index=False):
            ours = original_normalize(raw, options_of(dataset))
            assert ours == _null(stored), (block, raw)
            compared += 1
            if per_predictor is not None:  # only the first predictor's raw text is stored
                assert ours == per_predictor[0], (block, raw)
                compared += 1
    assert compared == 4 * 576 + 2 * 576


def test_original_parse_reproduces_every_stored_parsed_response(answers_table: pd.DataFrame) -> None:
    for block in BLOCKS:
        columns = ["original_dataset", f"{block}_raw_response", f"{block}_parsed_response"]
        for dataset, raw, stored in answers_table[columns].itertuples(index=False):
            ours = original_parse(raw, options_of(dataset))
            if stored is None:
                assert ours is None, raw
                continue
            # the parquet struct is the union of keys: a key the original did not write reads back as null
            assert set(ours) <= set(stored), raw
            assert {k: _null(v) for k, v in stored.items()} == {k: ours.get(k) for k in stored}, raw


def test_our_reading_differs_from_the_original_only_where_meant(answers_table: pd.DataFrame) -> None:
    differences = collections.Counter()
    for block in BLOCKS:
        reference = "reference" in block
        for dataset, raw in answers_table[["original_dataset", f"{block}_raw_response"]].itertuples(index=False):
            options = options_of(dataset)
            p = parse_reference(raw, options) if reference else parse_prediction(raw, options)
            ours, status = (p.answer, p.answer_status) if reference else (p.answer, p.status)
            original = original_normalize(raw, options)
            if ours != original:
                differences[(block, status, original, (p.answer_raw if reference else p.raw))] += 1
            else:
                assert status == "ok" or ours is None
    # "NOT SURE" is NO to the original's prefix rule; every other answer of this fixture reads the same
    assert differences == {("original_reference_response", "negated", "NO", "NOT SURE"): 2}


def test_status_counts_match_the_fixture_readme() -> None:
    """Counts from the fixture README ("Parse failures"), mapped onto our statuses."""
    table = pd.read_parquet(fixtures_dir("simulatability_answers") / "fake_qwen3_8b_shared4.parquet")
    unique: dict[tuple, tuple[str, str]] = {}
    for side, row in (("original", "original_question_idx"), ("counterfactual", "counterfactual_question_idx")):
        columns = ["original_dataset", row, "original_answer_first", f"{side}_reference_response_raw_response"]
        for dataset, idx, answer_first, raw in table[columns].itertuples(index=False):
            unique.setdefault((dataset, int(idx), bool(answer_first)), (dataset, raw))
    assert len(unique) == 1064
    ours = collections.Counter(parse_reference(raw, options_of(d)).answer_status for d, raw in unique.values())
    # README: 1,016 ok (2 of them "NOT SURE"), 10 empty, 10 incomplete_thinking, 8 invalid_format,
    # 20 tagged with a null answer (hedges and MEDIUM)
    assert ours["ok"] + ours["negated"] == 1016 and ours["negated"] == 2
    assert (ours["empty"], ours["incomplete_thinking"], ours["no_sections"]) == (10, 10, 8)
    assert ours["hedge"] + ours["not_an_option"] == 20
    assert sum(ours.values()) == 1064

    predictions = pd.read_parquet(fixtures_dir("simulatability_answers") / FIXTURE)
    for condition, none_count in (("with", 31), ("without", 21)):
        column = f"counterfactual_predictor_response_{condition}_explanation_raw_response"
        statuses = collections.Counter(
            parse_prediction(raw, options_of(d)).status
            for d, raw in predictions[["original_dataset", column]].itertuples(index=False)
        )
        assert sum(statuses.values()) - statuses["ok"] == none_count  # README: predictor 0's None answers
        if condition == "with":  # README: 545 ok, 8 empty, 11 incomplete_thinking, 2 invalid_format, 10 hedge
            assert statuses == {"ok": 545, "empty": 8, "incomplete_thinking": 11, "no_sections": 2, "hedge": 10}
