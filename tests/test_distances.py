"""Distances against hand-computed values, and the nearest-point search against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from selfexplain.tabular.distances import first_min, make_metric, nearest_by_class
from selfexplain.tabular.features import load_dataset_spec
from selfexplain.tabular.grids import build_grid


def _metric(dataset, name):
    spec = load_dataset_spec(dataset)
    return make_metric(spec, build_grid(spec), name)


def _d(metric, a, b):
    return float(metric.rowwise(np.array([a], float), np.array([b], float))[0])


def test_gower_by_hand():
    income = _metric("income", "gower")
    # (|37-22| / 79 + |21-16| / 23) / 2: the original's example row 500.
    assert _d(income, [37, 21], [22, 16]) == pytest.approx((15 / 79 + 5 / 23) / 2, abs=1e-15)
    assert _d(income, [17, 1], [96, 24]) == pytest.approx(1.0, abs=1e-15)
    heart = _metric("heart_disease", "gower")
    assert _d(heart, [30, 2, 110, 150], [80, 1, 180, 300]) == pytest.approx(1.0, abs=1e-15)
    # a sex flip alone costs 1/4
    assert _d(heart, [30, 2, 110, 150], [30, 1, 110, 150]) == pytest.approx(0.25, abs=1e-15)
    house = _metric("house_prices", "gower")
    assert _d(house, [500, 1, 1, 1], [1000, 2, 1, 4]) == pytest.approx((500 / 9500 + 1 / 4 + 0 + 3 / 3) / 4)


def test_l1_mad_by_hand():
    income = _metric("income", "l1")  # MAD age 20, MAD education 6
    assert _d(income, [37, 21], [22, 16]) == pytest.approx(15 / 20 + 5 / 6, abs=1e-15)
    heart = _metric("heart_disease", "l1")  # MADs 15, -, 20, 45; sex is categorical: 0/1
    assert _d(heart, [30, 2, 110, 150], [45, 1, 130, 195]) == pytest.approx(15 / 15 + 1 + 20 / 20 + 45 / 45)


def test_squared_l2_std_by_hand():
    income = _metric("income", "l2")
    std_age, std_schl = 23.0922064775, 6.9221865524  # population std over the grid
    assert _d(income, [37, 21], [22, 16]) == pytest.approx(15**2 / std_age + 5**2 / std_schl, rel=1e-10)
    heart = _metric("heart_disease", "l2")
    assert _d(heart, [30, 2, 110, 150], [30, 2, 120, 150]) == pytest.approx(100 / 22.9128784748, rel=1e-10)


def test_first_min_ties_within_tolerance_go_to_first():
    assert first_min(np.array([0.3, 0.1 + 5e-10, 0.1, 0.2])) == 1
    assert first_min(np.array([0.3, 0.1 + 5e-9, 0.1])) == 2


def test_nearest_tie_goes_to_first_in_grid_order():
    spec = load_dataset_spec("income")
    grid = build_grid(spec)
    metric = make_metric(spec, grid, "gower")
    labels = np.zeros(len(grid), dtype=int)
    # from (22, 10) the points (20, 10) and (24, 10) are equally far; the first in grid order wins
    row = {tuple(r): i for i, r in enumerate(grid[spec.columns].to_numpy())}
    labels[[row[(20.0, 10.0)], row[(24.0, 10.0)]]] = 1
    idx, dist = nearest_by_class(
        metric, grid[spec.columns].to_numpy(), labels, np.array([row[(22.0, 10.0)]]), np.array([1])
    )
    assert idx.tolist() == [row[(20.0, 10.0)]]
    assert dist[0] == pytest.approx(2 / 79 / 2)


@pytest.mark.parametrize("dataset", ["income", "house_prices", "heart_disease"])
@pytest.mark.parametrize("name", ["gower", "l1", "l2"])
@pytest.mark.parametrize("share", [0.3, 0.003])
def test_nearest_by_class_equals_brute_force(dataset, name, share):
    spec = load_dataset_spec(dataset)
    grid = build_grid(spec)
    metric = make_metric(spec, grid, name)
    points = grid[spec.columns].to_numpy()
    rng = np.random.default_rng(1)
    classes = (rng.random(len(points)) < share).astype(int)
    classes[:3] = -1  # unreadable answers belong to neither class
    queries = rng.choice(len(points), 300)
    wanted = rng.integers(0, 2, 300)
    wanted[:5] = -1
    queries[5] = -1
    idx, dist = nearest_by_class(metric, points, classes, queries, wanted)
    assert (idx[:6] == -1).all() and np.isnan(dist[:6]).all()
    for i in range(6, 300):
        candidates = np.flatnonzero(classes == wanted[i])
        d = metric.pairwise(points[queries[i]], points[candidates])
        assert idx[i] == candidates[first_min(d)]
        assert dist[i] == d[first_min(d)]


def test_nearest_with_no_point_of_the_class():
    spec = load_dataset_spec("income")
    grid = build_grid(spec)
    metric = make_metric(spec, grid, "gower")
    idx, dist = nearest_by_class(
        metric, grid[spec.columns].to_numpy(), np.zeros(len(grid), int), np.array([0, 1]), np.array([1, 1])
    )
    assert idx.tolist() == [-1, -1] and np.isnan(dist).all()


def test_scale_statistics_come_from_the_full_grid():
    spec = load_dataset_spec("income")
    grid = build_grid(spec)
    full = make_metric(spec, grid, "gower")
    assert full.weights.tolist() == pytest.approx([1 / 79 / 2, 1 / 23 / 2])
    with pytest.raises(ValueError, match="unknown distance metric"):
        make_metric(spec, grid, "cosine")
