"""Decision-boundary grids: the full Cartesian product of a dataset's feature levels.

Row order is lexicographic in feature order (first feature outermost), so `id` equals the row index, exactly as in
the original study's prebuilt grids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from selfexplain.tabular.features import DatasetSpec


def build_grid(spec: DatasetSpec) -> pd.DataFrame:
    """Columns: `id` (row index), `description` (the text a model sees), one float64 column per feature."""
    axes = [np.asarray(f.levels, dtype=np.float64) for f in spec.features]
    mesh = np.meshgrid(*axes, indexing="ij")
    data = {f.column: m.reshape(-1) for f, m in zip(spec.features, mesh, strict=True)}
    frame = pd.DataFrame(data)
    label_cols = []
    for f in spec.features:
        lookup = dict(zip(f.levels, f.labels, strict=True))
        label_cols.append(frame[f.column].map(lookup).map(lambda lab, f=f: f.description.format(label=lab)))
    description = label_cols[0]
    for col in label_cols[1:]:
        description = description + "\n" + col
    frame.insert(0, "description", description.astype(str))
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    return frame


def lookup_rows(spec: DatasetSpec, grid: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    """Row id for each row of `values` (n x features), -1 where the point is not on the grid (or has NaN).

    Uses mixed-radix arithmetic on level positions, so it is O(n) with no Python loop per row.
    """
    values = np.asarray(values, dtype=np.float64)
    ids = np.zeros(len(values), dtype=np.int64)
    ok = np.ones(len(values), dtype=bool)
    for j, f in enumerate(spec.features):
        levels = np.asarray(f.levels, dtype=np.float64)
        order = np.argsort(levels, kind="stable")
        col = values[:, j]
        pos = np.searchsorted(levels[order], col)
        pos = np.clip(pos, 0, len(levels) - 1)
        found = levels[order][pos] == col
        ok &= found & ~np.isnan(col)
        ids = ids * len(levels) + order[pos]
    ids[~ok] = -1
    return ids
