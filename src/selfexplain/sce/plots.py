"""Figures for the sce study, written so that a reader can interpret them without the code.

* `plot_decision_boundary`: the model's own first-pass labels over the grid, with a sample of its
  counterfactuals drawn as arrows coloured by whether the model itself agrees with them. A panel shows a slice of
  the grid; an arrow whose counterfactual leaves that slice (it also changes a feature the panel does not show) is
  dashed, because the colour under its tip is then not the model's answer at the counterfactual.
* `plot_validity_vs_minimality`: the paper's validity vs absolute-minimality scatter, one point per
  (model, dataset, prompt). Points closer than a marker are spread sideways (joined to their true place), and runs
  without a valid counterfactual (minimality undefined) sit in a separate band, never at 0.

Both return what they drew, so callers and tests can check what a figure claims.

How figures are made and saved (Agg canvas, atomic writes) is `selfexplain.figures`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from selfexplain.errors import InputError
from selfexplain.figures import new_figure, place_legend_and_caption, save_png
from selfexplain.sce import tables as T
from selfexplain.tabular.features import DatasetSpec, Feature

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Cell colours for the model's first-pass answer: options[0], options[1], no readable answer.
LABEL_COLOURS = ("#9ecae1", "#fdd0a2", "#e0e0e0")
# Arrow colours: valid, invalid, not judged (off the grid, or no readable answer there / at the start).
ARROW_COLOURS = {"valid": "#006d2c", "invalid": "#cb181d", "not judged": "#252525"}
PROMPT_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")


# --------------------------------------------------------------------------------------------- feature axes


def _shorten(label: str, limit: int) -> str:
    """Cut a long level label at a word boundary, so 24 education levels fit on one axis."""
    if len(label) <= limit:
        return label
    cut = label[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;-/") + "…"


def _axis_label(feature: Feature) -> str:
    text = feature.key if feature.key == feature.column else f"{feature.key} ({feature.column})"
    return f"{text} [{feature.unit}]" if feature.unit else text


def _held_text(feature: Feature, value: float) -> str:
    unit = f" {feature.unit}" if feature.unit else ""
    return f"{feature.key} = {feature.label_of(value)}{unit}"


def _held_level(feature: Feature) -> float:
    """Median level for ordered features; the first listed level for a categorical one."""
    if feature.is_categorical:
        return feature.levels[0]
    ordered = sorted(feature.levels)
    return ordered[(len(ordered) - 1) // 2]


@dataclass(frozen=True)
class _Axis:
    """Plot coordinates of one feature: its values, or level positions when levels carry words."""

    feature: Feature

    @property
    def by_position(self) -> bool:
        return self.feature.is_categorical or self.feature.has_text_labels

    def coords(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if not self.by_position:
            return values.copy()
        levels = np.asarray(self.feature.levels, dtype=np.float64)
        out = np.full(values.shape, np.nan)
        for i, level in enumerate(levels):
            out[values == level] = i
        increasing = len(levels) > 1 and bool(np.all(np.diff(levels) > 0))
        if not self.feature.is_categorical and increasing:
            # Off-grid ordinal values: interpolate between level positions, extrapolate with the end steps.
            off = np.isnan(out) & np.isfinite(values)
            positions = np.arange(len(levels), dtype=np.float64)
            inner = np.interp(values, levels, positions)
            low = (values - levels[0]) / (levels[1] - levels[0])
            high = len(levels) - 1 + (values - levels[-1]) / (levels[-1] - levels[-2])
            guess = np.where(values < levels[0], low, np.where(values > levels[-1], high, inner))
            out[off] = guess[off]
        return out

    @property
    def centres(self) -> np.ndarray:
        return np.sort(self.coords(np.asarray(self.feature.levels)))

    @property
    def edges(self) -> np.ndarray:
        c = self.centres
        if len(c) == 1:
            return np.array([c[0] - 0.5, c[0] + 0.5])
        mid = (c[1:] + c[:-1]) / 2
        return np.concatenate([[c[0] - (c[1] - c[0]) / 2], mid, [c[-1] + (c[-1] - c[-2]) / 2]])

    def cell_index(self, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.centres, self.coords(values))

    def decorate(self, ax: Axes, which: str, max_ticks: int, label_chars: int) -> None:
        set_label = ax.set_xlabel if which == "x" else ax.set_ylabel
        set_lim = ax.set_xlim if which == "x" else ax.set_ylim
        set_label(_axis_label(self.feature), fontsize=9.5)
        edges = self.edges
        set_lim(edges[0], edges[-1])
        if not self.by_position:
            axis = ax.xaxis if which == "x" else ax.yaxis
            if len(self.feature.levels) <= 12:
                axis.set_ticks(self.centres)  # few levels: exactly the grid values, no "1.5 bedrooms"
            elif all(float(v).is_integer() for v in self.feature.levels):
                from matplotlib.ticker import MaxNLocator

                axis.set_major_locator(MaxNLocator(nbins=8, integer=True))
            return
        step = max(1, math.ceil(len(self.feature.levels) / max_ticks))
        positions = list(range(0, len(self.feature.levels), step))
        labels = [_shorten(self.feature.labels[i], label_chars) for i in positions]
        if which == "x":
            long = max(len(label) for label in labels) > 8
            ax.set_xticks(positions, labels, rotation=35 if long else 0, ha="right" if long else "center")
        else:
            ax.set_yticks(positions, labels)
        ax.tick_params(axis=which, labelsize=8)


# ----------------------------------------------------------------------------------------- decision boundary


def _answer_codes(spec: DatasetSpec, grid: pd.DataFrame, scores: pd.DataFrame) -> np.ndarray:
    """0/1 per grid row for the two options, 2 where the model's answer is unreadable or absent."""
    codes = np.full(len(grid), 2, dtype=np.int64)
    if T.ROW_ID not in scores or T.ANSWER not in scores:
        return codes
    position = pd.Series(np.arange(len(grid)), index=grid["id"].to_numpy())
    where = position.reindex(scores[T.ROW_ID].to_numpy()).to_numpy()
    mapping = {spec.options[0]: 0, spec.options[1]: 1}
    answer = scores[T.ANSWER].map(mapping).to_numpy(dtype=np.float64)
    ok = ~np.isnan(where) & ~np.isnan(answer)
    codes[where[ok].astype(np.int64)] = answer[ok].astype(np.int64)
    return codes


