"""The cross-study view: does a model that knows its own decision boundary (sce) also explain itself usefully to
others (simulatability)?

Neither study knows the other; this module only reads their finished tables. For every model that is both an sce
model and a simulatability reference it puts side by side, per sce follow-up prompt:

* sce validity (%) and minimality (mean RCF_A), averaged over the sce grids with equal weight per grid (the grids
  are different tasks with their own distance scales, so a grid with more valid rows should not count more). The
  95 % CI is a stratified percentile bootstrap: the kept rows of each grid are resampled within that grid, each
  grid's statistic is recomputed as the sce summary computes it, and the grids are averaged again. Minimality is
  averaged over the grids where it is defined (at least one valid counterfactual); `n_grids_minimality` says how
  many.
* the simulatability NSG of its explanations: the summary's row with comparison `explanation`, the chosen predictor
  set (default `all`) and scope `pooled`, with that study's cluster-bootstrap CI.

Across models: Spearman's rank correlation of each sce measure with NSG and a percentile bootstrap CI that resamples
*models* with replacement (the question is about models in general, not about these few), seeded; resamples whose
correlation is undefined (fewer than 3 distinct models, or a constant variable) are left out and counted. With fewer
than 3 models with both values the correlation is NaN and `note` says why.

Formulas are small pure functions (`grid_stats`, `pooled_grid_stats`, `spearman`, `spearman_ci`); `summarise` and
`plot_validity_vs_nsg` are the file-level steps of the rules in `rules/cross_study.smk`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfexplain.errors import InputError
from selfexplain.figures import new_figure, place_legend_and_caption, save_png
from selfexplain.io import atomic_path

# The sce measures related to NSG: summary column -> axis label.
SCE_MEASURES = {
    "validity_percent": "sce validity (%)",
    "mean_RCF_A": "sce mean RCF_A (lower = more minimal)",
}
MIN_MODELS = 3
RESAMPLED = "models, with replacement"
SUMMARY_COLUMNS = [
    "model",
    "prompt",
    "n_grids",
    "grids",
    "n_kept",
    "validity_percent",
    "validity_percent_ci_low",
    "validity_percent_ci_high",
    "mean_RCF_A",
    "mean_RCF_A_ci_low",
    "mean_RCF_A_ci_high",
    "n_grids_minimality",
    "predictors",
    "nsg",
    "nsg_ci_low",
    "nsg_ci_high",
    "nsg_n",
]
CORRELATION_COLUMNS = [
    "prompt",
    "sce_measure",
    "n_models",
    "spearman",
    "spearman_ci_low",
    "spearman_ci_high",
    "resampled",
    "resamples",
    "n_resamples_defined",
    "seed",
    "note",
]


# --------------------------------------------------------------------------------------------- formulas


def shared_models(sce_models: Sequence[str], references: Sequence[str]) -> list[str]:
    """Models that are both sce models and simulatability references, in sce order."""
    refs = set(references)
    return [m for m in dict.fromkeys(sce_models) if m in refs]


def grid_stats(valid: np.ndarray, rcf_a: np.ndarray) -> tuple[float, float]:
    """(validity %, mean RCF_A over the valid rows) of one grid's kept rows, as the sce summary defines them;
    NaN validity without rows, NaN minimality without a valid row."""
    valid = np.asarray(valid, dtype=np.float64)
    rcf_a = np.asarray(rcf_a, dtype=np.float64)
    if valid.size == 0:
        return math.nan, math.nan
    is_valid = valid == 1
    minimality = float(np.mean(rcf_a[is_valid])) if is_valid.any() else math.nan
    return 100 * float(np.mean(valid)), minimality


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=-1)


def pooled_grid_stats(
    grids: Sequence[tuple[np.ndarray, np.ndarray]], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Validity % and mean RCF_A averaged over grids (equal weights; minimality over the grids where defined), with
    stratified percentile bootstrap CIs (each grid's kept rows resampled within the grid). `grids` holds each grid's
    (valid 0/1, RCF_A) over its kept rows."""
    stats = np.array([grid_stats(v, r) for v, r in grids], dtype=np.float64).reshape(-1, 2)
    out: dict[str, Any] = {
        "validity_percent": float(_nanmean_rows(stats[:, 0])) if len(stats) else math.nan,
        "mean_RCF_A": float(_nanmean_rows(stats[:, 1])) if len(stats) else math.nan,
        "n_grids_minimality": int(np.sum(~np.isnan(stats[:, 1]))),
    }
    nan_ci = [math.nan, math.nan]
    if resamples <= 0 or not grids or any(len(v) == 0 for v, _ in grids):
        return {**out, "validity_percent_ci": nan_ci, "mean_RCF_A_ci": nan_ci}
    rng = np.random.default_rng(seed)
    validity = np.empty((resamples, len(grids)))
    minimality = np.empty((resamples, len(grids)))
    for g, (v, r) in enumerate(grids):
        v = np.asarray(v, dtype=np.float64)
        r = np.where(v == 1, np.asarray(r, dtype=np.float64), 0.0)
        draw = rng.integers(0, v.size, size=(resamples, v.size))
        n_valid = (v[draw] == 1).sum(axis=1)
        validity[:, g] = 100 * v[draw].mean(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            minimality[:, g] = np.where(n_valid > 0, r[draw].sum(axis=1) / np.maximum(n_valid, 1), np.nan)
    alpha = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        v_ci = np.nanquantile(_nanmean_rows(validity), [alpha, 1 - alpha])
        m_ci = np.nanquantile(_nanmean_rows(minimality), [alpha, 1 - alpha])
    return {**out, "validity_percent_ci": [float(x) for x in v_ci], "mean_RCF_A_ci": [float(x) for x in m_ci]}


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < values.size:
        stop = start + 1
        while stop < values.size and sorted_values[stop] == sorted_values[start]:
            stop += 1
        ranks[order[start:stop]] = (start + stop + 1) / 2  # mean of positions start+1 .. stop
        start = stop
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks) over the pairs where both are finite;
    NaN with fewer than 3 such pairs or when either variable is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if x.size < MIN_MODELS:
        return math.nan
    rx, ry = _ranks(x), _ranks(y)
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(np.sum(dx * dx) * np.sum(dy * dy)))
    if denominator == 0:
        return math.nan
    return float(np.sum(dx * dy) / denominator)


