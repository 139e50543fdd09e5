"""Figures of the side analyses (`selfexplain.simulatability.side` and `.agreement`), readable without the code.

Each function draws one PNG from the table its analysis writes; the captions say what a point, bar and interval
mean. Intervals are 95 % cluster-bootstrap CIs (clusters = dataset and centre question), except predictor
agreement's, whose bootstrap resamples the reference models it ranks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfexplain.figures import new_figure, save_png
from selfexplain.simulatability.plots import _caption, _colours, _error

CI_NOTE = "Intervals: 95 % cluster-bootstrap CIs (clusters = dataset and centre question)."


def _fmt(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _interval(bounds: Any, digits: int) -> str:
    """The CI as "[lower, upper]", or "" when there is none (absent, or NaN/None bounds)."""
    if not bounds or any(b is None or math.isnan(b) for b in bounds):
        return ""
    return f"[{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_agreement(agreement: dict[str, Any], path: str | Path) -> None:
    """Left: NSG each predictor gets from each reference model (lines join one predictor's values). Right: Spearman's
    rho of every predictor pair and their mean. Title: Kendall's W; both with their bootstrap CIs."""
    nsg = pd.DataFrame(agreement["nsg"]).T.astype(float)
    references = list(nsg.index)
    predictors = list(nsg.columns)
    fig = new_figure(11.0, 1.8 + 0.35 * max(len(references), len(predictors), 4))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    colours = _colours(len(predictors))
    y = np.arange(len(references))
    for j, predictor in enumerate(predictors):
        left.plot(nsg[predictor], y, "o-", color=colours[j], label=predictor, markersize=4, linewidth=1, alpha=0.85)
    if references:
        left.set_yticks(y, references)
        left.invert_yaxis()
        left.axvline(0, color="#555555", linewidth=0.8)
        left.legend(loc="best", fontsize=7.5, frameon=False)
    left.set_xlabel("NSG (%) with this predictor")
    left.set_title("NSG per reference model, one line per predictor", fontsize=9.5)

    rho = np.full((len(predictors), len(predictors)), np.nan)
    for k in range(len(predictors)):
        rho[k, k] = 1.0
    index = {p: k for k, p in enumerate(predictors)}
    for pair in agreement["pairwise"]:
        i, j = index[pair["predictor_a"]], index[pair["predictor_b"]]
        rho[i, j] = rho[j, i] = math.nan if pair["spearman"] is None else pair["spearman"]
    if len(predictors) >= 2:
        image = right.imshow(np.ma.masked_invalid(rho), cmap="RdBu", vmin=-1, vmax=1)
        for (i, j), value in np.ndenumerate(rho):
            right.text(j, i, _fmt(value, 2), ha="center", va="center", fontsize=8,
                       color="white" if not math.isnan(value) and abs(value) > 0.6 else "black")  # fmt: skip
        right.set_xticks(range(len(predictors)), predictors, rotation=30, ha="right")
        right.set_yticks(range(len(predictors)), predictors)
        fig.colorbar(image, ax=right, fraction=0.046, pad=0.04, label="Spearman's rho")
    else:
        _empty(right, "fewer than two predictors")
    mean_ci = _interval(agreement.get("spearman_mean_ci"), 2)
    right.set_title(f"Rank correlation of predictors' NSGs\nmean rho = {_fmt(agreement['spearman_mean'], 2)} "
                    f"{mean_ci}", fontsize=9.5)  # fmt: skip
    k = agreement["kendall"]
    why = f" (no CI: {k['w_ci_reason']})" if k.get("w_ci_reason") else ""
    fig.suptitle(
        f"Do the predictors agree which models explain best? Kendall's W = {_fmt(k['w'], 3)} "
        f"{_interval(k.get('w_ci'), 3)}{why}\n"
        f"m = {k['m']} predictors, n = {k['n']} reference models, p = {_fmt(k['p_value'], 3)}",
        fontsize=10,
    )
    fig.tight_layout()
    dropped = agreement["references_dropped"]
    note = f" Left out of W (an NSG missing): {', '.join(dropped)}." if dropped else ""
    _caption(
        fig,
        "Kendall's W: 1 = every predictor ranks the reference models by NSG alike, 0 = no agreement (tie-corrected; "
        "chi-squared test on n - 1 df). Spearman's rho of two predictors' NSG rankings. With n = 2 reference models "
        "a correlation can only be +1 or -1. Brackets: 95 % percentile-bootstrap CIs, resampling the reference "
        "models with replacement (few models: wide)." + note,
    )
    save_png(fig, path)


def plot_answer_order(table: pd.DataFrame, path: str | Path) -> None:
    """NSG with the answer first vs last per reference model (all predictors), with the difference in the labels."""
    rows = table.loc[(table["predictors"] == "all").to_numpy(dtype=bool)]
    references = list(dict.fromkeys(rows["reference"]))
    fig = new_figure(7.5, 1.4 + 0.6 * max(len(references), 1))
    ax = fig.add_subplot()
    y = np.arange(len(references))
    styles = {"first": ("answer first", "#2171b5", -0.12), "last": ("answer last", "#fd8d3c", 0.12)}
    for order, (label, colour, offset) in styles.items():
        part = rows.loc[(rows["answer_order"] == order).to_numpy()].set_index("reference").reindex(references)
        ax.errorbar(part["nsg"], y + offset, xerr=_error(part, "nsg"), fmt="o", color=colour, label=label,
                    markersize=5, elinewidth=1, capsize=2)  # fmt: skip
    diff = rows.loc[(rows["answer_order"] == "first - last").to_numpy()].set_index("reference").reindex(references)
    for yi, (_, r) in zip(y, diff.iterrows(), strict=True):
        text = f"first - last: {_fmt(r['nsg'])} [{_fmt(r['nsg_ci_lower'])}, {_fmt(r['nsg_ci_upper'])}]"
        ax.text(1.01, yi, text, transform=ax.get_yaxis_transform(), va="center", fontsize=7.5, clip_on=False)
    ax.set_yticks(y, references)
    ax.invert_yaxis()
    ax.axvline(0, color="#555555", linewidth=0.8)
    ax.set_xlabel("NSG (%), all predictors")
    ax.set_title("Does it matter whether the reference model states its answer before or after explaining?")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8, frameon=False)
    _caption(
        fig,
        "NSG on the questions asked with the answer first vs last in the reference prompt. The difference (right) "
        "has its CI from one bootstrap over both orders, whose clusters they share. " + CI_NOTE,
    )
    save_png(fig, path)