@dataclass
class _Arrows:
    """Drawable counterfactual rows: start values, counterfactual values, validity class, off-grid flag."""

    start: np.ndarray  # n x features
    end: np.ndarray  # n x features
    status: np.ndarray  # "valid" / "invalid" / "not judged"
    off_grid: np.ndarray  # bool
    rows: np.ndarray  # position of each in the scores table

    @classmethod
    def from_scores(cls, spec: DatasetSpec, grid: pd.DataFrame, scores: pd.DataFrame) -> _Arrows:
        n_feat = len(spec.features)
        cf_cols = T.cf_columns(spec)
        empty = cls(
            np.empty((0, n_feat)), np.empty((0, n_feat)), np.empty(0, object), np.empty(0, bool), np.empty(0, np.int64)
        )
        if T.ROW_ID not in scores or any(c not in scores for c in cf_cols) or scores.empty:
            return empty
        by_id = grid.set_index("id")[spec.columns]
        ids = scores[T.ROW_ID].to_numpy()
        known = np.isin(ids, by_id.index.to_numpy())
        end = scores[cf_cols].to_numpy(dtype=np.float64)
        keep = known & np.isfinite(end).all(axis=1)
        if not keep.any():
            return empty
        rows = scores[keep]
        start = by_id.loc[rows[T.ROW_ID].to_numpy()].to_numpy(dtype=np.float64)
        valid = rows["valid"].to_numpy(dtype=np.float64) if "valid" in rows else np.full(len(rows), np.nan)
        status = np.where(valid == 1, "valid", np.where(valid == 0, "invalid", "not judged")).astype(object)
        if "cf_row_id" in rows:
            off_grid = rows["cf_row_id"].to_numpy(dtype=np.int64) < 0
        else:
            off_grid = np.zeros(len(rows), dtype=bool)
        return cls(start, end[keep], status, off_grid, np.flatnonzero(keep))

    def __len__(self) -> int:
        return len(self.start)


def _pick_arrows(
    arrows: _Arrows, others: list[int], held: list[float], max_arrows: int, seed: int
) -> tuple[np.ndarray, bool]:
    """Indices to draw in one panel, and whether they had to be projected from outside the panel's slice."""
    if len(arrows) == 0 or max_arrows <= 0:
        return np.empty(0, dtype=np.int64), False
    if others:
        match = (arrows.start[:, others] == np.asarray(held)).sum(axis=1)
    else:
        match = np.zeros(len(arrows), dtype=np.int64)
    best = int(match.max())
    candidates = np.flatnonzero(match == best)
    projected = best < len(others)
    rng = np.random.default_rng(seed)
    if len(candidates) > max_arrows:
        candidates = np.sort(rng.choice(candidates, size=max_arrows, replace=False))
    return candidates, projected


# How a counterfactual shows in a panel (see `counterfactual_kind`).
ARROW, UNCHANGED, OFF_PANEL = "arrow", "unchanged", "off_panel"


