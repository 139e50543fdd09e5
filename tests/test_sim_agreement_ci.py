"""Bootstrap CIs of predictor agreement (Kendall's W, Spearman's rho) over the reference models: hand-computed
resamples, resamples that cannot move W, seeded determinism and bounds, degenerate inputs, and the rule's step."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from selfexplain.errors import InputError
from selfexplain.simulatability import agreement as ag
from selfexplain.simulatability import side
from tests.test_sim_side import summary_frame

# rows = reference models r0, r1, r2; columns = predictors p, q
NSG = np.array([[1.0, 1.0], [2.0, 3.0], [3.0, 2.0]])


def test_replicates_by_hand():
    # [0, 1, 2]: the data, p ranks [1, 2, 3], q [1, 3, 2]: R = [2, 5, 5], S = 6, W = 12 * 6 / (4 * 24) = 0.75; rho 0.5
    # [0, 0, 1]: p [1, 1, 2] and q [1, 1, 3] both rank [1.5, 1.5, 3]: W = 1 (tie-corrected), rho 1
    # [1, 2, 2]: p [2, 3, 3] ranks [1, 2.5, 2.5], q [3, 2, 2] ranks [3, 1.5, 1.5]: R = [4, 4, 4], W = 0; rho -1
    # [2, 2, 2]: every rater ties every item: W and rho undefined, left out
    out = ag.bootstrap_agreement(NSG, [[0, 1, 2], [0, 0, 1], [1, 2, 2], [2, 2, 2]])
    assert out["reason"] is None and out["resamples"] == 4
    assert out["w_defined"] == 3 and out["spearman_mean_defined"] == 3
    # linear percentiles of [0, 0.75, 1]: 2.5 % at position 0.05 -> 0.0375, 97.5 % at 1.95 -> 0.75 + 0.95 * 0.25
    assert out["w_ci"] == pytest.approx([0.0375, 0.9875])
    # of [-1, 0.5, 1]: -1 + 0.05 * 1.5 and 0.5 + 0.95 * 0.5; one pair, so the mean is that pair's rho
    assert out["spearman_mean_ci"] == pytest.approx([-0.925, 0.975])
    assert out["pairwise_ci"] == [pytest.approx([-0.925, 0.975])]


def test_resamples_that_cannot_move_w():
    # predictors that rank alike give W = 1 in every resample with two distinct references (tied duplicates too)
    alike = np.array([[1.0, 10.0, 0.1], [2.0, 20.0, 0.2], [3.0, 30.0, 0.3], [4.0, 40.0, 0.4]])
    draws = ag.draw_references(4, 200, seed=5)
    out = ag.bootstrap_agreement(alike, draws)
    assert out["w_ci"] == pytest.approx([1.0, 1.0]) and out["spearman_mean_ci"] == pytest.approx([1.0, 1.0])
    single = int(sum(len(set(row)) == 1 for row in draws.tolist()))  # one reference drawn 4 times: undefined
    assert out["w_defined"] == 200 - single
    # two references ranked oppositely: W = 0 whenever both are drawn, undefined otherwise
    opposite = np.array([[1.0, 2.0], [2.0, 1.0]])
    out = ag.bootstrap_agreement(opposite, [[0, 1], [1, 0], [0, 0], [1, 1]])
    assert out["w_ci"] == [0.0, 0.0] and out["w_defined"] == 2
    assert out["spearman_mean_ci"] == pytest.approx([-1.0, -1.0])


def test_seeded_cis_are_deterministic_and_bounded():
    rng = np.random.default_rng(0)
    matrix = pd.DataFrame(rng.normal(size=(8, 4)) + np.arange(8)[:, None], columns=list("abcd"),
                          index=[f"r{k}" for k in range(8)])  # fmt: skip
    matrix.iloc[5, 2] = math.nan  # r5: out of W and of the pairs with c, in every resample that draws it
    first = ag.predictor_agreement(matrix, resamples=300, seed=7)
    again = ag.predictor_agreement(matrix, resamples=300, seed=7)
    other = ag.predictor_agreement(matrix, resamples=300, seed=8)
    assert json.dumps(first) == json.dumps(again)
    assert first["kendall"]["w_ci"] != other["kendall"]["w_ci"]
    assert first["kendall"]["w"] == pytest.approx(ag.kendalls_w(matrix.drop(index="r5").to_numpy().T)["w"])
    lo, hi = first["kendall"]["w_ci"]
    assert 0 <= lo < hi <= 1 and first["kendall"]["w_ci_reason"] is None
    lo, hi = first["spearman_mean_ci"]
    assert -1 <= lo < hi <= 1
    for pair in first["pairwise"]:
        assert -1 <= pair["spearman_ci"][0] < pair["spearman_ci"][1] <= 1
    boot = first["bootstrap"]
    assert boot["resamples"] == 300 and boot["seed"] == 7 and boot["w_defined"] == 300
    # the draws come from the seeded stream the JSON names
    assert np.array_equal(ag.draw_references(8, 300, 7), ag.draw_references(8, 300, 7))
    assert not np.array_equal(ag.draw_references(8, 300, 7), ag.draw_references(8, 300, 8))


@pytest.mark.parametrize(
    ("nsg", "draws", "reason"),
    [
        (NSG[:, :1], [[0, 1, 2]], "fewer than 2 predictors"),
        (NSG[:1], [[0]], "fewer than 2 reference models with an NSG from every predictor"),
        (np.array([[1.0, math.nan], [2.0, 3.0], [3.0, math.nan]]), [[0, 1, 2]], "fewer than 2 reference models"),
        (NSG, np.empty((0, 3)), "no bootstrap resamples"),
        (np.array([[1.0, 1.0], [2.0, 2.0]]), [[0, 0], [1, 1]], "no resample has a defined W"),
    ],
)
def test_degenerate_inputs_give_nan_with_a_reason(nsg, draws, reason):
    out = ag.bootstrap_agreement(nsg, draws)
    assert reason in out["reason"]
    assert all(math.isnan(v) for v in out["w_ci"]) and all(math.isnan(v) for v in out["spearman_mean_ci"])
    with pytest.raises(ValueError, match="2-D"):
        ag.bootstrap_agreement([1.0, 2.0], [[0, 1]])


def test_predictor_agreement_says_why_there_is_no_ci():
    one = ag.nsg_matrix(summary_frame({"r1": {"p": 1.0}, "r2": {"p": 2.0}, "r3": {"p": 3.0}}))
    out = ag.predictor_agreement(one, resamples=50)
    assert out["kendall"]["w_ci_reason"] == "fewer than 2 predictors" and math.isnan(out["kendall"]["w_ci"][0])
    two = ag.nsg_matrix(summary_frame({"r1": {"p": 1.0, "q": 2.0}, "r2": {"p": 3.0, "q": 1.0}}))
    assert ag.predictor_agreement(two, resamples=0)["kendall"]["w_ci_reason"] == "no bootstrap resamples"


def test_rule_step_writes_the_ci_to_json_and_figure(tmp_path):
    summary = summary_frame(
        {f"r{k}": {"p": float(k), "q": float(k + (k % 2)), "s": float(-k if k == 3 else k)} for k in range(6)}
    )
    path = tmp_path / "summary.csv"
    summary.to_csv(path, index=False)
    bootstrap = {"resamples": 120, "seed": 42}
    result = side.run_agreement(path, bootstrap, tmp_path / "a.json", tmp_path / "a.png")
    written = json.loads((tmp_path / "a.json").read_text())
    assert written["kendall"]["w_ci"] == pytest.approx(result["kendall"]["w_ci"])
    assert written["bootstrap"]["resamples"] == 120 and written["bootstrap"]["seed"] == 42
    direct = ag.predictor_agreement(ag.nsg_matrix(summary), resamples=120, seed=42)
    assert written["kendall"]["w_ci"] == pytest.approx(direct["kendall"]["w_ci"])
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="summary not found"):
        side.run_agreement(tmp_path / "nope.csv", bootstrap, tmp_path / "b.json", tmp_path / "b.png")