def spearman_ci(
    x: Sequence[float], y: Sequence[float], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, int]:
    """Percentile bootstrap CI of `spearman(x, y)` resampling the (x, y) pairs (models) with replacement, over the
    pairs where both are finite; (low, high, resamples where the correlation was defined). Resamples with fewer
    than 3 distinct models or a constant variable are undefined and left out; (NaN, NaN, 0) if none is defined."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if x.size < MIN_MODELS or resamples <= 0:
        return math.nan, math.nan, 0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, x.size, size=(resamples, x.size))
    values = np.array(
        [spearman(x[d], y[d]) if np.unique(d).size >= MIN_MODELS else math.nan for d in draws], dtype=np.float64
    )
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return math.nan, math.nan, 0
    alpha = (1 - level) / 2
    low, high = np.quantile(defined, [alpha, 1 - alpha])
    return float(low), float(high), int(defined.size)


def correlation(
    x: Sequence[float], y: Sequence[float], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Spearman's rho with its model-resampling bootstrap CI, the number of models used and, when rho is NaN, why."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = int(np.sum(np.isfinite(x) & np.isfinite(y)))
    rho = spearman(x, y)
    low, high, n_defined = spearman_ci(x, y, resamples, seed, level)
    note = ""
    if n < MIN_MODELS:
        note = f"fewer than {MIN_MODELS} models with both values ({n})"
    elif math.isnan(rho):
        note = "a variable is constant over the models (no ranking)"
    elif n_defined < resamples:
        note = f"{resamples - n_defined} of {resamples} resamples undefined (too few distinct models or a tie) left out"
    return {
        "n_models": n,
        "spearman": rho,
        "spearman_ci_low": low,
        "spearman_ci_high": high,
        "resampled": RESAMPLED,
        "resamples": int(resamples),
        "n_resamples_defined": n_defined,
        "seed": int(seed),
        "note": note,
    }


# --------------------------------------------------------------------------------------------- tables


def _require(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}")


def nsg_rows(
    sim_summary: pd.DataFrame, predictors: str = "all", source: str = "simulatability summary"
) -> pd.DataFrame:
    """Each reference's pooled NSG of its explanations (comparison explanation, scope pooled, `predictors`), indexed
    by reference, with columns nsg, nsg_ci_low, nsg_ci_high, nsg_n."""
    _require(
        sim_summary, ["reference", "comparison", "predictors", "scope", "nsg", "nsg_ci_lower", "nsg_ci_upper"], source
    )
    rows = sim_summary[
        (sim_summary["comparison"] == "explanation")
        & (sim_summary["predictors"] == predictors)
        & (sim_summary["scope"] == "pooled")
    ]
    if rows["reference"].duplicated().any():
        raise InputError(f"{source}: more than one pooled explanation row for a reference (predictors {predictors})")
    out = pd.DataFrame(
        {
            "nsg": rows["nsg"].astype("float64").to_numpy(),
            "nsg_ci_low": rows["nsg_ci_lower"].astype("float64").to_numpy(),
            "nsg_ci_high": rows["nsg_ci_upper"].astype("float64").to_numpy(),
            "nsg_n": (rows["n"].astype("float64") if "n" in rows else pd.Series(math.nan, index=rows.index)).to_numpy(),
        },
        index=pd.Index(rows["reference"].astype(str).to_numpy(), name="reference"),
    )
    return out


def _check_against_summary(row: pd.Series, validity: float, minimality: float, source: str) -> None:
    """The per-grid numbers recomputed from the scores must be the sce summary's (else the files are out of step)."""
    for column, value in (("validity_percent", validity), ("mean_RCF_A", minimality)):
        expected = float(row[column])
        if math.isnan(expected) and math.isnan(value):
            continue
        if math.isnan(expected) or math.isnan(value) or abs(expected - value) > 1e-9 * max(1.0, abs(expected)):
            raise InputError(f"{source}: {column} {value} differs from the sce summary's {expected}; rerun sce_summary")