def _log_axis(ax: Any) -> None:
    """Log x axis with plain-number labels on a few round ticks (no overlapping 10^x labels)."""
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if lo <= t <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_features(table: pd.DataFrame, analysis: str, path: str | Path, min_changed: int = 20) -> None:
    """Relative risk per changed feature (log scale), one panel per dataset, one marker per reference model; only
    features changed by at least `min_changed` eligible pairs."""
    rows = table.loc[(table["analysis"] == analysis).to_numpy(dtype=bool)] if len(table) else table
    rows = rows.loc[(rows["n_changed"] >= min_changed).to_numpy(dtype=bool)] if len(rows) else rows
    datasets = sorted(rows["dataset"].unique()) if len(rows) else []
    references = list(dict.fromkeys(table["reference"])) if len(table) else []
    heights = [max(1, rows.loc[rows["dataset"] == d, "feature"].nunique()) for d in datasets] or [1]
    fig = new_figure(8.0, 1.6 + 0.28 * sum(heights) + 0.5 * len(heights))
    axes = fig.subplots(len(heights), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    colours = _colours(len(references))
    what = "egregious rate" if analysis == "egregious" else "answer-change rate"
    if not datasets:
        _empty(axes[0], f"no feature changed by at least {min_changed} pairs")
    for ax, dataset in zip(axes, datasets, strict=False):
        part = rows.loc[(rows["dataset"] == dataset).to_numpy()]
        order = part.groupby("feature")["relative_risk"].mean().sort_values(ascending=False, na_position="last")
        features = list(order.index)
        ypos = {f: i for i, f in enumerate(features)}
        step = 0.6 / max(len(references), 1)
        for k, reference in enumerate(references):
            mine = part.loc[(part["reference"] == reference).to_numpy()]
            risk = mine["relative_risk"].to_numpy(dtype=float)
            finite = mine.loc[np.isfinite(risk) & (risk > 0)]
            if not len(finite):
                continue
            yy = np.array([ypos[f] for f in finite["feature"]]) + (k - (len(references) - 1) / 2) * step
            lo = (finite["relative_risk"] - finite["relative_risk_ci_lower"]).clip(lower=0).fillna(0)
            hi = (finite["relative_risk_ci_upper"] - finite["relative_risk"]).clip(lower=0).fillna(0)
            ax.errorbar(finite["relative_risk"], yy, xerr=np.vstack([lo, hi]), fmt="o", color=colours[k],
                        label=reference, markersize=4, elinewidth=1, capsize=2)  # fmt: skip
        ax.set_yticks(range(len(features)), features, fontsize=7.5)
        ax.invert_yaxis()
        ax.axvline(1, color="#555555", linewidth=0.8)
        _log_axis(ax)
        ax.set_title(dataset, fontsize=9, loc="left")
    axes[-1].set_xlabel(f"relative risk: {what} when the feature changes / when it does not (log scale)")
    if references and datasets:
        axes[0].legend(loc="best", fontsize=7.5, frameon=False)
    title = "Which changed features make explanations egregiously misleading?" if analysis == "egregious" else (
        "Which changed features make the reference model change its answer?")  # fmt: skip
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    definition = (
        "A pair is egregious when every predictor, shown the explanation, gives the same answer and it is not the "
        "reference model's."
        if analysis == "egregious"
        else "The answer changes when the reference model's counterfactual answer differs from its centre answer."
    )
    _caption(
        fig,
        f"{definition} Relative risk > 1: pairs that change this feature are more often so. Features changed by at "
        f"least {min_changed} pairs; a missing marker: rate 0 among pairs that keep the feature (risk undefined) or "
        f"0 among pairs that change it. {CI_NOTE}",
    )
    save_png(fig, path)


CONDITION_STYLE = {
    "with_explanation": ("explanation", "#2171b5"),
    "without_explanation": ("answer only", "#969696"),
    "cot": ("thinking (cot)", "#6a51a3"),
    "no_reference": ("no reference case", "#fd8d3c"),
}
NSG_STYLE = {
    "explanation": ("explanation vs answer only", "#2171b5"),
    "cot": ("thinking vs answer only", "#6a51a3"),
    "no_reference": ("explanation vs no reference case", "#fd8d3c"),
}


def plot_conditions(table: pd.DataFrame, path: str | Path) -> None:
    """Left: predictor accuracy under each condition; right: NSG of each comparison; one row per reference."""
    references = list(dict.fromkeys(table["reference"]))
    fig = new_figure(11.0, 1.8 + 0.7 * max(len(references), 1))
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(references))
    for ax, kind, styles in ((left, "accuracy", CONDITION_STYLE), (right, "nsg", NSG_STYLE)):
        part = table.loc[(table["kind"] == kind).to_numpy()]
        present = [n for n in styles if (part["name"] == n).any()]
        height = 0.8 / max(len(present), 1)
        for k, name in enumerate(present):
            label, colour = styles[name]
            rows = part.loc[(part["name"] == name).to_numpy()].set_index("reference").reindex(references)
            offset = (k - (len(present) - 1) / 2) * height
            err = np.vstack([(rows["value"] - rows["ci_lower"]).clip(lower=0).fillna(0),
                             (rows["ci_upper"] - rows["value"]).clip(lower=0).fillna(0)])  # fmt: skip
            ax.barh(y + offset, rows["value"].fillna(0), height=height * 0.9, color=colour, label=label, xerr=err,
                    error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#252525"})  # fmt: skip
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.24), ncol=2, fontsize=7.5, frameon=False)
    left.set_yticks(y, references)
    left.invert_yaxis()
    left.set_xlabel("predictor accuracy (%)")
    left.set_xlim(0, 100)
    left.set_title("What the predictor sees", fontsize=9.5)
    right.axvline(0, color="#555555", linewidth=0.8)
    right.set_xlabel("NSG (%)")
    right.set_title("Gain over the baseline", fontsize=9.5)
    fig.suptitle("The explanation, the reference's thinking and no reference case (all predictors)", fontsize=10)
    fig.tight_layout()
    _caption(
        fig,
        "Accuracy: share of the reference model's counterfactual answers the predictors guess. Each accuracy is "
        "measured on the observations of the comparison it belongs to (answer only and explanation: the explanation "
        "comparison; thinking: cot vs answer only; no reference case: explanation vs no reference). NSG = 100 x "
        "(treatment - baseline) / (100 - baseline). " + CI_NOTE,
    )
    save_png(fig, path)


