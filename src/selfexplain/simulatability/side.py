"""Side analyses of the faithfulness paper, which it ran in notebooks that do not run as shipped, as tested tables.

* `answer_order_table`: NSG with the answer stated first vs last in the reference prompt, and the difference with a
  cluster-bootstrap CI (both orders of a centre question share a cluster, so they resample together).
* `feature_table`: per dataset and changed feature, the rate of egregious pairs (or of pairs whose reference answer
  changed) among pairs that change the feature vs those that do not, the relative risk and their CIs. Which
  features a pair changes comes from the pairs' `changed_features` column, joined by pair_id.
* `mcnemar_table`: WITH-explanation correctness of two reference models (e.g. two reasoning efforts of one model)
  on the same questions, paired one to one on (pair_id, predictor, repeat), with McNemar's test.
* `condition_table`: accuracy and NSG of the normal explanation, the reference's thinking (`cot`) and the
  `no_reference` baseline, from the summary table.
Predictor agreement (Kendall's W, Spearman) is in `selfexplain.simulatability.agreement`.

Every CI is a percentile interval of the study's cluster bootstrap (clusters = (dataset, centre_row); the counts
per cluster and `metrics.Resampler`, so each table has its own seeded stream, named by its path in the output).

Formulas:
* relative risk RR = rate(changed) / rate(unchanged), undefined when the unchanged rate is 0 or a group is empty;
  change effect = rate(changed) - rate(all eligible pairs), in points.
* McNemar: with b = observations only A gets right and c = only B gets right, chi^2 = max(|b - c| - 1, 0)^2 / (b + c)
  (continuity corrected) on 1 df; when b + c < `exact_below`, the exact two-sided binomial p = min(1, 2 P(X <=
  min(b, c))) with X ~ Binomial(b + c, 1/2). No discordant observation: p = 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from selfexplain.errors import InputError
from selfexplain.simulatability import metrics as m

DEFAULT_EXACT_BELOW = 25
ORDERS = {"first": True, "last": False}
FEATURE_ANALYSES = ("egregious", "answer_change")
PAIR_KEYS = ["pair_id", "predictor", "repeat"]


# ---------------------------------------------------------------------------------------------------------------
# Formulas
# ---------------------------------------------------------------------------------------------------------------
def relative_risk(rate_changed: Any, rate_unchanged: Any) -> Any:
    """rate_changed / rate_unchanged (elementwise); NaN where the unchanged rate is 0 or either is NaN."""
    a = np.asarray(rate_changed, dtype=np.float64)
    b = np.asarray(rate_unchanged, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(b > 0, a / b, math.nan)
    return float(value) if np.ndim(value) == 0 else value


def mcnemar(b: int, c: int, *, exact_below: int = DEFAULT_EXACT_BELOW) -> dict[str, Any]:
    """McNemar's test of b (only A right) vs c (only B right): the continuity-corrected chi-squared, or the exact
    binomial test when b + c < exact_below. Returns test ("chi2_cc", "exact" or "none"), statistic, p_value."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return {"test": "none", "statistic": math.nan, "p_value": 1.0}
    if n < exact_below:
        p = 2 * float(stats.binom.cdf(min(b, c), n, 0.5))
        return {"test": "exact", "statistic": float(min(b, c)), "p_value": min(1.0, p)}
    statistic = max(abs(b - c) - 1, 0) ** 2 / n
    return {"test": "chi2_cc", "statistic": float(statistic), "p_value": float(stats.chi2.sf(statistic, 1))}


def clustered_mcnemar(only_a: Any, only_b: Any) -> dict[str, Any]:
    """McNemar's test for clustered pairs (Durkalski et al., Stat Med 2003): per cluster k the discordant counts b_k
    (only A right) and c_k (only B right); X^2 = (sum_k (b_k - c_k))^2 / sum_k (b_k - c_k)^2 on 1 df. The plain test
    takes every observation as independent, but a centre question's predictors, repeats and answer orders share one
    cluster; with one observation per cluster this is the uncorrected McNemar test."""
    d = np.asarray(only_a, dtype=np.float64) - np.asarray(only_b, dtype=np.float64)
    denominator = float((d**2).sum())
    if denominator == 0:
        return {"statistic_clustered": math.nan, "p_value_clustered": 1.0}
    statistic = float(d.sum()) ** 2 / denominator
    return {"statistic_clustered": statistic, "p_value_clustered": float(stats.chi2.sf(statistic, 1))}


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------
def _text(series: pd.Series) -> pd.Series:
    s = series.astype("string")
    return s.mask((s == "").fillna(False))