@dataclass(frozen=True)
class DrawnCounterfactual:
    """One counterfactual as drawn in one panel of a decision-boundary figure."""

    panel: tuple[str, str]  # feature keys on the x and y axes
    row: int  # position in the scores table
    status: str  # valid / invalid / not judged (the arrow's colour)
    kind: str  # ARROW, UNCHANGED (x′ = x) or OFF_PANEL (x′ differs from x only in features not shown)
    exact: bool  # x and x′ both in the panel's slice: the cells under both ends are the model's answers there
    off_grid: bool  # x′ off the grid (an × at its end)

    @property
    def dashed(self) -> bool:
        return self.kind == ARROW and not self.exact


@dataclass(frozen=True)
class BoundaryFigure:
    """What `plot_decision_boundary` drew: every counterfactual per panel, and the legend's entries in order."""

    drawn: list[DrawnCounterfactual]
    legend: list[str]


def counterfactual_kind(
    start: np.ndarray, end: np.ndarray, pair: tuple[int, int], held: dict[int, float]
) -> tuple[str, bool]:
    """How a counterfactual x → x′ shows in the panel of features `pair` (the others held at `held`).

    Returns the kind (ARROW; UNCHANGED when x′ = x; OFF_PANEL when x′ differs from x only in features the panel does
    not show) and whether x and x′ both lie in the panel's slice, i.e. whether the cells under the arrow's ends are
    the model's answers at x and x′. An arrow that also changes a feature not shown is not exact: the cell under its
    tip belongs to another grid point.
    """
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    exact = all(start[k] == level and end[k] == level for k, level in held.items())
    i, j = pair
    if np.array_equal(start, end):
        return UNCHANGED, exact
    if start[i] == end[i] and start[j] == end[j]:
        return OFF_PANEL, exact
    return ARROW, exact


def _draw_panel(
    ax: Axes,
    spec: DatasetSpec,
    grid: pd.DataFrame,
    codes: np.ndarray,
    arrows: _Arrows,
    pair: tuple[int, int],
    held: dict[int, float],
    max_arrows: int,
    seed: int,
    compact: bool,
) -> tuple[list[DrawnCounterfactual], bool]:
    from matplotlib.colors import BoundaryNorm, ListedColormap

    i, j = pair
    x_axis, y_axis = _Axis(spec.features[i]), _Axis(spec.features[j])
    values = grid[spec.columns].to_numpy(dtype=np.float64)
    in_slice = np.ones(len(grid), dtype=bool)
    for k, level in held.items():
        in_slice &= values[:, k] == level
    cells = np.full((len(y_axis.centres), len(x_axis.centres)), 2, dtype=np.int64)
    cells[y_axis.cell_index(values[in_slice, j]), x_axis.cell_index(values[in_slice, i])] = codes[in_slice]
    cmap = ListedColormap(list(LABEL_COLOURS))
    ax.pcolormesh(x_axis.edges, y_axis.edges, cells, cmap=cmap, norm=BoundaryNorm([-0.5, 0.5, 1.5, 2.5], 3))

    others = sorted(held)
    chosen, projected = _pick_arrows(arrows, others, [held[k] for k in others], max_arrows, seed)
    x_edges, y_edges = x_axis.edges, y_axis.edges
    x_lim, y_lim = [x_edges[0], x_edges[-1]], [y_edges[0], y_edges[-1]]
    x_pad, y_pad = 0.05 * (x_lim[1] - x_lim[0]), 0.05 * (y_lim[1] - y_lim[0])
    # One small offset per arrow (same at both ends, within a cell): arrows along a row stay distinguishable.
    jitter = np.random.default_rng(seed).uniform(-0.25, 0.25, size=(len(chosen), 2))
    jitter *= [_cell_size(x_axis.centres), _cell_size(y_axis.centres)]
    panel = (spec.features[i].key, spec.features[j].key)
    drawn: list[DrawnCounterfactual] = []
    for n, r in enumerate(chosen):
        x0, x1 = x_axis.coords(np.array([arrows.start[r, i], arrows.end[r, i]])) + jitter[n, 0]
        y0, y1 = y_axis.coords(np.array([arrows.start[r, j], arrows.end[r, j]])) + jitter[n, 1]
        if not np.isfinite([x0, x1, y0, y1]).all():
            continue
        x1, y1 = _to_margin(float(x1), x_edges, x_pad, x_lim), _to_margin(float(y1), y_edges, y_pad, y_lim)
        kind, exact = counterfactual_kind(arrows.start[r], arrows.end[r], pair, held)
        item = DrawnCounterfactual(
            panel, int(arrows.rows[r]), str(arrows.status[r]), kind, exact, bool(arrows.off_grid[r])
        )
        colour = ARROW_COLOURS[item.status]
        ax.plot([x0], [y0], marker="o", ms=2.5, color=colour, zorder=3)
        if kind == ARROW:
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=_arrow_style(colour, item.dashed), zorder=4)
        else:
            ax.plot([x0], [y0], linestyle="none", **_RING_MARKERS[kind], mec=colour, zorder=3)
        if item.off_grid:
            ax.plot([x1], [y1], marker="x", ms=8, mew=2, color=colour, zorder=5)
        drawn.append(item)

    x_axis.decorate(ax, "x", max_ticks=14 if compact else 30, label_chars=16 if compact else 30)
    y_axis.decorate(ax, "y", max_ticks=14 if compact else 30, label_chars=16 if compact else 30)
    ax.set_xlim(*x_lim)
    ax.set_ylim(*y_lim)
    if compact:
        name = f"{spec.features[i].key} × {spec.features[j].key}"
        held_line = ", ".join(_held_text(spec.features[k], held[k]) for k in others)
        note = "\narrows projected from the nearest rows" if projected and drawn else ""
        ax.set_title(f"{name}\nheld: {held_line}{note}", fontsize=9)
    return drawn, projected


