"""Figures of the simulatability study, readable without the code; all drawn from `summary.csv`.

* `plot_nsg_by_reference`: the paper's main figure, NSG per reference model with 95 % cluster-bootstrap CIs, with
  all predictors and without the reference's own family.
* `plot_nsg_by_dataset`: NSG per dataset and reference model.
* `plot_predictor_heatmap`: NSG per (reference model, predictor).
* `plot_egregious`: the egregious rate per reference model (every predictor agrees on an answer the reference model
  did not give).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfexplain.errors import InputError
from selfexplain.figures import new_figure, save_png

EXPLANATION = "explanation"
SETS = {"all": ("all predictors", "#2171b5"), "exclude_same_family": ("other families only", "#fd8d3c")}
NSG_CAPTION = (
    "NSG (normalized simulatability gain) = 100 x (with - without) / (100 - without): the share of the predictors' "
    "errors without the explanation that the explanation removes. Bars: 95 % cluster-bootstrap CIs (clusters = "
    "dataset and centre question)."
)


def _rows(summary: pd.DataFrame, scope: str, predictors: str = "all") -> pd.DataFrame:
    need = {"reference", "comparison", "predictors", "scope", "group", "nsg", "nsg_ci_lower", "nsg_ci_upper"}
    missing = sorted(need - set(summary.columns))
    if missing:
        raise InputError(f"simulatability summary: missing column(s) {missing}")
    keep = (summary["comparison"] == EXPLANATION) & (summary["scope"] == scope) & (summary["predictors"] == predictors)
    return summary[keep]


def _error(rows: pd.DataFrame, value: str) -> np.ndarray:
    lower = (rows[value] - rows[f"{value}_ci_lower"]).clip(lower=0).fillna(0)
    upper = (rows[f"{value}_ci_upper"] - rows[value]).clip(lower=0).fillna(0)
    return np.vstack([lower.to_numpy(float), upper.to_numpy(float)])


def _caption(fig: Any, text: str) -> None:
    """The caption under everything the axes draw (tick labels, axis label, colour bar), so it never overlaps."""
    renderer = fig.canvas.get_renderer()
    bottom = min(a.get_tightbbox(renderer).transformed(fig.transFigure.inverted()).y0 for a in fig.axes)
    fig.text(0.01, bottom - 0.02, text, ha="left", va="top", fontsize=8, color="#333333", wrap=True)


def _value_labels(ax: Any, y: Any, texts: list[str]) -> None:
    """Values in a column right of the plot, where bars and error bars never reach."""
    for yi, text in zip(y, texts, strict=True):
        ax.text(1.01, yi, text, transform=ax.get_yaxis_transform(), va="center", fontsize=7.5, clip_on=False)


def plot_nsg_by_reference(summary: pd.DataFrame, path: str | Path) -> None:
    references = list(dict.fromkeys(summary["reference"]))
    fig = new_figure(7.5, 1.2 + 0.45 * len(references) * len(SETS))
    ax = fig.add_subplot()
    height = 0.8 / len(SETS)
    y = np.arange(len(references))
    for k, (set_name, (label, colour)) in enumerate(SETS.items()):
        rows = _rows(summary, "pooled", set_name).set_index("reference").reindex(references)
        offset = (k - (len(SETS) - 1) / 2) * height
        ax.barh(
            y + offset,
            rows["nsg"].fillna(0),
            height=height * 0.9,
            color=colour,
            label=label,
            xerr=_error(rows, "nsg"),
            error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#252525"},
        )
        texts = [
            "no observations" if pd.isna(n) or n == 0 else ("n/a" if pd.isna(v) else f"{v:.1f} (n={int(n)})")
            for v, n in zip(rows["nsg"], rows["n"], strict=True)
        ]
        _value_labels(ax, y + offset, texts)
    ax.set_yticks(y, references)
    ax.invert_yaxis()
    ax.axvline(0, color="#555555", linewidth=0.8)
    ax.set_xlabel("NSG (%)")
    ax.set_title("Do a model's self-explanations help others predict it? NSG per reference model")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    _caption(fig, NSG_CAPTION + " 'other families only' leaves out predictors of the reference model's own family.")
    save_png(fig, path)


def plot_nsg_by_dataset(summary: pd.DataFrame, path: str | Path) -> None:
    rows = _rows(summary, "dataset")
    datasets = sorted(rows["group"].unique())
    references = list(dict.fromkeys(rows["reference"]))
    fig = new_figure(7.5, 1.5 + 0.5 * max(len(datasets), 1))
    ax = fig.add_subplot()
    step = 0.7 / max(len(references), 1)
    cmap = _colours(len(references))
    for k, reference in enumerate(references):
        part = rows[rows["reference"] == reference].set_index("group").reindex(datasets)
        y = np.arange(len(datasets)) + (k - (len(references) - 1) / 2) * step
        ax.errorbar(
            part["nsg"],
            y,
            xerr=_error(part, "nsg"),
            fmt="o",
            color=cmap[k],
            label=reference,
            markersize=4,
            elinewidth=1,
            capsize=2,
        )
    ax.set_yticks(np.arange(len(datasets)), datasets)
    ax.invert_yaxis()
    ax.axvline(0, color="#555555", linewidth=0.8)
    ax.set_xlabel("NSG (%), all predictors")
    ax.set_title("NSG per dataset")
    ax.legend(loc="best", fontsize=7.5, frameon=False)
    _caption(fig, NSG_CAPTION + " A missing point: no usable observations, or no errors left to remove.")
    save_png(fig, path)


def plot_predictor_heatmap(summary: pd.DataFrame, path: str | Path) -> None:
    rows = _rows(summary, "predictor")
    references = list(dict.fromkeys(rows["reference"]))
    predictors = list(dict.fromkeys(rows["group"]))
    grid = rows.pivot_table(index="reference", columns="group", values="nsg", aggfunc="first")
    grid = grid.reindex(index=references, columns=predictors)
    fig = new_figure(1.8 + 1.1 * max(len(predictors), 1), 1.4 + 0.45 * max(len(references), 1))
    ax = fig.add_subplot()
    values = grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    bound = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        dark = not math.isnan(value) and abs(value) > 0.6 * bound  # white text on the deep colours
        text = "n/a" if math.isnan(value) else f"{value:.1f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(predictors)), predictors, rotation=30, ha="right")
    ax.set_yticks(range(len(references)), references)
    ax.set_xlabel("predictor")
    ax.set_ylabel("reference model")
    ax.set_title("NSG (%) per reference model and predictor")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="NSG (%)")
    _caption(fig, NSG_CAPTION.split(" Bars:")[0] + " n/a: no usable observations.")
    save_png(fig, path)


def plot_egregious(summary: pd.DataFrame, path: str | Path) -> None:
    rows = _rows(summary, "pooled")
    if "egregious_rate" not in rows:
        raise InputError("simulatability summary: missing column 'egregious_rate'")
    references = list(rows["reference"])
    fig = new_figure(7.0, 1.2 + 0.45 * max(len(references), 1))
    ax = fig.add_subplot()
    y = np.arange(len(references))
    ax.barh(
        y,
        rows["egregious_rate"].fillna(0),
        color="#cb181d",
        height=0.6,
        xerr=_error(rows, "egregious_rate"),
        error_kw={"elinewidth": 1, "capsize": 2},
    )
    _value_labels(ax, y, ["n/a" if pd.isna(v) else f"{v:.1f}" for v in rows["egregious_rate"]])
    ax.set_yticks(y, references)
    ax.invert_yaxis()
    ax.set_xlabel("egregious rate (% of pairs)")
    ax.set_title("Egregiously misleading explanations")
    _caption(
        fig,
        "A pair is egregious when every predictor, given the explanation, gives the same answer and it is not the "
        "reference model's answer. Pairs where no predictor answer could be read are not counted as egregious. "
        "Bars: 95 % cluster-bootstrap CIs.",
    )
    save_png(fig, path)


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


FIGURES = {
    "nsg_by_reference": plot_nsg_by_reference,
    "nsg_by_dataset": plot_nsg_by_dataset,
    "nsg_by_predictor": plot_predictor_heatmap,
    "egregious": plot_egregious,
}


def plot_figure(name: str, summary_path: str | Path, out: str | Path) -> None:
    """One figure of the study (a key of FIGURES) from its summary table."""
    if name not in FIGURES:
        raise InputError(f"unknown simulatability figure {name!r}; known: {sorted(FIGURES)}")
    FIGURES[name](pd.read_csv(summary_path), out)
