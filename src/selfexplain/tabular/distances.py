"""Distances between tabular rows, computed in float64 from the feature definitions.

Scale statistics (range, MAD, std) always come from the *full grid*, never from whichever rows are being compared,
so a distance does not change with the sample.

Two conventions (`CONVENTIONS`):
* ``ours`` (default): categorical features cost 0 when equal and 1 when different under every metric, as the
  original study's prompts promise.
* ``original``: the original study's distance matrices, so its figures can be reproduced. Its Gower matrix already
  costs a categorical feature 0/1, so Gower is the same under both conventions (the original stored it as float32,
  within 1 float32 ulp of ours). Its L1 and L2 matrices treat every feature as a number: heart disease's sex codes
  1/2 have MAD 0.5 and std 0.5, so a sex flip costs 2.0 instead of 1. The arithmetic is the original's too
  (|Δ|^p / scale per feature, summed in feature order), giving its float64 matrices bit for bit, and ties are exact
  (`np.argmin`, `RCF == 0`) rather than within TIE_TOLERANCE.

All metrics have the form  d(x, y) = sum_f c_f(|x_f - y_f|)  with one cost per feature. Because they are sums of
per-feature costs and every search is over a full Cartesian grid, the nearest point with a given label comes from a
separable distance transform for all grid points at once, in time about N * sum(levels) and memory linear in N.
Under the original convention the transform still gives the exact minimum, but which of several points at exactly
that distance it returns can differ from the original's `np.argmin` (partial sums that differ can round to the same
total), so on grids up to BRUTE_FORCE_PAIRS point pairs (the original's three grids) the search is a direct scan
in grid order, as the original's was.

Nothing here imports pandas: a grid is anything whose `grid[column]` gives the column's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from selfexplain.tabular.features import DatasetSpec

METRICS = ("gower", "l1", "l2")
CONVENTIONS = ("ours", "original")
TIE_TOLERANCE = 1e-9
BRUTE_FORCE_PAIRS = 20_000_000  # original convention: scan (grid points x class members) up to this many pairs


@dataclass(frozen=True)
class Metric:
    """Per-feature weights (or scales) and exponent of one distance over one dataset.

    Under the ``ours`` convention the cost of feature f is ``weights[f] * |Δ|**power`` (``weights[f] * [Δ != 0]``
    for a categorical feature). Under ``original`` it is ``|Δ|**power / scales[f]`` for every feature, summed in
    feature order, as the original's matrices were built.
    """

    name: str
    columns: tuple[str, ...]
    weights: np.ndarray
    power: int
    categorical: np.ndarray  # bool mask over columns (all False under the original convention for L1/L2)
    levels: tuple[tuple[float, ...], ...]  # grid levels of each column, in grid order
    convention: str = "ours"
    scales: np.ndarray | None = None  # set when costs are |Δ|**power / scale, summed left to right
    tolerance: float = TIE_TOLERANCE  # distances closer than this tie (first in grid order wins)

    @property
    def original_arithmetic(self) -> bool:
        """True for the original's L1/L2: |Δ|**power / scale summed in feature order, exact ties."""
        return self.scales is not None

    def feature_cost(self, j: int, diff: np.ndarray) -> np.ndarray:
        """Cost of feature j for absolute differences `diff` (any shape)."""
        if self.scales is not None:
            return diff**self.power / self.scales[j]
        if self.categorical[j]:
            return self.weights[j] * (diff > 0).astype(np.float64)
        return self.weights[j] * diff**self.power

    def _summed(self, diff: np.ndarray) -> np.ndarray:
        """Row sums of per-feature costs of the absolute differences `diff` (n, features)."""
        if self.scales is not None:  # left to right from 0, as the original's matrices: ((c1 + c2) + c3) + ...
            total = np.zeros(len(diff))
            for j in range(len(self.scales)):
                total = total + self.feature_cost(j, diff[:, j])
            return total
        cat = self.categorical
        if cat.any():
            diff[:, cat] = np.where(np.isnan(diff[:, cat]), np.nan, (diff[:, cat] > 0).astype(np.float64))
        if self.power == 2:
            diff[:, ~cat] **= 2
        return diff @ self.weights

    def pairwise(self, x: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Distances from one row `x` (features,) to every row of `ys` (n, features)."""
        return self._summed(np.abs(np.asarray(ys, dtype=np.float64) - np.asarray(x, dtype=np.float64)))

    def rowwise(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Distances between matching rows of `xs` and `ys` (NaN where either row has NaN)."""
        return self._summed(np.abs(np.asarray(ys, dtype=np.float64) - np.asarray(xs, dtype=np.float64)))


def _mad(values: np.ndarray) -> float:
    return float(np.median(np.abs(values - np.median(values))))


def _cartesian(levels: tuple[tuple[float, ...], ...]) -> np.ndarray:
    mesh = np.meshgrid(*[np.asarray(lv, dtype=np.float64) for lv in levels], indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1)


def grid_points(spec: DatasetSpec) -> np.ndarray:
    """The full grid of `spec` as an (N, features) float64 array, first feature outermost (grid order)."""
    return _cartesian(tuple(f.levels for f in spec.features))


def grid_index(levels: tuple[tuple[float, ...], ...], values: np.ndarray) -> np.ndarray:
    """Grid row of each row of `values` (n, features): -1 where a value is not one of its feature's levels (or NaN).

    Mixed-radix arithmetic on level positions (grid order: first feature outermost), O(n) with no loop per row.
    """
    values = np.asarray(values, dtype=np.float64)
    ids = np.zeros(len(values), dtype=np.int64)
    ok = np.ones(len(values), dtype=bool)
    for j, feature_levels in enumerate(levels):
        lv = np.asarray(feature_levels, dtype=np.float64)
        order = np.argsort(lv, kind="stable")
        col = values[:, j]
        pos = np.clip(np.searchsorted(lv[order], col), 0, len(lv) - 1)
        ok &= (lv[order][pos] == col) & ~np.isnan(col)
        ids = ids * len(lv) + order[pos]
    ids[~ok] = -1
    return ids


def make_metric(
    spec: DatasetSpec, grid: Mapping[str, Any] | Any | None = None, name: str = "gower", convention: str = "ours"
) -> Metric:
    """Build a metric whose scale statistics come from the full grid of `spec` (`grid`, or built from the spec)."""
    if name not in METRICS:
        raise ValueError(f"unknown distance metric {name!r}; choose one of {list(METRICS)}")
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown distance convention {convention!r}; choose one of {list(CONVENTIONS)}")
    if grid is None:
        points = grid_points(spec)
        grid = {f.column: points[:, j] for j, f in enumerate(spec.features)}
    numeric_codes = convention == "original" and name != "gower"
    weights, scales, categorical = [], [], []
    n_features = len(spec.features)
    for f in spec.features:
        col = np.asarray(grid[f.column], dtype=np.float64)
        is_categorical = f.is_categorical and not numeric_codes
        categorical.append(is_categorical)
        if is_categorical:
            scale = 1.0
        elif name == "gower":
            scale = float(col.max() - col.min())
        elif name == "l1":
            scale = _mad(col)
        else:
            scale = float(col.std(ddof=0))
        if scale == 0:
            raise ValueError(f"feature {f.column!r} of {spec.name!r} has zero spread; cannot scale {name}")
        scales.append(scale)
        weights.append(1.0 / scale / (n_features if name == "gower" else 1))
    return Metric(
        name=name,
        columns=tuple(spec.columns),
        weights=np.asarray(weights, dtype=np.float64),
        power=2 if name == "l2" else 1,
        categorical=np.asarray(categorical, dtype=bool),
        levels=tuple(f.levels for f in spec.features),
        convention=convention,
        scales=np.asarray(scales, dtype=np.float64) if numeric_codes else None,
        tolerance=0.0 if numeric_codes else TIE_TOLERANCE,
    )


def first_min(d: np.ndarray, tolerance: float = TIE_TOLERANCE) -> int:
    """Index of the minimum, where values within `tolerance` of it tie and the first in order wins."""
    return int(np.flatnonzero(d <= d.min() + tolerance)[0])


def _axis_costs(metric: Metric, j: int) -> np.ndarray:
    """Cost matrix G[i, k] of moving feature j from level i to level k."""
    levels = np.asarray(metric.levels[j], dtype=np.float64)
    return metric.feature_cost(j, np.abs(levels[:, None] - levels[None, :]))


def _min_plus_pass(
    values: np.ndarray, sources: np.ndarray, costs: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """One separable pass along the last axis: new[m, i] = min_k values[m, k] + costs[i, k].

    Near-ties (within `tolerance`) go to the candidate whose source has the smaller grid index. Rows are
    processed in chunks so memory stays linear in the grid size.
    """
    n_rows, width = values.shape
    out_v = np.empty_like(values)
    out_s = np.empty_like(sources)
    chunk = max(1, 4_000_000 // (width * width))
    sentinel = np.iinfo(np.int64).max
    for start in range(0, n_rows, chunk):
        v = values[start : start + chunk]
        cand = v[:, None, :] + costs[None, :, :]
        best = cand.min(axis=2, keepdims=True)
        eligible = cand <= best + tolerance
        src = np.where(eligible, sources[start : start + chunk, None, :], sentinel)
        k = src.argmin(axis=2)
        out_s[start : start + chunk] = np.take_along_axis(src, k[..., None], axis=2)[..., 0]
        out_v[start : start + chunk] = np.take_along_axis(cand, k[..., None], axis=2)[..., 0]
    return out_v, out_s


def _nearest_by_scan(metric: Metric, members: np.ndarray) -> np.ndarray:
    """Grid index of the nearest of `members` (grid indices, ascending) from every grid point, by direct scan.

    Costs are summed in feature order with the metric's own arithmetic and the first minimum wins (`np.argmin`), so
    the result is the original's argmin over its matrix row, ties included.
    """
    points = _cartesian(metric.levels)
    targets = points[members]
    out = np.empty(len(points), dtype=np.int64)
    chunk = max(1, 2_000_000 // max(1, len(members)))
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        total = np.zeros((len(block), len(members)))
        for j in range(len(metric.levels)):
            total = total + metric.feature_cost(j, np.abs(block[:, j, None] - targets[None, :, j]))
        out[start : start + chunk] = members[np.argmin(total, axis=1)]
    return out


def nearest_of_class(metric: Metric, grid_class: np.ndarray, target: int) -> np.ndarray:
    """For every grid point, the grid index of the nearest point labelled `target` (-1 when none is).

    `grid_class` holds one label per row of the full Cartesian grid, in grid order. Every metric here is a sum of
    per-feature costs, so the nearest labelled point follows from one min-plus pass per feature (a separable
    distance transform): about N * sum(levels) operations for N grid points, instead of a search per query.
    The passes run in feature order, so a distance accumulates as c_1 + c_2 + ... exactly as `Metric.rowwise`
    sums it under the original convention. Distances within `metric.tolerance` tie, and the first point in grid
    order wins, as in the original study; under the original convention, grids up to BRUTE_FORCE_PAIRS pairs are
    scanned directly instead, so that exact ties resolve as the original's `np.argmin` did (module docstring).
    """
    shape = tuple(len(levels) for levels in metric.levels)
    n = int(np.prod(shape))
    if len(grid_class) != n:
        raise ValueError(f"expected one label per grid point ({n}), got {len(grid_class)}")
    member = np.asarray(grid_class) == target
    n_members = int(member.sum())
    if n_members == 0:
        return np.full(n, -1, dtype=np.int64)
    if metric.original_arithmetic and n * n_members <= BRUTE_FORCE_PAIRS:
        return _nearest_by_scan(metric, np.flatnonzero(member))
    values = np.where(member, 0.0, np.inf).reshape(shape)
    sources = np.where(member, np.arange(n, dtype=np.int64), np.iinfo(np.int64).max).reshape(shape)
    for axis in range(len(shape)):
        v = np.moveaxis(values, axis, -1)
        s = np.moveaxis(sources, axis, -1)
        moved = v.shape
        v, s = _min_plus_pass(
            v.reshape(-1, moved[-1]), s.reshape(-1, moved[-1]), _axis_costs(metric, axis), metric.tolerance
        )
        values = np.moveaxis(v.reshape(moved), -1, axis)
        sources = np.moveaxis(s.reshape(moved), -1, axis)
    flat = sources.reshape(-1)
    return np.where(flat == np.iinfo(np.int64).max, -1, flat)


def nearest_by_class(
    metric: Metric,
    points: np.ndarray,
    point_class: np.ndarray,
    query_rows: np.ndarray,
    wanted_class: np.ndarray,
    transforms: dict[int, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest grid point labelled `wanted_class[i]` from grid point `query_rows[i]`: (grid index, distance).

    `points` is the full grid in grid order and `point_class` its labels. A negative wanted class or query row
    has nothing to search and gets index -1 and distance NaN. Distances are recomputed directly in float64.
    Pass the same `transforms` dict to calls over the same labels to compute each class's transform once.
    """
    transforms = {} if transforms is None else transforms
    query_rows = np.asarray(query_rows, dtype=np.int64)
    wanted_class = np.asarray(wanted_class, dtype=np.int64)
    idx = np.full(len(query_rows), -1, dtype=np.int64)
    for c in np.unique(wanted_class[(wanted_class >= 0) & (query_rows >= 0)]):
        rows = np.flatnonzero((wanted_class == c) & (query_rows >= 0))
        if int(c) not in transforms:
            transforms[int(c)] = nearest_of_class(metric, point_class, int(c))
        idx[rows] = transforms[int(c)][query_rows[rows]]
    dist = np.full(len(query_rows), np.nan)
    found = idx >= 0
    dist[found] = metric.rowwise(points[query_rows[found]], points[idx[found]])
    return idx, dist