def plot_mcnemar(table: pd.DataFrame, path: str | Path) -> None:
    """Per comparison: accuracy of A and B (with the explanation) pooled and per dataset, with McNemar's p."""
    comparisons = list(dict.fromkeys(zip(table["reference_a"], table["reference_b"], strict=True)))
    rows_per = [
        table.loc[
            ((table["reference_a"] == a) & (table["reference_b"] == b) & (table["scope"] != "predictor")).to_numpy()
        ]
        for a, b in comparisons
    ]
    heights = [max(1, len(r)) for r in rows_per] or [1]
    height = 1.6 + 0.55 * sum(heights) + 0.5 * len(heights)
    fig = new_figure(7.0, height)
    axes = fig.subplots(len(heights), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    if not comparisons:
        _empty(axes[0], "no comparison configured (simulatability.compare_references)")
    for ax, (a, b), rows in zip(axes, comparisons, rows_per, strict=False):
        labels = ["pooled" if s == "pooled" else g for s, g in zip(rows["scope"], rows["group"], strict=True)]
        y = np.arange(len(rows))
        ax.barh(y - 0.2, rows["accuracy_a"], height=0.38, color="#9ecae1", label=a)
        ax.barh(y + 0.2, rows["accuracy_b"], height=0.38, color="#08519c", label=b)
        for yi, (_, r) in zip(y, rows.iterrows(), strict=True):
            text = (f"B - A {_fmt(r['difference'])} pp [{_fmt(r['difference_ci_lower'])}, "
                    f"{_fmt(r['difference_ci_upper'])}]; discordant {r['only_a_correct']} / {r['only_b_correct']}; "
                    f"p = {r['p_value']:.2g} ({r['test']}), clustered {r['p_value_clustered']:.2g}; "
                    f"n = {r['n']}")  # fmt: skip
            ax.text(1.01, yi, text, transform=ax.get_yaxis_transform(), va="center", fontsize=7.5, clip_on=False)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, fontsize=7.5, frameon=False)
        ax.set_title(f"A = {a}, B = {b}", fontsize=9, loc="left", pad=18)
    axes[-1].set_xlabel("predictor accuracy with the explanation (%)")
    fig.suptitle(
        "Two reference models on the same questions: McNemar's test of WITH-explanation correctness", fontsize=10
    )
    fig.subplots_adjust(left=0.22, right=0.98, top=1 - 1.0 / height, hspace=0.9)
    _caption(
        fig,
        "Observations are paired one to one on (pair, predictor, repeat). Discordant: only A right vs only B right. "
        "p: McNemar's chi-squared with continuity correction, or the exact binomial test (exact) when there are "
        "fewer than the configured number of discordant observations; it treats observations as independent, as "
        "the paper's. Clustered: McNemar's test for clustered data (Durkalski 2003). The difference's CI is a 95 % "
        "cluster-bootstrap interval (clusters = dataset and centre question).",
    )
    save_png(fig, path)