# Markers of counterfactuals that do not move in a panel: a ring around the start dot.
_RING_MARKERS = {
    UNCHANGED: {"marker": "s", "ms": 8, "mfc": "none", "mew": 1.3},
    OFF_PANEL: {"marker": "o", "ms": 8, "mfc": "none", "mew": 1.3},
}


def _arrow_style(colour: str, dashed: bool) -> dict[str, Any]:
    """Solid with a filled head when the panel shows both ends truly; dashed with an open head otherwise."""
    return {
        "arrowstyle": "->" if dashed else "-|>",
        "color": colour,
        "lw": 1.2,
        "linestyle": (0, (3, 2)) if dashed else "-",
        "shrinkA": 0,
        "shrinkB": 0,
        "mutation_scale": 9 if not dashed else 11,
        "alpha": 0.9,
    }


def _cell_size(centres: np.ndarray) -> float:
    return float(np.min(np.diff(centres))) if len(centres) > 1 else 1.0


def _to_margin(value: float, edges: np.ndarray, pad: float, lim: list[float]) -> float:
    """Move a coordinate beyond the grid into a white strip outside it, widening the limits to show it."""
    if value < edges[0]:
        lim[0] = min(lim[0], edges[0] - pad)
        return float(max(value, edges[0] - pad / 2))
    if value > edges[-1]:
        lim[1] = max(lim[1], edges[-1] + pad)
        return float(min(value, edges[-1] + pad / 2))
    return value


def _score_caption(scores: pd.DataFrame, n_grid: int) -> str:
    n = len(scores)
    parts = [f"{n} grid points" if n == n_grid else f"{n} of {n_grid} grid points scored"]
    if "strict_valid" in scores:
        parts.append(f"readable first answers {int(scores['strict_valid'].notna().sum())}/{n}")
    if "kept" in scores and "valid" in scores:
        kept = int(scores["kept"].astype(bool).sum())
        valid = int((scores["valid"] == 1).sum())
        share = f" ({100 * valid / kept:.1f}%)" if kept else ""
        parts.append(f"valid {valid}/{kept} kept{share}")
    if "failure" in scores:
        parts.append(f"off-grid {int((scores['failure'] == 'counterfactual_off_grid').sum())}")
        parts.append(f"unreadable counterfactuals {int((scores['failure'] == 'counterfactual_unreadable').sum())}")
    return "; ".join(parts)


