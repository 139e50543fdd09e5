"""Do the predictors agree on which reference models explain best? Rank agreement of their NSGs.

The faithfulness paper checked (in a notebook) that its conclusions do not hinge on one predictor: each predictor
ranks the reference models by the NSG it gets from their explanations, and Kendall's W and the pairwise Spearman
correlations of those rankings say how far the predictors agree. Here the same numbers come from the summary table
(scope "predictor" rows), with the formulas as small functions a test can check by hand.

Formulas. Ranks are average ranks (tied values share the mean of the ranks they span), rank 1 = lowest value.
* Kendall's W for m raters (predictors) ranking n items (reference models): R_i = the sum of item i's ranks,
  S = sum_i (R_i - mean R)^2, T_j = sum over the tie groups of rater j of (t^3 - t) for a group of t tied items;
  W = 12 S / (m^2 (n^3 - n) - m sum_j T_j). W = 1 when every rater ranks alike, 0 when the rank sums are all equal.
  Its test: chi^2 = m (n - 1) W on n - 1 degrees of freedom.
* Spearman's rho of two raters: the Pearson correlation of their average ranks (exact under ties); undefined when
  either ranking is constant.
Reference models without an NSG for some predictor (no usable observation, or no error left to close) are left out
of W (it needs complete rankings) and out of every Spearman pair where they miss, and are counted.

CIs. W and rho have no closed-form interval here, so they get a percentile bootstrap over the items they rank: a
resample draws the reference models (rows of the NSG matrix, incomplete ones included) with replacement, and gets
the same statistics as the data (W over its complete rows, each rho over the rows its pair has; a reference drawn
twice is two tied items). Resamples where a statistic is undefined (e.g. one reference drawn n times: every rater
ties every item) are left out of its interval and counted. No interval (NaN, with the reason) with fewer than 2
predictors, fewer than 2 reference models in the statistic, or no resample. Draws: one numpy Generator seeded with
the simulatability bootstrap seed (`metrics.table_rng(seed, "all", "predictor_agreement")`).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from selfexplain.errors import InputError
from selfexplain.simulatability import metrics as sm

AGREEMENT_TABLE = "predictor_agreement"  # names the bootstrap stream (metrics.table_rng)


def average_ranks(values: Any) -> np.ndarray:
    """1-based average ranks of a vector (ties share the mean rank)."""
    return stats.rankdata(np.asarray(values, dtype=np.float64), method="average")


def tie_term(values: Any) -> float:
    """sum over tie groups of (t^3 - t): 0 without ties."""
    _, counts = np.unique(np.asarray(values, dtype=np.float64), return_counts=True)
    return float(np.sum(counts.astype(np.float64) ** 3 - counts))


def kendalls_w(scores: Any) -> dict[str, float]:
    """Kendall's W (tie-corrected) of an (m raters x n items) score matrix without NaN; each rater's scores are
    ranked. Returns w, chi2, df, p_value, m, n; NaN values when m < 2, n < 2 or every rater ties every item."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("scores must be a 2-D (raters x items) matrix")
    if np.isnan(x).any():
        raise ValueError("scores must be complete (no NaN): drop incomplete items first")
    m, n = x.shape
    out = {"w": math.nan, "chi2": math.nan, "df": float(max(n - 1, 0)), "p_value": math.nan, "m": m, "n": n}
    if m < 2 or n < 2:
        return out
    ranks = np.vstack([average_ranks(row) for row in x])
    totals = ranks.sum(axis=0)
    s = float(np.sum((totals - totals.mean()) ** 2))
    ties = sum(tie_term(row) for row in x)
    denom = m**2 * (n**3 - n) - m * ties
    if denom <= 0:
        return out
    w = 12 * s / denom
    chi2 = m * (n - 1) * w
    out.update(w=w, chi2=chi2, p_value=float(stats.chi2.sf(chi2, n - 1)))
    return out


