"""Figures for the sce study, written so that a reader can interpret them without the code.

* `plot_decision_boundary`: the model's own first-pass labels over the grid, with a sample of its
  counterfactuals drawn as arrows coloured by whether the model itself agrees with them.
* `plot_validity_vs_minimality`: the paper's validity vs absolute-minimality scatter, one point per
  (model, dataset, prompt).

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


# ----------------------------------------------------------------------------------------------------- saving


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

    @classmethod
    def from_scores(cls, spec: DatasetSpec, grid: pd.DataFrame, scores: pd.DataFrame) -> _Arrows:
        n_feat = len(spec.features)
        cf_cols = T.cf_columns(spec)
        empty = cls(np.empty((0, n_feat)), np.empty((0, n_feat)), np.empty(0, dtype=object), np.empty(0, bool))
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
        return cls(start, end[keep], status, off_grid)

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
) -> tuple[int, bool]:
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
    drawn = 0
    for n, r in enumerate(chosen):
        x0, x1 = x_axis.coords(np.array([arrows.start[r, i], arrows.end[r, i]])) + jitter[n, 0]
        y0, y1 = y_axis.coords(np.array([arrows.start[r, j], arrows.end[r, j]])) + jitter[n, 1]
        if not np.isfinite([x0, x1, y0, y1]).all():
            continue
        x1, y1 = _to_margin(float(x1), x_edges, x_pad, x_lim), _to_margin(float(y1), y_edges, y_pad, y_lim)
        colour = ARROW_COLOURS[arrows.status[r]]
        ax.plot([x0], [y0], marker="o", ms=2.5, color=colour, zorder=3)
        if x0 == x1 and y0 == y1:
            ax.plot([x0], [y0], marker="o", ms=8, mfc="none", mec=colour, mew=1.3, zorder=3)
        else:
            ax.annotate(
                "",
                xy=(x1, y1),
                xytext=(x0, y0),
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": colour,
                    "lw": 1.2,
                    "shrinkA": 0,
                    "shrinkB": 0,
                    "mutation_scale": 9,
                    "alpha": 0.9,
                },
                zorder=4,
            )
        if arrows.off_grid[r]:
            ax.plot([x1], [y1], marker="x", ms=8, mew=2, color=colour, zorder=5)
        drawn += 1

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


def _boundary_legend(spec: DatasetSpec, pairs: bool) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [
        Patch(facecolor=LABEL_COLOURS[0], edgecolor="#888888", label=f"model answered “{spec.options[0]}”"),
        Patch(facecolor=LABEL_COLOURS[1], edgecolor="#888888", label=f"model answered “{spec.options[1]}”"),
        Patch(facecolor=LABEL_COLOURS[2], edgecolor="#888888", label="no readable answer (or not scored)"),
        Line2D([], [], color=ARROW_COLOURS["valid"], lw=1.5, marker=">", ms=5,
               label="counterfactual x → x′, valid (model answers the target at x′)"),
        Line2D([], [], color=ARROW_COLOURS["invalid"], lw=1.5, marker=">", ms=5,
               label="counterfactual, invalid (model does not answer the target at x′)"),
        Line2D([], [], color=ARROW_COLOURS["not judged"], lw=1.5, marker=">", ms=5,
               label="counterfactual not judged (x′ off the grid, or no readable answer)"),
        Line2D([], [], color="#444444", lw=0, marker="x", ms=7, mew=2,
               label="x′ off the grid (white margin = beyond the grid's range)"),
    ]  # fmt: skip
    if pairs:
        handles.append(
            Line2D([], [], color="#444444", lw=0, marker="o", ms=8, mfc="none",
                   label="x′ differs only in features not shown in the panel")
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
) -> None:
    """Show where the model itself draws its boundary, and whether its counterfactuals actually cross it.

    Two features give one heat map; more give one panel per feature pair with the other features held at
    their median level (first level if categorical). Arrows are a seeded sample of up to `max_arrows` per
    panel, from rows whose start lies in the panel's slice (if none do: the closest rows, projected).
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
    total = 0
    n_projected = 0
    for n, (ax, pair) in enumerate(zip(axes, pairs, strict=False)):
        held = {k: v for k, v in held_all.items() if k not in pair}
        drawn, projected = _draw_panel(ax, spec, grid, codes, arrows, pair, held, max_arrows, seed + n, compact)
        total += drawn
        n_projected += projected and drawn > 0
    for ax in axes[len(pairs) :]:
        ax.set_visible(False)

    fig.suptitle(title or f"{spec.name}: the model's own answers over the grid, with its counterfactuals", fontsize=12)
    fig.tight_layout()
    if compact:
        arrow_note = (
            f"arrows: {total} sampled counterfactuals (up to {max_arrows} per panel, seed {seed}) "
            "from rows whose start lies in the panel's slice"
        )
        if n_projected:
            arrow_note += f"; {n_projected} panel(s) projected from the nearest rows"
    else:
        arrow_note = f"arrows: {total} sampled counterfactuals (seed {seed})"
    caption = f"{_score_caption(scores, len(grid))}\n{arrow_note}"
    place_legend_and_caption(fig, _boundary_legend(spec, compact), caption, ncol=3 if compact else 2)
    save_png(fig, path)


