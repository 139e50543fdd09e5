"""Hamming-ball groups: pool counts against brute force, group sizes against a direct simulation of the original
procedure, member invariants, seeds, and the 500-centre cap."""

from __future__ import annotations

import collections
import itertools
import random

import numpy as np
import pandas as pd
import pytest

from selfexplain.errors import ConfigError, InputError
from selfexplain.simulatability import hamming as H
from tests.conftest import fixtures_dir

# ---------------------------------------------------------------------------------------------------------------
# Oracles: the original procedure written out with an n x n matrix, elementwise `!=` on objects and list pools.


def brute_distances(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    values = frame[columns].to_numpy(dtype=object)
    if not columns:
        return np.zeros((len(frame), len(frame)), dtype=int)
    return (values[:, None, :] != values[None, :, :]).sum(axis=2)


def brute_pools(frame, columns, label, max_distance):
    dist = brute_distances(frame, columns)
    y = frame[label].to_numpy()
    n = len(frame)
    top = min(max_distance, len(columns))
    same = np.zeros((top + 1, n), dtype=int)
    diff = np.zeros((top + 1, n), dtype=int)
    for i in range(n):
        for j in range(n):
            if i != j and dist[i, j] <= max_distance:
                (same if y[j] == y[i] else diff)[dist[i, j], i] += 1
    return same, diff


def original_subset(c: int, neighbours: list[int], y: np.ndarray, params: H.BallParams, rng) -> list[int] | None:
    """One centre as in reference §2.1: pools as lists, alternate from the different pool, grow, stop, re-check."""
    if len(neighbours) < params.min_group_size:
        return None
    pools = {True: [j for j in neighbours if y[j] == y[c] and j != c], False: [j for j in neighbours if y[j] != y[c]]}
    subset, add_same = [c], False

    def pick(add_same: bool) -> int | None:
        pool = pools[add_same] or pools[not add_same]
        return pool[int(rng.integers(len(pool)))] if pool else None

    def take(chosen: int) -> None:
        subset.append(chosen)
        for key in pools:
            pools[key] = [j for j in pools[key] if j != chosen]

    def balance(rows: list[int]) -> float:
        same = sum(1 for r in rows if y[r] == y[c])
        return abs(same - (len(rows) - same)) / len(rows)

    while len(subset) < params.min_group_size:
        chosen = pick(add_same)
        if chosen is None:
            return None
        take(chosen)
        add_same = not add_same
    if balance(subset) >= params.max_imbalance:
        return None
    while len(subset) < params.max_group_size:
        chosen = pick(add_same)
        if chosen is None or balance([*subset, chosen]) >= params.max_imbalance:
            break
        take(chosen)
        add_same = not add_same
    assert balance(subset) < params.max_imbalance
    return subset


def simulate_original(frame, columns, label, params: H.BallParams, rng: np.random.Generator) -> dict[int, list[int]]:
    """Centre -> subset (centre first) for every successful centre, from an n x n distance matrix."""
    dist = brute_distances(frame, columns)
    y = frame[label].to_numpy()
    out = {}
    for c in range(len(frame)):
        neighbours = [j for j in range(len(frame)) if dist[c, j] <= params.max_distance]
        subset = original_subset(c, neighbours, y, params, rng)
        if subset is not None:
            out[c] = subset
    return out


def simulate_sizes(n_same: int, n_diff: int, params: H.BallParams, rng) -> int:
    """The original procedure on a synthetic centre with the given pools (no table): its group size or 0."""
    size = 1 + n_same + n_diff
    frame = pd.DataFrame({"f": np.zeros(size, dtype=int), "y": [1] * (1 + n_same) + [0] * n_diff})
    subsets = simulate_original(frame, ["f"], "y", params, rng)
    return len(subsets[0]) if 0 in subsets else 0


def random_table(rng: np.random.Generator, n: int, k: int, n_labels: int = 2, nan_rate: float = 0.1) -> pd.DataFrame:
    """Small categorical table with NaNs and exact duplicate rows (features and label)."""
    data = {}
    for j in range(k):
        values = rng.integers(0, int(rng.integers(1, 4)), n).astype(object)
        values = np.array([f"v{v}" for v in values], dtype=object)
        values[rng.random(n) < nan_rate] = np.nan
        data[f"c{j}"] = values
    data["y"] = rng.integers(0, n_labels, n)
    frame = pd.DataFrame(data)
    dup = rng.random(n) < 0.2
    if n and dup.any():
        frame.loc[dup] = frame.iloc[rng.integers(0, n, int(dup.sum()))].to_numpy()
    frame["y"] = frame["y"].astype(int)
    return frame


PAPER = H.BallParams(max_distance=2, min_group_size=5, max_group_size=10, max_imbalance=0.3, seed=0)

# ---------------------------------------------------------------------------------------------------------------
# Group size as a function of the pool sizes


@pytest.mark.parametrize(
    ("n_same", "n_diff", "expected"),
    [
        (0, 0, 0),
        (2, 1, 0),  # 3 rows besides the centre: cannot reach 5
        (10, 0, 0),  # only same-label rows: imbalance 1
        (3, 1, 0),  # d, s, s (diff empty), s -> 4 same / 1 diff
        (2, 2, 5),  # d s d s, then both pools empty
        (1, 10, 5),  # d s d d -> 2/3; the next d would make 2/4 (1/3 >= 0.3)
        (4, 4, 9),  # pools run out at 9
        (5, 5, 10),
        (2, 10, 8),  # ... 3 same / 5 diff (0.25); a 6th diff gives 3/9 >= 0.3
        (100, 100, 10),
    ],
)
def test_group_size_hand_computed(n_same, n_diff, expected):
    assert H.group_size(n_same, n_diff, PAPER) == expected


def test_draw_plan_alternates_from_the_different_pool():
    assert H.draw_plan(5, 5, PAPER) == (False, True) * 4 + (False,)
    assert H.draw_plan(1, 10, PAPER) == (False, True, False, False)
    assert H.draw_plan(0, 0, PAPER) is None


def test_imbalance_bound_is_strict():
    # (2, 2) ends at 3 same / 2 diff: imbalance exactly 0.2.
    assert H.group_size(2, 2, H.BallParams(max_imbalance=0.2)) == 0
    assert H.group_size(2, 2, H.BallParams(max_imbalance=0.2000001)) == 5


@pytest.mark.parametrize(
    "params",
    [
        PAPER,
        H.BallParams(min_group_size=3, max_group_size=7, max_imbalance=0.4),
        H.BallParams(min_group_size=4, max_group_size=4, max_imbalance=0.6),
        H.BallParams(min_group_size=1, max_group_size=6, max_imbalance=1.0),
        H.BallParams(min_group_size=2, max_group_size=12, max_imbalance=0.25),
    ],
)
def test_group_size_equals_direct_simulation(params):
    rng = np.random.default_rng(11)
    for n_same, n_diff in itertools.product(range(13), range(13)):
        expected = H.group_size(n_same, n_diff, params)
        for _ in range(2):
            assert simulate_sizes(n_same, n_diff, params, rng) == expected, (n_same, n_diff)


def test_group_sizes_vectorised_matches_scalar():
    rng = np.random.default_rng(3)
    same, diff = rng.integers(0, 40, 500), rng.integers(0, 40, 500)
    expected = [H.group_size(int(a), int(b), PAPER) for a, b in zip(same, diff, strict=True)]
    assert H.group_sizes(same, diff, PAPER).tolist() == expected


# ---------------------------------------------------------------------------------------------------------------
# Pool counts


def test_pool_sizes_hand_computed():
    frame = pd.DataFrame(
        {
            "a": ["x", "x", "x", "y", "x"],
            "b": ["p", "p", "q", "q", np.nan],
            "c": ["u", "u", "u", "v", "u"],
            "y": [1, 0, 1, 1, 0],
        }
    )
    pools = H.pool_sizes(frame, ["a", "b", "c"], "y", max_distance=1)
    # Row 0: row 1 at distance 0 (other label), row 2 at 1 (same), row 4 at 1 (NaN differs; other label).
    # Row 4: rows 0, 1 and 2 at distance 1 (its NaN differs from p and q); row 1 shares its label.
    assert pools.n_same.tolist() == [1, 1, 1, 0, 1]
    assert pools.n_diff.tolist() == [2, 2, 2, 0, 2]
    assert pools.diff_by_distance[0].tolist() == [1, 1, 0, 0, 0]
    # Row 3 differs from everyone in two columns or more.
    assert pools.same_by_distance[:, 3].tolist() == [0, 0]


def test_nan_never_equals_nan():
    frame = pd.DataFrame({"a": ["x", "x", "x"], "b": [np.nan, np.nan, "q"], "y": [0, 1, 1]})
    pools = H.pool_sizes(frame, ["a", "b"], "y", max_distance=1)
    assert pools.diff_by_distance[0].tolist() == [0, 0, 0]  # the two NaN rows are at distance 1, not 0
    assert pools.diff_by_distance[1].tolist() == [2, 1, 1]
    # A row with more NaNs than max_distance has no neighbours at all.
    wide = pd.DataFrame({"a": [np.nan] * 6, "b": [np.nan] * 6, "c": ["x"] * 6, "y": [0, 1] * 3})
    pools = H.pool_sizes(wide, ["a", "b", "c"], "y", max_distance=1)
    assert pools.n_same.tolist() == [0] * 6 and pools.n_diff.tolist() == [0] * 6


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_distance", [1, 2, 3])
def test_pool_sizes_equal_brute_force(seed, max_distance):
    rng = np.random.default_rng([seed, max_distance])
    for _ in range(6):
        k = int(rng.integers(0, 6))
        frame = random_table(rng, int(rng.integers(0, 70)), k, n_labels=int(rng.integers(1, 4)))
        columns = [f"c{j}" for j in range(k)]
        pools = H.pool_sizes(frame, columns, "y", max_distance)
        same, diff = brute_pools(frame, columns, "y", max_distance)
        assert np.array_equal(pools.same_by_distance, same)
        assert np.array_equal(pools.diff_by_distance, diff)
        assert np.array_equal(pools.n_same, same.sum(axis=0))
        assert np.array_equal(pools.n_diff, diff.sum(axis=0))


def test_pool_sizes_without_a_single_int64_key(monkeypatch):
    rng = np.random.default_rng(5)
    frame = random_table(rng, 80, 5)
    columns = [f"c{j}" for j in range(5)]
    expected = H.pool_sizes(frame, columns, "y", 2)
    monkeypatch.setattr(H, "_RADIX_LIMIT", 20)  # forces the column-by-column keys with re-ranking
    assert H._MaskedKeys(H.encode_features(frame, columns)).full is None
    fallback = H.pool_sizes(frame, columns, "y", 2)
    assert np.array_equal(fallback.same_by_distance, expected.same_by_distance)
    assert np.array_equal(fallback.diff_by_distance, expected.diff_by_distance)
    groups = H.build_groups(frame, columns, "y", H.BallParams(min_group_size=3, max_imbalance=0.5))
    monkeypatch.undo()
    assert groups == H.build_groups(frame, columns, "y", H.BallParams(min_group_size=3, max_imbalance=0.5))


# ---------------------------------------------------------------------------------------------------------------
# Centres and members


def dense_table(seed: int, n: int = 150) -> tuple[pd.DataFrame, list[str]]:
    """Four low-cardinality features (many balls succeed), some NaNs and duplicates."""
    rng = np.random.default_rng(seed)
    frame = random_table(rng, n, 4, nan_rate=0.03)
    return frame, [f"c{j}" for j in range(4)]


@pytest.mark.parametrize("seed", range(4))
def test_successful_centres_and_sizes_equal_the_original_procedure(seed):
    frame, columns = dense_table(seed, 90)
    params = H.BallParams(max_distance=1 + seed % 2, min_group_size=3, max_group_size=8, max_imbalance=0.4)
    summary = H.ball_summary(frame, columns, "y", params)
    simulated = simulate_original(frame, columns, "y", params, np.random.default_rng(seed))
    ours = {int(r): int(s) for r, s in zip(summary["row"], summary["group_size"], strict=True) if s}
    assert ours == {c: len(subset) for c, subset in simulated.items()}
    assert list(ours) == sorted(ours)


@pytest.mark.parametrize("seed", range(4))
def test_member_invariants(seed):
    frame, columns = dense_table(seed)
    params = H.BallParams(max_distance=2, min_group_size=5, max_group_size=10, max_imbalance=0.3, seed=seed)
    groups = H.build_groups(frame, columns, "y", params)
    assert groups
    dist = brute_distances(frame, columns)
    y = frame["y"].to_numpy()
    summary = H.ball_summary(frame, columns, "y", params)
    for g in groups:
        members = list(g.members)
        assert params.min_group_size <= g.size <= params.max_group_size
        assert g.size == summary.loc[g.centre, "group_size"]
        assert len(set(members)) == len(members) and g.centre not in members
        assert list(g.distances) == [dist[g.centre, m] for m in members]
        assert max(g.distances) <= params.max_distance
        assert g.centre_label == y[g.centre] and list(g.member_labels) == [y[m] for m in members]
        same = 1 + sum(label == g.centre_label for label in g.member_labels)
        assert abs(same - (g.size - same)) / g.size < params.max_imbalance
        plan = H.draw_plan(int(summary.loc[g.centre, "n_same"]), int(summary.loc[g.centre, "n_diff"]), params)
        assert [label == g.centre_label for label in g.member_labels] == list(plan)


def test_seed_changes_members_only():
    frame, columns = dense_table(7, 200)
    first = H.build_groups(frame, columns, "y", H.BallParams(seed=1))
    again = H.build_groups(frame, columns, "y", H.BallParams(seed=1))
    other = H.build_groups(frame, columns, "y", H.BallParams(seed=2))
    assert first == again
    assert [(g.centre, g.size) for g in first] == [(g.centre, g.size) for g in other]
    assert [g.members for g in first] != [g.members for g in other]


def test_members_of_a_centre_do_not_depend_on_other_centres():
    frame, columns = dense_table(8, 200)
    full = {g.centre: g for g in H.build_groups(frame, columns, "y", H.BallParams(seed=4))}
    capped = H.build_groups(frame, columns, "y", H.BallParams(seed=4, max_centres=10, cap_seed=3))
    assert len(capped) == 10
    for g in capped:
        assert g == full[g.centre]


def test_members_are_drawn_uniformly():
    # Centre 0 with 3 same-label and 30 other-label neighbours: its 4 other-label draws cover the pool evenly.
    frame = pd.DataFrame({"f": ["a"] * 34, "y": [1] * 4 + [0] * 30})
    counts = collections.Counter()
    for seed in range(300):
        (group,) = [g for g in H.build_groups(frame, ["f"], "y", H.BallParams(seed=seed)) if g.centre == 0]
        counts.update(m for m, label in zip(group.members, group.member_labels, strict=True) if label == 0)
    assert set(counts) == set(range(4, 34))
    assert max(counts.values()) < 3 * min(counts.values())


@pytest.mark.parametrize("max_distance", [0, 1, 2, 3])
def test_enumerated_balls_equal_brute_force(max_distance):
    rng = np.random.default_rng(max_distance)
    for k in range(6):
        frame = random_table(rng, 60, k)
        columns = [f"c{j}" for j in range(k)]
        codes = H.encode_features(frame, columns)
        labels, _ = H.encode_labels(frame, "y")
        _, cost = H._pool_sizes_from_codes(codes, labels, max_distance)
        centres = rng.permutation(len(frame))
        dist = brute_distances(frame, columns)
        balls = list(H._balls(H._MaskedKeys(codes), centres, cost, max_distance))
        assert [c for c, _ in balls] == centres.tolist()
        for c, ball in balls:
            expected = {j for j in range(len(frame)) if j != c and dist[c, j] <= max_distance}
            assert sorted(set(ball.tolist()) - {c}) == sorted(expected)
            assert len(ball) == len(set(ball.tolist())) and ball.tolist() == sorted(ball.tolist())


def test_chunked_enumeration_gives_the_same_groups(monkeypatch):
    frame, columns = dense_table(9, 120)
    params = H.BallParams(seed=5)
    expected = H.build_groups(frame, columns, "y", params)
    monkeypatch.setattr(H, "PAIR_BUDGET", 40)
    monkeypatch.setattr(H, "ORDER_CACHE_LIMIT", 0)
    assert H.build_groups(frame, columns, "y", params) == expected


def test_three_labels_other_pool_is_every_other_label():
    frame, columns = dense_table(10, 100)
    frame["y"] = np.random.default_rng(0).integers(0, 3, len(frame))
    params = H.BallParams(min_group_size=3, max_imbalance=0.5)
    ours = H.ball_summary(frame, columns, "y", params)
    simulated = simulate_original(frame, columns, "y", params, np.random.default_rng(1))
    assert {int(r) for r in ours.loc[ours["group_size"] > 0, "row"]} == set(simulated)


# ---------------------------------------------------------------------------------------------------------------
# The cap


def test_cap_is_the_original_global_random_sample_in_sample_order():
    successful = list(range(3, 3000, 3))
    state = random.getstate()
    try:
        random.seed(42)
        expected = random.sample(successful, 500)
    finally:
        random.setstate(state)
    assert H.cap_centres(successful, 500, 42) == expected
    assert H.cap_centres(successful, None, 42) == successful
    assert H.cap_centres(successful[:500], 500, 42) == successful[:500]  # only more than max_centres is sampled


def test_cap_order_in_groups_and_global_rng_untouched():
    frame, columns = dense_table(12, 300)
    params = H.BallParams(max_centres=25, cap_seed=42)
    summary = H.ball_summary(frame, columns, "y", params)
    successful = summary.loc[summary["group_size"] > 0, "row"].tolist()
    assert len(successful) > 25
    state = random.getstate()
    groups = H.build_groups(frame, columns, "y", params)
    assert random.getstate() == state
    expected = random.Random(42).sample(successful, 25)
    assert [g.centre for g in groups] == expected
    kept = summary[summary["kept_rank"] >= 0].sort_values("kept_rank")
    assert kept["row"].tolist() == expected


# ---------------------------------------------------------------------------------------------------------------
# Errors and the original files


def test_bad_input_and_params():
    frame = pd.DataFrame({"a": ["x", "y"], "y": [1, None]})
    with pytest.raises(InputError, match="'b'"):
        H.pool_sizes(frame, ["b"], "y", 2)
    with pytest.raises(InputError, match="missing in row 1"):
        H.pool_sizes(frame, ["a"], "y", 2)
    with pytest.raises(InputError, match="'label'"):
        H.build_groups(frame, ["a"], "label", PAPER)
    for bad in (
        {"max_distance": -1},
        {"min_group_size": 0},
        {"min_group_size": 6, "max_group_size": 5},
        {"max_imbalance": 0},
        {"max_imbalance": True},
        {"seed": -1},
        {"max_centres": 0},
        {"cap_seed": "42"},
    ):
        with pytest.raises(ConfigError):
            H.BallParams(**bad)


def test_original_group_sizes_of_the_shipped_pima_file():
    path = fixtures_dir("simulatability_original") / "pima_diabetes_counterfactual_dataset_balanced.parquet"
    sizes = H.original_group_sizes(pd.read_parquet(path))
    assert len(sizes) == 468
    assert collections.Counter(s - 1 for s in sizes.values()) == {9: 447, 4: 11, 7: 9, 8: 1}  # reference §2.6
    assert list(sizes) == sorted(sizes)  # uncapped: row order