def spearman(x: Any, y: Any) -> float:
    """Spearman's rho: Pearson correlation of the average ranks; NaN when a ranking is constant or n < 2."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("x and y must have the same length")
    if len(a) < 2:
        return math.nan
    ra = average_ranks(a) - (len(a) + 1) / 2
    rb = average_ranks(b) - (len(b) + 1) / 2
    denom = math.sqrt(float(np.sum(ra**2)) * float(np.sum(rb**2)))
    return math.nan if denom == 0 else float(np.sum(ra * rb) / denom)


def nsg_matrix(summary: pd.DataFrame, predictors: str = "all", comparison: str = "explanation") -> pd.DataFrame:
    """NSG per (reference model, predictor) from the summary table's scope "predictor" rows: references as rows
    (order of first appearance), predictors as columns (sorted)."""
    need = {"reference", "comparison", "predictors", "scope", "group", "nsg"}
    missing = sorted(need - set(summary.columns))
    if missing:
        raise InputError(f"simulatability summary: missing column(s) {missing}")
    keep = (
        (summary["comparison"] == comparison)
        & (summary["predictors"] == predictors)
        & (summary["scope"] == "predictor")
    )
    rows = summary.loc[keep.to_numpy(dtype=bool)]
    references = list(dict.fromkeys(rows["reference"].astype(str)))
    grid = rows.pivot_table(index="reference", columns="group", values="nsg", aggfunc="first", dropna=False)
    return grid.reindex(index=references, columns=sorted(grid.columns)).astype(np.float64)


def _statistics(x: np.ndarray) -> tuple[float, list[float]]:
    """Kendall's W over the complete rows of a (references x predictors) NSG array and Spearman's rho of every
    predictor pair (itertools.combinations order) over the rows both have."""
    complete = x[~np.isnan(x).any(axis=1)]
    w = kendalls_w(complete.T)["w"]
    rhos = []
    for a, b in itertools.combinations(range(x.shape[1]), 2):
        both = ~(np.isnan(x[:, a]) | np.isnan(x[:, b]))
        rhos.append(spearman(x[both, a], x[both, b]))
    return w, rhos


def _no_interval(nsg: np.ndarray, draws: np.ndarray) -> str | None:
    """Why W and rho can have no interval at all, or None."""
    n_complete = int((~np.isnan(nsg).any(axis=1)).sum())
    if nsg.shape[1] < 2:
        return "fewer than 2 predictors"
    if n_complete < 2:
        return "fewer than 2 reference models with an NSG from every predictor"
    if len(draws) == 0:
        return "no bootstrap resamples"
    return None


def bootstrap_agreement(nsg: Any, draws: Any, level: float = sm.DEFAULT_LEVEL) -> dict[str, Any]:
    """Percentile intervals of Kendall's W, of each pair's Spearman's rho and of their mean, from resamples of the
    reference models: `nsg` is the (references x predictors) NSG array (NaN = no NSG), row k of `draws` the row
    indices of resample k. Returns w_ci, w_defined (resamples with a defined W), spearman_mean_ci,
    spearman_mean_defined, pairwise_ci (one [lower, upper] per pair, combinations order), resamples, and reason
    (None, or why there is no interval; its intervals are then NaN)."""
    x = np.asarray(nsg, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("nsg must be a 2-D (references x predictors) matrix")
    draws = np.asarray(draws, dtype=np.int64)
    if draws.size == 0:
        draws = np.empty((0, x.shape[0]), dtype=np.int64)
    pairs = x.shape[1] * (x.shape[1] - 1) // 2
    out: dict[str, Any] = {
        "w_ci": [math.nan, math.nan],
        "w_defined": 0,
        "spearman_mean_ci": [math.nan, math.nan],
        "spearman_mean_defined": 0,
        "pairwise_ci": [[math.nan, math.nan] for _ in range(pairs)],
        "resamples": len(draws),
        "reason": _no_interval(x, draws),
    }
    if out["reason"] is not None:
        return out
    replicates = np.full((len(draws), pairs + 2), np.nan)  # columns: W, mean rho, each pair's rho
    for k, rows in enumerate(draws):
        w, rhos = _statistics(x[rows])
        defined = [r for r in rhos if not math.isnan(r)]
        replicates[k] = [w, float(np.mean(defined)) if defined else math.nan, *rhos]
    bounds = sm.percentile_ci(replicates, level)
    out.update(
        w_ci=[float(bounds[0, 0]), float(bounds[1, 0])],
        w_defined=int((~np.isnan(replicates[:, 0])).sum()),
        spearman_mean_ci=[float(bounds[0, 1]), float(bounds[1, 1])],
        spearman_mean_defined=int((~np.isnan(replicates[:, 1])).sum()),
        pairwise_ci=[[float(bounds[0, j]), float(bounds[1, j])] for j in range(2, pairs + 2)],
    )
    if out["w_defined"] == 0:
        out["reason"] = "no resample has a defined W"
    return out


def draw_references(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) row indices drawn with replacement from the agreement's own seeded stream."""
    if n == 0 or resamples <= 0:
        return np.empty((0, n), dtype=np.int64)
    return sm.table_rng(seed, "all", AGREEMENT_TABLE).integers(0, n, size=(resamples, n))