def _boundary_legend(spec: DatasetSpec, drawn: list[DrawnCounterfactual]) -> list[Any]:
    """Entries for the cell colours and arrow colours, and for every other mark the figure actually shows."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    grey = "#444444"
    handles: list[Any] = [
        Patch(facecolor=LABEL_COLOURS[0], edgecolor="#888888", label=f"model answered “{spec.options[0]}”"),
        Patch(facecolor=LABEL_COLOURS[1], edgecolor="#888888", label=f"model answered “{spec.options[1]}”"),
        Patch(facecolor=LABEL_COLOURS[2], edgecolor="#888888", label="no readable answer (or not scored)"),
        Line2D([], [], color=ARROW_COLOURS["valid"], lw=1.5, marker=">", ms=5,
               label="counterfactual from x (dot) to x′ (tip), valid: the model answers the target at x′"),
        Line2D([], [], color=ARROW_COLOURS["invalid"], lw=1.5, marker=">", ms=5,
               label="invalid: the model does not answer the target at x′"),
        Line2D([], [], color=ARROW_COLOURS["not judged"], lw=1.5, marker=">", ms=5,
               label="not judged: x′ off the grid, or no readable answer at x or x′"),
    ]  # fmt: skip
    if any(d.dashed for d in drawn):
        handles.append(
            Line2D([], [], color=grey, lw=1.5, linestyle=(0, (3, 2)), marker=">", ms=5, mfc="none",
                   label="dashed: x′ also changes a feature this panel holds fixed (or x is off the panel's slice),\n"
                         "so the colour under the tip is not the model's answer at x′")
        )  # fmt: skip
    if any(d.off_grid for d in drawn):
        handles.append(
            Line2D([], [], color=grey, lw=0, marker="x", ms=7, mew=2,
                   label="x′ off the grid (white margin = beyond the grid's range)")
        )  # fmt: skip
    if any(d.kind == OFF_PANEL for d in drawn):
        handles.append(
            Line2D([], [], color=grey, lw=0, linestyle="none", **_RING_MARKERS[OFF_PANEL],
                   label="ring around x: x′ differs from x only in features this panel does not show")
        )  # fmt: skip
    if any(d.kind == UNCHANGED for d in drawn):
        handles.append(
            Line2D([], [], color=grey, lw=0, linestyle="none", **_RING_MARKERS[UNCHANGED],
                   label="square around x: x′ = x, the counterfactual changes nothing")
        )  # fmt: skip
    return handles


def plot_decision_boundary(
    spec: DatasetSpec,
    grid: pd.DataFrame,
    scores: pd.DataFrame,
    path: str | Path,
    title: str = "",
    max_arrows: int = 40,
    seed: int = 0,
) -> BoundaryFigure:
    """Show where the model itself draws its boundary, and whether its counterfactuals actually cross it.

    Two features give one heat map; more give one panel per feature pair with the other features held at
    their median level (first level if categorical). Arrows are a seeded sample of up to `max_arrows` per
    panel, from rows whose start lies in the panel's slice (if none do: the closest rows, projected). An arrow is
    solid only when both its ends lie in the panel's slice; otherwise it is dashed (see `counterfactual_kind`).
    """
    n_feat = len(spec.features)
    if n_feat < 2:
        raise InputError(f"dataset {spec.name!r}: a decision-boundary plot needs at least two features")
    missing = [c for c in ("id", *spec.columns) if c not in grid]
    if missing:
        raise InputError(f"grid for dataset {spec.name!r} lacks column(s) {missing}")
    codes = _answer_codes(spec, grid, scores)
    arrows = _Arrows.from_scores(spec, grid, scores)
    pairs = list(itertools.combinations(range(n_feat), 2))
    compact = len(pairs) > 1
    if compact:
        ncols = min(3, len(pairs))
        nrows = math.ceil(len(pairs) / ncols)
        fig = new_figure(5.0 * ncols, 4.3 * nrows)
    else:
        fig = new_figure(11.0, 7.5)
        nrows = ncols = 1
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    held_all = {k: _held_level(f) for k, f in enumerate(spec.features)}
    drawn: list[DrawnCounterfactual] = []
    n_projected = 0
    for n, (ax, pair) in enumerate(zip(axes, pairs, strict=False)):
        held = {k: v for k, v in held_all.items() if k not in pair}
        in_panel, projected = _draw_panel(ax, spec, grid, codes, arrows, pair, held, max_arrows, seed + n, compact)
        drawn += in_panel
        n_projected += projected and bool(in_panel)
    for ax in axes[len(pairs) :]:
        ax.set_visible(False)

    fig.suptitle(title or f"{spec.name}: the model's own answers over the grid, with its counterfactuals", fontsize=12)
    fig.tight_layout()
    total = len(drawn)
    if compact:
        arrow_note = (
            f"arrows: {total} sampled counterfactuals (up to {max_arrows} per panel, seed {seed}) "
            "from rows whose start lies in the panel's slice"
        )
        if n_projected:
            arrow_note += f"; {n_projected} panel(s) projected from the nearest rows"
    else:
        arrow_note = f"arrows: {total} sampled counterfactuals (seed {seed})"
    n_dashed = sum(d.dashed for d in drawn)
    if n_dashed:
        arrow_note += f"; {n_dashed} dashed (x′, or x, off the panel's slice)"
    caption = f"{_score_caption(scores, len(grid))}\n{arrow_note}"
    handles = _boundary_legend(spec, drawn)
    place_legend_and_caption(fig, handles, caption, ncol=3 if compact else 2)
    save_png(fig, path)
    return BoundaryFigure(drawn, [h.get_label() for h in handles])


# ------------------------------------------------------------------------------------ validity vs minimality

SUMMARY_COLUMNS = ("model", "dataset", "prompt", "validity_percent", "mean_RCF_A")
MARKER_PT = 8.0  # scatter marker size (points)
SPREAD_PT = MARKER_PT + 5.0  # centre distance of markers spread apart (points): room for the true-place dot


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _error(centre: float, low: Any, high: Any) -> list[list[float]] | None:
    if not (_finite(low) and _finite(high)):
        return None
    return [[max(centre - float(low), 0.0)], [max(float(high) - centre, 0.0)]]


@dataclass(frozen=True)
class ScatterPoint:
    """One (model, dataset, prompt) point as drawn."""

    model: str
    dataset: str
    prompt: str
    validity: float
    am: float  # mean RCF_A; NaN when undefined (no valid counterfactual)
    x: float  # the x it is drawn at, in data units: `am`, or the panel's "undefined" band
    offset_pt: float  # sideways shift so that coinciding markers stay visible (0: at its true place)
    centre_px: tuple[float, float]  # marker centre in figure pixels from the bottom left, shift included


@dataclass(frozen=True)
class ScatterFigure:
    """What `plot_validity_vs_minimality` drew: the points, the band of undefined AM per dataset, the legend."""

    points: list[ScatterPoint]
    undefined_band: dict[str, tuple[float, float]]  # dataset -> (left, right) in data units
    legend: list[str]


def spread_coincident(xy: np.ndarray, min_distance: float) -> np.ndarray:
    """Sideways shifts that put markers closer than `min_distance` side by side (same units as `xy`).

    Points closer than `min_distance` form a group; a group's members are placed `min_distance` apart along x,
    centred on the mean of their x, in the order of their x (ties: input order). A group that then overlaps another
    point merges with it and is placed again, until no two markers overlap. Lone points keep a shift of 0.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    n = len(xy)
    shift = np.zeros(n)
    if n < 2 or min_distance <= 0:
        return shift
    group = np.arange(n)
    for _ in range(n):  # groups only grow, so this ends within n rounds
        x = xy[:, 0] + shift
        near = np.hypot(x[:, None] - x[None, :], xy[:, 1][:, None] - xy[:, 1][None, :]) < min_distance * (1 - 1e-9)
        np.fill_diagonal(near, False)
        if not near.any():
            break
        linked = near | (group[:, None] == group[None, :])
        while True:  # connected components: every point takes the smallest label it is linked to
            new = np.where(linked, group[None, :], n).min(axis=1)
            if np.array_equal(new, group):
                break
            group = new
        for label in np.unique(group):
            members = np.flatnonzero(group == label)
            if len(members) > 1:
                members = members[np.argsort(xy[members, 0], kind="stable")]
                slots = np.mean(xy[members, 0]) + (np.arange(len(members)) - (len(members) - 1) / 2) * min_distance
                shift[members] = slots - xy[members, 0]
    return shift