def summary_table(
    sce_summary: pd.DataFrame,
    sim_summary: pd.DataFrame,
    scores: Mapping[tuple[str, str, str], pd.DataFrame],
    models: Sequence[str],
    prompts: Sequence[str],
    predictors: str = "all",
    resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (model, prompt): pooled sce validity and minimality with CIs beside the model's NSG with its CI.
    `scores[(model, grid, prompt)]` is that run's sce scores table (columns kept, valid, RCF_A); the grids are the
    sce summary's rows of the model and prompt."""
    _require(sce_summary, ["model", "dataset", "prompt", "validity_percent", "mean_RCF_A"], "sce summary")
    nsg = nsg_rows(sim_summary, predictors)
    rows = []
    for model in models:
        if model not in nsg.index:
            raise InputError(f"simulatability summary: no pooled explanation NSG for reference {model}")
        for prompt in prompts:
            runs = sce_summary[(sce_summary["model"] == model) & (sce_summary["prompt"] == prompt)]
            if runs.empty:
                raise InputError(f"sce summary: no rows for model {model}, prompt {prompt}")
            grids, arrays, n_kept = [], [], 0
            for _, run in runs.iterrows():
                grid = str(run["dataset"])
                key = (model, grid, prompt)
                if key not in scores:
                    raise InputError(f"cross-study inputs: no sce scores table for {model}/{grid}/{prompt}")
                table = scores[key]
                _require(table, ["kept", "valid", "RCF_A"], f"sce scores {model}/{grid}/{prompt}")
                kept = table["kept"].to_numpy(dtype=bool)
                valid = table["valid"].to_numpy(dtype=np.float64)[kept]
                rcf_a = table["RCF_A"].to_numpy(dtype=np.float64)[kept]
                _check_against_summary(run, *grid_stats(valid, rcf_a), f"sce scores {model}/{grid}/{prompt}")
                grids.append(grid)
                arrays.append((valid, rcf_a))
                n_kept += int(kept.sum())
            pooled = pooled_grid_stats(arrays, resamples=resamples, seed=seed)
            n = nsg.loc[model]
            rows.append(
                {
                    "model": model,
                    "prompt": prompt,
                    "n_grids": len(grids),
                    "grids": " ".join(grids),
                    "n_kept": n_kept,
                    "validity_percent": pooled["validity_percent"],
                    "validity_percent_ci_low": pooled["validity_percent_ci"][0],
                    "validity_percent_ci_high": pooled["validity_percent_ci"][1],
                    "mean_RCF_A": pooled["mean_RCF_A"],
                    "mean_RCF_A_ci_low": pooled["mean_RCF_A_ci"][0],
                    "mean_RCF_A_ci_high": pooled["mean_RCF_A_ci"][1],
                    "n_grids_minimality": pooled["n_grids_minimality"],
                    "predictors": predictors,
                    "nsg": float(n["nsg"]),
                    "nsg_ci_low": float(n["nsg_ci_low"]),
                    "nsg_ci_high": float(n["nsg_ci_high"]),
                    "nsg_n": float(n["nsg_n"]),
                }
            )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def correlation_table(table: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per prompt and sce measure: Spearman's rho of the measure with NSG over the models, with its bootstrap CI."""
    rows = []
    for prompt in dict.fromkeys(table["prompt"]):
        part = table[table["prompt"] == prompt]
        for measure in SCE_MEASURES:
            stats = correlation(part[measure].to_numpy(float), part["nsg"].to_numpy(float), resamples, seed)
            rows.append({"prompt": prompt, "sce_measure": measure, **stats})
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def _write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def summarise(
    sce_summary_path: str | Path,
    sim_summary_path: str | Path,
    scores_paths: Mapping[tuple[str, str, str], str | Path],
    models: Sequence[str],
    prompts: Sequence[str],
    out_table: str | Path,
    out_correlations: str | Path,
    predictors: str = "all",
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """File-level step: read both studies' summaries and the shared models' sce scores, write the table and the
    correlations (CSV)."""
    from selfexplain.io import read_table

    sce = _read_csv(sce_summary_path)
    sim = _read_csv(sim_summary_path)
    scores = {key: read_table(path) for key, path in scores_paths.items()}
    table = summary_table(sce, sim, scores, models, prompts, predictors, resamples, seed)
    correlations = correlation_table(table, resamples, seed)
    _write_csv(table, out_table)
    _write_csv(correlations, out_correlations)
    return table, correlations


def _read_csv(path: str | Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read CSV ({exc})") from exc


# --------------------------------------------------------------------------------------------- figure

MODEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
MODEL_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")


def _rho_text(stats: Mapping[str, Any]) -> str:
    if math.isnan(stats["spearman"]):
        return f"Spearman ρ undefined: {stats['note']}"
    if math.isnan(stats["spearman_ci_low"]):
        return f"Spearman ρ = {stats['spearman']:+.2f} (n = {stats['n_models']}; no bootstrap CI)"
    return (
        f"Spearman ρ = {stats['spearman']:+.2f} [{stats['spearman_ci_low']:+.2f}, {stats['spearman_ci_high']:+.2f}]"
        f" (n = {stats['n_models']})"
    )


def plot_validity_vs_nsg(table: pd.DataFrame, correlations: pd.DataFrame, path: str | Path) -> dict[str, Any]:
    """One row of panels per prompt: sce validity (left) and mean RCF_A (right) against NSG, one point per model,
    95 % CIs on both axes, Spearman's rho in each panel's title. A model without a valid counterfactual has no
    minimality: it is listed under the right panel instead of drawn. Returns what each panel shows."""
    from matplotlib.lines import Line2D

    prompts = list(dict.fromkeys(table["prompt"]))
    models = list(dict.fromkeys(table["model"]))
    if not prompts:
        raise InputError("cross-study table is empty: no model is both an sce model and a simulatability reference")
    style = {
        m: (MODEL_MARKERS[i % len(MODEL_MARKERS)], MODEL_COLOURS[i % len(MODEL_COLOURS)]) for i, m in enumerate(models)
    }
    fig = new_figure(10.0, 3.6 * len(prompts) + 0.4)
    axes = fig.subplots(len(prompts), len(SCE_MEASURES), squeeze=False, sharey="row")
    drawn: dict[str, Any] = {}
    for i, prompt in enumerate(prompts):
        part = table[table["prompt"] == prompt]
        for j, (measure, label) in enumerate(SCE_MEASURES.items()):
            ax = axes[i][j]
            stats = correlations[(correlations["prompt"] == prompt) & (correlations["sce_measure"] == measure)]
            stats = stats.iloc[0].to_dict() if len(stats) else {"spearman": math.nan, "note": "not computed"}
            finite = part[np.isfinite(part[measure].astype(float)) & np.isfinite(part["nsg"].astype(float))]
            missing = [str(m) for m in part["model"] if m not in set(finite["model"])]
            xs, ys = finite[measure].to_numpy(float), finite["nsg"].to_numpy(float)
            width = 100.0 if measure == "validity_percent" else float(np.ptp(xs)) if xs.size > 1 else 0.0
            offsets = spread_offsets(xs, ys, width or max(abs(float(xs.max())) if xs.size else 0.0, 1e-3))
            shown = []
            for (_, row), x, y, dx in zip(finite.iterrows(), xs, ys, offsets, strict=True):
                marker, colour = style[row["model"]]
                xerr = _err(x, row[f"{measure}_ci_low"], row[f"{measure}_ci_high"])
                yerr = _err(y, row["nsg_ci_low"], row["nsg_ci_high"])
                ax.errorbar(
                    x + dx, y, xerr=xerr, yerr=yerr, fmt=marker, color=colour, ms=7, capsize=3, lw=1.2, alpha=0.9
                )
                if dx:
                    ax.plot([x, x + dx], [y, y], color="#888888", lw=0.8, zorder=0)
                shown.append(str(row["model"]))
            ax.set_xlabel(label)
            if j == 0:
                ax.set_ylabel("NSG of explanations (%)")
            ax.set_title(f"{prompt} prompt\n{_rho_text(stats)}", fontsize=9)
            ax.grid(True, color="#dddddd", lw=0.6)
            if measure == "validity_percent":
                ax.set_xlim(-5, 105)
            if missing:
                ax.text(
                    0.02,
                    0.02,
                    "not drawn (undefined): " + ", ".join(missing),
                    transform=ax.transAxes,
                    fontsize=7.5,
                    color="#555555",
                    va="bottom",
                )
            drawn[f"{prompt}/{measure}"] = {"models": shown, "undefined": missing, "spearman": stats["spearman"]}
    fig.tight_layout()
    handles = [
        Line2D([], [], marker=style[m][0], color=style[m][1], linestyle="none", markersize=7, label=m) for m in models
    ]
    caption = (
        "One point per model that is both an sce model and a simulatability reference. sce measures: mean over the "
        "grids (equal weights); NSG: pooled over datasets, all predictors.\nError bars: 95 % CIs (sce: bootstrap of "
        "rows within each grid; NSG: cluster bootstrap). ρ's CI: bootstrap over models (resampled with replacement).\n"
        "Overlapping points are spread sideways (a grey line joins each to its true x)."
    )
    place_legend_and_caption(fig, handles, caption, ncol=min(len(models), 5))
    save_png(fig, path)
    return drawn


def spread_offsets(
    xs: np.ndarray, ys: np.ndarray, width: float, step: float = 0.03, tolerance: float = 0.02
) -> list[float]:
    """Sideways offsets (in x units) for points that overlap (x within `tolerance` x `width` and y within
    `tolerance` of the y range of each other, grouped greedily in order): each group of k points is spread around its
    first point's x by `step` x `width` apart, so no model hides behind another; lone points get 0."""
    offsets = [0.0] * len(xs)
    y_range = float(np.ptp(ys)) if len(ys) > 1 else 0.0
    groups: list[list[int]] = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        for group in groups:
            x0, y0 = xs[group[0]], ys[group[0]]
            if abs(x - x0) <= tolerance * width and abs(y - y0) <= tolerance * max(y_range, 1e-12):
                group.append(i)
                break
        else:
            groups.append([i])
    for members in groups:
        k = len(members)
        for j, i in enumerate(members):
            offsets[i] = (j - (k - 1) / 2) * step * width if k > 1 else 0.0
    return offsets


def _err(centre: float, low: Any, high: Any) -> Any:
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return [[max(centre - low, 0.0)], [max(high - centre, 0.0)]]
