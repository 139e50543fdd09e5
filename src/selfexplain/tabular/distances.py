"""Distances between tabular rows, computed in float64 from the feature definitions.

Scale statistics (range, MAD, std) always come from the *full grid*, never from whichever rows are being compared,
so a distance does not change with the sample. Categorical features cost 0 when equal and 1 when different under
every metric (the original L1/L2 matrices treated sex numerically, contradicting their own prompts).

All metrics have the form  d(x, y) = sum_f w_f * |x_f - y_f| ** p  over numeric features plus
sum_c w_c * [x_c != y_c] over categorical ones. Because they are sums of per-feature costs and every search is over
a full Cartesian grid, the nearest point with a given label comes from a separable distance transform for all grid
points at once, in time about N * sum(levels) and memory linear in N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from selfexplain.tabular.features import DatasetSpec

METRICS = ("gower", "l1", "l2")
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Metric:
    """Per-feature weights and exponent of one distance over one dataset."""

    name: str
    columns: tuple[str, ...]
    weights: np.ndarray
    power: int
    categorical: np.ndarray  # bool mask over columns
    levels: tuple[tuple[float, ...], ...]  # grid levels of each column, in grid order

    def pairwise(self, x: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Distances from one row `x` (features,) to every row of `ys` (n, features)."""
        diff = np.abs(ys - x)
        if self.categorical.any():
            diff[:, self.categorical] = (diff[:, self.categorical] > 0).astype(np.float64)
        if self.power == 2:
            diff[:, ~self.categorical] **= 2
        return diff @ self.weights

    def rowwise(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Distances between matching rows of `xs` and `ys` (NaN where either row has NaN)."""
        diff = np.abs(np.asarray(ys, dtype=np.float64) - np.asarray(xs, dtype=np.float64))
        cat = self.categorical
        if cat.any():
            diff[:, cat] = np.where(np.isnan(diff[:, cat]), np.nan, (diff[:, cat] > 0).astype(np.float64))
        if self.power == 2:
            diff[:, ~cat] **= 2
        return diff @ self.weights


def _mad(values: np.ndarray) -> float:
    return float(np.median(np.abs(values - np.median(values))))


def make_metric(spec: DatasetSpec, grid: pd.DataFrame, name: str = "gower") -> Metric:
    """Build a metric whose scale statistics come from the full grid of `spec`."""
    if name not in METRICS:
        raise ValueError(f"unknown distance metric {name!r}; choose one of {list(METRICS)}")
    weights = []
    categorical = []
    n_features = len(spec.features)
    for f in spec.features:
        col = grid[f.column].to_numpy(dtype=np.float64)
        categorical.append(f.is_categorical)
        if f.is_categorical:
            scale = 1.0
        elif name == "gower":
            scale = float(col.max() - col.min())
        elif name == "l1":
            scale = _mad(col)
        else:
            scale = float(col.std(ddof=0))
        if scale == 0:
            raise ValueError(f"feature {f.column!r} of {spec.name!r} has zero spread; cannot scale {name}")
        weight = 1.0 / scale
        if name == "gower":
            weight /= n_features
        weights.append(weight)
    return Metric(
        name=name,
        columns=tuple(spec.columns),
        weights=np.asarray(weights, dtype=np.float64),
        power=2 if name == "l2" else 1,
        categorical=np.asarray(categorical, dtype=bool),
        levels=tuple(f.levels for f in spec.features),
    )


def first_min(d: np.ndarray) -> int:
    """Index of the minimum, where values within TIE_TOLERANCE of it tie and the first in order wins."""
    return int(np.flatnonzero(d <= d.min() + TIE_TOLERANCE)[0])


def _axis_costs(metric: Metric, j: int) -> np.ndarray:
    """Cost matrix G[i, k] of moving feature j from level i to level k."""
    levels = np.asarray(metric.levels[j], dtype=np.float64)
    if metric.categorical[j]:
        return metric.weights[j] * (levels[:, None] != levels[None, :]).astype(np.float64)
    return metric.weights[j] * np.abs(levels[:, None] - levels[None, :]) ** metric.power


def _min_plus_pass(values: np.ndarray, sources: np.ndarray, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One separable pass along the last axis: new[m, i] = min_k values[m, k] + costs[i, k].

    Near-ties (within TIE_TOLERANCE) go to the candidate whose source has the smaller grid index. Rows are
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
        eligible = cand <= best + TIE_TOLERANCE
        src = np.where(eligible, sources[start : start + chunk, None, :], sentinel)
        k = src.argmin(axis=2)
        out_s[start : start + chunk] = np.take_along_axis(src, k[..., None], axis=2)[..., 0]
        out_v[start : start + chunk] = np.take_along_axis(cand, k[..., None], axis=2)[..., 0]
    return out_v, out_s


def nearest_of_class(metric: Metric, grid_class: np.ndarray, target: int) -> np.ndarray:
    """For every grid point, the grid index of the nearest point labelled `target` (-1 when none is).

    `grid_class` holds one label per row of the full Cartesian grid, in grid order. Every metric here is a sum of
    per-feature costs, so the nearest labelled point follows from one min-plus pass per feature (a separable
    distance transform): about N * sum(levels) operations for N grid points, instead of a search per query.
    Distances within TIE_TOLERANCE tie, and the first point in grid order wins, as in the original study.
    """
    shape = tuple(len(levels) for levels in metric.levels)
    n = int(np.prod(shape))
    if len(grid_class) != n:
        raise ValueError(f"expected one label per grid point ({n}), got {len(grid_class)}")
    member = np.asarray(grid_class) == target
    values = np.where(member, 0.0, np.inf).reshape(shape)
    sources = np.where(member, np.arange(n, dtype=np.int64), np.iinfo(np.int64).max).reshape(shape)
    for axis in range(len(shape)):
        v = np.moveaxis(values, axis, -1)
        s = np.moveaxis(sources, axis, -1)
        moved = v.shape
        v, s = _min_plus_pass(v.reshape(-1, moved[-1]), s.reshape(-1, moved[-1]), _axis_costs(metric, axis))
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