# ------------------------------------------------------------------------------------ validity vs minimality

SUMMARY_COLUMNS = ("model", "dataset", "prompt", "validity_percent", "mean_RCF_A")


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _error(centre: float, low: Any, high: Any) -> list[list[float]] | None:
    if not (_finite(low) and _finite(high)):
        return None
    return [[max(centre - float(low), 0.0)], [max(float(high) - centre, 0.0)]]


def plot_validity_vs_minimality(summary: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """The trade-off the study asks about: do valid counterfactuals come at the price of larger changes?

    One panel per dataset (shared validity axis), colour = model, marker = prompt. Points with no valid
    counterfactual have no minimality; they are drawn hollow at AM = 0 so they are not silently dropped.
    """
    from matplotlib.lines import Line2D

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
    n_hollow = n_skipped = n_bars = 0
    for ax, dataset in zip(axes, datasets, strict=False):
        rows = data[data["dataset"] == dataset]
        extent = [0.0]
        for _, row in rows.iterrows():
            y = float(row["validity_percent"]) if _finite(row["validity_percent"]) else math.nan
            if math.isnan(y):
                n_skipped += 1
                continue
            hollow = not _finite(row["mean_RCF_A"])
            x = 0.0 if hollow else float(row["mean_RCF_A"])
            c = colour[row["model"]]
            yerr = _error(y, row.get("validity_ci_low"), row.get("validity_ci_high"))
            xerr = None if hollow else _error(x, row.get("mean_RCF_A_ci_low"), row.get("mean_RCF_A_ci_high"))
            if xerr is not None or yerr is not None:
                ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="none", ecolor=c, alpha=0.55, lw=1, capsize=2.5)
                n_bars += 1
            extent += [x] if xerr is None else [x - xerr[0][0], x + xerr[1][0]]
            ax.plot(
                [x], [y], linestyle="none", marker=marker[row["prompt"]], ms=8, mec=c, mew=1.6,
                mfc="white" if hollow else c, alpha=0.95, zorder=3,
            )  # fmt: skip
            n_hollow += hollow
        ax.set_title(f"dataset: {dataset}  ({len(rows)} point{'s' if len(rows) != 1 else ''})", fontsize=10)
        ax.set_xlabel("AM = mean RCF_A of valid counterfactuals\n(absolute minimality excess; lower = more minimal)")
        ax.set_ylim(-4, 104)
        lo, hi = min(extent), max(extent)
        pad = 0.08 * (hi - lo) if hi > lo else 0.05
        ax.set_xlim(lo - pad, hi + pad)
        ax.axvline(0, color="#bbbbbb", lw=0.8, zorder=0)
        ax.grid(True, color="#eeeeee", zorder=0)
        ax.text(0.98, 0.02, "better: up and left", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=8, color="#777777")  # fmt: skip
        ax.yaxis.set_tick_params(labelleft=True)
    for ax in axes[::ncols]:
        ax.set_ylabel("validity (%)")
    for ax in axes[len(datasets) :]:
        ax.set_visible(False)
    if data.empty:
        axes[0].text(0.5, 0.5, "no rows to plot", transform=axes[0].transAxes, ha="center", va="center")

    fig.suptitle(title or "Validity vs minimality of self-generated counterfactuals", fontsize=12)
    fig.tight_layout()
    handles: list[Any] = [
        Line2D([], [], linestyle="none", marker="o", ms=8, color=colour[m], label=f"model: {m}") for m in models
    ]
    handles += [
        Line2D([], [], linestyle="none", marker=marker[p], ms=8, color="#555555", label=f"prompt: {p}") for p in prompts
    ]
    if n_hollow:
        handles.append(
            Line2D([], [], linestyle="none", marker="o", ms=8, mfc="white", mec="#555555", mew=1.6,
                   label="hollow: no valid counterfactual (AM undefined, drawn at 0)")
        )  # fmt: skip
    caption = f"{len(data)} point{'s' if len(data) != 1 else ''}, one per model × dataset × prompt"
    if n_hollow:
        caption += f"; {n_hollow} with no valid counterfactual drawn hollow at AM = 0"
    if n_skipped:
        caption += f"; {n_skipped} without a validity value not drawn"
    if n_bars:
        caption += "; error bars: 95% bootstrap CI"
    caption += "\nvalidity: share of counterfactuals at which the model's own answer is the target label"
    place_legend_and_caption(fig, handles, caption, ncol=max(1, min(4, len(handles))))
    save_png(fig, path)


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(n)]
