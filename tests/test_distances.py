"""Distances against hand-computed values (both conventions), and the nearest-point search against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from selfexplain.tabular.distances import first_min, grid_index, grid_points, make_metric, nearest_by_class
from selfexplain.tabular.features import load_dataset_spec
from selfexplain.tabular.grids import build_grid
from tests.conftest import age_sex_spec


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
@pytest.mark.parametrize(
    ("name", "convention"), [("gower", "ours"), ("l1", "ours"), ("l2", "ours"), ("l1", "original"), ("l2", "original")]
)
@pytest.mark.parametrize("share", [0.3, 0.003])
def test_nearest_by_class_equals_brute_force(dataset, name, convention, share):
    spec = load_dataset_spec(dataset)
    grid = build_grid(spec)
    metric = make_metric(spec, grid, name, convention)
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
        assert idx[i] == candidates[first_min(d, metric.tolerance)]
        assert dist[i] == d[first_min(d, metric.tolerance)]


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


# --- The original's conventions on a tiny grid: age 30..60 (step 10) x sex (codes 2 = Female first, then 1) ---------

TINY = age_sex_spec()
# Over the 8 grid points: age MAD 10 (deviations 5,5,5,5,15,15,15,15), age std sqrt(125); sex codes MAD 0.5, std 0.5.


def test_tiny_grid_scales_by_hand():
    l1, l2 = make_metric(TINY, None, "l1", "original"), make_metric(TINY, None, "l2", "original")
    assert l1.scales.tolist() == [10.0, 0.5]
    assert l2.scales.tolist() == pytest.approx([125**0.5, 0.5], abs=1e-15)
    assert make_metric(TINY, None, "l1").scales is None  # ours: weights, sex costs 0/1


@pytest.mark.parametrize(
    ("name", "convention", "expected"),
    [
        ("l1", "ours", 20 / 10 + 1),  # (30, Female) -> (50, Male): age 2, sex 1
        ("l1", "original", 20 / 10 + 1 / 0.5),  # sex |2 - 1| / MAD 0.5 = 2
        ("l2", "ours", 400 / 125**0.5 + 1),
        ("l2", "original", 400 / 125**0.5 + 1 / 0.5),  # sex (2 - 1)^2 / std 0.5 = 2
        ("gower", "ours", (20 / 30 + 1) / 2),
        ("gower", "original", (20 / 30 + 1) / 2),  # the original's Gower already costs sex 0/1
    ],
)
def test_tiny_grid_distances_by_hand(name, convention, expected):
    metric = make_metric(TINY, None, name, convention)
    assert _d(metric, [30, 2], [50, 1]) == pytest.approx(expected, rel=1e-15)
    assert _d(metric, [30, 2], [30, 2]) == 0


def test_original_convention_sums_features_in_order_like_the_original():
    # |Δage| / 10 + |Δsex| / 0.5, evaluated left to right in float64: the original matrix entries bit for bit
    metric = make_metric(TINY, None, "l1", "original")
    assert _d(metric, [30, 2], [60, 1]) == 30 / 10.0 + 1 / 0.5
    metric = make_metric(TINY, None, "l2", "original")
    assert _d(metric, [40, 1], [60, 2]) == 400 / float(np.std(grid_points(TINY)[:, 0])) + 1 / 0.5


def test_nearest_point_under_each_convention_by_hand():
    # From (40, Female), class 1 holds (40, Male) (grid index 3) and (50, Female) (index 4).
    # ours L1: 1 vs 1, a tie -> the first in grid order (3); original L1: 2 vs 1 -> (50, Female).
    points = grid_points(TINY)
    assert points.tolist() == [[30, 2], [30, 1], [40, 2], [40, 1], [50, 2], [50, 1], [60, 2], [60, 1]]
    labels = np.zeros(8, dtype=int)
    labels[[3, 4]] = 1
    for convention, want, dist in (("ours", 3, 1.0), ("original", 4, 1.0)):
        metric = make_metric(TINY, None, "l1", convention)
        idx, d = nearest_by_class(metric, points, labels, np.array([2]), np.array([1]))
        assert (int(idx[0]), float(d[0])) == (want, dist), convention


def test_original_convention_ties_are_exact():
    # the original takes np.argmin of its matrix row: a value one ulp above the minimum does not tie
    assert make_metric(TINY, None, "l1", "original").tolerance == 0
    assert first_min(np.array([0.3, 0.1 + 5e-10, 0.1]), tolerance=0) == 2
    assert first_min(np.array([0.3, 0.1, 0.1]), tolerance=0) == 1


def test_grid_index_finds_grid_points_and_rejects_others():
    points = grid_points(TINY)
    assert grid_index(make_metric(TINY).levels, points).tolist() == list(range(8))
    off = np.array([[35.0, 2.0], [40.0, 3.0], [np.nan, 1.0], [60.0, 1.0]])
    assert grid_index(make_metric(TINY).levels, off).tolist() == [-1, -1, -1, 7]


def test_make_metric_builds_the_grid_from_the_spec_when_none_is_given():
    spec = load_dataset_spec("heart_disease")
    for name in ("gower", "l1", "l2"):
        a, b = make_metric(spec, build_grid(spec), name), make_metric(spec, None, name)
        assert a.weights.tolist() == b.weights.tolist()
    with pytest.raises(ValueError, match="unknown distance convention"):
        make_metric(spec, None, "l1", "paper")


def test_original_convention_breaks_ties_like_the_original_argmin(monkeypatch):
    # Heart disease L1 (MADs 15, 0.5, 20, 45) from grid point 1043 = (55, Male, 170, 285) to
    #   155 = (30, Male, 170, 165):  25/15 + 0 + 0 + 120/45          = 1.6666666666666667 + 2.6666666666666665
    #   661 = (45, Male, 150, 165):  10/15 + 0 + 20/20 + 120/45      = 1.6666666666666665 + 2.6666666666666665
    # Different partial sums, one float64 total (4.333333333333333): the original's np.argmin over its matrix row
    # takes the first in grid order, 155. A separable transform keeps 661 (the smaller partial sum) and loses 155,
    # so on grids this small the original convention scans instead.
    spec = load_dataset_spec("heart_disease")
    metric, points = make_metric(spec, None, "l1", "original"), grid_points(spec)
    assert points[[1043, 155, 661]].tolist() == [[55, 1, 170, 285], [30, 1, 170, 165], [45, 1, 150, 165]]
    assert _d(metric, points[1043], points[155]) == _d(metric, points[1043], points[661]) == 4.333333333333333
    assert 25 / 15 + 120 / 45 == ((10 / 15 + 0) + 20 / 20) + 120 / 45 == 4.333333333333333
    labels = np.zeros(len(points), dtype=int)
    labels[[155, 661]] = 1
    idx, dist = nearest_by_class(metric, points, labels, np.array([1043]), np.array([1]))
    assert (int(idx[0]), float(dist[0])) == (155, 4.333333333333333)
    monkeypatch.setattr("selfexplain.tabular.distances.BRUTE_FORCE_PAIRS", 0)  # force the transform
    idx, dist = nearest_by_class(metric, points, labels, np.array([1043]), np.array([1]))
    assert (int(idx[0]), float(dist[0])) == (661, 4.333333333333333)  # same distance, another point


def test_original_convention_scan_equals_the_transform_in_distance(monkeypatch):
    # the scan (small grids) and the transform (large ones) find the same minimum distance, bit for bit: rounding is
    # monotone, so min-plus passes in feature order reach the smallest left-to-right sum
    spec = load_dataset_spec("heart_disease")
    points = grid_points(spec)
    labels = (np.random.default_rng(3).random(len(points)) < 0.2).astype(int)
    queries = np.arange(len(points))
    for name in ("l1", "l2"):
        metric = make_metric(spec, None, name, "original")
        scan = nearest_by_class(metric, points, labels, queries, np.ones_like(queries))
        with monkeypatch.context() as patch:
            patch.setattr("selfexplain.tabular.distances.BRUTE_FORCE_PAIRS", 0)
            transform = nearest_by_class(metric, points, labels, queries, np.ones_like(queries))
        assert np.array_equal(scan[1], transform[1])
        assert np.mean(scan[0] == transform[0]) > 0.9  # only exact-distance ties may pick another point
