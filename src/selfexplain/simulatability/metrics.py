"""Simulatability metrics: one implementation for the workflow rules, the CLI and the parity with the original.

Everything is computed from *observations* (`observations`): one row per (reference, pair_id, predictor, repeat)
with the predictor's answer under every condition side by side, joined by key. A comparison of two conditions
("with" = the treatment, "without" = the baseline: with_explanation vs without_explanation, cot vs
without_explanation, with_explanation vs no_reference) uses the observations whose reference counterfactual answer
and both predictions are readable (and, for our metrics, the centre answer, which the workflow guarantees); the
others are dropped and counted. All rates are percentages, micro-pooled over the observations of one reference
model. Pair-level rates: egregious (`egregious_pairs`), switch rate, and reference accuracy against ground truth
(`reference_accuracy`), each with a cluster-bootstrap CI. `reference_metrics` returns all of it for one reference
model (metrics.json) and `summary_rows` flattens it; `original_tables` writes the original's CSVs.

Formulas (`rates`): accuracy = 100·correct/n; gain = with − without (points); NSG = 100·(with − without)/(100 −
without), the share of the remaining error that the treatment closes; NSG is undefined when without accuracy is
100 % (denominator ≤ 1e-6): null in our metrics, 0 in the original's CSVs. The changed/unchanged split is over
observations where the reference model's counterfactual answer differs from (equals) its centre answer (the
original calls the accuracies on them `precision`/`recall`; those names appear only in the original-format CSVs).

Bootstrap: clusters are (dataset, centre_row), so both answer orders, all counterfactuals of a centre, all
predictors and all repeats resample together. Each cluster is reduced to 9 counts (with/without correct and n, on
all, changed and unchanged observations); a replicate draws clusters with replacement, its counts are
`weights @ counts`, and every metric is recomputed from the summed counts; CIs are percentile intervals.

Our default RNG (`table_rng`) is a `numpy.random.Generator` seeded with (seed, crc32(reference), crc32(table)) for
every table (pooled, one dataset, one predictor, ...), and clusters are drawn in sorted (dataset, centre_row)
order. A CI therefore depends only on the data of that table, the seed and the table's name. The original seeds
the legacy global RNG with 42 once per call of its metric routine and lets the stream run on across reference
models in their order of first appearance in the file, with clusters in their order of first appearance: there a
model's CI changes when another model is added to the file or the rows are reordered. `bootstrap="original"`
reproduces that stream exactly (a `RandomState(42)` whose draws equal the legacy global RNG's; see
`original_tables`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from selfexplain.errors import InputError
from selfexplain.simulatability.tables import PREDICTION_COLUMNS

WITH = "with_explanation"
WITHOUT = "without_explanation"
COT = "cot"
NO_REFERENCE = "no_reference"
CONDITIONS = (WITH, WITHOUT, COT, NO_REFERENCE)
# comparison name -> (treatment "with", baseline "without")
COMPARISONS: dict[str, tuple[str, str]] = {
    "explanation": (WITH, WITHOUT),
    "cot": (COT, WITHOUT),
    "no_reference": (WITH, NO_REFERENCE),
}
PREDICTOR_SETS = ("all", "exclude_same_family")
NSG_EPSILON = 1e-6
DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
ORIGINAL_SEED = 42

OBSERVATION_COLUMNS = [
    "reference",
    "predictor",
    "predictor_family",
    "reference_family",
    "repeat",
    "dataset",
    "pair_id",
    "centre_row",
    "answer_first",
    "reference_centre_answer",
    "reference_counterfactual_answer",
    WITH,
    WITHOUT,
]
LABEL_COLUMNS = ["centre_label", "counterfactual_label"]
# Carried when the predictions tables have them (the import of an original file writes both).
EXTRA_COLUMNS = ["counterfactual_row", "predictor_index", "source_row"]
# What a predictions table must hold: its key and pair columns (without the stored reference answers, which come from
# the reference table) and the prediction.
PREDICTION_REQUIRED = (*(c for c in PREDICTION_COLUMNS if not c.startswith("reference_")), "prediction")
# The 9 per-cluster counts, in the original's order.
COUNTS = (
    "with_correct",
    "without_correct",
    "n",
    "changed_with_correct",
    "changed_without_correct",
    "changed_n",
    "unchanged_with_correct",
    "unchanged_without_correct",
    "unchanged_n",
)
# Rates recomputed per replicate, in the order the CI columns are reported.
RATES = (
    "with_accuracy",
    "without_accuracy",
    "gain",
    "nsg",
    "with_accuracy_changed",
    "without_accuracy_changed",
    "with_accuracy_unchanged",
    "without_accuracy_unchanged",
    "diff_pct",
)
AGREEMENT = ("both_correct", "both_wrong", "only_with_correct", "only_without_correct")

Bootstrap = Literal["ours", "original"]


# ---------------------------------------------------------------------------------------------------------------
# Formulas (scalars or arrays)
# ---------------------------------------------------------------------------------------------------------------
def _out(value: np.ndarray) -> Any:
    return float(value) if np.ndim(value) == 0 else value


def accuracy(correct: Any, n: Any, empty: float = math.nan) -> Any:
    """100·correct/n; `empty` where n is 0."""
    correct = np.asarray(correct, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(n > 0, correct / n * 100, empty)
    return _out(value)


def gain(with_acc: Any, without_acc: Any) -> Any:
    """Simulatability gain in percentage points."""
    return _out(np.asarray(with_acc, dtype=np.float64) - np.asarray(without_acc, dtype=np.float64))


def nsg(with_acc: Any, without_acc: Any, undefined: float = math.nan) -> Any:
    """Normalised simulatability gain 100·(with − without)/(100 − without); `undefined` when 100 − without ≤ 1e-6
    (the baseline is already perfect: there is no error left to close)."""
    with_acc = np.asarray(with_acc, dtype=np.float64)
    without_acc = np.asarray(without_acc, dtype=np.float64)
    denom = 100 - without_acc
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(denom > NSG_EPSILON, (with_acc - without_acc) / denom * 100, undefined)
    return _out(value)


def rates(sums: np.ndarray, empty: float = math.nan) -> dict[str, Any]:
    """Every rate of `RATES` from summed counts (`COUNTS` order, last axis): one vector or a (B, 9) matrix of
    replicates. `empty` is the value of a rate whose denominator is 0 (and of an undefined NSG): NaN for us, 0 in
    the original. The operations are the original's, in its order, so the floats are bit-identical to its own."""
    s = np.asarray(sums, dtype=np.float64)
    n = s[..., 2]
    with_acc = accuracy(s[..., 0], n, empty)
    without_acc = accuracy(s[..., 1], n, empty)
    out = {
        "with_accuracy": with_acc,
        "without_accuracy": without_acc,
        "gain": gain(with_acc, without_acc),
        "nsg": nsg(with_acc, without_acc, empty),
        "with_accuracy_changed": accuracy(s[..., 3], s[..., 5], empty),
        "without_accuracy_changed": accuracy(s[..., 4], s[..., 5], empty),
        "with_accuracy_unchanged": accuracy(s[..., 6], s[..., 8], empty),
        "without_accuracy_unchanged": accuracy(s[..., 7], s[..., 8], empty),
        "diff_pct": accuracy(s[..., 5], n, empty),
    }
    if empty == 0.0:  # the original: gain and NSG are 0 when there is no observation at all
        out["gain"] = _out(np.where(n > 0, out["gain"], 0.0))
    return out


