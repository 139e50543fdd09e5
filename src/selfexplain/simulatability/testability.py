"""Testability rubric: how far a reference model's explanation, on its own, decides its answer on the counterfactual.

The faithfulness paper could ask one predictor (the first of its run) to rate every (centre, counterfactual) record
from 0 to 10 against a rubric (reference §4) and correlated the score with WITH-correctness in a notebook. Here it is
an optional stage (config `simulatability.testability`): one request per (reference, pair) whose centre answer and
explanation are readable, through the shared runner (journal, retries, usage), the template
`config/prompts/simulatability/testability.txt` (the predictor templates' placeholders), and a tolerant parser.

Reading a score (`parse_testability`): thinking is stripped (`parsing.thinking.strip_thinking`); then, in order,
the whole reply as a number (digits, or a number word such as "seven"), a labelled number ("score: 7", "Rating =
7"), a fraction ("7/10", "7 out of 10"), and the first number left after scale mentions ("0-10", "0 to 10") are
removed. Every candidate must lie in [0, 10]; one outside goes on to the next rule; none gives status
`unreadable`. The original tries the first number before the labelled and fraction forms, and reads "-1" as 1: on
"Two features changed. Score: 8" it gives 2 where this gives 8 (the replies differ only when a number comes before
the score).

Correlation (`correlation_rows`): over observations (one per pair, predictor and repeat, `metrics.observations`)
whose WITH prediction and reference counterfactual answer are readable and whose pair has a score, x = score and
y = 1 if the WITH prediction equals the reference counterfactual answer. Pearson's r (with a binary y: the
point-biserial correlation) and Spearman's rho (Pearson's r of mid-ranks). Both come from the (score value, y) count
table, so a cluster-bootstrap replicate is weights @ per-cluster count tables (`metrics.resampled_sums`, clusters
(dataset, centre_row), our per-table RNG `metrics.table_rng`) and the ranks are recomputed exactly per replicate;
CIs are percentile intervals (`metrics.percentile_ci`). A replicate whose x or y does not vary has no correlation
and is left out of the interval.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfexplain.errors import InputError
from selfexplain.parsing.numbers import words_to_number
from selfexplain.parsing.thinking import strip_thinking

log = logging.getLogger(__name__)

TEMPLATE = "testability"
SCALE = (0.0, 10.0)
STATUSES = ("ok", "unreadable", "empty", "incomplete_thinking", "request_failed")
SCORE_RULES = ("number", "labelled", "fraction", "first_number")
ALL_REFERENCES = "all"
KEY = ("dataset", "pair_id")
TESTABILITY_COLUMNS = [
    "pair_id",
    "dataset",
    "centre_row",
    "counterfactual_row",
    "answer_first",
    "reference",
    "predictor",
    "reference_centre_answer",
    "reference_counterfactual_answer",
]
CSV_COLUMNS = [
    "reference",
    "scorer",
    "pairs",
    "pairs_scored",
    "pairs_unreadable",
    "mean_score",
    "observations",
    "with_accuracy",
    "pearson_r",
    "pearson_ci_lower",
    "pearson_ci_upper",
    "spearman_rho",
    "spearman_ci_lower",
    "spearman_ci_upper",
    "clusters",
    "resamples",
]


# ---------------------------------------------------------------------------------------------------------------
# Reading a score
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rating:
    """A parsed rating: the score (None unless status is ok), the status, and which rule read it."""

    score: float | None
    status: str
    rule: str | None = None


_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_WHOLE = re.compile(rf"^({_NUMBER})$")
_LABELLED = re.compile(
    rf"\b(?:testability\s+)?(?:score|rating|assessment)\b[^\d\n+-]{{0,12}}?({_NUMBER})(?![\d.]*\s*-\s*\d)",
    re.IGNORECASE,
)
_FRACTION = re.compile(rf"(?<![\d.])({_NUMBER})\s*(?:/|out\s+of)\s*10(?!\d|\.\d)", re.IGNORECASE)
_SCALE_MENTION = re.compile(
    r"(?:\bfrom\s+)?(?<![\d.])[01]\s*(?:-|–|—|to)\s*10(?!\d|\.\d)|\bout\s+of\s+10\b|/\s*10(?!\d|\.\d)", re.IGNORECASE
)
_EDGE = " \t\r\n*_`#>\"'.!:"
_THINK_TAG = re.compile(r"<\s*/?\s*think(?:ing)?\s*>", re.IGNORECASE)


def in_scale(value: float) -> bool:
    return SCALE[0] <= value <= SCALE[1]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _whole(text: str) -> float | None:
    """The reply as one number: digits or number words, with markdown and end punctuation around it."""
    core = text.strip(_EDGE)
    match = _WHOLE.match(core)
    if match:
        return _number(match.group(1))
    words = core.lower().replace("-", " ").split()
    if 0 < len(words) <= 2:
        value = words_to_number(words)
        return None if value is None else float(value)
    return None


def parse_testability(text: str | None) -> Rating:
    """Read a 0–10 rating from a reply (see the module docstring for the order of the rules)."""
    if text is None or not str(text).strip():
        return Rating(None, "empty")
    answer = strip_thinking(str(text)).strip()
    if not answer:
        # thinking and no answer after it: the reply ended inside its thinking (or said nothing after it)
        status = "incomplete_thinking" if _THINK_TAG.search(str(text)) else "empty"
        return Rating(None, status)
    whole = _whole(answer)
    if whole is not None and in_scale(whole):
        return Rating(whole, "ok", "number")
    for rule, pattern in (("labelled", _LABELLED), ("fraction", _FRACTION)):
        for match in pattern.finditer(answer):
            value = _number(match.group(1))
            if value is not None and in_scale(value):
                return Rating(value, "ok", rule)
    rest = _SCALE_MENTION.sub(" ", answer)
    first = re.search(rf"(?<![\w.]){_NUMBER}", rest)
    if first is not None:
        value = _number(first.group(0))
        if value is not None and in_scale(value):
            return Rating(value, "ok", "first_number")
    return Rating(None, "unreadable")


# ---------------------------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return str(value) if str(value).strip() else None


def testability_prompts(
    eval_set: pd.DataFrame, reference: pd.DataFrame, reference_name: str, predictor: str, prompt_dir: str | Path
) -> tuple[pd.DataFrame, list[str], dict[str, int]]:
    """The rows (TESTABILITY_COLUMNS), the prompt texts and the skipped counts: one prompt per pair whose centre
    answer and explanation are readable."""
    from selfexplain.prompts import load_template
    from selfexplain.simulatability.answers import pair_answers, pair_columns, reference_lookup
    from selfexplain.simulatability.prompts import predictor_fields

    answers = reference_lookup(reference, ("answer", "explanation"))
    templates = {d: load_template(prompt_dir, TEMPLATE, d) for d in eval_set["dataset"].unique()}
    rows, prompts = [], []
    skipped = {"centre_unreadable": 0, "no_explanation": 0}
    for pair in eval_set.itertuples(index=False):
        centre, counterfactual = pair_answers(answers, pair)
        if _text(centre["answer"]) is None:
            skipped["centre_unreadable"] += 1
            continue
        explanation = _text(centre["explanation"])
        if explanation is None:
            skipped["no_explanation"] += 1
            continue
        fields = predictor_fields(
            pair.dataset, pair.centre_text, str(centre["answer"]), pair.counterfactual_text, explanation=explanation
        )
        prompts.append(templates[pair.dataset].render(fields))
        rows.append(
            {
                **pair_columns(pair),
                "reference": reference_name,
                "predictor": predictor,
                "reference_centre_answer": str(centre["answer"]),
                "reference_counterfactual_answer": _text(counterfactual["answer"]),
            }
        )
    return pd.DataFrame(rows, columns=TESTABILITY_COLUMNS), prompts, skipped


def testability_scores(
    entry: Any,
    backend: Any,
    reference_name: str,
    eval_set: pd.DataFrame,
    reference: pd.DataFrame,
    prompt_dir: str | Path,
    journal_path: str | Path,
    progress: bool = True,
) -> pd.DataFrame:
    """The testability table of one reference rated by one predictor (`entry`): one row per rated pair, with
    score (float, null unless score_status is ok), score_status, score_rule and the usage columns."""
    from selfexplain.simulatability.answers import ask

    table, prompts, skipped = testability_prompts(eval_set, reference, reference_name, entry.name, prompt_dir)
    requests = [entry.request([*entry.system_messages(), {"role": "user", "content": p}]) for p in prompts]
    label = f"{entry.name} rating {reference_name}'s explanations"
    return ask(backend, requests, table, _rating_columns, "score_status", journal_path, label, progress, skipped)


def _rating_columns(completions: list[Any]) -> dict[str, Any]:
    parsed = [_rating(c) for c in completions]
    return {
        "score": pd.array([p.score for p in parsed], dtype="Float64"),
        "score_status": [p.status for p in parsed],
        "score_rule": [p.rule for p in parsed],
    }


def _rating(completion: Any) -> Rating:
    """The parsed rating, or what went wrong before parsing (as `answers._status`): the request failed for good, or
    the backend moved the whole reply into `reasoning` (thinking and no answer)."""
    if not completion.ok:
        return Rating(None, "request_failed")
    rating = parse_testability(completion.text)
    if rating.status == "empty" and (completion.reasoning or "").strip():
        return Rating(None, "incomplete_thinking")
    return rating


# ---------------------------------------------------------------------------------------------------------------
# Correlation with WITH-correctness
# ---------------------------------------------------------------------------------------------------------------
def mid_ranks(counts: np.ndarray) -> np.ndarray:
    """Mid-ranks (1-based) of the sorted distinct values whose multiplicities are `counts` (..., K): a value with
    c copies after s smaller ones has rank s + (c + 1) / 2."""
    counts = np.asarray(counts, dtype=np.float64)
    before = np.cumsum(counts, axis=-1) - counts
    return before + (counts + 1) / 2


def table_pearson(table: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of the data whose (x value, y value) counts are `table` (..., K, L); x (..., K), y (..., L) may
    differ per replicate (ranks). NaN when x or y does not vary."""
    table = np.asarray(table, dtype=np.float64)
    x = np.broadcast_to(np.asarray(x, dtype=np.float64), table.shape[:-1])
    y = np.broadcast_to(np.asarray(y, dtype=np.float64), (*table.shape[:-2], table.shape[-1]))
    n = table.sum(axis=(-2, -1))
    cx, cy = table.sum(axis=-1), table.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (cx * x).sum(axis=-1) / n
        my = (cy * y).sum(axis=-1) / n
        dx = x - mx[..., None]
        dy = y - my[..., None]
        sxx = (cx * dx**2).sum(axis=-1)
        syy = (cy * dy**2).sum(axis=-1)
        sxy = (table * dx[..., :, None] * dy[..., None, :]).sum(axis=(-2, -1))
        tiny = 1e-12 * n * n * (1 + np.abs(x).max(axis=-1) ** 2 + np.abs(y).max(axis=-1) ** 2)
        r = sxy / np.sqrt(sxx * syy)
    undefined = (n < 2) | (sxx <= tiny) | (syy <= tiny)
    return np.where(undefined, np.nan, np.clip(r, -1.0, 1.0))