def _tick_labels(ticks: np.ndarray) -> list[str]:
    """The fewest decimals that write every tick exactly (0.025 stays 0.025, 0.05 is not 0.050)."""
    scale = max((abs(float(t)) for t in ticks), default=1.0) or 1.0
    for decimals in range(10):
        if all(abs(round(float(t), decimals) - float(t)) <= 1e-9 * scale for t in ticks):
            break
    return [f"{float(t):.{decimals}f}" for t in ticks]


def _largest_row(y_px: np.ndarray, distance: float) -> int:
    """Size of the largest chain of values each closer than `distance` to the next (markers sharing a row)."""
    if len(y_px) == 0:
        return 0
    breaks = np.flatnonzero(np.diff(np.sort(y_px)) >= distance)
    return int(np.max(np.diff(np.r_[-1, breaks, len(y_px) - 1])))


def _undefined_band(ax: Axes, lo: float, hi: float, left: float, separator: float, right: float) -> float:
    """x range `left`..`right` with a grey band from `separator` for undefined AM, and its ticks; the band's middle."""
    from matplotlib.ticker import MaxNLocator

    for artist in [a for a in ax.get_children() if a.get_gid() == "undefined-band"]:
        artist.remove()  # the provisional band, drawn again at its final width
    band_x = (separator + right) / 2
    # Above the grid lines (zorder 1.5), below the markers: no grid line runs through the band.
    ax.axvspan(separator, right, color="#ececec", zorder=1.6, gid="undefined-band")
    ax.axvline(separator, color="#999999", lw=0.8, linestyle=(0, (4, 2)), zorder=1.7, gid="undefined-band")
    ax.text(band_x, 52, "no valid counterfactual", ha="center", va="center", fontsize=7.5, color="#555555",
            rotation=90, zorder=1.7, gid="undefined-band")  # fmt: skip
    # at most 5 numeric ticks, and one per 45 points of the numeric part's width, so that their labels never touch
    numeric_pt = ax.get_window_extent().width * 72 / ax.figure.dpi * (separator - left) / (right - left)
    ticks = MaxNLocator(nbins=max(1, min(5, int(numeric_pt // 45)))).tick_values(lo, hi)
    # numeric ticks inside the axis, none so close to the band that its label runs into "undefined"
    ticks = ticks[(ticks >= left) & (ticks <= separator) & (band_x - ticks > 0.14 * (right - left))]
    ax.set_xticks([*ticks, band_x], [*_tick_labels(ticks), "undefined"])
    ax.set_xlim(left, right)
    return band_x


def plot_validity_vs_minimality(summary: pd.DataFrame, path: str | Path, title: str = "") -> ScatterFigure:
    """The trade-off the study asks about: do valid counterfactuals come at the price of larger changes?

    One panel per dataset (shared validity axis), colour = model, marker = prompt. A point with no valid
    counterfactual has no minimality: it is drawn hollow in a grey band right of the axis, labelled "undefined",
    so it never reads as minimal. Markers closer than a marker's width are spread sideways, each joined to its true
    place by a thin line, so coinciding points (e.g. two prompts with equal numbers) stay visible.
    """
    from matplotlib.lines import Line2D
    from matplotlib.transforms import offset_copy

    missing = [c for c in SUMMARY_COLUMNS if c not in summary]
    if missing:
        raise InputError(f"summary table lacks column(s) {missing}; expected {list(SUMMARY_COLUMNS)}")
    data = summary.copy()
    for col in ("model", "dataset", "prompt"):
        data[col] = data[col].astype(str)
    datasets = list(pd.unique(data["dataset"])) or ["(no rows)"]
    models = list(pd.unique(data["model"]))
    prompts = list(pd.unique(data["prompt"]))
    palette = _palette(len(models))
    colour = dict(zip(models, palette, strict=True))
    marker = {p: PROMPT_MARKERS[k % len(PROMPT_MARKERS)] for k, p in enumerate(prompts)}

    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig = new_figure(max(5.5, 4.8 * ncols), 4.4 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    n_skipped = 0
    panels: list[tuple[Axes, str, list[dict[str, Any]], tuple[float, float, float, float] | None]] = []
    bands: dict[str, tuple[float, float]] = {}
    # Pass 1: every panel's points, limits, band and labels, so the layout is final before markers are placed.
    for ax, dataset in zip(axes, datasets, strict=False):
        rows = data[data["dataset"] == dataset]
        points: list[dict[str, Any]] = []
        extent = [0.0]
        for _, row in rows.iterrows():
            if not _finite(row["validity_percent"]):
                n_skipped += 1
                continue
            y = float(row["validity_percent"])
            am = float(row["mean_RCF_A"]) if _finite(row["mean_RCF_A"]) else math.nan
            yerr = _error(y, row.get("validity_ci_low"), row.get("validity_ci_high"))
            xerr = None if math.isnan(am) else _error(am, row.get("mean_RCF_A_ci_low"), row.get("mean_RCF_A_ci_high"))
            if not math.isnan(am):
                extent += [am] if xerr is None else [am - xerr[0][0], am + xerr[1][0]]
            points.append({"row": row, "y": y, "am": am, "xerr": xerr, "yerr": yerr})
        lo, hi = min(extent), max(extent)
        span = hi - lo if hi > lo else 0.1
        pad = 0.08 * span
        left, right = lo - pad, hi + pad
        for p in points:
            p["x"] = p["am"]  # undefined ones: the band's middle, once the band's width is known
        band = None
        if any(math.isnan(p["am"]) for p in points):
            band = (lo, hi, left, right)  # the band starts right of every defined point
            _undefined_band(ax, lo, hi, left, right, right + 0.3 * span)  # provisional width, for the layout
        else:
            ax.set_xlim(left, right)
        ax.set_ylim(-4, 104)
        ax.axvline(0, color="#bbbbbb", lw=0.8, zorder=0)
        ax.grid(True, color="#eeeeee", zorder=0)
        ax.set_title(f"dataset: {dataset}  ({len(rows)} point{'s' if len(rows) != 1 else ''})", fontsize=10)
        ax.set_xlabel("AM = mean RCF_A of valid counterfactuals\n(absolute minimality excess; lower = more minimal)")
        ax.yaxis.set_tick_params(labelleft=True)
        panels.append((ax, dataset, points, band))
    for ax in axes[::ncols]:
        ax.set_ylabel("validity (%)")
    for ax in axes[len(datasets) :]:
        ax.set_visible(False)
    if data.empty:
        axes[0].text(0.5, 0.5, "no rows to plot", transform=axes[0].transAxes, ha="center", va="center")
    fig.suptitle(title or "Validity vs minimality of self-generated counterfactuals", fontsize=12)
    fig.tight_layout()

    # Pass 2: markers, spread apart where they would hide each other.
    px_per_pt = fig.dpi / 72.0
    drawn: list[ScatterPoint] = []
    n_bars = n_spread = 0
    for ax, dataset, points, band in panels:
        spacing_px = SPREAD_PT * px_per_pt
        if band is not None:
            # The band is wide enough for its largest row of markers side by side, up to 60 % of the panel; past
            # that they are packed closer (overlapping, each still visible), never spilling out of the band.
            lo, hi, left, separator = band
            width_px = ax.get_window_extent().width
            in_row = _largest_row(ax.transData.transform([(0, p["y"]) for p in points if math.isnan(p["am"])])[:, 1],
                                  spacing_px)  # fmt: skip
            share = min(max((in_row + 1) * spacing_px / width_px, 0.22), 0.6)
            right = left + (separator - left) / (1 - share)
            band_x = _undefined_band(ax, lo, hi, left, separator, right)
            bands[dataset] = (separator, right)
            spacing_px = min(spacing_px, share * width_px / (in_row + 1))
            for p in points:
                if math.isnan(p["am"]):
                    p["x"] = band_x
        centres = ax.transData.transform([(p["x"], p["y"]) for p in points]) if points else np.empty((0, 2))
        shifts_px = spread_coincident(centres, spacing_px)
        for p, centre, shift_px in zip(points, centres, shifts_px, strict=True):
            row, x, y = p["row"], p["x"], p["y"]
            shift = float(shift_px / px_per_pt)
            trans = offset_copy(ax.transData, fig=fig, x=shift, y=0, units="points")
            c = colour[row["model"]]
            hollow = math.isnan(p["am"])
            if p["xerr"] is not None or p["yerr"] is not None:
                ax.errorbar([x], [y], xerr=p["xerr"], yerr=p["yerr"], fmt="none", ecolor=c, alpha=0.55, lw=1,
                            capsize=2.5, transform=trans)  # fmt: skip
                n_bars += 1
            if abs(shift_px) > 0.5:
                ax.annotate("", xy=(x, y), xytext=(shift, 0), textcoords="offset points",
                            arrowprops={"arrowstyle": "-", "color": "#777777", "lw": 0.7, "shrinkA": 0, "shrinkB": 0},
                            zorder=2)  # fmt: skip
                ax.plot([x], [y], linestyle="none", marker="o", ms=2, color="#777777", zorder=2)
                n_spread += 1
            ax.plot(
                [x], [y], linestyle="none", marker=marker[row["prompt"]], ms=MARKER_PT, mec=c, mew=1.6,
                mfc="white" if hollow else c, alpha=0.95, zorder=3, transform=trans,
            )  # fmt: skip
            drawn.append(
                ScatterPoint(
                    row["model"], dataset, row["prompt"], y, p["am"], float(x), shift,
                    (float(centre[0] + shift_px), float(centre[1])),
                )
            )  # fmt: skip

    handles: list[Any] = [
        Line2D([], [], linestyle="none", marker="o", ms=8, color=colour[m], label=f"model: {m}") for m in models
    ]
    handles += [
        Line2D([], [], linestyle="none", marker=marker[p], ms=8, color="#555555", label=f"prompt: {p}") for p in prompts
    ]
    n_hollow = sum(math.isnan(p.am) for p in drawn)
    if n_hollow:
        handles.append(
            Line2D([], [], linestyle="none", marker="o", ms=8, mfc="white", mec="#555555", mew=1.6,
                   label="hollow, in the grey band: no valid counterfactual (AM undefined)")
        )  # fmt: skip
    if n_spread:
        handles.append(
            Line2D([], [], color="#777777", lw=0.7, marker="o", ms=2, markevery=[0],
                   label="thin line: marker moved aside from its true place (dot), where it would hide another")
        )  # fmt: skip
    caption = f"{len(data)} point{'s' if len(data) != 1 else ''}, one per model × dataset × prompt"
    if n_hollow:
        caption += f"; {n_hollow} with no valid counterfactual drawn hollow in the “undefined” band"
    if n_spread:
        caption += f"; {n_spread} moved sideways by a few points so that equal or near values stay visible"
    if n_skipped:
        caption += f"; {n_skipped} without a validity value not drawn"
    if n_bars:
        caption += "; error bars: 95% bootstrap CI"
    caption += (
        "\nvalidity: share of counterfactuals at which the model's own answer is the target label; better: up and left"
    )
    place_legend_and_caption(fig, handles, caption, ncol=max(1, min(4, len(handles))))
    save_png(fig, path)
    return ScatterFigure(drawn, bands, [h.get_label() for h in handles])


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(n)]
