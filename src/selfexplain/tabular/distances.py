"""Distances between tabular rows, computed in float64 from the feature definitions.

Scale statistics (range, MAD, std) always come from the *full grid*, never from whichever rows are being compared,
so a distance does not change with the sample. Categorical features cost 0 when equal and 1 when different under
every metric (the original L1/L2 matrices treated sex numerically, contradicting their own prompts).

All metrics have the form  d(x, y) = sum_f w_f * |x_f - y_f| ** p  over numeric features plus
sum_c w_c * [x_c != y_c] over categorical ones, which lets the nearest-point search run one query row against all
candidates at a time with memory linear in the grid size.
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
    categorical_levels: tuple[tuple[float, ...], ...]  # levels of each categorical column, in column order

    @property
    def tree_p(self) -> int:
        """Minkowski p of the embedded space (squared-L2 becomes Euclidean, whose order is the same)."""
        return self.power

    def tree_radius(self, tree_distance: np.ndarray) -> np.ndarray:
        """Embedded-space radius that holds every point within TIE_TOLERANCE of the nearest one."""
        slack = 1e-7 + 10 * TIE_TOLERANCE
        if self.power == 2:
            return np.sqrt(tree_distance**2 + slack) + 1e-12
        return tree_distance + slack

    def embed(self, values: np.ndarray) -> np.ndarray:
        """Coordinates in which this metric is a plain Minkowski distance (p = 1, or Euclidean for l2).

        Numeric features are scaled by their weight (square root of it for l2); a categorical feature becomes a
        one-hot block whose two differing coordinates add up to its weight.
        """
        values = np.asarray(values, dtype=np.float64)
        blocks = []
        cat_i = 0
        for j, is_cat in enumerate(self.categorical):
            w = self.weights[j]
            if not is_cat:
                blocks.append(values[:, [j]] * (np.sqrt(w) if self.power == 2 else w))
                continue
            levels = np.asarray(self.categorical_levels[cat_i], dtype=np.float64)
            cat_i += 1
            scale = np.sqrt(w / 2) if self.power == 2 else w / 2
            blocks.append((values[:, [j]] == levels[None, :]).astype(np.float64) * scale)
        return np.hstack(blocks)

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
        categorical_levels=tuple(f.levels for f in spec.features if f.is_categorical),
    )


def first_min(d: np.ndarray) -> int:
    """Index of the minimum, where values within TIE_TOLERANCE of it tie and the first in order wins."""
    return int(np.flatnonzero(d <= d.min() + TIE_TOLERANCE)[0])


def nearest_by_class(
    metric: Metric,
    points: np.ndarray,
    point_class: np.ndarray,
    queries: np.ndarray,
    wanted_class: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest point whose class equals `wanted_class[i]`, for each query row.

    Classes are small integers (0/1); a negative class, or a query with NaN, has nothing to search and gets
    index -1 and distance NaN. Ties (distances within TIE_TOLERANCE) go to the first point in grid order, as in
    the original study. A KD-tree per class finds the nearest distance; a ball query at that distance plus the
    tolerance collects the tied points, whose exact float64 distances then decide. Memory is linear in the
    number of points.
    """
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64)
    queries = np.asarray(queries, dtype=np.float64)
    idx = np.full(len(queries), -1, dtype=np.int64)
    dist = np.full(len(queries), np.nan)
    wanted_class = np.asarray(wanted_class)
    searchable = (wanted_class >= 0) & ~np.isnan(queries).any(axis=1)
    for c in np.unique(wanted_class[searchable]):
        members = np.flatnonzero(point_class == c)
        rows = np.flatnonzero(searchable & (wanted_class == c))
        if members.size == 0 or rows.size == 0:
            continue
        tree = cKDTree(metric.embed(points[members]))
        q_embedded = metric.embed(queries[rows])
        tree_d, _ = tree.query(q_embedded, k=1, p=metric.tree_p)
        radius = metric.tree_radius(tree_d)
        for r, q, neighbours in zip(
            rows, queries[rows], tree.query_ball_point(q_embedded, radius, p=metric.tree_p), strict=True
        ):
            cand = members[np.sort(np.asarray(neighbours, dtype=np.int64))]
            d = metric.pairwise(q, points[cand])
            j = first_min(d)
            idx[r], dist[r] = cand[j], d[j]
    return idx, dist