def table_spearman(table: np.ndarray) -> np.ndarray:
    """Spearman's rho (Pearson's r of mid-ranks) of the data whose counts are `table` (..., K, L), K and L in
    increasing order of the values."""
    table = np.asarray(table, dtype=np.float64)
    return table_pearson(table, mid_ranks(table.sum(axis=-1)), mid_ranks(table.sum(axis=-2)))


def count_table(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, L) counts of the pairs (x, y) over their sorted distinct values, and those values."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xs, xi = np.unique(x, return_inverse=True)
    ys, yi = np.unique(y, return_inverse=True)
    table = np.zeros((len(xs), len(ys)))
    np.add.at(table, (xi, yi), 1)
    return table, xs, ys


def pearson(x: Any, y: Any) -> float:
    """Pearson's r of two equal-length arrays (NaN when either does not vary)."""
    table, xs, ys = count_table(x, y)
    return float(table_pearson(table, xs, ys))


def spearman(x: Any, y: Any) -> float:
    """Spearman's rho with mid-ranks for ties (NaN when either does not vary)."""
    return float(table_spearman(count_table(x, y)[0]))


def correlation_block(
    score: Any,
    correct: Any,
    dataset: Any,
    centre_row: Any,
    *,
    resamples: int = 1000,
    seed: int = 42,
    table: str = "testability",
    name: str = ALL_REFERENCES,
    level: float = 0.95,
) -> dict[str, Any]:
    """Pearson and Spearman correlations of score with correct (0/1) and their cluster-bootstrap CIs."""
    from selfexplain.simulatability.metrics import cluster_codes, percentile_ci, resampled_sums, table_rng

    x = np.asarray(score, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    out: dict[str, Any] = {"observations": len(x), "resamples": resamples}
    if len(x) == 0:
        nan = math.nan
        return {**out, "with_accuracy": nan, "pearson_r": nan, "spearman_rho": nan, "clusters": 0}
    full, xs, ys = count_table(x, y)
    out["with_accuracy"] = 100 * float(y.mean())
    out["pearson_r"] = float(table_pearson(full, xs, ys))
    out["spearman_rho"] = float(table_spearman(full))
    codes, n_clusters = cluster_codes(dataset, centre_row)
    out["clusters"] = n_clusters
    if resamples > 0:
        xi = np.searchsorted(xs, x)
        yi = np.searchsorted(ys, y)
        cell = xi * len(ys) + yi
        per_cluster = np.zeros((n_clusters, len(xs) * len(ys)))
        np.add.at(per_cluster, (codes, cell), 1)
        sums = resampled_sums(per_cluster, rng=table_rng(seed, name, table), resamples=resamples)
        tables = sums.reshape(-1, len(xs), len(ys))
        draws = np.stack([table_pearson(tables, xs, ys), table_spearman(tables)], axis=1)
        (p_lo, s_lo), (p_hi, s_hi) = percentile_ci(draws, level)
        out.update(pearson_ci_lower=p_lo, pearson_ci_upper=p_hi, spearman_ci_lower=s_lo, spearman_ci_upper=s_hi)
    return out


def scored_observations(observations: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Observations with a readable WITH prediction and reference counterfactual answer, joined by (reference,
    dataset, pair_id) to their pair's score: columns reference, predictor, repeat, dataset, pair_id, centre_row,
    score (null when the pair has no readable score), correct (bool)."""
    need = ["reference", "predictor", "repeat", "dataset", "pair_id", "centre_row"]
    need += ["with_explanation", "reference_counterfactual_answer"]
    missing = sorted(set(need) - set(observations.columns))
    if missing:
        raise InputError(f"observations: missing column(s) {missing}")
    missing = sorted({"reference", *KEY, "score"} - set(scores.columns))
    if missing:
        raise InputError(f"testability table: missing column(s) {missing}")
    obs = observations[need].copy()
    with_pred = obs["with_explanation"].astype("string")
    truth = obs["reference_counterfactual_answer"].astype("string")
    usable = (with_pred.notna() & truth.notna() & (with_pred != "") & (truth != "")).fillna(False)
    obs = obs[usable.to_numpy(dtype=bool)].copy()
    obs["correct"] = (
        obs["with_explanation"].astype("string") == obs["reference_counterfactual_answer"].astype("string")
    ).to_numpy(dtype=bool)
    if scores.duplicated(["reference", *KEY]).any():
        raise InputError("testability table: more than one score for a (reference, dataset, pair_id)")
    keyed = scores[["reference", *KEY, "score"]]
    merged = obs.merge(keyed, on=["reference", *KEY], how="left", validate="many_to_one")
    merged["score"] = pd.to_numeric(merged["score"], errors="coerce").astype("float64")
    return merged.drop(columns=["with_explanation", "reference_counterfactual_answer"])


def correlation_rows(
    scores: Mapping[str, pd.DataFrame],
    observations: Mapping[str, pd.DataFrame],
    resamples: int = 1000,
    seed: int = 42,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per reference (and `all`, pooled over references, when there are several): CSV_COLUMNS."""
    rows, pooled = [], []
    for reference in scores:
        if reference not in observations:
            raise InputError(f"testability: no observations for reference {reference}")
        table = scores[reference]
        scorer = ", ".join(sorted({str(p) for p in table["predictor"].dropna().unique()})) if len(table) else ""
        joined = scored_observations(observations[reference], table)
        pooled.append(joined.assign(_scorer=scorer))
        rows.append(_row(reference, scorer, table, joined, resamples, seed, level))
    if len(scores) > 1:
        joined = pd.concat(pooled, ignore_index=True)
        table = pd.concat(list(scores.values()), ignore_index=True)
        scorer = ", ".join(sorted({s for s in joined["_scorer"].unique() if s}))
        rows.append(_row(ALL_REFERENCES, scorer, table, joined, resamples, seed, level))
    return pd.DataFrame(rows).reindex(columns=CSV_COLUMNS)


def _row(
    name: str, scorer: str, table: pd.DataFrame, joined: pd.DataFrame, resamples: int, seed: int, level: float
) -> dict[str, Any]:
    score = pd.to_numeric(table["score"], errors="coerce")
    used = joined[joined["score"].notna()]
    block = correlation_block(
        used["score"],
        used["correct"],
        used["dataset"],
        used["centre_row"],
        resamples=resamples,
        seed=seed,
        name=name,
        level=level,
    )
    return {
        "reference": name,
        "scorer": scorer,
        "pairs": len(table),
        "pairs_scored": int(score.notna().sum()),
        "pairs_unreadable": int(score.isna().sum()),
        "mean_score": float(score.mean()) if score.notna().any() else math.nan,
        **block,
    }


def correlate_files(
    testability_paths: Mapping[str, str | Path],
    observations_paths: Mapping[str, str | Path],
    bootstrap: Mapping[str, int],
    out_csv: str | Path,
    out_html: str | Path | None = None,
    synthetic: Sequence[str] = (),
) -> pd.DataFrame:
    """Rule sim_testability_summary: the correlation table of every reference as CSV (and its report page)."""
    from selfexplain.io import atomic_path, read_table

    scores = {r: read_table(p) for r, p in testability_paths.items()}
    observations = {r: read_table(p) for r, p in observations_paths.items()}
    result = correlation_rows(
        scores, observations, resamples=int(bootstrap.get("resamples", 1000)), seed=int(bootstrap.get("seed", 42))
    )
    with atomic_path(out_csv) as tmp:
        result.to_csv(tmp, index=False)
    for row in result.to_dict("records"):
        log.info(
            "%s (rated by %s): %d observations, r = %.3f [%.3f, %.3f], rho = %.3f [%.3f, %.3f]",
            row["reference"],
            row["scorer"],
            row["observations"],
            row["pearson_r"],
            row.get("pearson_ci_lower", math.nan),
            row.get("pearson_ci_upper", math.nan),
            row["spearman_rho"],
            row.get("spearman_ci_lower", math.nan),
            row.get("spearman_ci_upper", math.nan),
        )
    if out_html is not None:
        from selfexplain.report import write_html

        write_html(testability_html(result, synthetic), out_html)
    return result


def testability_html(result: pd.DataFrame, synthetic: Sequence[str] = ()) -> str:
    """The report page of the correlation table."""
    from selfexplain.report import Column, Group, count, model_html, number, render_table, table_page, with_ci

    columns = [
        Column("Reference", lambda row: model_html(row["reference"], set(synthetic)), False),
        Column("Rated by", lambda row: model_html(row["scorer"], set(synthetic)), False),
        Column("Pairs rated", count("pairs_scored"), True, "pairs whose rating could be read"),
        Column("Unreadable", count("pairs_unreadable"), True, "ratings that could not be read (left out)"),
        Column("Mean score", number("mean_score", 2), True, "mean rating, 0-10"),
        Column("Observations", count("observations"), True, "pairs x predictors x repeats with a rating"),
        Column("WITH accuracy (%)", number("with_accuracy"), True, "share of WITH predictions that are right"),
        Column(
            "Pearson r",
            with_ci("pearson_r", "pearson_ci_lower", "pearson_ci_upper", 3),
            True,
            "point-biserial correlation of the rating with WITH-correctness",
        ),
        Column(
            "Spearman rho",
            with_ci("spearman_rho", "spearman_ci_lower", "spearman_ci_upper", 3),
            True,
            "rank correlation of the rating with WITH-correctness (mid-ranks for ties)",
        ),
    ]
    intro = (
        "A predictor rated from 0 to 10 how far each explanation, on its own, decides the reference model's answer "
        "for the counterfactual. The table correlates the rating with whether the predictors' guesses with the "
        "explanation were right (one observation per pair, predictor and repeat). Numbers in brackets are 95 % "
        "cluster-bootstrap confidence intervals (clusters: dataset and centre question); 'all' pools the references."
    )
    body = render_table(columns, [Group(None, result.to_dict("records"))])
    return table_page("Simulatability: testability rating vs WITH-correctness", intro, body)
