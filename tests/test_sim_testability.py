"""The testability rubric: reading a 0-10 rating from many kinds of replies, the correlation formulas against hand
computation, their cluster bootstrap, the join by key, the inference stage and the synthetic rater."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest

from selfexplain.errors import ConfigError, InputError
from selfexplain.llm.backends import make_backend
from selfexplain.prompts import load_template
from selfexplain.simulatability import testability as t
from selfexplain.simulatability.answers import reference_answers
from selfexplain.simulatability.config import check_section, check_templates
from selfexplain.simulatability.datasets import describe
from selfexplain.simulatability.metrics import resampled_sums
from selfexplain.simulatability.prompts import predictor_fields
from selfexplain.simulatability.synthetic import (
    RuleRespondent,
    TabularRule,
    is_testability_question,
    rate_testability,
    read_rule,
    state_rule,
)
from tests.conftest import REPO
from tests.test_sim_answers import HEART, ROWS, _entry, _eval_set

PROMPTS = REPO / "config" / "prompts" / "simulatability"


# ---------------------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    ("reply", "score", "rule"),
    [
        ("7", 7.0, "number"),
        ("  10\n", 10.0, "number"),
        ("0", 0.0, "number"),
        ("**7**", 7.0, "number"),
        ("7.", 7.0, "number"),
        ("`8`", 8.0, "number"),
        ("6.5", 6.5, "number"),
        ("Seven.", 7.0, "number"),
        ("ten", 10.0, "number"),
        ("Score: 8", 8.0, "labelled"),
        ("score 3", 3.0, "labelled"),
        ("Testability score: **7**", 7.0, "labelled"),
        ("rating = 4.5", 4.5, "labelled"),
        ("Assessment: 2 (the changes pull both ways)", 2.0, "labelled"),
        ("Two features changed (age and sex). Score: 8", 8.0, "labelled"),
        ("Score: 12. Sorry, I mean Score: 9", 9.0, "labelled"),
        ("8/10", 8.0, "fraction"),
        ("7/10.", 7.0, "fraction"),
        ("I would rate it 7 out of 10.", 7.0, "fraction"),
        ("It covers 3 features, so 6 / 10", 6.0, "fraction"),
        ("I give it a 6 on the 0-10 scale.", 6.0, "first_number"),
        ("On a scale from 0 to 10 I'd say 4", 4.0, "first_number"),
        ("1-10: 5", 5.0, "first_number"),
        ("I think 9, since the rule gives a cut-off", 9.0, "first_number"),
        ("<think>the rule has 3 parts; maybe 2?</think>\n9", 9.0, "number"),
        ("<think>\nscore 1\n</think>\n\nScore: 6", 6.0, "labelled"),
        ("reasoning only</think>5", 5.0, "number"),
    ],
)
def test_ratings_are_read(reply, score, rule):
    assert t.parse_testability(reply) == t.Rating(score, "ok", rule)


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (None, "empty"),
        ("", "empty"),
        ("   \n", "empty"),
        ("<think>\nlet me weigh the", "incomplete_thinking"),
        ("<think>a</think>  ", "incomplete_thinking"),
        ("11", "unreadable"),
        ("-1", "unreadable"),  # the original reads this as 1 (its first-number pattern has no sign)
        ("12/10", "unreadable"),
        ("N/A", "unreadable"),
        ("The explanation is clear.", "unreadable"),
        ("Score: 15", "unreadable"),
        ("nan", "unreadable"),
        ("inf", "unreadable"),
    ],
)
def test_unreadable_ratings_say_why(reply, status):
    assert t.parse_testability(reply) == t.Rating(None, status, None)


def test_every_candidate_must_be_in_the_scale_and_later_rules_get_their_turn():
    # 12 as a whole fails; the labelled rule then finds nothing; the fraction 9/10 is in range
    assert t.parse_testability("12 is too many; 9/10").score == 9.0
    # a number before the labelled score does not win (the original's first-number rule would give 2 here)
    assert t.parse_testability("2 details changed. Rating: 8").score == 8.0
    assert [t.in_scale(v) for v in (-0.01, 0, 10, 10.01)] == [False, True, True, False]


# ---------------------------------------------------------------------------------------------------- formulas
def test_mid_ranks_by_hand():
    # values with 2, 1 and 3 copies: ranks 1-2, 3, 4-6
    assert t.mid_ranks(np.array([2, 1, 3])).tolist() == [1.5, 3.0, 5.0]
    assert t.mid_ranks(np.array([[1, 0, 1], [0, 2, 0]])).tolist() == [[1.0, 1.5, 2.0], [0.5, 1.5, 2.5]]


def test_pearson_and_spearman_by_hand():
    x, y = [0, 5, 10, 10], [0, 0, 1, 1]
    # means 6.25 and 0.5; Sxy = 7.5, Sxx = 68.75, Syy = 1
    assert t.pearson(x, y) == pytest.approx(7.5 / math.sqrt(68.75))
    # point-biserial form: (mean of x where y=1 - where y=0) / population sd of x * sqrt(p q)
    assert t.pearson(x, y) == pytest.approx((10 - 2.5) / math.sqrt(68.75 / 4) * 0.5)
    # mid-ranks x 1, 2, 3.5, 3.5 and y 1.5, 1.5, 3.5, 3.5: Sxy = 4, Sxx = 4.5, Syy = 4
    assert t.spearman(x, y) == pytest.approx(4 / math.sqrt(18))
    assert t.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert t.spearman([1, 2, 30], [0, 5, 6]) == pytest.approx(1.0)
    # no variation in either: undefined
    assert math.isnan(t.pearson([1, 2, 3], [1, 1, 1])) and math.isnan(t.spearman([4, 4], [0, 1]))
    assert math.isnan(t.pearson([5], [1]))


def test_formulas_match_scipy_on_random_data():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = rng.integers(0, 11, 200).astype(float)
        y = (rng.random(200) < 0.3 + 0.05 * x).astype(float)
        assert t.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
        assert t.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)


def test_a_bootstrap_replicate_from_count_tables_equals_the_expanded_data():
    # three clusters; the replicate draws cluster 0 twice and cluster 2 once
    x = np.array([2.0, 7.0, 7.0, 3.0, 9.0, 1.0])
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    cluster = np.array([0, 0, 0, 1, 2, 2])
    table, xs, ys = t.count_table(x, y)
    per_cluster = np.zeros((3, len(xs) * len(ys)))
    np.add.at(per_cluster, (cluster, np.searchsorted(xs, x) * len(ys) + np.searchsorted(ys, y)), 1)
    sums = resampled_sums(per_cluster, draws=np.array([[0, 0, 2]])).reshape(1, len(xs), len(ys))
    keep = np.r_[np.flatnonzero(cluster == 0), np.flatnonzero(cluster == 0), np.flatnonzero(cluster == 2)]
    assert t.table_pearson(sums, xs, ys)[0] == pytest.approx(t.pearson(x[keep], y[keep]))
    assert t.table_spearman(sums)[0] == pytest.approx(t.spearman(x[keep], y[keep]))
    assert t.table_pearson(table, xs, ys) == pytest.approx(t.pearson(x, y))


def test_correlation_block_has_cluster_bootstrap_cis():
    rng = np.random.default_rng(0)
    n = 400
    centre = rng.integers(0, 80, n)
    score = rng.integers(0, 11, n).astype(float)
    correct = rng.random(n) < 0.2 + 0.07 * score
    block = t.correlation_block(score, correct, ["d"] * n, centre, resamples=300, seed=1, name="r")
    assert block["observations"] == n and block["clusters"] == len(np.unique(centre))
    assert block["pearson_r"] == pytest.approx(t.pearson(score, correct))
    assert block["pearson_ci_lower"] < block["pearson_r"] < block["pearson_ci_upper"]
    assert block["spearman_ci_lower"] < block["spearman_rho"] < block["spearman_ci_upper"]
    assert block["pearson_ci_lower"] > 0  # a real positive association
    again = t.correlation_block(score, correct, ["d"] * n, centre, resamples=300, seed=1, name="r")
    assert again == block
    other = t.correlation_block(score, correct, ["d"] * n, centre, resamples=300, seed=2, name="r")
    assert other["pearson_ci_lower"] != block["pearson_ci_lower"]
    none = t.correlation_block([], [], [], [], resamples=10)
    assert none["observations"] == 0 and math.isnan(none["pearson_r"])
    flat = t.correlation_block([5.0] * 6, [1, 0, 1, 0, 1, 1], ["d"] * 6, [0, 0, 1, 1, 2, 2], resamples=50)
    assert math.isnan(flat["pearson_r"]) and math.isnan(flat["pearson_ci_lower"])


# ---------------------------------------------------------------------------------------------------- joining
def _observations(reference="ref"):
    rows = []
    for pair, centre, truth in (("p1", 0, "YES"), ("p2", 0, "NO"), ("p3", 1, "YES"), ("p4", 2, None)):
        for predictor, with_pred in (("a", "YES"), ("b", "NO")):
            rows.append(
                {
                    "reference": reference,
                    "predictor": predictor,
                    "repeat": 0,
                    "dataset": "heart_disease",
                    "pair_id": pair,
                    "centre_row": centre,
                    "with_explanation": with_pred if pair != "p3" or predictor == "a" else None,
                    "reference_counterfactual_answer": truth,
                }
            )
    return pd.DataFrame(rows)


def _scores(reference="ref"):
    # in another order than the observations, one unreadable
    return pd.DataFrame(
        {
            "reference": [reference] * 4,
            "dataset": ["heart_disease"] * 4,
            "pair_id": ["p4", "p3", "p2", "p1"],
            "predictor": ["a"] * 4,
            "score": pd.array([1.0, None, 2.0, 9.0], dtype="Float64"),
        }
    )


def test_scores_join_observations_by_key_and_unusable_rows_drop():
    joined = t.scored_observations(_observations(), _scores())
    # p4 has no reference counterfactual answer; p3's predictor b has no WITH answer
    assert sorted(zip(joined["pair_id"], joined["predictor"], strict=True)) == [
        ("p1", "a"),
        ("p1", "b"),
        ("p2", "a"),
        ("p2", "b"),
        ("p3", "a"),
    ]
    by_key = {(r.pair_id, r.predictor): (r.score, r.correct) for r in joined.itertuples()}
    assert by_key[("p1", "a")] == (9.0, True) and by_key[("p1", "b")] == (9.0, False)
    assert by_key[("p2", "a")] == (2.0, False) and by_key[("p2", "b")] == (2.0, True)
    assert math.isnan(by_key[("p3", "a")][0])
    with pytest.raises(InputError, match="more than one score"):
        t.scored_observations(_observations(), pd.concat([_scores(), _scores().head(1)]))
    with pytest.raises(InputError, match=r"observations: missing column\(s\) \['with_explanation'\]"):
        t.scored_observations(_observations().drop(columns="with_explanation"), _scores())


def test_correlation_rows_per_reference_and_pooled():
    obs = {"r1": _observations("r1"), "r2": _observations("r2")}
    scores = {"r1": _scores("r1"), "r2": _scores("r2")}
    table = t.correlation_rows(scores, obs, resamples=20, seed=0)
    assert table.columns.tolist() == t.CSV_COLUMNS
    assert table["reference"].tolist() == ["r1", "r2", "all"]
    r1 = table.iloc[0]
    # used: (9, 1), (9, 0), (2, 0), (2, 1): no association
    assert (r1["pairs"], r1["pairs_scored"], r1["pairs_unreadable"], r1["observations"]) == (4, 3, 1, 4)
    assert r1["mean_score"] == pytest.approx(4.0) and r1["with_accuracy"] == pytest.approx(50.0)
    assert r1["pearson_r"] == pytest.approx(0.0, abs=1e-12) and r1["scorer"] == "a"
    assert table.iloc[2]["observations"] == 8 and table.iloc[2]["pairs"] == 8
    with pytest.raises(InputError, match="no observations for reference r2"):
        t.correlation_rows(scores, {"r1": obs["r1"]}, resamples=0)


def test_correlate_files_writes_csv_and_page(tmp_path):
    from selfexplain.io import write_parquet

    paths = {}
    for name, frame in (("scores", _scores()), ("obs", _observations())):
        paths[name] = tmp_path / f"{name}.parquet"
        write_parquet(frame, paths[name], {"stage": "test"})
    out = t.correlate_files(
        {"ref": paths["scores"]},
        {"ref": paths["obs"]},
        {"resamples": 10, "seed": 1},
        tmp_path / "t.csv",
        tmp_path / "t.html",
        ["ref"],
    )
    assert pd.read_csv(tmp_path / "t.csv")["reference"].tolist() == ["ref"] == out["reference"].tolist()
    page = (tmp_path / "t.html").read_text()
    assert "Pearson r" in page and "ref" in page


# ---------------------------------------------------------------------------------------------------- template
def test_template_fills_with_the_predictor_fields_and_is_checked(tmp_path):
    template = load_template(PROMPTS, t.TEMPLATE, "heart_disease")
    template.check(predictor_fields("heart_disease", "", "", ""))
    text = template.render(predictor_fields("heart_disease", "A", "YES", "B", explanation="because"))
    assert "0 to 10" in text and "[ANSWER]" not in text and "because" in text

    section = {
        "references": ["r"],
        "predictors": ["p"],
        "prompt_dir": "prompts",
        "datasets": ["heart_disease"],
        "conditions": ["with_explanation"],
        "raw": {"sources": {}},
        "hamming": {"min_group_size": 5, "max_group_size": 10},
        "testability": {"enabled": True, "predictor": None},
        "compare_references": [],
        "side": {"extra_conditions": {}},
    }
    shutil.copytree(PROMPTS, tmp_path / "prompts")
    check_section(section)
    check_templates(section, tmp_path)
    (tmp_path / "prompts" / "testability.txt").write_text("Rate ${explanation} for ${nonsense}\n")
    with pytest.raises(ConfigError, match=r"config.simulatability.testability: .*unknown placeholder \$\{nonsense\}"):
        check_templates(section, tmp_path)
    check_templates({**section, "testability": {"enabled": False, "predictor": None}}, tmp_path)
    with pytest.raises(ConfigError, match=r"testability\.predictor: q is not one of the predictors"):
        check_section({**section, "testability": {"enabled": True, "predictor": "q"}})


# ---------------------------------------------------------------------------------------------------- synthetic
def test_synthetic_score_by_hand():
    known = TabularRule("heart_disease", {"sex": {"male": 2}, "exang": {"yes": 1}}, 2, ("NO", "YES"))
    stated = TabularRule("heart_disease", {"cp": {"4.0": 2}, "fbs": {"true": 3}}, 2, ("NO", "YES"))
    assert rate_testability(None, known, {}) == 1
    # known: male+yes 3 -> YES; stated: cp 4.0 -> 2 points -> YES on its threshold (margin 0): agrees, 7 + 0
    case = {"sex": "male", "exang": "yes", "cp": "4.0", "fbs": "false"}
    assert rate_testability(stated, known, case) == 7
    assert rate_testability(stated, known, case, misjudge=True) == 3  # taken as a disagreement, on the threshold
    # stated cp 4.0 + fbs true = 5 points: margin 3 -> 10
    assert rate_testability(stated, known, {**case, "fbs": "true"}) == 10
    # known: female+no 0 -> NO; stated 5 points -> YES (margin 3): disagrees, off the threshold -> 2
    assert rate_testability(stated, known, {"sex": "female", "exang": "no", "cp": "4.0", "fbs": "true"}) == 2
    # stated 0 points -> NO with margin 1; known NO: agrees -> 8
    assert rate_testability(stated, known, {"sex": "female", "exang": "no", "cp": "1.0", "fbs": "false"}) == 8
    assert rate_testability(known, known, {"sex": "female", "exang": "no"}) == 7 + 1


def test_synthetic_rater_reads_the_template_and_noise_is_seeded():
    truthful = RuleRespondent({"explanation": "truthful"}, datasets=["heart_disease"])
    rule = truthful.rule("heart_disease")
    explanation = state_rule(rule, "patient", HEART)
    centre, other = describe(HEART, ROWS[0]), describe(HEART, ROWS[2])
    template = load_template(PROMPTS, t.TEMPLATE, "heart_disease")
    prompt = template.render(predictor_fields("heart_disease", centre, "YES", other, explanation=explanation))
    assert is_testability_question(prompt)
    assert read_rule(prompt, "heart_disease") == rule
    settings = {"testability": {"misjudge_rate": 0.0}}
    replies = {
        RuleRespondent(settings, seed=s, datasets=["heart_disease"]).respond([{"role": "user", "content": prompt}])
        for s in range(40)
    }
    expected = rate_testability(rule, rule, ROWS[2])
    scores = [t.parse_testability(r).score for r in replies]
    assert all(abs(s - expected) <= 1 for s in scores) and expected in scores
    rater = RuleRespondent({}, seed=5, datasets=["heart_disease"])
    assert rater.respond([{"role": "user", "content": prompt}]) == rater.respond([{"role": "user", "content": prompt}])
    vague = template.render(predictor_fields("heart_disease", centre, "YES", other, explanation="It felt right."))
    assert {t.parse_testability(rater.respond([{"role": "user", "content": vague}])).score} <= {0.0, 1.0, 2.0}
    predictor_prompt = load_template(PROMPTS, "predictor_with_explanation", "heart_disease").render(
        predictor_fields("heart_disease", centre, "YES", other, explanation=explanation)
    )
    assert not is_testability_question(predictor_prompt)


def test_stage_rates_each_pair_once_and_reads_the_journal_on_a_rerun(tmp_path):
    eval_set = _eval_set()
    rater = _entry("rater", testability={"misjudge_rate": 0.0})
    for kind in ("truthful", "misleading"):
        ref_entry = _entry(kind, explanation=kind)
        reference = reference_answers(
            ref_entry, make_backend(ref_entry), eval_set, PROMPTS, tmp_path / f"{kind}.jsonl", progress=False
        )
        if kind == "truthful":  # one unreadable centre answer is skipped, not rated
            reference.loc[(reference["row"] == 2) & reference["answer_first"], "answer"] = None
        table = t.testability_scores(
            rater, make_backend(rater), kind, eval_set, reference, PROMPTS, tmp_path / f"t_{kind}.jsonl", False
        )
        skipped = 1 if kind == "truthful" else 0
        assert len(table) == len(eval_set) - skipped and table.attrs["skipped"]["centre_unreadable"] == skipped
        assert not table.duplicated(["pair_id"]).any() and table["score_status"].eq("ok").all()
        assert table["score"].between(0, 10).all()
        # the answer orders of a pair can share one prompt (the description has no answer order): one request
        assert table.groupby("request_key")["score"].nunique().eq(1).all()
        if kind == "truthful":  # a truthful rule always gives the true answer: 7..10, one point of noise at most
            assert table["score"].ge(6).all()
        # a rerun reads the journal: same table
        again = t.testability_scores(
            rater, make_backend(rater), kind, eval_set, reference, PROMPTS, tmp_path / f"t_{kind}.jsonl", False
        )
        pd.testing.assert_series_equal(again["score"], table["score"])


def test_synthetic_ratings_track_whether_the_stated_rule_predicts_the_counterfactual():
    """On real one-feature neighbours, the rater scores truthful explanations higher, and a misleading one high where
    its decoy rule happens to give the counterfactual's true answer and low where it does not."""
    from tests.test_sim_synthetic import _neighbour_pairs, _reference

    dataset = "income"
    pairs = _neighbour_pairs(dataset, limit=120)
    assert len(pairs) >= 80
    rater = RuleRespondent({}, seed=1000)
    template = load_template(PROMPTS, t.TEMPLATE, dataset)
    scores: dict[str, list[float]] = {}
    agrees = []
    for kind in ("truthful", "misleading"):
        reference = RuleRespondent({"explanation": kind})
        scores[kind] = []
        for centre, other, first in pairs:
            sections, _ = _reference(reference, dataset, centre, first)
            fields = predictor_fields(dataset, centre, sections["ANSWER"], other, sections["EXPLANATION"])
            prompt = template.render(fields)
            reply = rater.respond([{"role": "user", "content": prompt}])
            scores[kind].append(t.parse_testability(reply).score)
            if kind == "misleading":
                new = reference.records(other)[0].values
                agrees.append(read_rule(prompt, dataset).decide(new) == reference.rule(dataset).decide(new))
    assert all(s is not None for v in scores.values() for s in v)
    assert np.mean(scores["truthful"]) > np.mean(scores["misleading"])
    misleading, agrees = np.array(scores["misleading"]), np.array(agrees)
    assert 0 < agrees.sum() < len(agrees)
    assert misleading[agrees].mean() > misleading[~agrees].mean() + 3
    assert t.pearson(misleading, agrees) > 0.5


def test_statuses_from_the_completion_and_rater_settings_are_checked():
    from selfexplain.llm.types import Completion

    assert t._rating(Completion(None, error="HTTP 500")) == t.Rating(None, "request_failed")
    assert t._rating(Completion("", reasoning="I was weighing")) == t.Rating(None, "incomplete_thinking")
    assert t._rating(Completion("", reasoning=None)) == t.Rating(None, "empty")
    assert t._rating(Completion("Score: 4", reasoning="hm")) == t.Rating(4.0, "ok", "labelled")
    with pytest.raises(ConfigError, match=r"testability\.misjudge_rate: rate 2\.0 is not in \[0, 1\]"):
        RuleRespondent({"testability": {"misjudge_rate": 2}})
    with pytest.raises(ConfigError, match=r"testability\.seed: unknown"):
        RuleRespondent({"testability": {"seed": 2}})