def predictor_agreement(
    matrix: pd.DataFrame,
    *,
    resamples: int = sm.DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = sm.DEFAULT_LEVEL,
) -> dict[str, Any]:
    """Kendall's W over the references with an NSG for every predictor, and Spearman's rho of every predictor pair
    over the references both have, with bootstrap CIs over the references. JSON-able: kendall {w, chi2, df, p_value,
    m, n, w_ci, w_ci_reason}, references_used, references_dropped, pairwise [{predictor_a, predictor_b, spearman, n,
    spearman_ci}], spearman_mean, spearman_mean_ci, spearman_sd (ddof 1), spearman_min, spearman_max, bootstrap
    {how the CIs were drawn, resamples with a defined statistic}, nsg {reference: {predictor: nsg}}."""
    x = matrix.to_numpy(dtype=np.float64)
    complete = matrix.dropna(axis=0, how="any")
    kendall = kendalls_w(complete.to_numpy(dtype=np.float64).T) if len(complete) else kendalls_w(np.empty((0, 0)))
    boot = bootstrap_agreement(x, draw_references(len(matrix), resamples, seed), level)
    kendall.update(w_ci=boot["w_ci"], w_ci_reason=boot["reason"])
    pairwise = []
    for (a, b), ci in zip(itertools.combinations(matrix.columns, 2), boot["pairwise_ci"], strict=True):
        both = matrix[[a, b]].dropna()
        pairwise.append(
            {
                "predictor_a": str(a),
                "predictor_b": str(b),
                "spearman": spearman(both[a], both[b]),
                "n": len(both),
                "spearman_ci": ci,
            }
        )
    rhos = np.array([p["spearman"] for p in pairwise if not math.isnan(p["spearman"])], dtype=np.float64)
    return {
        "kendall": kendall,
        "references_used": [str(r) for r in complete.index],
        "references_dropped": [str(r) for r in matrix.index if r not in complete.index],
        "pairwise": pairwise,
        "spearman_mean": float(rhos.mean()) if len(rhos) else math.nan,
        "spearman_mean_ci": boot["spearman_mean_ci"],
        "spearman_sd": float(rhos.std(ddof=1)) if len(rhos) > 1 else math.nan,
        "spearman_min": float(rhos.min()) if len(rhos) else math.nan,
        "spearman_max": float(rhos.max()) if len(rhos) else math.nan,
        "bootstrap": {
            "resamples": boot["resamples"],
            "seed": seed,
            "level": level,
            "interval": "percentile (linear)",
            "resampled": "reference models (rows of the NSG matrix), with replacement",
            "rng": f"numpy Generator (PCG64) seeded with [seed, crc32('all'), crc32('{AGREEMENT_TABLE}')]",
            "w_defined": boot["w_defined"],
            "spearman_mean_defined": boot["spearman_mean_defined"],
        },
        "nsg": {
            str(ref): {str(p): (None if math.isnan(v) else float(v)) for p, v in row.items()}
            for ref, row in matrix.iterrows()
        },
    }