def percentile_bounds(level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The percentiles of a `level` interval, computed as the original does (alpha = 1 − level; alpha/2·100 is
    2.5000000000000022 for 0.95, not 2.5: kept so that the CIs are bit-identical)."""
    alpha = 1 - level
    return (alpha / 2) * 100, (1 - alpha / 2) * 100


def percentile_ci(values: np.ndarray, level: float = DEFAULT_LEVEL) -> np.ndarray:
    """Linear-interpolation percentile interval of each column of `values` (B, m) -> (2, m); NaN replicates (an
    undefined rate) are left out, and a column with no defined replicate gives NaN bounds."""
    lo, hi = percentile_bounds(level)
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        return np.full((2, *values.shape[1:]), np.nan)
    if not np.isnan(values).any():
        return np.percentile(values, [lo, hi], axis=0)
    out = np.full((2, *values.shape[1:]), np.nan)
    for j in range(values.shape[1]):
        column = values[:, j][~np.isnan(values[:, j])]
        if len(column):
            out[:, j] = np.percentile(column, [lo, hi])
    return out


# ---------------------------------------------------------------------------------------------------------------
# Clusters and the bootstrap
# ---------------------------------------------------------------------------------------------------------------
def table_rng(seed: int, reference: str, table: str) -> np.random.Generator:
    """Our default RNG for one table of one reference model: independent of every other model and table."""
    return np.random.default_rng(
        [int(seed), zlib.crc32(str(reference).encode("utf-8")), zlib.crc32(str(table).encode("utf-8"))]
    )


def cluster_codes(dataset: Any, centre_row: Any, order: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Integer cluster id of each observation, clusters = (dataset, centre_row). Without `order` the ids follow
    sorted (dataset, centre_row); with `order` (e.g. source rows) they follow first appearance in that order."""
    ds_codes, _ = pd.factorize(np.asarray(dataset, dtype=object), sort=True)
    rows = np.asarray(centre_row, dtype=np.int64)
    low, span = (int(rows.min()), int(rows.max()) - int(rows.min()) + 1) if len(rows) else (0, 1)
    key = ds_codes.astype(np.int64) * span + (rows - low)
    if order is None:
        codes, uniques = pd.factorize(key, sort=True)
        return codes.astype(np.int64), len(uniques)
    perm = np.argsort(np.asarray(order), kind="stable")
    ordered, uniques = pd.factorize(key[perm], sort=False)
    codes = np.empty(len(key), dtype=np.int64)
    codes[perm] = ordered
    return codes, len(uniques)


def cluster_counts(codes: np.ndarray, n_clusters: int, indicators: Sequence[np.ndarray]) -> np.ndarray:
    """(n_clusters, len(indicators)) integer counts: how many observations of each cluster have each indicator."""
    out = np.empty((n_clusters, len(indicators)), dtype=np.int64)
    for j, flag in enumerate(indicators):
        out[:, j] = np.bincount(codes[np.asarray(flag, dtype=bool)], minlength=n_clusters)
    return out


def comparison_counts(codes: np.ndarray, n_clusters: int, with_ok: Any, without_ok: Any, changed: Any) -> np.ndarray:
    """The 9 counts of `COUNTS` per cluster, from per-observation booleans (all observations used)."""
    w = np.asarray(with_ok, dtype=bool)
    wo = np.asarray(without_ok, dtype=bool)
    ch = np.asarray(changed, dtype=bool)
    un = ~ch
    ones = np.ones(len(w), dtype=bool)
    return cluster_counts(codes, n_clusters, [w, wo, ones, w & ch, wo & ch, ch, w & un, wo & un, un])


def original_draws(state: np.random.RandomState, n_clusters: int, resamples: int) -> np.ndarray:
    """(resamples, n_clusters) cluster indices exactly as the original draws them: `randint(0, n, size=n)` once per
    replicate from the legacy MT19937 stream. One (B, n) call consumes the stream as B calls of size n do (the
    legacy bounded-integer sampler keeps no state between calls), so the draws are identical."""
    return state.randint(0, n_clusters, size=(resamples, n_clusters))


def resampled_sums(
    counts: np.ndarray,
    draws: np.ndarray | None = None,
    *,
    rng: np.random.Generator | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    chunk_cells: int = 2_000_000,
) -> np.ndarray:
    """(B, m) summed counts of the bootstrap replicates: per replicate, how often each cluster is drawn (a row of
    weights, by one bincount of the drawn indices), times the cluster counts (one matrix product). Pass the drawn
    indices (`draws`, B × n_clusters), or a Generator to draw them. Exact: the sums are small integers in float64."""
    counts = np.asarray(counts, dtype=np.float64)
    k = counts.shape[0]
    b_total = draws.shape[0] if draws is not None else resamples
    out = np.empty((b_total, counts.shape[1]), dtype=np.float64)
    if k == 0 or b_total == 0:
        out[:] = 0.0
        return out
    step = max(1, chunk_cells // k)
    for start in range(0, b_total, step):
        stop = min(b_total, start + step)
        if draws is not None:
            idx = np.array(draws[start:stop], dtype=np.int64)
        else:
            assert rng is not None
            idx = rng.integers(0, k, size=(stop - start, k))
        idx += (np.arange(stop - start, dtype=np.int64) * k)[:, None]  # one bincount for all replicates of the chunk
        weights = np.bincount(idx.ravel(), minlength=(stop - start) * k).reshape(stop - start, k)
        out[start:stop] = weights.astype(np.float64) @ counts
    return out


class Resampler:
    """Where a table's bootstrap draws come from: our per-table Generator, or the original's running stream."""

    def __init__(
        self,
        bootstrap: Bootstrap = "ours",
        seed: int = 0,
        resamples: int = DEFAULT_RESAMPLES,
        level: float = DEFAULT_LEVEL,
        state: np.random.RandomState | None = None,
    ) -> None:
        if bootstrap not in ("ours", "original"):
            raise ValueError(f"bootstrap must be 'ours' or 'original', not {bootstrap!r}")
        self.bootstrap = bootstrap
        self.seed = seed
        self.resamples = resamples
        self.level = level
        self.state = state if state is not None else np.random.RandomState(ORIGINAL_SEED)

    def reset(self) -> None:
        """The original's `np.random.seed(42)` at the start of a call of its metric routine."""
        self.state = np.random.RandomState(ORIGINAL_SEED)

    def sums(self, counts: np.ndarray, reference: str, table: str) -> np.ndarray:
        if self.resamples <= 0 or len(counts) == 0:
            return np.empty((0, np.shape(counts)[1] if np.ndim(counts) == 2 else 0))
        if self.bootstrap == "original":
            return resampled_sums(counts, original_draws(self.state, len(counts), self.resamples))
        return resampled_sums(counts, rng=table_rng(self.seed, reference, table), resamples=self.resamples)

    def describe(self) -> dict[str, Any]:
        if self.bootstrap == "original":
            rng = "legacy MT19937 seeded with 42 per call, stream continued across models (the original)"
            order = "first appearance in the source file"
        else:
            rng = "numpy Generator (PCG64) seeded with [seed, crc32(reference), crc32(table)] per table"
            order = "sorted (dataset, centre_row)"
        return {
            "method": self.bootstrap,
            "resamples": self.resamples,
            "seed": self.seed if self.bootstrap == "ours" else ORIGINAL_SEED,
            "level": self.level,
            "interval": "percentile (linear)",
            "clusters": ["dataset", "centre_row"],
            "cluster_order": order,
            "rng": rng,
        }


# ---------------------------------------------------------------------------------------------------------------
# Observations
# ---------------------------------------------------------------------------------------------------------------
def _clean_text(series: pd.Series) -> pd.Series:
    """Strings with null for NA and for the empty string (the original drops empty answers like missing ones)."""
    s = series.astype("string")
    return s.mask((s == "").fillna(False))


def _concat(predictions: pd.DataFrame | Iterable[pd.DataFrame]) -> pd.DataFrame:
    if isinstance(predictions, pd.DataFrame):
        return predictions
    frames = [f for f in predictions if len(f)]
    if not frames:
        raise InputError("no predictions: every predictions table is empty")
    return pd.concat(frames, ignore_index=True)


def observations(
    reference: pd.DataFrame,
    predictions: pd.DataFrame | Iterable[pd.DataFrame],
    families: Mapping[str, str | None],
    pairs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (reference, pair_id, predictor, repeat) with every condition's answer side by side.

    `reference` is the reference-answers table (dataset, row, answer_first, answer); `predictions` the
    predictions tables of ONE reference model (any predictors, any row order); `families` maps model keys to
    their catalog family (a model missing from it, or null, has no family and is never excluded as same-family);
    `pairs` (optional, the eval set) gives the ground-truth labels by pair_id.

    Everything is joined by key, never by position. The reference answers come from the reference table by
    (dataset, row, answer_first); a predictions table whose copy disagrees is stale and raises an InputError.

    Repeats: the observations of a (pair, predictor) are its with_explanation repeats. Every other condition
    contributes its answer of the same repeat when it has one, else its repeat 0 (a condition asked once, e.g.
    without_explanation with repeats > 1 only for with_explanation, pairs each with-repeat with its single
    answer). A (pair, predictor) with no with_explanation row at all takes the repeats of its other conditions.
    A missing row reads as a null answer. Rows are sorted by (dataset, centre_row, pair_id, predictor, repeat).
    """
    preds = _concat(predictions)
    missing = [c for c in PREDICTION_REQUIRED if c not in preds.columns]
    if missing:
        raise InputError(f"predictions table: missing column(s) {missing}")
    references = preds["reference"].dropna().unique()
    if len(references) != 1:
        raise InputError(f"predictions must belong to one reference model, found {sorted(map(str, references))}")
    ref_name = str(references[0])
    unknown = sorted(set(preds["condition"].unique()) - set(CONDITIONS))
    if unknown:
        raise InputError(f"predictions table: unknown condition(s) {unknown}; known: {list(CONDITIONS)}")
    preds = preds.copy()
    preds["repeat"] = preds["repeat"].astype("int64")
    preds["prediction"] = _clean_text(preds["prediction"])
    keys = ["pair_id", "predictor", "repeat"]
    dup = preds.duplicated([*keys, "condition"])
    if dup.any():
        first = preds.loc[dup].iloc[0]
        raise InputError(
            f"predictions of {ref_name}: {int(dup.sum())} duplicated (pair_id, predictor, condition, repeat) rows, "
            f"e.g. {first['pair_id']} {first['predictor']} {first['condition']} repeat {first['repeat']}"
        )

    present = [c for c in CONDITIONS if (preds["condition"] == c).any()]
    by_cond = {c: preds.loc[preds["condition"] == c, [*keys, "prediction"]] for c in present}
    with_keys = by_cond[WITH][keys] if WITH in by_cond else pd.DataFrame(columns=keys)
    groups = with_keys[["pair_id", "predictor"]].drop_duplicates()
    rest = preds[keys].merge(groups, on=["pair_id", "predictor"], how="left", indicator=True)
    rest = rest.loc[rest["_merge"] == "left_only", keys]
    index = pd.concat([with_keys, rest], ignore_index=True).drop_duplicates().reset_index(drop=True)

    obs = index.copy()
    for condition in (WITH, WITHOUT, *[c for c in (COT, NO_REFERENCE) if c in present]):
        if condition not in by_cond:
            obs[condition] = pd.Series(pd.NA, index=obs.index, dtype="string")
            continue
        frame = by_cond[condition]
        exact = index.merge(frame, on=keys, how="left", indicator=True)
        first = frame.loc[frame["repeat"] == 0].drop(columns="repeat")
        fallback = index.merge(first, on=["pair_id", "predictor"], how="left")
        value = exact["prediction"].where(exact["_merge"] == "both", fallback["prediction"])
        obs[condition] = value.astype("string").array

    # Pair facts: one row per pair_id (from the predictions rows themselves).
    facts_cols = ["pair_id", "dataset", "centre_row", "counterfactual_row", "answer_first"]
    extra = [c for c in ("reference_centre_answer", "reference_counterfactual_answer") if c in preds.columns]
    facts = preds[facts_cols + extra].drop_duplicates("pair_id").copy()
    if "source_row" in preds.columns:
        facts = facts.merge(preds.groupby("pair_id", sort=False)["source_row"].min().reset_index(), on="pair_id")
    facts["centre_row"] = facts["centre_row"].astype("int64")
    facts["counterfactual_row"] = facts["counterfactual_row"].astype("int64")
    facts["answer_first"] = facts["answer_first"].astype(bool)
    facts = _attach_reference_answers(facts, reference, ref_name)
    obs = obs.merge(facts, on="pair_id", how="left")
    if "predictor_index" in preds.columns:
        index_of = preds.groupby("predictor", sort=False)["predictor_index"].min()
        obs["predictor_index"] = obs["predictor"].map(index_of).astype("int64")

    obs["reference"] = ref_name
    obs["predictor_family"] = obs["predictor"].map(lambda p: families.get(p)).astype("string")
    obs["reference_family"] = pd.Series(families.get(ref_name), index=obs.index, dtype="string")
    if pairs is not None:
        labels = pairs[["pair_id", *LABEL_COLUMNS]].drop_duplicates("pair_id")
        obs = obs.merge(labels, on="pair_id", how="left")
        for column in LABEL_COLUMNS:
            obs[column] = _clean_text(obs[column])
    else:
        for column in LABEL_COLUMNS:
            obs[column] = pd.Series(pd.NA, index=obs.index, dtype="string")

    conditions = [c for c in CONDITIONS if c in obs.columns]
    columns = [c for c in OBSERVATION_COLUMNS if c not in CONDITIONS] + conditions + LABEL_COLUMNS
    columns += [c for c in EXTRA_COLUMNS if c in obs.columns]
    obs = obs[columns].sort_values(["dataset", "centre_row", "pair_id", "predictor", "repeat"], kind="stable")
    return obs.reset_index(drop=True)


def _attach_reference_answers(facts: pd.DataFrame, reference: pd.DataFrame, ref_name: str) -> pd.DataFrame:
    """Centre and counterfactual answers from the reference table by (dataset, row, answer_first)."""
    missing = [c for c in ("dataset", "row", "answer_first", "answer") if c not in reference.columns]
    if missing:
        raise InputError(f"reference table of {ref_name}: missing column(s) {missing}")
    ref = reference[["dataset", "row", "answer_first", "answer"]].copy()
    ref["row"] = ref["row"].astype("int64")
    ref["answer_first"] = ref["answer_first"].astype(bool)
    ref["answer"] = _clean_text(ref["answer"])
    if ref.duplicated(["dataset", "row", "answer_first"]).any():
        raise InputError(f"reference table of {ref_name}: a (dataset, row, answer_first) question appears twice")
    out = facts
    for side, row_col in (("centre", "centre_row"), ("counterfactual", "counterfactual_row")):
        column = f"reference_{side}_answer"
        part = ref.rename(columns={"row": row_col, "answer": f"_{column}"})
        out = out.merge(part, on=["dataset", row_col, "answer_first"], how="left")
        if column in out.columns:
            copy = _clean_text(out[column])
            ours = out[f"_{column}"]
            stale = copy.notna() & (ours.isna() | (copy != ours).fillna(True))
            if stale.any():
                example = out.loc[stale, "pair_id"].iloc[0]
                raise InputError(
                    f"predictions of {ref_name}: {int(stale.sum())} pair(s) whose {column} differs from the reference "
                    f"table (e.g. {example}): the predictions are stale"
                )
            out = out.drop(columns=column)
        out = out.rename(columns={f"_{column}": column})
    return out


def exclude_same_family(obs: pd.DataFrame) -> pd.DataFrame:
    """The observations without predictors of the reference model's family (a null family is never a match)."""
    same = (obs["predictor_family"] == obs["reference_family"]).fillna(False).to_numpy(dtype=bool)
    return obs.loc[~same]


def _codes_of(obs: pd.DataFrame, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Integer codes shared by several answer columns (-1 = null), so equality is an integer comparison."""
    stacked = pd.concat([obs[c].astype("string") for c in columns], ignore_index=True)
    codes, _ = pd.factorize(stacked, use_na_sentinel=True)
    n = len(obs)
    return {c: codes[i * n : (i + 1) * n] for i, c in enumerate(columns)}


# ---------------------------------------------------------------------------------------------------------------
# One comparison on one table
# ---------------------------------------------------------------------------------------------------------------
def _order_of(obs: pd.DataFrame, cluster_order: str) -> np.ndarray | None:
    if cluster_order == "sorted":
        return None
    if "source_row" in obs.columns:
        return obs["source_row"].to_numpy(dtype=np.int64)
    return np.arange(len(obs))


def compare(
    obs: pd.DataFrame,
    with_condition: str = WITH,
    without_condition: str = WITHOUT,
    *,
    resampler: Resampler | None = None,
    table: str = "pooled",
    convention: Literal["ours", "original"] = "ours",
) -> dict[str, Any]:
    """All metrics of one comparison on one set of observations (one table): point estimates, CIs, counts and
    what was dropped. `convention="original"` gives rates with zero denominators (and an undefined NSG) the value
    0 instead of null and orders clusters by first appearance, as the original does."""
    resampler = resampler or Resampler()
    empty = 0.0 if convention == "original" else math.nan
    n_obs = len(obs)
    codes = _codes_of(
        obs, ["reference_centre_answer", "reference_counterfactual_answer", with_condition, without_condition]
    )
    cf = codes["reference_counterfactual_answer"]
    a = codes[with_condition]
    b = codes[without_condition]
    centre = codes["reference_centre_answer"]
    usable = (cf >= 0) & (a >= 0) & (b >= 0)
    if convention == "ours":
        usable &= centre >= 0
    dropped = {
        "observations": n_obs,
        "reference_unreadable": int((cf < 0).sum()),
        f"{with_condition}_unreadable": int((a < 0).sum()),
        f"{without_condition}_unreadable": int((b < 0).sum()),
        "any": int(n_obs - usable.sum()),
    }
    if convention == "ours":
        dropped["centre_unreadable"] = int((centre < 0).sum())
    used = obs.loc[usable]
    a_ok = a[usable] == cf[usable]
    b_ok = b[usable] == cf[usable]
    changed = cf[usable] != centre[usable]
    order = _order_of(used, "appearance" if convention == "original" else "sorted")
    if len(used):
        cl, k = cluster_codes(used["dataset"].to_numpy(dtype=object), used["centre_row"].to_numpy(), order)
    else:
        cl, k = np.empty(0, dtype=np.int64), 0
    counts = comparison_counts(cl, k, a_ok, b_ok, changed)
    sums = counts.sum(axis=0)
    point = rates(sums, empty)
    reference = str(obs["reference"].iloc[0]) if n_obs else ""
    boot = resampler.sums(counts, reference, table) if k else np.empty((0, len(COUNTS)))
    out: dict[str, Any] = {"n": int(sums[2]), "n_clusters": k}
    if len(boot):
        replicate = rates(boot, empty)
        ci = percentile_ci(np.column_stack([replicate[r] for r in RATES]), resampler.level)
    else:
        ci = np.full((2, len(RATES)), empty if k else math.nan)
    for j, name in enumerate(RATES):
        out[name] = point[name]
        out[f"{name}_ci"] = [float(ci[0, j]), float(ci[1, j])]
    out["n_changed"] = int(sums[5])
    out["n_unchanged"] = int(sums[8])
    out["both_correct"] = int((a_ok & b_ok).sum())
    out["both_wrong"] = int((~a_ok & ~b_ok).sum())
    out["only_with_correct"] = int((a_ok & ~b_ok).sum())
    out["only_without_correct"] = int((~a_ok & b_ok).sum())
    out["dropped"] = dropped
    return out


def rate_block(
    frame: pd.DataFrame, hit: np.ndarray, *, resampler: Resampler, reference: str, table: str
) -> dict[str, Any]:
    """100·hits/n with a cluster-bootstrap CI over the rows of `frame` (each row one unit: a pair or a question)."""
    hit = np.asarray(hit, dtype=bool)
    if len(frame) == 0:
        return {"value": math.nan, "ci": [math.nan, math.nan], "hits": 0, "n": 0, "n_clusters": 0}
    cl, k = cluster_codes(frame["dataset"].to_numpy(dtype=object), frame["row_cluster"].to_numpy())
    counts = cluster_counts(cl, k, [hit, np.ones(len(hit), dtype=bool)])
    boot = resampler.sums(counts, reference, table)
    value = accuracy(counts[:, 0].sum(), counts[:, 1].sum())
    if len(boot):
        ci = percentile_ci(np.asarray(accuracy(boot[:, 0], boot[:, 1]))[:, None], resampler.level)[:, 0]
    else:
        ci = np.array([math.nan, math.nan])
    return {
        "value": value,
        "ci": [float(ci[0]), float(ci[1])],
        "hits": int(hit.sum()),
        "n": len(frame),
        "n_clusters": k,
    }


# ---------------------------------------------------------------------------------------------------------------
# Pair- and question-level metrics
# ---------------------------------------------------------------------------------------------------------------
def egregious_pairs(obs: pd.DataFrame, condition: str = WITH) -> pd.DataFrame:
    """Per pair: whether the predictors are unanimously misled. A pair is eligible when the reference's
    counterfactual answer is readable; it is egregious when every predictor of `obs` has a row for it, every
    answer (all predictors, all repeats) under `condition` is readable, all are the same, and that answer differs
    from the reference's counterfactual answer. Unreadable answers (even all of them) make a pair NOT egregious.
    With repeats every repeat must agree, so a single dissenting sample clears the pair."""
    n_predictors = obs["predictor"].nunique()
    codes = _codes_of(obs, [condition, "reference_counterfactual_answer"])
    frame = pd.DataFrame(
        {
            "pair_id": obs["pair_id"].to_numpy(),
            "dataset": obs["dataset"].to_numpy(dtype=object),
            "row_cluster": obs["centre_row"].to_numpy(dtype=np.int64),
            "predictor": obs["predictor"].to_numpy(dtype=object),
            "answer": codes[condition],
            "cf": codes["reference_counterfactual_answer"],
        }
    )
    frame["unreadable"] = frame["answer"] < 0
    grouped = frame.groupby("pair_id", sort=True)
    per_pair = grouped.agg(
        dataset=("dataset", "first"),
        row_cluster=("row_cluster", "first"),
        cf=("cf", "first"),
        lo=("answer", "min"),
        hi=("answer", "max"),
        unreadable=("unreadable", "sum"),
        predictors=("predictor", "nunique"),
    ).reset_index()
    per_pair["eligible"] = per_pair["cf"] >= 0
    per_pair["egregious"] = (
        per_pair["eligible"]
        & (per_pair["unreadable"] == 0)
        & (per_pair["predictors"] == n_predictors)
        & (per_pair["lo"] == per_pair["hi"])
        & (per_pair["lo"] != per_pair["cf"])
    )
    per_pair["all_unreadable"] = per_pair["unreadable"] == grouped.size().to_numpy()
    return per_pair


def pair_table(obs: pd.DataFrame) -> pd.DataFrame:
    """One row per pair: dataset, cluster row, the two reference answers (nulls kept)."""
    pairs = obs.drop_duplicates("pair_id")
    return pd.DataFrame(
        {
            "pair_id": pairs["pair_id"].to_numpy(),
            "dataset": pairs["dataset"].to_numpy(dtype=object),
            "row_cluster": pairs["centre_row"].to_numpy(dtype=np.int64),
            "centre": pairs["reference_centre_answer"].astype("string").to_numpy(),
            "counterfactual": pairs["reference_counterfactual_answer"].astype("string").to_numpy(),
        }
    )


def questions_from_observations(obs: pd.DataFrame) -> pd.DataFrame:
    """The reference model's questions seen in the observations, once per (dataset, row, answer_first), with the
    reference answer and the ground-truth label (null when there is none)."""
    parts = []
    for side, row_col in (("centre", "centre_row"), ("counterfactual", "counterfactual_row")):
        if row_col not in obs.columns:
            continue
        part = obs[["dataset", row_col, "answer_first", f"reference_{side}_answer"]]
        part = part.set_axis(["dataset", "row", "answer_first", "answer"], axis=1)
        label = f"{side}_label"
        part = part.assign(
            label=obs[label] if label in obs.columns else pd.Series(pd.NA, index=obs.index, dtype="string")
        )
        parts.append(part)
    table = pd.concat(parts, ignore_index=True).drop_duplicates(["dataset", "row", "answer_first"])
    return table.reset_index(drop=True)


def questions_from_reference(reference: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Every question of the reference table with its ground-truth label from the pairs table (eval set)."""
    labels = pd.concat(
        [
            pairs[["dataset", f"{side}_row", f"{side}_label"]].set_axis(["dataset", "row", "label"], axis=1)
            for side in ("centre", "counterfactual")
        ],
        ignore_index=True,
    ).drop_duplicates(["dataset", "row"])
    table = reference[["dataset", "row", "answer_first", "answer"]].copy()
    table["row"] = table["row"].astype("int64")
    labels["row"] = labels["row"].astype("int64")
    return table.merge(labels, on=["dataset", "row"], how="left")


def reference_accuracy(
    questions: pd.DataFrame, *, resampler: Resampler, reference: str, table: str = "reference_accuracy"
) -> dict[str, Any]:
    """Reference accuracy against ground truth on the questions that have a label, with unreadable answers dropped
    and counted; clusters = (dataset, row), so both answer orders of a row resample together."""
    answer = _clean_text(questions["answer"])
    label = _clean_text(questions["label"])
    labelled = questions.loc[label.notna().to_numpy()].copy()
    readable = answer[label.notna()].notna().to_numpy()
    frame = pd.DataFrame(
        {
            "dataset": labelled["dataset"].to_numpy(dtype=object),
            "row_cluster": labelled["row"].to_numpy(dtype=np.int64),
        }
    ).loc[readable]
    hit = (answer[label.notna()] == label[label.notna()]).fillna(False).to_numpy(dtype=bool)[readable]
    out = rate_block(frame, hit, resampler=resampler, reference=reference, table=table)
    out["unreadable"] = int((~readable).sum())
    out["no_label"] = int(label.isna().sum())
    return out


# ---------------------------------------------------------------------------------------------------------------
# Everything for one reference model
# ---------------------------------------------------------------------------------------------------------------
def _present_comparisons(obs: pd.DataFrame) -> dict[str, tuple[str, str]]:
    out = {"explanation": COMPARISONS["explanation"]}
    for name in ("cot", "no_reference"):
        a, b = COMPARISONS[name]
        if a in obs.columns and b in obs.columns:
            out[name] = (a, b)
    return out


def _subset(obs: pd.DataFrame, column: str, value: Any) -> pd.DataFrame:
    return obs.loc[(obs[column] == value).to_numpy(dtype=bool)]


def reference_metrics(
    obs: pd.DataFrame,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    questions: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """metrics.json of one reference model (JSON-able; NaN means undefined and is written as null).

    Layout:
      reference, reference_family, predictors {key: family}, repeats, n_pairs, n_observations, bootstrap {...}
      comparisons.<name>  (explanation; cot and no_reference when run)
          with_condition, without_condition,
          <predictor set>  (all | exclude_same_family)
              pooled                   block
              by_dataset.<dataset>     block
              by_predictor.<predictor> block
        block = n, n_clusters, with_accuracy, without_accuracy, gain, nsg, with/without_accuracy_changed,
                with/without_accuracy_unchanged, diff_pct (each with <name>_ci = [lower, upper]), n_changed,
                n_unchanged, both_correct, both_wrong, only_with_correct, only_without_correct,
                dropped {observations, reference_unreadable, <cond>_unreadable, centre_unreadable, any}
      egregious.<predictor set>  {pooled, by_dataset.<dataset>}: value (%), ci, hits, n (eligible pairs),
                                 n_clusters, all_unreadable (eligible pairs with no readable answer)
      switch_rate               {pooled, by_dataset}: % of pairs (both reference answers readable) whose
                                 counterfactual answer differs from the centre answer
      reference_accuracy        {pooled, by_dataset}: % correct on labelled questions; unreadable, no_label
      failures.<predictor>.<condition>: observations with an unreadable (or missing) answer
    Every table has its own RNG (`table_rng`), named by the path above (e.g. "explanation/all/by_dataset/income").
    """
    if len(obs) == 0:
        raise InputError("no observations for this reference model")
    reference = str(obs["reference"].iloc[0])
    resampler = Resampler("ours", seed=seed, resamples=resamples, level=level)
    predictor_families = (
        obs.drop_duplicates("predictor").set_index("predictor")["predictor_family"].sort_index().to_dict()
    )
    out: dict[str, Any] = {
        "reference": reference,
        "reference_family": _scalar(obs["reference_family"].iloc[0]),
        "predictors": {str(k): _scalar(v) for k, v in predictor_families.items()},
        "repeats": int(obs["repeat"].max()) + 1,
        "n_pairs": int(obs["pair_id"].nunique()),
        "n_observations": len(obs),
        "bootstrap": resampler.describe(),
        "comparisons": {},
    }
    sets = {"all": obs, "exclude_same_family": exclude_same_family(obs)}
    datasets = sorted(obs["dataset"].unique())
    for name, (a, b) in _present_comparisons(obs).items():
        section: dict[str, Any] = {"with_condition": a, "without_condition": b}
        for set_name, frame in sets.items():
            prefix = f"{name}/{set_name}"
            block: dict[str, Any] = {
                "pooled": compare(frame, a, b, resampler=resampler, table=f"{prefix}/pooled"),
                "by_dataset": {},
                "by_predictor": {},
            }
            for ds in datasets:
                sub = _subset(frame, "dataset", ds)
                if len(sub):
                    block["by_dataset"][ds] = compare(sub, a, b, resampler=resampler, table=f"{prefix}/by_dataset/{ds}")
            for predictor in sorted(frame["predictor"].unique()):
                sub = _subset(frame, "predictor", predictor)
                block["by_predictor"][str(predictor)] = compare(
                    sub, a, b, resampler=resampler, table=f"{prefix}/by_predictor/{predictor}"
                )
            section[set_name] = block
        out["comparisons"][name] = section

    out["egregious"] = {}
    for set_name, frame in sets.items():
        per_pair = egregious_pairs(frame) if len(frame) else None
        out["egregious"][set_name] = _unit_rates(
            per_pair,
            hit=lambda p: p["egregious"].to_numpy(dtype=bool),
            eligible=lambda p: p["eligible"].to_numpy(dtype=bool),
            resampler=resampler,
            reference=reference,
            prefix=f"egregious/{set_name}",
            extra=lambda p: {"all_unreadable": int((p["all_unreadable"] & p["eligible"]).sum())},
        )
    pairs = pair_table(obs)
    out["switch_rate"] = _unit_rates(
        pairs,
        hit=lambda p: (p["centre"] != p["counterfactual"]).fillna(False).to_numpy(dtype=bool),
        eligible=lambda p: (p["centre"].notna() & p["counterfactual"].notna()).to_numpy(dtype=bool),
        resampler=resampler,
        reference=reference,
        prefix="switch_rate",
    )
    qs = questions if questions is not None else questions_from_observations(obs)
    out["reference_accuracy"] = {
        "pooled": reference_accuracy(qs, resampler=resampler, reference=reference, table="reference_accuracy/pooled"),
        "by_dataset": {
            ds: reference_accuracy(
                _subset(qs, "dataset", ds),
                resampler=resampler,
                reference=reference,
                table=f"reference_accuracy/by_dataset/{ds}",
            )
            for ds in sorted(qs["dataset"].unique())
            if _clean_text(_subset(qs, "dataset", ds)["label"]).notna().any()
        },
    }
    out["failures"] = failure_counts(obs)
    return out


def _unit_rates(
    units: pd.DataFrame | None,
    *,
    hit: Any,
    eligible: Any,
    resampler: Resampler,
    reference: str,
    prefix: str,
    extra: Any = None,
) -> dict[str, Any]:
    """A pair-level rate pooled and per dataset: hits among eligible units, `not_eligible` counted."""

    def one(frame: pd.DataFrame, table: str) -> dict[str, Any]:
        keep = eligible(frame)
        block = rate_block(frame.loc[keep], hit(frame)[keep], resampler=resampler, reference=reference, table=table)
        block["not_eligible"] = int((~keep).sum())
        if extra is not None:
            block.update(extra(frame))
        return block

    if units is None or len(units) == 0:
        empty = pd.DataFrame({"dataset": pd.Series(dtype=object), "row_cluster": pd.Series(dtype=np.int64)})
        return {"pooled": _empty_rate(empty, resampler, reference, f"{prefix}/pooled"), "by_dataset": {}}
    return {
        "pooled": one(units, f"{prefix}/pooled"),
        "by_dataset": {
            str(ds): one(units.loc[(units["dataset"] == ds).to_numpy()], f"{prefix}/by_dataset/{ds}")
            for ds in sorted(units["dataset"].unique())
        },
    }


def _empty_rate(frame: pd.DataFrame, resampler: Resampler, reference: str, table: str) -> dict[str, Any]:
    block = rate_block(frame, np.zeros(0, dtype=bool), resampler=resampler, reference=reference, table=table)
    block["not_eligible"] = 0
    return block


def failure_counts(obs: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per predictor and condition: observations whose answer is unreadable or missing (dropped from every
    comparison that uses that condition); `reference_counterfactual` counts those of the reference itself."""
    conditions = [c for c in CONDITIONS if c in obs.columns]
    out: dict[str, dict[str, int]] = {}
    for predictor, frame in obs.groupby("predictor", sort=True):
        counts = {c: int(frame[c].isna().sum()) for c in conditions}
        counts["reference_counterfactual"] = int(frame["reference_counterfactual_answer"].isna().sum())
        counts["observations"] = len(frame)
        out[str(predictor)] = counts
    return out


def _scalar(value: Any) -> Any:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


# ---------------------------------------------------------------------------------------------------------------
# Summary table
# ---------------------------------------------------------------------------------------------------------------
def summary_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """metrics.json of one reference model as summary-table rows: one row per (comparison, predictor set, scope,
    group) with scope "pooled" (group "all"), "dataset" (group = dataset) or "predictor" (group = predictor key).
    Columns: reference, comparison, with_condition, without_condition, predictors, scope, group, n, n_clusters,
    every rate with <rate>_ci_lower/<rate>_ci_upper, n_changed, n_unchanged, the four agreement counts, dropped
    (observations dropped), and on pooled and dataset rows egregious_rate (of that predictor set), switch_rate and
    reference_accuracy with their CIs (null where not defined, e.g. a dataset without labels, and on predictor
    rows)."""
    rows: list[dict[str, Any]] = []
    pair_level = {
        "switch_rate": metrics.get("switch_rate", {}),
        "reference_accuracy": metrics.get("reference_accuracy", {}),
    }
    for comparison, section in metrics["comparisons"].items():
        for set_name in PREDICTOR_SETS:
            block = section[set_name]
            scopes = [("pooled", "all", block["pooled"])]
            scopes += [("dataset", ds, b) for ds, b in block["by_dataset"].items()]
            scopes += [("predictor", p, b) for p, b in block["by_predictor"].items()]
            egregious = metrics.get("egregious", {}).get(set_name, {})
            for scope, group, b in scopes:
                row: dict[str, Any] = {
                    "reference": metrics["reference"],
                    "comparison": comparison,
                    "with_condition": section["with_condition"],
                    "without_condition": section["without_condition"],
                    "predictors": set_name,
                    "scope": scope,
                    "group": group,
                    "n": b["n"],
                    "n_clusters": b["n_clusters"],
                }
                for name in RATES:
                    row[name] = b[name]
                    row[f"{name}_ci_lower"], row[f"{name}_ci_upper"] = b[f"{name}_ci"]
                for name in ("n_changed", "n_unchanged", *AGREEMENT):
                    row[name] = b[name]
                row["dropped"] = b["dropped"]["any"]
                for key, section_of in (("egregious_rate", egregious), *pair_level.items()):
                    unit = None
                    if scope == "pooled":
                        unit = section_of.get("pooled")
                    elif scope == "dataset":
                        unit = section_of.get("by_dataset", {}).get(group)
                    value, ci = (unit["value"], unit["ci"]) if unit else (math.nan, [math.nan, math.nan])
                    row[key], row[f"{key}_ci_lower"], row[f"{key}_ci_upper"] = value, ci[0], ci[1]
                rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# The original's CSVs
# ---------------------------------------------------------------------------------------------------------------
ORIGINAL_COLUMNS = [
    "model",
    "total",
    "with_explanation_accuracy",
    "without_explanation_accuracy",
    "simulatability_gain",
    "gain_ci_lower",
    "gain_ci_upper",
    "with_ci_lower",
    "with_ci_upper",
    "without_ci_lower",
    "without_ci_upper",
    "normalized_gain",
    "norm_gain_ci_lower",
    "norm_gain_ci_upper",
    "precision",
    "precision_ci_lower",
    "precision_ci_upper",
    "precision_without",
    "precision_without_ci_lower",
    "precision_without_ci_upper",
    "recall",
    "recall_ci_lower",
    "recall_ci_upper",
    "recall_without",
    "recall_without_ci_lower",
    "recall_without_ci_upper",
    "diff_pct",
    "both_correct",
    "both_wrong",
    "only_with_correct",
    "only_without_correct",
]
# original name -> (our rate, CI prefix in the original)
_ORIGINAL_RATES = {
    "with_explanation_accuracy": ("with_accuracy", "with"),
    "without_explanation_accuracy": ("without_accuracy", "without"),
    "simulatability_gain": ("gain", "gain"),
    "normalized_gain": ("nsg", "norm_gain"),
    "precision": ("with_accuracy_changed", "precision"),
    "precision_without": ("without_accuracy_changed", "precision_without"),
    "recall": ("with_accuracy_unchanged", "recall"),
    "recall_without": ("without_accuracy_unchanged", "recall_without"),
}
PERFORMANCE_COLUMNS = ["model", "dataset", "total", "correct", "accuracy", "accuracy_ci_lower", "accuracy_ci_upper"]
ORIGINAL_CSVS = (
    "averaged",
    "averaged_exclude_family",
    "by_predictor",
    "by_predictor_exclude_family",
    "first_predictor",
    "by_dataset",
    "reference_accuracy",
)


def _original_row(block: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"total": block["n"]}
    for column, (rate, prefix) in _ORIGINAL_RATES.items():
        row[column] = block[rate]
        row[f"{prefix}_ci_lower"], row[f"{prefix}_ci_upper"] = block[f"{rate}_ci"]
    row["diff_pct"] = block["diff_pct"]
    for name in AGREEMENT:
        row[name] = block[name]
    return row


def _first_seen(obs: pd.DataFrame) -> float:
    if "source_row" in obs.columns and len(obs):
        return float(obs["source_row"].min())
    return math.inf


def _predictor_indices(obs: pd.DataFrame) -> pd.Series:
    """predictor -> its list index in the original (`predictor_index`), else its rank in sorted key order."""
    if "predictor_index" in obs.columns:
        return obs.groupby("predictor")["predictor_index"].min().sort_values()
    names = sorted(obs["predictor"].unique())
    return pd.Series(range(len(names)), index=names, dtype="int64")


def _with_predictor_index(obs: pd.DataFrame) -> pd.DataFrame:
    if "predictor_index" in obs.columns:
        return obs
    return obs.assign(predictor_index=obs["predictor"].map(_predictor_indices(obs)).astype("int64"))


def _usable_original(obs: pd.DataFrame) -> pd.DataFrame:
    """Observations the original keeps: reference counterfactual answer and both predictions readable."""
    keep = obs["reference_counterfactual_answer"].notna() & obs[WITH].notna() & obs[WITHOUT].notna()
    return obs.loc[keep.to_numpy(dtype=bool)]


def _original_call(
    frames: Mapping[str, pd.DataFrame], resampler: Resampler, table: str, order_on_usable: bool
) -> list[dict[str, Any]]:
    """One call of the original's metric routine: one seed, models in order of first appearance (of any record,
    or of a kept observation when `order_on_usable`), the stream running on from model to model."""
    resampler.reset()
    order = []
    for model, frame in frames.items():
        usable = _usable_original(frame)
        if len(usable) == 0:
            continue  # no row in the original's output, and no draws
        order.append((_first_seen(usable if order_on_usable else frame), model))
    rows = []
    for _, model in sorted(order, key=lambda t: (t[0], t[1])):
        block = compare(frames[model], resampler=resampler, table=f"original/{table}", convention="original")
        rows.append({"model": model, **_original_row(block)})
    return sorted(rows, key=lambda r: r["model"])


def _n_predictors(all_obs: Sequence[pd.DataFrame]) -> int:
    """The original's `n_predictors`: the length of the first record's with-explanation list (predictors x
    repeats); the first record is the smallest source row, else the first pair in sorted order."""
    best = None
    for obs in all_obs:
        if not len(obs):
            continue
        if "source_row" in obs.columns:
            first = obs.loc[obs["source_row"] == obs["source_row"].min()]
            key = float(obs["source_row"].min())
        else:
            first = obs.loc[obs["pair_id"] == obs["pair_id"].iloc[0]]
            key = math.inf
        if best is None or key < best[0]:
            best = (key, len(first[["predictor", "repeat"]].drop_duplicates()))
    return 0 if best is None else best[1]


def original_tables(
    obs_by_reference: Mapping[str, pd.DataFrame],
    *,
    bootstrap: Bootstrap = "original",
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, pd.DataFrame]:
    """The original analysis's CSVs, with its column names, from our observations (one frame per reference
    model; the reference key is the original's model key):

      averaged, averaged_exclude_family   `--average` [--exclude-self-predictors family]
      by_predictor, by_predictor_exclude_family   its breakdown by predictor index
      first_predictor                     its default mode (the first predictor's answers)
      by_dataset                          `--average --by-dataset` overview.csv (dataset, model first)
      reference_accuracy                  model_performance.py

    With `bootstrap="original"` the CIs are the original's own: a fresh seed-42 stream for every call of its
    metric routine (each predictor index, the averaged table, each dataset), running on across reference models
    in their order of first appearance; clusters in order of first appearance (`source_row`); the reference
    accuracy stream seeded once and continued over (model, dataset) groups. With `bootstrap="ours"` the point
    estimates are the same and every (model, table) gets its own Generator (`table_rng`) with sorted clusters.
    Same-family exclusion uses the observations' families (the import gives them the original's substring rule).
    "First appearance" is the smallest `source_row` (the record's row in the original file); tables made by the
    workflow have none, and then it is the observations' sorted order. With repeats > 1 every repeat is one
    observation, paired by key (the original pairs its lists by position, which misaligns them; its CSVs are only
    meaningful with one repeat). `n_predictors` is the original's: the length of the first record's
    with-explanation list (predictors x repeats), not reduced by the exclusion.
    """
    resampler = Resampler(bootstrap, seed=seed, resamples=resamples)
    frames = {str(k): _with_predictor_index(v) for k, v in obs_by_reference.items() if len(v)}
    excluded = {k: exclude_same_family(v) for k, v in frames.items()}
    n_predictors = _n_predictors(list(frames.values()))
    names: dict[int, str] = {}
    for frame in frames.values():
        for name, index in _predictor_indices(frame).items():
            names.setdefault(int(index), str(name))
    out: dict[str, pd.DataFrame] = {}

    for suffix, source in (("", frames), ("_exclude_family", excluded)):
        rows = _original_call(source, resampler, f"averaged{suffix}", order_on_usable=False)
        for row in rows:
            row["n_predictors"] = n_predictors
        out[f"averaged{suffix}"] = pd.DataFrame(rows, columns=["model", "total", "n_predictors", *ORIGINAL_COLUMNS[2:]])
        parts = []
        for index in sorted(names):
            subset = {k: _subset(v, "predictor_index", index) for k, v in source.items()}
            for row in _original_call(subset, resampler, f"by_predictor{suffix}/{index}", order_on_usable=True):
                parts.append({"predictor": names[index], "predictor_index": index, **row})
        out[f"by_predictor{suffix}"] = pd.DataFrame(parts, columns=["predictor", "predictor_index", *ORIGINAL_COLUMNS])

    first = {k: _subset(v, "predictor_index", int(v["predictor_index"].min())) for k, v in frames.items()}
    out["first_predictor"] = pd.DataFrame(
        _original_call(first, resampler, "first_predictor", order_on_usable=True), columns=ORIGINAL_COLUMNS
    )

    datasets = sorted({ds for v in frames.values() for ds in v["dataset"].unique()})
    overview = []
    for ds in datasets:
        subset = {k: _subset(v, "dataset", ds) for k, v in frames.items()}
        for row in _original_call(subset, resampler, f"by_dataset/{ds}", order_on_usable=False):
            overview.append({"dataset": ds, **row, "n_predictors": n_predictors})
    cols = ["dataset", "model", "total", "n_predictors", *ORIGINAL_COLUMNS[2:]]
    by_dataset = pd.DataFrame(overview, columns=cols)
    out["by_dataset"] = by_dataset.sort_values(["dataset", "model"], kind="stable").reset_index(drop=True)

    out["reference_accuracy"] = original_reference_accuracy(frames, resampler)
    return out


def original_reference_accuracy(frames: Mapping[str, pd.DataFrame], resampler: Resampler) -> pd.DataFrame:
    """model_performance.py: per (model, dataset), centre answer == centre label over records (pairs) with a
    readable centre answer and a label; clusters = centre row in order of first appearance; one seed-42 stream
    for the whole file, continued over the (model, dataset) groups in order of first appearance."""
    resampler.reset()
    groups = []
    for model, obs in frames.items():
        if "centre_label" not in obs.columns:
            continue  # no ground truth (no eval set): no row, as the original skips records without one
        pairs = obs.drop_duplicates("pair_id")
        keep = (pairs["reference_centre_answer"].notna() & pairs["centre_label"].notna()).to_numpy(dtype=bool)
        pairs = pairs.loc[keep]
        for ds, part in pairs.groupby("dataset", sort=False):
            groups.append((_first_seen(part), model, ds, part))
    rows = []
    for _, model, ds, part in sorted(groups, key=lambda g: (g[0], g[1], g[2])):
        order = _order_of(part, "appearance" if resampler.bootstrap == "original" else "sorted")
        cl, k = cluster_codes(np.full(len(part), ds, dtype=object), part["centre_row"].to_numpy(), order)
        hit = (part["reference_centre_answer"] == part["centre_label"]).to_numpy(dtype=bool)
        counts = cluster_counts(cl, k, [hit, np.ones(len(part), dtype=bool)])
        boot = resampler.sums(counts, model, f"original/reference_accuracy/{ds}")
        ci = percentile_ci(np.asarray(accuracy(boot[:, 0], boot[:, 1], 0.0))[:, None], resampler.level)[:, 0]
        rows.append(
            {
                "model": model,
                "dataset": ds,
                "total": len(part),
                "correct": int(hit.sum()),
                "accuracy": accuracy(counts[:, 0].sum(), counts[:, 1].sum(), 0.0),
                "accuracy_ci_lower": float(ci[0]),
                "accuracy_ci_upper": float(ci[1]),
            }
        )
    table = pd.DataFrame(rows, columns=PERFORMANCE_COLUMNS)
    return table.sort_values(["model", "dataset"], kind="stable").reset_index(drop=True)


def write_original_csvs(tables: Mapping[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """One CSV per table in `out_dir` (`<name>.csv`), written atomically as pandas writes them (float repr)."""
    from selfexplain.io import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ORIGINAL_CSVS:
        if name not in tables:
            continue
        path = out_dir / f"{name}.csv"
        with atomic_path(path) as tmp:
            tables[name].to_csv(tmp, index=False)
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------------------------
# A results folder: DIR/<reference>/reference.parquet and DIR/<reference>/<predictor>/predictions.parquet
# ---------------------------------------------------------------------------------------------------------------
IMPORT_META = "import.json"
EVAL_SET = "eval_set.parquet"


def run_families(root: str | Path, families: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
    """Model families for a results folder: those of an import (DIR/import.json, the original's rule) over the
    given ones (the catalog's)."""
    import json

    out = dict(families or {})
    meta = Path(root) / IMPORT_META
    if meta.exists():
        out.update(json.loads(meta.read_text(encoding="utf-8")).get("families", {}))
    return out


def catalog_families(path: str | Path) -> dict[str, str | None]:
    """`family` of every model of a catalog file (models.yaml); a model without one maps to None."""
    from selfexplain.config import load_yaml

    data = load_yaml(path) or {}
    models = data.get("models", data) if isinstance(data, dict) else {}
    return {str(k): (v or {}).get("family") for k, v in models.items() if isinstance(v, dict) or v is None}


def read_run(
    root: str | Path, families: Mapping[str, str | None] | None = None
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame | None]]:
    """reference key -> (observations, questions with labels or None) for every reference folder under `root`
    that has predictions. Labels come from DIR/eval_set.parquet when it exists."""
    from selfexplain.io import read_table

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"results folder not found: {root}")
    fams = run_families(root, families)
    pairs = read_table(root / EVAL_SET) if (root / EVAL_SET).exists() else None
    out: dict[str, tuple[pd.DataFrame, pd.DataFrame | None]] = {}
    for ref_path in sorted(root.glob("*/reference.parquet")):
        pred_paths = sorted(ref_path.parent.glob("*/predictions.parquet"))
        if not pred_paths:
            continue
        reference = read_table(ref_path)
        preds = [read_table(p) for p in pred_paths]
        try:
            obs = observations(reference, preds, fams, pairs)
        except InputError as exc:
            raise InputError(f"{ref_path.parent}: {exc}") from exc
        questions = questions_from_reference(reference, pairs) if pairs is not None else None
        out[str(obs["reference"].iloc[0])] = (obs, questions)
    if not out:
        raise InputError(f"{root}: no <reference>/reference.parquet with <predictor>/predictions.parquet beside it")
    return out


def score_folder(
    root: str | Path,
    *,
    families: Mapping[str, str | None] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Our metrics (`reference_metrics`) for every reference model of a results folder."""
    return {
        ref: reference_metrics(obs, resamples=resamples, seed=seed, questions=questions)
        for ref, (obs, questions) in read_run(root, families).items()
    }


def original_csvs_for_folder(
    root: str | Path,
    out_dir: str | Path,
    *,
    families: Mapping[str, str | None] | None = None,
    bootstrap: Bootstrap = "original",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[Path]:
    """The original's seven CSVs (`original_tables`) for a results folder, written to `out_dir`."""
    run = read_run(root, families)
    tables = original_tables(
        {ref: obs for ref, (obs, _) in run.items()}, bootstrap=bootstrap, seed=seed, resamples=resamples
    )
    return write_original_csvs(tables, out_dir)


def write_summary(results: Mapping[str, Mapping[str, Any]], path: str | Path) -> pd.DataFrame:
    """The summary table (`summary_rows` of every reference model) as CSV, written atomically."""
    from selfexplain.io import atomic_path

    table = pd.DataFrame([row for metrics in results.values() for row in summary_rows(metrics)])
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def describe(metrics: Mapping[str, Any]) -> list[str]:
    """A few lines per reference model for the terminal: pooled NSG and accuracies with CIs, the pair rates."""

    def pct(value: Any, ci: Sequence[Any] | None = None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        text = f"{value:.2f}"
        if ci is not None and not any(c is None or math.isnan(c) for c in ci):
            text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
        return text

    lines = [
        f"{metrics['reference']} (family {metrics['reference_family']}; {len(metrics['predictors'])} "
        f"predictor(s), {metrics['n_pairs']} pairs, repeats {metrics['repeats']})"
    ]
    for name, section in metrics["comparisons"].items():
        for set_name in PREDICTOR_SETS:
            b = section[set_name]["pooled"]
            lines.append(
                f"  {name} {set_name}: n={b['n']} with {pct(b['with_accuracy'])} without {pct(b['without_accuracy'])}"
                f" gain {pct(b['gain'], b['gain_ci'])} NSG {pct(b['nsg'], b['nsg_ci'])}"
                f" changed {pct(b['diff_pct'])}% dropped {b['dropped']['any']}"
            )
    for set_name in PREDICTOR_SETS:
        e = metrics["egregious"][set_name]["pooled"]
        lines.append(f"  egregious {set_name}: {pct(e['value'], e['ci'])} ({e['hits']}/{e['n']} pairs)")
    s = metrics["switch_rate"]["pooled"]
    lines.append(f"  switch rate: {pct(s['value'], s['ci'])} ({s['hits']}/{s['n']} pairs)")
    r = metrics["reference_accuracy"]["pooled"]
    lines.append(
        f"  reference accuracy: {pct(r['value'], r['ci'])} ({r['hits']}/{r['n']} labelled questions, "
        f"{r.get('unreadable', 0)} unreadable)"
    )
    return lines