def _usable(
    obs: pd.DataFrame, with_condition: str, without_condition: str
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The observations `metrics.compare` uses (reference answers and both predictions readable) and, on them,
    with/without correctness."""
    cf = _text(obs["reference_counterfactual_answer"])
    centre = _text(obs["reference_centre_answer"])
    a = _text(obs[with_condition])
    b = _text(obs[without_condition])
    keep = (cf.notna() & centre.notna() & a.notna() & b.notna()).to_numpy(dtype=bool)
    flags = {
        "with_ok": (a[keep] == cf[keep]).to_numpy(dtype=bool),
        "without_ok": (b[keep] == cf[keep]).to_numpy(dtype=bool),
    }
    return obs.loc[keep], flags


def _clusters(frame: pd.DataFrame, row_column: str = "centre_row") -> tuple[np.ndarray, int]:
    if len(frame) == 0:
        return np.empty(0, dtype=np.int64), 0
    return m.cluster_codes(frame["dataset"].to_numpy(dtype=object), frame[row_column].to_numpy())


def _ci(values: np.ndarray, level: float) -> list[float]:
    bounds = m.percentile_ci(np.asarray(values, dtype=np.float64)[:, None], level)[:, 0]
    return [float(bounds[0]), float(bounds[1])]


def _nan_ci() -> list[float]:
    return [math.nan, math.nan]


def _put_rates(
    row: dict[str, Any], point: Mapping[str, Any], replicate: Mapping[str, Any] | None, level: float
) -> None:
    """Each rate's point value and its percentile CI over the bootstrap replicates (NaN without replicates)."""
    for name, value in point.items():
        row[name] = float(value)
        ci = _ci(replicate[name], level) if replicate is not None else _nan_ci()
        row[f"{name}_ci_lower"], row[f"{name}_ci_upper"] = ci


# ---------------------------------------------------------------------------------------------------------------
# NSG by answer order
# ---------------------------------------------------------------------------------------------------------------
def answer_order(obs: pd.DataFrame, *, resampler: m.Resampler, table: str = "answer_order") -> list[dict[str, Any]]:
    """Rows for one reference model and one set of observations: the explanation comparison on the pairs asked
    with the answer first, on those asked with it last (each `metrics.compare`, so the same numbers as
    metrics.json would give), and their difference first - last (NSG and accuracies) with a CI from one bootstrap
    over the clusters of both orders together."""
    reference = str(obs["reference"].iloc[0]) if len(obs) else ""
    rows: list[dict[str, Any]] = []
    for name, flag in ORDERS.items():
        part = obs.loc[(obs["answer_first"].astype(bool) == flag).to_numpy(dtype=bool)]
        block = m.compare(part, resampler=resampler, table=f"{table}/{name}")
        row = {"answer_order": name, "n": block["n"], "n_clusters": block["n_clusters"]}
        for rate in ("with_accuracy", "without_accuracy", "gain", "nsg"):
            row[rate] = block[rate]
            row[f"{rate}_ci_lower"], row[f"{rate}_ci_upper"] = block[f"{rate}_ci"]
        rows.append(row)

    used, flags = _usable(obs, m.WITH, m.WITHOUT)
    first = used["answer_first"].to_numpy(dtype=bool)
    cl, k = _clusters(used)
    indicators = []
    for order in (first, ~first):
        indicators += [flags["with_ok"] & order, flags["without_ok"] & order, order]
    counts = m.cluster_counts(cl, k, indicators)

    def diffs(sums: np.ndarray) -> dict[str, Any]:
        out = {}
        per = []
        for j in (0, 3):
            w = m.accuracy(sums[..., j], sums[..., j + 2])
            wo = m.accuracy(sums[..., j + 1], sums[..., j + 2])
            per.append({"with_accuracy": w, "without_accuracy": wo, "gain": m.gain(w, wo), "nsg": m.nsg(w, wo)})
        for rate in per[0]:
            out[rate] = np.asarray(per[0][rate]) - np.asarray(per[1][rate])
        return out

    point = diffs(counts.sum(axis=0).astype(np.float64))
    boot = resampler.sums(counts, reference, f"{table}/difference") if k else np.empty((0, counts.shape[1]))
    replicate = diffs(boot) if len(boot) else None
    row = {"answer_order": "first - last", "n": len(used), "n_clusters": k}
    _put_rates(row, point, replicate, resampler.level)
    rows.append(row)
    return rows


def answer_order_table(
    obs_by_reference: Mapping[str, pd.DataFrame], *, resamples: int = m.DEFAULT_RESAMPLES, seed: int = 0
) -> pd.DataFrame:
    """NSG by answer order for every reference model and predictor set (all, exclude_same_family)."""
    rows = []
    for reference, obs in obs_by_reference.items():
        resampler = m.Resampler("ours", seed=seed, resamples=resamples)
        for set_name, frame in (("all", obs), ("exclude_same_family", m.exclude_same_family(obs))):
            for row in answer_order(frame, resampler=resampler, table=f"answer_order/{set_name}"):
                rows.append({"reference": reference, "predictors": set_name, **row})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# Rates by changed feature
# ---------------------------------------------------------------------------------------------------------------
def changed_feature_sets(pairs: pd.DataFrame) -> pd.Series:
    """pair_id -> frozenset of the feature names the pair changes, from the pairs' `changed_features` column
    (a list of {feature, centre, counterfactual} per pair)."""
    for column in ("pair_id", "changed_features"):
        if column not in pairs.columns:
            raise InputError(f"pairs table: missing column {column!r} (build the pairs with the current workflow)")
    names = []
    for pair_id, changes in zip(pairs["pair_id"], pairs["changed_features"], strict=True):
        if changes is None or (not hasattr(changes, "__len__") and pd.isna(changes)):
            raise InputError(f"pairs table: pair {pair_id} has no changed_features")
        names.append(frozenset(str(c["feature"]) for c in changes))
    out = pd.Series(names, index=pairs["pair_id"].astype(str).to_numpy(), dtype=object)
    return out[~out.index.duplicated()]


def pair_outcomes(obs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per pair (one row per pair_id, with dataset and centre_row): `egregious` (all predictors, `metrics.
    egregious_pairs`, eligible = readable counterfactual answer) and `answer_change` (the reference's counterfactual
    answer differs from its centre answer; eligible = both readable). Columns pair_id, dataset, centre_row, hit."""
    egregious = m.egregious_pairs(obs)
    egregious = egregious.loc[egregious["eligible"].to_numpy(dtype=bool)]
    pairs = m.pair_table(obs)
    readable = (pairs["centre"].notna() & pairs["counterfactual"].notna()).to_numpy(dtype=bool)
    pairs = pairs.loc[readable]
    return {
        "egregious": pd.DataFrame(
            {
                "pair_id": egregious["pair_id"].astype(str).to_numpy(),
                "dataset": egregious["dataset"].to_numpy(dtype=object),
                "centre_row": egregious["row_cluster"].to_numpy(dtype=np.int64),
                "hit": egregious["egregious"].to_numpy(dtype=bool),
            }
        ),
        "answer_change": pd.DataFrame(
            {
                "pair_id": pairs["pair_id"].astype(str).to_numpy(),
                "dataset": pairs["dataset"].to_numpy(dtype=object),
                "centre_row": pairs["row_cluster"].to_numpy(dtype=np.int64),
                "hit": (pairs["centre"] != pairs["counterfactual"]).to_numpy(dtype=bool),
            }
        ),
    }


FEATURE_COUNTS = ("hits_changed", "n_changed", "hits_unchanged", "n_unchanged", "hits", "n")


def _feature_rates(sums: np.ndarray) -> dict[str, Any]:
    changed = m.accuracy(sums[..., 0], sums[..., 1])
    unchanged = m.accuracy(sums[..., 2], sums[..., 3])
    overall = m.accuracy(sums[..., 4], sums[..., 5])
    return {
        "rate_changed": changed,
        "rate_unchanged": unchanged,
        "rate_overall": overall,
        "change_effect": np.asarray(changed) - np.asarray(overall),
        "relative_risk": relative_risk(changed, unchanged),
    }


def feature_rows(
    units: pd.DataFrame,
    features: pd.Series,
    *,
    resampler: m.Resampler,
    reference: str,
    table: str,
) -> list[dict[str, Any]]:
    """Per dataset and feature changed by any of its pairs: the rate of `hit` among the units (pairs) that change
    the feature and among those that do not, the overall rate, change effect and relative risk, with CIs."""
    missing = sorted(set(units["pair_id"]) - set(features.index))
    if missing:
        raise InputError(f"pairs table: {len(missing)} pair(s) of the observations have no row, e.g. {missing[0]}")
    rows = []
    for dataset in sorted(units["dataset"].unique()):
        part = units.loc[(units["dataset"] == dataset).to_numpy(dtype=bool)]
        sets = features.reindex(part["pair_id"].to_numpy()).to_numpy()
        hit = part["hit"].to_numpy(dtype=bool)
        cl, k = _clusters(part)
        ones = np.ones(len(part), dtype=bool)
        for feature in sorted(set().union(*sets)) if len(sets) else []:
            changed = np.array([feature in s for s in sets], dtype=bool)
            counts = m.cluster_counts(cl, k, [hit & changed, changed, hit & ~changed, ~changed, hit, ones])
            sums = counts.sum(axis=0).astype(np.float64)
            point = _feature_rates(sums)
            boot = resampler.sums(counts, reference, f"{table}/{dataset}/{feature}")
            replicate = _feature_rates(boot) if len(boot) else None
            row: dict[str, Any] = {"dataset": dataset, "feature": feature, "n_clusters": k}
            row.update({name: int(sums[j]) for j, name in enumerate(FEATURE_COUNTS)})
            _put_rates(row, point, replicate, resampler.level)
            rows.append(row)
    return rows


def feature_table(
    obs_by_reference: Mapping[str, pd.DataFrame],
    pairs: pd.DataFrame,
    *,
    resamples: int = m.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Egregious rate and answer-change rate per changed feature, for every reference model (all predictors)."""
    features = changed_feature_sets(pairs)
    rows = []
    for reference, obs in obs_by_reference.items():
        resampler = m.Resampler("ours", seed=seed, resamples=resamples)
        for analysis, units in pair_outcomes(obs).items():
            for row in feature_rows(
                units, features, resampler=resampler, reference=reference, table=f"features/{analysis}"
            ):
                rows.append({"reference": reference, "analysis": analysis, **row})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# McNemar: WITH correctness of two reference models, paired one to one
# ---------------------------------------------------------------------------------------------------------------
def paired_correctness(obs_a: pd.DataFrame, obs_b: pd.DataFrame, condition: str = m.WITH) -> dict[str, Any]:
    """The observations of two reference models matched one to one on (pair_id, predictor, repeat): a frame with
    pair_id, dataset, centre_row, predictor, repeat, correct_a, correct_b (the prediction under `condition` equals
    that reference's counterfactual answer), over matched observations where both are readable; plus the counts
    unmatched_a, unmatched_b (keys only one has) and unreadable (matched but unusable). A key twice in one
    table raises an InputError (never a many-to-many merge)."""
    parts = []
    for name, obs in (("a", obs_a), ("b", obs_b)):
        missing = [c for c in [*PAIR_KEYS, "dataset", "centre_row", condition, "reference_counterfactual_answer"]
                   if c not in obs.columns]  # fmt: skip
        if missing:
            raise InputError(f"observations of {name}: missing column(s) {missing}")
        dup = obs.duplicated(PAIR_KEYS)
        if dup.any():
            first = obs.loc[dup].iloc[0]
            raise InputError(
                f"observations of {obs['reference'].iloc[0] if 'reference' in obs else name}: {int(dup.sum())} "
                f"duplicated (pair_id, predictor, repeat) key(s), e.g. {first['pair_id']} {first['predictor']}"
            )
        answer = _text(obs[condition])
        cf = _text(obs["reference_counterfactual_answer"])
        part = obs[[*PAIR_KEYS, "dataset", "centre_row"]].copy()
        part[f"readable_{name}"] = (answer.notna() & cf.notna()).to_numpy(dtype=bool)
        part[f"correct_{name}"] = (answer == cf).fillna(False).to_numpy(dtype=bool)
        parts.append(part)
    merged = parts[0].merge(
        parts[1].drop(columns=["dataset", "centre_row"]), on=PAIR_KEYS, how="outer", indicator=True, validate="1:1"
    )
    both = merged["_merge"] == "both"
    matched = merged.loc[both.to_numpy(dtype=bool)]
    usable = (matched["readable_a"].astype(bool) & matched["readable_b"].astype(bool)).to_numpy(dtype=bool)
    frame = matched.loc[usable, [*PAIR_KEYS, "dataset", "centre_row", "correct_a", "correct_b"]].copy()
    frame["correct_a"] = frame["correct_a"].astype(bool)
    frame["correct_b"] = frame["correct_b"].astype(bool)
    frame["centre_row"] = frame["centre_row"].astype(np.int64)
    return {
        "frame": frame.reset_index(drop=True),
        "unmatched_a": int((merged["_merge"] == "left_only").sum()),
        "unmatched_b": int((merged["_merge"] == "right_only").sum()),
        "unreadable": int((~usable).sum()),
    }


def mcnemar_block(
    frame: pd.DataFrame,
    *,
    resampler: m.Resampler,
    reference: str,
    table: str,
    exact_below: int = DEFAULT_EXACT_BELOW,
) -> dict[str, Any]:
    """Accuracies of A and B on paired observations, the difference B - A with a cluster-bootstrap CI, the
    discordant counts, McNemar's test (as the paper) and its clustered version."""
    a = frame["correct_a"].to_numpy(dtype=bool)
    b = frame["correct_b"].to_numpy(dtype=bool)
    cl, k = _clusters(frame)
    counts = m.cluster_counts(cl, k, [a, b, np.ones(len(a), dtype=bool)])

    def diff(sums: np.ndarray) -> np.ndarray:
        return np.asarray(m.accuracy(sums[..., 1], sums[..., 2])) - np.asarray(m.accuracy(sums[..., 0], sums[..., 2]))

    boot = resampler.sums(counts, reference, table) if k else np.empty((0, 3))
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    test = mcnemar(only_a, only_b, exact_below=exact_below)
    discordant = m.cluster_counts(cl, k, [a & ~b, ~a & b]) if k else np.zeros((0, 2))
    test.update(clustered_mcnemar(discordant[:, 0], discordant[:, 1]))
    ci = _ci(diff(boot), resampler.level) if len(boot) else _nan_ci()
    return {
        "n": len(a),
        "n_clusters": k,
        "accuracy_a": m.accuracy(a.sum(), len(a)),
        "accuracy_b": m.accuracy(b.sum(), len(b)),
        "difference": float(diff(counts.sum(axis=0).astype(np.float64))) if len(a) else math.nan,
        "difference_ci_lower": ci[0],
        "difference_ci_upper": ci[1],
        "both_correct": int((a & b).sum()),
        "both_wrong": int((~a & ~b).sum()),
        "only_a_correct": only_a,
        "only_b_correct": only_b,
        **test,
    }


def mcnemar_table(
    obs_by_reference: Mapping[str, pd.DataFrame],
    comparisons: Sequence[Sequence[str]],
    *,
    resamples: int = m.DEFAULT_RESAMPLES,
    seed: int = 0,
    exact_below: int = DEFAULT_EXACT_BELOW,
) -> pd.DataFrame:
    """One row per (comparison, scope, group): scope pooled (group all), dataset or predictor."""
    rows = []
    for pair in comparisons:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise InputError(f"compare_references: {list(pair)} must name two different reference models")
        name_a, name_b = str(pair[0]), str(pair[1])
        for name in (name_a, name_b):
            if name not in obs_by_reference:
                raise InputError(f"compare_references: no observations of reference model {name!r}")
        paired = paired_correctness(obs_by_reference[name_a], obs_by_reference[name_b])
        frame = paired["frame"]
        resampler = m.Resampler("ours", seed=seed, resamples=resamples)
        key = f"{name_a}|{name_b}"
        scopes = [("pooled", "all", frame)]
        scopes += [
            ("dataset", ds, frame.loc[(frame["dataset"] == ds).to_numpy()]) for ds in sorted(frame["dataset"].unique())
        ]
        scopes += [
            ("predictor", p, frame.loc[(frame["predictor"] == p).to_numpy()])
            for p in sorted(frame["predictor"].unique())
        ]
        for scope, group, part in scopes:
            block = mcnemar_block(
                part, resampler=resampler, reference=key, table=f"mcnemar/{scope}/{group}", exact_below=exact_below
            )
            row = {"reference_a": name_a, "reference_b": name_b, "scope": scope, "group": str(group), **block}
            if scope == "pooled":
                row.update(
                    unmatched_a=paired["unmatched_a"],
                    unmatched_b=paired["unmatched_b"],
                    unreadable=paired["unreadable"],
                )
            rows.append(row)
    columns = ["reference_a", "reference_b", "scope", "group", "n", "n_clusters", "accuracy_a", "accuracy_b",
               "difference", "difference_ci_lower", "difference_ci_upper", "both_correct", "both_wrong",
               "only_a_correct", "only_b_correct", "test", "statistic", "p_value", "statistic_clustered",
               "p_value_clustered", "unmatched_a", "unmatched_b", "unreadable"]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    for column in ("unmatched_a", "unmatched_b", "unreadable"):  # only on pooled rows
        table[column] = table[column].astype("Int64")
    return table


# ---------------------------------------------------------------------------------------------------------------
# cot and no_reference vs the normal explanation (from the summary table)
# ---------------------------------------------------------------------------------------------------------------
# (label, comparison in the summary, side of it: "with" or "without")
CONDITION_ACCURACY = {
    m.WITH: ("explanation", "with"),
    m.WITHOUT: ("explanation", "without"),
    m.COT: ("cot", "with"),
    m.NO_REFERENCE: ("no_reference", "without"),
}


def condition_table(summary: pd.DataFrame, predictors: str = "all") -> pd.DataFrame:
    """Pooled rows per reference model: each condition's accuracy (measured in the comparison that contains it) and
    each comparison's NSG, with CIs: columns reference, kind (accuracy | nsg), name (condition or comparison),
    comparison, n, value, ci_lower, ci_upper. Conditions that were not run are absent."""
    need = {"reference", "comparison", "predictors", "scope", "n", "nsg", "with_accuracy", "without_accuracy"}
    missing = sorted(need - set(summary.columns))
    if missing:
        raise InputError(f"simulatability summary: missing column(s) {missing}")
    keep = (summary["predictors"] == predictors) & (summary["scope"] == "pooled")
    pooled = summary.loc[keep.to_numpy(dtype=bool)]
    rows = []
    for reference in dict.fromkeys(pooled["reference"]):
        mine = pooled.loc[(pooled["reference"] == reference).to_numpy()].set_index("comparison")
        for condition, (comparison, side) in CONDITION_ACCURACY.items():
            if comparison not in mine.index:
                continue
            r = mine.loc[comparison]
            column = f"{side}_accuracy"
            rows.append(
                {"reference": reference, "kind": "accuracy", "name": condition, "comparison": comparison, "n": r["n"],
                 "value": r[column], "ci_lower": r[f"{column}_ci_lower"], "ci_upper": r[f"{column}_ci_upper"]}
            )  # fmt: skip
        for comparison in ("explanation", "cot", "no_reference"):
            if comparison in mine.index:
                r = mine.loc[comparison]
                rows.append(
                    {"reference": reference, "kind": "nsg", "name": comparison, "comparison": comparison, "n": r["n"],
                     "value": r["nsg"], "ci_lower": r["nsg_ci_lower"], "ci_upper": r["nsg_ci_upper"]}
                )  # fmt: skip
    return pd.DataFrame(rows, columns=["reference", "kind", "name", "comparison", "n", "value", "ci_lower", "ci_upper"])


# ---------------------------------------------------------------------------------------------------------------
# File-level steps (the rules' scripts call these)
# ---------------------------------------------------------------------------------------------------------------
def read_observations(paths: Sequence[str | Path]) -> dict[str, pd.DataFrame]:
    """reference -> its observations.parquet (written by sim_metrics), keyed by the table's own reference column."""
    from selfexplain.io import read_table

    out: dict[str, pd.DataFrame] = {}
    for path in paths:
        obs = read_table(path)
        if len(obs) == 0 or "reference" not in obs.columns:
            raise InputError(f"{path}: no observations (or no 'reference' column)")
        out[str(obs["reference"].iloc[0])] = obs
    return out


def _write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    from selfexplain.io import atomic_path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _read_summary(path: str | Path) -> pd.DataFrame:
    if not Path(path).exists():
        raise InputError(f"simulatability summary not found: {path}")
    return pd.read_csv(path)


def run_agreement(
    summary_path: str | Path, bootstrap: Mapping[str, int], json_out: str | Path, figure_out: str | Path
) -> dict[str, Any]:
    """Rule sim_side_agreement: predictor agreement with its bootstrap CIs (resampling the reference models, seeded
    by the simulatability `bootstrap` settings) to JSON, and its figure."""
    from selfexplain.io import write_json
    from selfexplain.simulatability.agreement import nsg_matrix, predictor_agreement
    from selfexplain.simulatability.side_plots import plot_agreement

    matrix = nsg_matrix(_read_summary(summary_path))
    result = predictor_agreement(matrix, resamples=int(bootstrap["resamples"]), seed=int(bootstrap["seed"]))
    write_json(result, json_out)
    plot_agreement(result, figure_out)
    return result


def run_answer_order(
    observation_paths: Sequence[str | Path], bootstrap: Mapping[str, int], table_out: str | Path, figure_out: str | Path
) -> pd.DataFrame:
    """Rule sim_side_answer_order."""
    from selfexplain.simulatability.side_plots import plot_answer_order

    table = answer_order_table(
        read_observations(observation_paths), resamples=bootstrap["resamples"], seed=bootstrap["seed"]
    )
    _write_csv(table, table_out)
    plot_answer_order(table, figure_out)
    return table


def run_features(
    observation_paths: Sequence[str | Path],
    eval_set_path: str | Path,
    bootstrap: Mapping[str, int],
    min_changed: int,
    table_out: str | Path,
    figures_out: Mapping[str, str | Path],
) -> pd.DataFrame:
    """Rule sim_side_features: both per-feature analyses in one table, one figure each."""
    from selfexplain.io import read_table
    from selfexplain.simulatability.side_plots import plot_features

    table = feature_table(
        read_observations(observation_paths),
        read_table(eval_set_path),
        resamples=bootstrap["resamples"],
        seed=bootstrap["seed"],
    )
    _write_csv(table, table_out)
    for analysis, path in figures_out.items():
        plot_features(table, analysis, path, min_changed=min_changed)
    return table


def run_conditions(summary_path: str | Path, table_out: str | Path, figure_out: str | Path) -> pd.DataFrame:
    """Rule sim_side_conditions."""
    from selfexplain.simulatability.side_plots import plot_conditions

    table = condition_table(_read_summary(summary_path))
    _write_csv(table, table_out)
    plot_conditions(with_extra_conditions(table), figure_out)
    return table


def with_extra_conditions(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the references that ran cot or no_reference: the figure compares those conditions with the
    explanation, so a reference run only with and without it (the paper's 12 other references) adds no comparison."""
    extra = table.loc[table["name"].isin([m.COT, m.NO_REFERENCE]).to_numpy(), "reference"]
    return table.loc[table["reference"].isin(set(extra)).to_numpy()].reset_index(drop=True)


def run_mcnemar(
    observation_paths: Sequence[str | Path],
    comparisons: Sequence[Sequence[str]],
    bootstrap: Mapping[str, int],
    exact_below: int,
    table_out: str | Path,
    figure_out: str | Path,
) -> pd.DataFrame:
    """Rule sim_side_mcnemar."""
    from selfexplain.simulatability.side_plots import plot_mcnemar

    table = mcnemar_table(
        read_observations(observation_paths),
        comparisons,
        resamples=bootstrap["resamples"],
        seed=bootstrap["seed"],
        exact_below=exact_below,
    )
    _write_csv(table, table_out)
    plot_mcnemar(table, figure_out)
    return table
