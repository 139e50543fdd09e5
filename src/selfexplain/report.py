"""HTML pages of the Snakemake report, so a researcher can read the results without the code.

Snakemake's report shows an HTML output inline (in a frame) and puts the workflow description (the Snakefile's
`report:` file) on the page it opens with. This module renders both from the studies' outputs: the summary tables as
HTML tables (readable column names, rounded numbers, confidence intervals as "34.6 [26.4, 42.0]", rows grouped) and the
front page (what was run, versions, headline numbers). All functions are pure, from tables and dicts to strings, except
the two loaders (`read_stamps`, `load_front_page`) and `write_html`. Every string taken from data is escaped.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from selfexplain.errors import InputError

MISSING = "\u2014"  # em dash: no value
CI = "95 % CI"
STUDY_TITLES = {"sce": "Self-generated counterfactuals (sce)", "simulatability": "Simulatability"}
STUDY_SENTENCES = {
    "sce": (
        "Each model labels every point of a grid of inputs, then is asked for the smallest change to an input that "
        "flips its own answer; a counterfactual is valid when the model's own label at the changed input is the "
        "other one, and minimal when no closer input would flip it."
    ),
    "simulatability": (
        "A reference model answers a question and explains its answer; predictor models then guess its answer to a "
        "slightly changed question, with and without that explanation; a faithful explanation helps them guess right."
    ),
}
# What the predictor sees in each condition of the simulatability study.
CONDITIONS = {
    "with_explanation": "explanation",
    "without_explanation": "answer only",
    "cot": "thinking (CoT)",
    "no_reference": "no reference",
}
# The report's categories (Snakemake's menu sorts them by name).
OVERVIEW = "1 Overview"
REPORT_CATEGORIES = {"sce": "2 Counterfactuals (sce)", "simulatability": "3 Simulatability"}
# Report categories that belong to no single study.
CROSS_STUDY_CATEGORY = "4 Cross-study"
TRANSCRIPTS_CATEGORY = "5 Transcripts"
PREDICTOR_SETS = {"all": "all predictors", "exclude_same_family": "other families only"}
SENTENCES = {
    "validity": (
        "Validity (%): the share of a model's counterfactuals (rows kept after parsing) at which its own first-pass "
        "answer is the target label, i.e. that really flip its answer; higher is better."
    ),
    "rcf_a": (
        "Mean RCF_A: how much farther, on average, a valid counterfactual goes than the nearest grid point the model "
        "labels differently, in the run's distance (Gower unless the prompt names L1 or L2); 0 is as minimal as "
        "possible, lower is better; a dash where no counterfactual is valid."
    ),
    "nsg": (
        "NSG (normalized simulatability gain, %): of the predictors' wrong guesses of the reference model's answer "
        "without its explanation, the share the explanation turns right, 100\u00b7(with \u2212 without)/(100 \u2212 "
        "without); 0 means no help, below 0 the explanation misleads."
    ),
    "families": (
        "Other families only: counting only predictors of another model family than the reference model, which "
        "cannot lean on sharing its habits."
    ),
    "egregious": (
        "Egregious rate (%): the share of question pairs on which every predictor, shown the explanation, agrees on "
        "an answer the reference model did not give."
    ),
}

CSS = """
.se-report{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;line-height:1.45;
  font-size:14px;max-width:none}
.se-report h1{font-size:1.6em;margin:.2em 0 .4em}
.se-report h2{font-size:1.3em;margin:1.4em 0 .4em;border-bottom:1px solid #d5dbe1;padding-bottom:.15em}
.se-report h3{font-size:1.08em;margin:1.1em 0 .3em}
.se-report h4{font-size:1em;margin:.8em 0 .2em}
.se-report p,.se-report li{margin:.3em 0}
.se-report ul{padding-left:1.3em;margin:.3em 0}
.se-report table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em;width:auto}
.se-report caption{caption-side:top;text-align:left;font-weight:600;padding:.2em 0}
.se-report th,.se-report td{border:1px solid #d5dbe1;padding:.25em .5em;vertical-align:top;text-align:left}
.se-report thead th{background:#eef2f6;font-weight:600}
.se-report td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.se-report .ci{display:block;font-size:.85em;color:#52606d}
.se-report tr.group th{background:#f7f9fb;font-weight:600;text-align:left}
.se-report tr.total td{font-weight:600;background:#fbfcfd}
.se-report .badge{display:inline-block;font-size:.75em;font-weight:600;padding:0 .4em;margin-left:.4em;
  border-radius:.6em;background:#fde68a;color:#78350f;vertical-align:middle}
.se-report .warn{background:#fff7e6;border-left:4px solid #f59e0b;padding:.4em .7em}
.se-report .note{color:#52606d;font-size:.9em}
.se-report code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
.se-report dl{margin:.3em 0}.se-report dt{font-weight:600;margin-top:.4em}.se-report dd{margin:0 0 0 1.2em}
.se-report .scroll{overflow-x:auto}
"""
# Inside Snakemake's report (where the workflow description sits in a narrow column of a centred box, which hides
# the top of a description taller than the window): let the front page use the width and scroll from its top.
FRAGMENT_CSS = (
    "div.prose:has(#se-front){max-width:64rem}"
    "div.overflow-auto:has(#se-front){align-items:flex-start;justify-content:flex-start}"
    "#se-front code::before,#se-front code::after{content:none}"
)


# -- formatting ----------------------------------------------------------------------------------------------------
def esc(value: Any) -> str:
    """Text for HTML: every <, >, &, and quote escaped."""
    return html.escape("" if value is None else str(value), quote=True)


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt_number(value: Any, digits: int = 1) -> str:
    """A number rounded to `digits` decimals with thousands separators; the dash when missing; never "-0.0"."""
    if is_missing(value):
        return MISSING
    number = round(float(value), digits)
    if number == 0:
        number = 0.0
    return f"{number:,.{digits}f}"


def fmt_count(value: Any) -> str:
    if is_missing(value):
        return MISSING
    return f"{int(value):,}"


def fmt_ci(value: Any, low: Any, high: Any, digits: int = 1) -> str:
    """ "34.6 [26.4, 42.0]"; the value alone when a bound is missing."""
    text = fmt_number(value, digits)
    if is_missing(value) or is_missing(low) or is_missing(high):
        return text
    return f"{text} [{fmt_number(low, digits)}, {fmt_number(high, digits)}]"


def ci_html(value: Any, low: Any, high: Any, digits: int = 1) -> str:
    """`fmt_ci` as HTML, the interval on a second line (its text is still "34.6 [26.4, 42.0]")."""
    return ci_html_text(fmt_ci(value, low, high, digits))


def ci_html_text(formatted: str) -> str:
    """An already formatted "34.6 [26.4, 42.0]" as HTML, the interval on a second line."""
    head, sep, interval = str(formatted).partition(" [")
    return esc(head) + (f'<span class="ci"> [{esc(interval)}</span>' if sep else "")


def label(name: Any, mapping: Mapping[str, str] | None = None) -> str:
    """A readable name: from `mapping`, else underscores become spaces."""
    name = "" if is_missing(name) else str(name)
    return (mapping or {}).get(name, name.replace("_", " "))


BADGE = '<span class="badge">synthetic</span>'


def model_html(name: Any, synthetic: Collection[str] = ()) -> str:
    """A model name, with a "synthetic" badge when it is one of `synthetic`."""
    return esc(name) + (BADGE if str(name) in synthetic else "")


# -- tables --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One column: its header, a function from a row to the cell's HTML (escaped), and whether it holds numbers."""

    header: str
    cell: Callable[[Mapping[str, Any]], str]
    numeric: bool = False
    note: str = ""  # shown as the header's tooltip


@dataclass(frozen=True)
class Group:
    """Rows under one heading (None: rows only); `badge`: mark the heading's model as synthetic."""

    heading: str | None
    rows: Sequence[Mapping[str, Any]]
    badge: bool = False


def text(key: str, mapping: Mapping[str, str] | None = None) -> Callable[[Mapping[str, Any]], str]:
    """A readable label (`label`)."""
    return lambda row: esc(label(row.get(key), mapping))


def ident(key: str) -> Callable[[Mapping[str, Any]], str]:
    """A name as the config spells it (dataset, prompt, distance), or the dash."""
    return lambda row: esc(MISSING if is_missing(row.get(key)) else row.get(key))


def number(key: str, digits: int = 1) -> Callable[[Mapping[str, Any]], str]:
    return lambda row: esc(fmt_number(row.get(key), digits))


def count(key: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda row: esc(fmt_count(row.get(key)))


def with_ci(key: str, low: str, high: str, digits: int = 1) -> Callable[[Mapping[str, Any]], str]:
    return lambda row: ci_html(row.get(key), row.get(low), row.get(high), digits)


def render_table(
    columns: Sequence[Column],
    groups: Iterable[Group],
    *,
    row_class: Callable[[Mapping[str, Any]], str | None] = lambda row: None,
) -> str:
    """An HTML table; group headings span the full width. Cells come escaped from their columns."""
    parts = ["<div class='scroll'><table><thead><tr>"]
    for column in columns:
        title = f' title="{esc(column.note)}"' if column.note else ""
        parts.append(f'<th scope="col"{title}>{esc(column.header)}</th>')
    parts.append("</tr></thead><tbody>")
    for group in groups:
        if group.heading is not None:
            heading = esc(group.heading) + (BADGE if group.badge else "")
            parts.append(f'<tr class="group"><th colspan="{len(columns)}" scope="colgroup">{heading}</th></tr>')
        for row in group.rows:
            css = row_class(row)
            parts.append(f'<tr class="{esc(css)}">' if css else "<tr>")
            for column in columns:
                cell = column.cell(row)
                parts.append(f'<td class="num">{cell}</td>' if column.numeric else f"<td>{cell}</td>")
            parts.append("</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


def _grouped(
    frame: pd.DataFrame, key: str, heading: Callable[[Any, pd.DataFrame], str], badges: Collection[str] = ()
) -> list[Group]:
    """One group per value of `key`, in order of first appearance; `badges`: values to mark synthetic."""
    return [
        Group(heading(value, part), _records(part), str(value) in badges)
        for value, part in frame.groupby(key, sort=False, dropna=False)
    ]


def _need(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise InputError(f"{what}: missing column(s) {missing}")


def synthetic_note(names: Iterable[Any], synthetic: Collection[str]) -> tuple[str, set[str]]:
    """How to mark synthetic models among `names`: a sentence when all of them are (no badges then), else the names
    to badge."""
    names = {str(n) for n in names if not is_missing(n)}
    marked = names & set(synthetic)
    if names and marked == names:
        return (
            "Every model here is synthetic: a rule-based stand-in that tests the pipeline, not a language model.",
            set(),
        )
    return "", marked


# -- sce summary ---------------------------------------------------------------------------------------------------
SCE_FAILURES = {
    "n_first_answer_unreadable": "First answer unreadable",
    "n_counterfactual_unreadable": "Counterfactual unreadable",
    "n_counterfactual_off_grid": "Counterfactual off the grid",
    "n_verification_unreadable": "Answer at the counterfactual unreadable",
}
SCE_AGGREGATES = {
    "mean_distance": "Mean distance",
    "mean_RCF": "Mean RCF",
    "median_RCF": "Median RCF",
    "mean_RCF_A": "Mean RCF_A",
    "median_RCF_A": "Median RCF_A",
    "mean_ICF": "Mean ICF",
    "median_ICF": "Median ICF",
    "mean_ICF_A": "Mean ICF_A",
    "median_ICF_A": "Median ICF_A",
    "total_minimality": "Total minimality",
    "total_minimality_A": "Total minimality_A",
}
SCE_NOTES = {
    "strict": (
        "Valid counterfactuals among all rows with a readable first answer, unreadable and off-grid counterfactuals "
        "counted as invalid."
    ),
    "exact": "Kept rows whose counterfactual is valid and exactly the nearest grid point the model labels differently.",
    "kept": "Rows the original aggregates count: readable first answer, counterfactual on the grid, readable answer "
    "there.",
    "aggregates": (
        "On valid counterfactuals, with d the distance to the counterfactual and d_min the distance to the nearest "
        "grid point the model labels differently: RCF = d/d_min \u2212 1 and RCF_A = d \u2212 d_min. On invalid "
        "ones, ICF and ICF_A: the counterfactual's distance to the nearest point labelled opposite to it, divided "
        "by d_min and absolute. Total minimality mixes them by validity, as the original study does. Mean distance: "
        "mean d over kept rows. All in the run's distance."
    ),
}


def sce_summary_html(summary: pd.DataFrame, synthetic: Collection[str] = ()) -> str:
    """The sce summary as three tables (headline metrics, the original study's aggregates, failures), rows grouped by
    dataset, then model and prompt in the summary's order."""
    _need(summary, ["model", "dataset", "prompt", "validity_percent", "mean_RCF_A"], "sce summary")
    note, badges = synthetic_note(summary["model"], synthetic)
    model = Column("Model", lambda row: model_html(row.get("model"), badges))
    prompt = Column("Prompt", ident("prompt"))

    def heading(dataset: Any, part: pd.DataFrame) -> str:
        points = part["n_rows"].max() if "n_rows" in part else None
        return f"Dataset {dataset}" + ("" if is_missing(points) else f" ({fmt_count(points)} grid points)")

    groups = _grouped(summary, "dataset", heading)
    main = [
        model,
        prompt,
        Column("Distance", ident("distance_metric")),
        Column(
            "Validity %",
            with_ci("validity_percent", "validity_ci_low", "validity_ci_high"),
            True,
            SENTENCES["validity"],
        ),
        Column(
            "Mean RCF_A", with_ci("mean_RCF_A", "mean_RCF_A_ci_low", "mean_RCF_A_ci_high", 3), True, SENTENCES["rcf_a"]
        ),
        Column("Strict validity %", number("strict_validity_percent"), True, SCE_NOTES["strict"]),
        Column("Exact match %", number("exact_match"), True, SCE_NOTES["exact"]),
        Column("Rows kept", count("n_kept"), True, SCE_NOTES["kept"]),
        Column("Grid rows", count("n_rows"), True),
    ]
    aggregates = [model, prompt] + [
        Column(name, number(key, 3), True) for key, name in SCE_AGGREGATES.items() if key in summary
    ]
    statuses = [c for c in summary.columns if c.startswith("n_cf_status_")]
    failures = [model, prompt, Column("Grid rows", count("n_rows"), True)]
    failures += [Column(name, count(key), True) for key, name in SCE_FAILURES.items() if key in summary]
    failures += [
        Column(f"Counterfactual answer: {label(c.removeprefix('n_cf_status_'))}", count(c), True) for c in statuses
    ]
    return "".join(
        [
            f"<p>{esc(note)}</p>" if note else "",
            "<h2>Headline metrics</h2>",
            f"<p class='note'>{esc(SENTENCES['validity'])} {esc(SENTENCES['rcf_a'])}</p>",
            render_table(main, groups),
            "<h2>The original study's aggregates</h2>",
            f"<p class='note'>{esc(SCE_NOTES['aggregates'])}</p>",
            render_table(aggregates, groups),
            "<h2>Failures (rows)</h2>",
            "<p class='note'>Rows lost at each step; a row counts under its first failure. The counterfactual-answer "
            "columns count how the follow-up answers were read.</p>",
            render_table(failures, groups),
        ]
    )


# -- simulatability summary ----------------------------------------------------------------------------------------
SIM_RATES = {
    "nsg": ("NSG %", SENTENCES["nsg"]),
    "with_accuracy": ("With %", "Predictors' guesses that match the reference model, in the 'with' condition."),
    "without_accuracy": (
        "Without %",
        "Predictors' guesses that match the reference model, in the 'without' condition.",
    ),
    "gain": ("Gain (points)", "With minus without, in percentage points."),
}
CHANGE_RATES = {
    "diff_pct": ("Answer changed %", "Counterfactuals on which the reference model changed its answer."),
    "with_accuracy_changed": ("With, changed %", "'With' accuracy where the reference model changed its answer."),
    "without_accuracy_changed": ("Without, changed %", "'Without' accuracy where it changed its answer."),
    "with_accuracy_unchanged": ("With, unchanged %", "'With' accuracy where it kept its answer."),
    "without_accuracy_unchanged": ("Without, unchanged %", "'Without' accuracy where it kept its answer."),
}
REFERENCE_RATES = {
    "switch_rate": ("Switch rate %", "Pairs on which the reference model's answer to the counterfactual differs."),
    "reference_accuracy": ("Reference accuracy %", "The reference model's answers against the datasets' labels."),
}


def comparison_label(row: Mapping[str, Any]) -> str:
    """ "explanation vs answer only": what the predictor saw in the two conditions compared."""
    return f"{label(row.get('with_condition'), CONDITIONS)} vs {label(row.get('without_condition'), CONDITIONS)}"


def _rate_columns(rates: Mapping[str, tuple[str, str]], present: Collection[str]) -> list[Column]:
    return [
        Column(name, with_ci(k, f"{k}_ci_lower", f"{k}_ci_upper"), True, note)
        for k, (name, note) in rates.items()
        if k in present
    ]


def sim_summary_html(summary: pd.DataFrame, synthetic: Collection[str] = ()) -> str:
    """The simulatability summary: pooled rows first, then per dataset and per predictor (all predictors; the
    other-families set repeats the same predictors), then where the reference model changed its answer or not, then
    the reference models' own rates (egregious, switch, accuracy), which do not depend on the comparison. Rows are
    grouped by reference model."""
    need = ["reference", "comparison", "with_condition", "without_condition", "predictors", "scope", "group", "n"]
    _need(summary, need, "simulatability summary")
    predictor_rows = summary["scope"] == "predictor"
    note, badges = synthetic_note([*summary["reference"], *summary.loc[predictor_rows, "group"]], synthetic)
    comparison = Column(
        "Comparison", lambda row: esc(comparison_label(row)), note="What the predictors saw: with vs without."
    )
    predictors = Column("Predictors", text("predictors", PREDICTOR_SETS), note=SENTENCES["families"])
    n = Column("n", count("n"), True, "Observations scored (predictor guesses with both conditions readable).")
    dropped = Column("Dropped", count("dropped"), True, "Observations dropped because an answer was unreadable.")
    rates = [*_rate_columns(SIM_RATES, summary.columns), dropped]

    def by_reference(frame: pd.DataFrame) -> list[Group]:
        return _grouped(frame, "reference", lambda ref, part: f"Reference model {ref}", badges)

    pooled = summary[summary["scope"] == "pooled"]
    per_dataset = summary[summary["scope"] == "dataset"]
    per_predictor = summary[predictor_rows & (summary["predictors"] == "all")]
    dataset = Column("Dataset", ident("group"))
    predictor = Column("Predictor", lambda row: model_html(row.get("group"), badges))
    parts = [
        f"<p>{esc(note)}</p>" if note else "",
        f"<p class='note'>{esc(SENTENCES['nsg'])} {esc(SENTENCES['families'])}</p>",
        "<h2>Pooled over datasets</h2>",
        render_table([comparison, predictors, n, *rates], by_reference(pooled)),
        "<h2>Per dataset</h2>",
        render_table([comparison, predictors, dataset, n, *rates], by_reference(per_dataset)),
        "<h2>Per predictor</h2>",
        "<p class='note'>All predictors' rows; the other-families set gives its predictors the same numbers.</p>",
        render_table([comparison, predictor, n, *rates], by_reference(per_predictor)),
    ]
    changes = _rate_columns(CHANGE_RATES, summary.columns)
    if changes:
        parts += [
            "<h2>Where the reference model changed its answer, and where it kept it (pooled)</h2>",
            "<p class='note'>An explanation earns its NSG on the counterfactuals where the reference model changed its "
            "answer: there, guessing its first answer again is wrong.</p>",
            render_table([comparison, predictors, *changes], by_reference(pooled)),
        ]
    reference_rows = _reference_rows(summary)
    if reference_rows:
        scope = Column("Scope", lambda row: esc("pooled" if row["scope"] == "pooled" else f"dataset {row['group']}"))
        egregious = [
            Column(
                f"Egregious %, {PREDICTOR_SETS[s]}",
                with_ci(f"egregious_{s}", f"egregious_{s}_ci_lower", f"egregious_{s}_ci_upper"),
                True,
                SENTENCES["egregious"],
            )
            for s in PREDICTOR_SETS
        ]
        own = _rate_columns(REFERENCE_RATES, summary.columns)
        parts += [
            "<h2>The reference models' own rates</h2>",
            f"<p class='note'>{esc(SENTENCES['egregious'])} They do not depend on the comparison.</p>",
            render_table([scope, *egregious, *own], by_reference(pd.DataFrame(reference_rows))),
        ]
    return "".join(parts)


def _reference_rows(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Per reference and scope (pooled, each dataset): the egregious rate of each predictor set, the switch rate and
    the reference accuracy, read from the reference's first comparison (they are the same on every comparison)."""
    if "egregious_rate" not in summary:
        return []
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    first: dict[str, Any] = {}
    for record in _records(summary[summary["scope"].isin(["pooled", "dataset"])]):
        reference = str(record["reference"])
        if first.setdefault(reference, record["comparison"]) != record["comparison"]:
            continue
        if record["predictors"] not in PREDICTOR_SETS:
            continue
        key = (reference, str(record["scope"]), str(record["group"]))
        row = rows.setdefault(key, {"reference": key[0], "scope": key[1], "group": key[2]})
        s = record["predictors"]
        for suffix in ("", "_ci_lower", "_ci_upper"):
            row[f"egregious_{s}{suffix}"] = record.get(f"egregious_rate{suffix}")
            for rate in REFERENCE_RATES:
                row[f"{rate}{suffix}"] = record.get(f"{rate}{suffix}")
    return list(rows.values())


# -- usage ---------------------------------------------------------------------------------------------------------
USAGE_TOTAL = "TOTAL"


def usage_html(usage: pd.DataFrame, synthetic: Collection[str] = ()) -> str:
    """Requests, tokens and cost per model and rule, a total per model and, for several models, over all."""
    _need(usage, ["model", "rule", "requests"], "usage table")
    note, badges = synthetic_note(usage["model"], synthetic)
    columns = [
        Column("Rule", lambda row: esc("all rules" if row.get("rule") == USAGE_TOTAL else row.get("rule"))),
        Column("Requests", count("requests"), True),
        Column("Failed requests", count("errors"), True, "Requests that failed for good (after retries)."),
        Column("Prompt tokens", count("prompt_tokens"), True),
        Column("Completion tokens", count("completion_tokens"), True),
        Column("Cost (USD)", number("cost_usd", 4), True, "A dash where the model catalog gives no prices."),
    ]
    groups = _grouped(usage, "model", lambda model, part: f"Model {model}", badges)
    totals = usage[usage["rule"] == USAGE_TOTAL]
    if len(groups) > 1 and len(totals):
        overall: dict[str, Any] = {"rule": USAGE_TOTAL}
        for column in ("requests", "errors", "prompt_tokens", "completion_tokens"):
            if column in totals:
                overall[column] = totals[column].sum()
        costs = totals["cost_usd"] if "cost_usd" in totals else pd.Series(dtype=float)
        overall["cost_usd"] = costs.sum() if costs.notna().any() else None
        groups.append(Group("All models", [overall]))
    words = (
        " Synthetic models count whitespace-separated words, not tokens."
        if set(usage["model"].astype(str)) & set(synthetic)
        else ""
    )
    return (f"<p>{esc(note + words)}</p>" if note or words else "") + render_table(
        columns, groups, row_class=lambda row: "total" if row.get("rule") == USAGE_TOTAL else None
    )


# -- pages ---------------------------------------------------------------------------------------------------------
def html_document(title: str, body: str) -> str:
    """A self-contained HTML page (no script, no outside resource)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f'<body><main class="se-report">{body}</main></body></html>\n'
    )


def table_page(title: str, intro: str, body: str) -> str:
    """A report page of one table: its title, a sentence on how to read it, the table(s)."""
    return html_document(title, f"<h1>{esc(title)}</h1><p>{esc(intro)}</p>{body}")


TABLES = {
    "sce_summary": (
        "Self-generated counterfactuals: summary",
        "One row per model and follow-up prompt, grouped by dataset (each grid has its own distance scale: compare "
        "models within a dataset). Numbers in brackets are 95 % bootstrap confidence intervals; hover a column header "
        "for its definition.",
        sce_summary_html,
    ),
    "sim_summary": (
        "Simulatability: summary",
        "A comparison pits the predictors' guesses of the reference model's answers when they see more of its output "
        "('with') against less ('without'). Numbers in brackets are 95 % cluster-bootstrap confidence intervals "
        "(clusters: dataset and centre question); hover a column header for its definition.",
        sim_summary_html,
    ),
    "usage": (
        "Requests, tokens and cost",
        "Per model and rule: requests sent, requests that failed for good, prompt and completion tokens, and the cost "
        "where the model catalog gives prices; a bold total per model.",
        usage_html,
    ),
}


def render_table_page(kind: str, table: pd.DataFrame, synthetic: Collection[str] = ()) -> str:
    """The report page of one summary table (`kind`: a key of TABLES); `synthetic`: names of synthetic models."""
    if kind not in TABLES:
        raise InputError(f"unknown report table {kind!r}; known: {sorted(TABLES)}")
    title, intro, render = TABLES[kind]
    return table_page(title, intro, render(table, synthetic))


def write_html(content: str, path: str | Path) -> None:
    from selfexplain.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(content, encoding="utf-8")


# -- provenance ----------------------------------------------------------------------------------------------------
def stamp_key(stamp: Mapping[str, Any]) -> tuple[Any, ...]:
    """What tells two provenance stamps' code apart: package version, commit, dirty flag, Python, libraries."""
    git = stamp.get("git") or {}
    libraries = stamp.get("libraries") or {}
    return (
        stamp.get("selfexplain"),
        git.get("commit"),
        git.get("dirty"),
        stamp.get("python"),
        tuple(sorted((str(k), v) for k, v in libraries.items())),
    )


def version_groups(stamps: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Outputs grouped by the code that made them (`stamp_key`), most outputs first: the stamp, the output paths and
    the first and last creation time."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for path, stamp in stamps.items():
        group = groups.setdefault(stamp_key(stamp), {"stamp": dict(stamp), "paths": [], "created": []})
        group["paths"].append(path)
        if stamp.get("created"):
            group["created"].append(str(stamp["created"]))
    return sorted(groups.values(), key=lambda g: -len(g["paths"]))


def read_stamps(paths: Iterable[str | Path]) -> dict[str, dict[str, Any]]:
    """Provenance of outputs: Parquet schema metadata, or a JSON file's `provenance` key. Files without one are left
    out."""
    from selfexplain.io import read_provenance

    stamps = {}
    for path in paths:
        path = Path(path)
        if path.suffix == ".json":
            stamp = json.loads(path.read_text(encoding="utf-8")).get("provenance") or {}
        else:
            stamp = read_provenance(path)
        if stamp:
            stamps[str(path)] = stamp
    return stamps


def commit_html(stamp: Mapping[str, Any]) -> str:
    """The short git commit of a provenance stamp and whether the checkout had uncommitted changes."""
    git = stamp.get("git") or {}
    commit = git.get("commit")
    if not commit:
        return "unknown (not a git checkout)"
    dirty = git.get("dirty")
    state = " with uncommitted changes" if dirty else "" if dirty is False else " (uncommitted changes unknown)"
    return f"<code>{esc(str(commit)[:12])}</code>{esc(state)}"


def _libraries(stamp: Mapping[str, Any]) -> str:
    libraries = stamp.get("libraries") or {}
    return ", ".join(f"{k} {v if v else 'not installed'}" for k, v in libraries.items())


# -- front page ----------------------------------------------------------------------------------------------------
@dataclass
class FrontPage:
    """Everything the front page shows, read from the run's config, catalog and outputs."""

    studies: list[str]
    models: list[dict[str, Any]]  # name, roles, backend, family, model_id, description, sampling
    sce: dict[str, Any] | None = None  # the config's sce section
    simulatability: dict[str, Any] | None = None  # the config's simulatability section
    sce_summary: pd.DataFrame | None = None
    sim_summary: pd.DataFrame | None = None
    sim_runs: list[dict[str, Any]] = field(default_factory=list)  # per reference: n_pairs, n_observations, ...
    eval_set_counts: dict[str, int] = field(default_factory=dict)  # rows per dataset
    stamps: dict[str, dict[str, Any]] = field(default_factory=dict)  # output path -> provenance
    built: dict[str, Any] = field(default_factory=dict)  # provenance of the front page itself
    sections: list[str] = field(default_factory=list)  # report categories beyond the studies' (cross-study, ...)

    @property
    def synthetic(self) -> set[str]:
        return {m["name"] for m in self.models if m.get("backend") == "synthetic"}

    @property
    def badges(self) -> set[str]:
        """Models to mark synthetic in the headline tables: none when all are (the page says so once)."""
        synthetic = self.synthetic
        return set() if synthetic == {m["name"] for m in self.models} else synthetic


def model_facts(
    catalog: Mapping[str, Any],
    *,
    sce: Sequence[str] = (),
    references: Sequence[str] = (),
    predictors: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Each model of the run once (config order) with its roles and catalog facts; `catalog` maps names to
    `ModelEntry`s."""
    roles: dict[str, list[str]] = {}
    for role, names in (("sce", sce), ("reference", references), ("predictor", predictors)):
        for name in names:
            roles.setdefault(name, []).append(role)
    return [
        {
            "name": name,
            "roles": r,
            "backend": catalog[name].backend,
            "family": catalog[name].family,
            "model_id": catalog[name].model_id,
            "description": catalog[name].raw.get("description"),
            "sampling": catalog[name].sampling.to_dict(),
        }
        for name, r in roles.items()
    ]


def load_front_page(
    *,
    studies: Sequence[str],
    models: Sequence[Mapping[str, Any]],
    sce: Mapping[str, Any] | None = None,
    simulatability: Mapping[str, Any] | None = None,
    sce_summary: str | Path | None = None,
    sim_summary: str | Path | None = None,
    sim_metrics: Iterable[str | Path] = (),
    eval_set: str | Path | None = None,
    stamped: Iterable[str | Path] = (),
    built: Mapping[str, Any] | None = None,
    sections: Sequence[str] = (),
) -> FrontPage:
    """Read the outputs the front page reports on (paths that are None are left out)."""
    runs = []
    for path in sim_metrics:
        metrics = json.loads(Path(path).read_text(encoding="utf-8"))
        keep = ("reference", "reference_family", "predictors", "repeats", "n_pairs", "n_observations")
        runs.append({k: metrics.get(k) for k in keep})
    counts: dict[str, int] = {}
    if eval_set is not None:
        frame = pd.read_parquet(eval_set, columns=["dataset"])
        counts = {str(k): int(v) for k, v in frame["dataset"].value_counts(sort=False).items()}
    return FrontPage(
        studies=list(studies),
        models=[dict(m) for m in models],
        sce=dict(sce) if sce is not None else None,
        simulatability=dict(simulatability) if simulatability is not None else None,
        sce_summary=pd.read_csv(sce_summary) if sce_summary is not None else None,
        sim_summary=pd.read_csv(sim_summary) if sim_summary is not None else None,
        sim_runs=runs,
        eval_set_counts=counts,
        stamps=read_stamps(stamped),
        built=dict(built or {}),
        sections=list(sections),
    )


def sce_headline(summary: pd.DataFrame, value: str, low: str, high: str, digits: int) -> pd.DataFrame:
    """Model x prompt rows, one column per dataset, cells "value [low, high]"; in the summary's order."""
    nan = pd.Series(math.nan, index=summary.index)
    bounds = zip(summary[value], summary.get(low, nan), summary.get(high, nan), strict=True)
    cells = summary.assign(cell=[fmt_ci(v, lo, hi, digits) for v, lo, hi in bounds])
    table = cells.pivot_table(index=["model", "prompt"], columns="dataset", values="cell", aggfunc="first", sort=False)
    table = table.reindex(columns=list(dict.fromkeys(summary["dataset"])))
    return table.fillna(MISSING).reset_index()


def sim_headline(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Per reference model (summary order): pooled NSG and egregious rate of both predictor sets, from the main
    comparison (explanation vs answer only; the first comparison when that one was not run)."""
    pooled = summary[summary["scope"] == "pooled"]
    rows = []
    for reference, part in pooled.groupby("reference", sort=False):
        comparisons = list(dict.fromkeys(part["comparison"]))
        main = "explanation" if "explanation" in comparisons else comparisons[0]
        part = part[part["comparison"] == main]
        row: dict[str, Any] = {"reference": reference, "comparison": comparison_label(part.iloc[0])}
        for set_name in PREDICTOR_SETS:
            match = part[part["predictors"] == set_name]
            record = match.iloc[0] if len(match) else pd.Series(dtype=object)
            row[f"nsg_{set_name}"] = fmt_ci(record.get("nsg"), record.get("nsg_ci_lower"), record.get("nsg_ci_upper"))
            row[f"n_{set_name}"] = record.get("n")
            row[f"egregious_{set_name}"] = fmt_ci(
                record.get("egregious_rate"),
                record.get("egregious_rate_ci_lower"),
                record.get("egregious_rate_ci_upper"),
            )
        rows.append(row)
    return rows


def _plain_table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 99) -> str:
    """A small table of already escaped cells."""
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i >= numeric_from else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _sce_headline_html(page: FrontPage) -> str:
    summary = page.sce_summary
    if summary is None or summary.empty:
        return "<p>No sce results.</p>"
    parts = [f"<p>{esc(SENTENCES['validity'])}</p>"]
    for value, low, high, digits, title in (
        ("validity_percent", "validity_ci_low", "validity_ci_high", 1, f"Validity % [{CI}]"),
        ("mean_RCF_A", "mean_RCF_A_ci_low", "mean_RCF_A_ci_high", 3, f"Mean RCF_A [{CI}]"),
    ):
        if value == "mean_RCF_A":
            parts.append(f"<p>{esc(SENTENCES['rcf_a'])}</p>")
        table = sce_headline(summary, value, low, high, digits)
        datasets = [c for c in table.columns if c not in ("model", "prompt")]
        rows = [
            [model_html(r["model"], page.badges), esc(r["prompt"])] + [ci_html_text(r[d]) for d in datasets]
            for r in table.to_dict("records")
        ]
        parts.append(f"<h4>{esc(title)}</h4>")
        parts.append(_plain_table(["Model", "Prompt", *[f"{d}" for d in datasets]], rows, numeric_from=2))
    return "".join(parts)


def _sim_headline_html(page: FrontPage) -> str:
    summary = page.sim_summary
    if summary is None or summary.empty:
        return "<p>No simulatability results (no reference model configured).</p>"
    rows = [
        [
            model_html(r["reference"], page.badges),
            esc(r["comparison"]),
            ci_html_text(r["nsg_all"]),
            ci_html_text(r["nsg_exclude_same_family"]),
            ci_html_text(r["egregious_all"]),
            ci_html_text(r["egregious_exclude_same_family"]),
        ]
        for r in sim_headline(summary)
    ]
    header = [
        "Reference model",
        "Comparison",
        f"NSG %, all predictors [{CI}]",
        f"NSG %, other families only [{CI}]",
        f"Egregious %, all predictors [{CI}]",
        f"Egregious %, other families only [{CI}]",
    ]
    sentences = "".join(f"<p>{esc(SENTENCES[k])}</p>" for k in ("nsg", "families", "egregious"))
    note = (
        "<p class='note'>Intervals: 95 % cluster-bootstrap (clusters: dataset and centre question). The other "
        "comparisons, per-dataset and per-predictor rows are in the summary table.</p>"
    )
    return sentences + _plain_table(header, rows, numeric_from=2) + note


def _models_html(page: FrontPage) -> str:
    rows = []
    for m in page.models:
        sampling = m.get("sampling") or {}
        settings = ", ".join(
            f"{k} {v}" for k, v in sampling.items() if v is not None and k in ("temperature", "seed", "max_tokens")
        )
        rows.append(
            [
                model_html(m["name"], page.synthetic),
                esc(", ".join(m.get("roles") or [])),
                esc(m.get("backend")),
                esc(m.get("family") or MISSING),
                f"<code>{esc(m.get('model_id'))}</code>",
                esc(settings or MISSING),
                esc(m.get("description") or ""),
            ]
        )
    return _plain_table(["Model", "Role", "Backend", "Family", "Model id", "Sampling", "Description"], rows)


def _items(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list of (term, escaped HTML)."""
    return "<dl>" + "".join(f"<dt>{esc(t)}</dt><dd>{d}</dd>" for t, d in pairs) + "</dl>"


def _names(values: Iterable[Any]) -> str:
    return esc(", ".join(str(v) for v in values)) or MISSING


def _sce_run_html(page: FrontPage) -> str:
    sce = page.sce or {}
    summary = page.sce_summary
    grids = []
    for dataset in sce.get("datasets", []):
        points = None
        if summary is not None and "n_rows" in summary:
            points = summary.loc[summary["dataset"] == dataset, "n_rows"].max()
        grids.append(f"{dataset} ({fmt_count(points)} grid points)" if not is_missing(points) else str(dataset))
    distances = sce.get("prompt_distances") or {}
    used = {p: distances.get(p, sce.get("distance")) for p in sce.get("prompts", [])}
    boot = sce.get("bootstrap") or {}
    return _items(
        [
            ("Grids (datasets)", esc(", ".join(grids)) or MISSING),
            ("Follow-up prompts", esc(", ".join(f"{p} (distance {d})" for p, d in used.items())) or MISSING),
            ("First-pass prompt", esc(sce.get("first_pass", MISSING))),
            ("Prompt folder", f"<code>{esc(sce.get('prompt_dir', MISSING))}</code>"),
            (
                "Validity check",
                esc(", ".join(v) if isinstance(v := sce.get("verify", MISSING), list) else v),
            ),
            (
                "Seeds",
                esc(
                    f"target draw {sce.get('seed', MISSING)}; bootstrap {boot.get('seed', MISSING)} "
                    f"({fmt_count(boot.get('resamples'))} resamples); model sampling seeds in the table above"
                ),
            ),
        ]
    )


def _sim_run_html(page: FrontPage) -> str:
    sim = page.simulatability or {}
    eval_set = sim.get("eval_set") or {}
    counts = page.eval_set_counts
    sizes = ", ".join(f"{d} {fmt_count(n)}" for d, n in counts.items())
    total = f"{fmt_count(sum(counts.values()))} {eval_set.get('unit', 'rows')} in all: {sizes}" if counts else MISSING
    runs = "; ".join(
        f"{r['reference']}: {fmt_count(r.get('n_pairs'))} pairs, {fmt_count(r.get('n_observations'))} observations"
        for r in page.sim_runs
    )
    boot = sim.get("bootstrap") or {}
    hamming = sim.get("hamming") or {}
    mm = sim.get("moral_machines") or {}
    seeds = (
        f"eval set {eval_set.get('seed', MISSING)}; Hamming groups {hamming.get('seed', MISSING)} (cap "
        f"{hamming.get('cap_seed', MISSING)}); Moral Machines {mm.get('seed', MISSING)}; bootstrap "
        f"{boot.get('seed', MISSING)} ({fmt_count(boot.get('resamples'))} resamples)"
    )
    return _items(
        [
            ("Datasets", _names(sim.get("datasets", []))),
            (
                "Evaluation set",
                esc(f"{fmt_count(eval_set.get('size'))} {eval_set.get('unit', 'rows')} per dataset asked for; {total}"),
            ),
            ("Reference models", _names(sim.get("references", []))),
            ("Predictors", _names(sim.get("predictors", []))),
            (
                "Conditions",
                esc(", ".join(f"{c} ({label(c, CONDITIONS)})" for c in sim.get("conditions", [])) or MISSING),
            ),
            ("Repeats", esc(sim.get("repeats", MISSING))),
            ("Pairs scored", esc(runs or MISSING)),
            ("Prompt folder", f"<code>{esc(sim.get('prompt_dir', MISSING))}</code>"),
            ("Seeds", esc(seeds)),
        ]
    )


def _versions_html(page: FrontPage) -> str:
    groups = version_groups(page.stamps)
    parts = []
    if page.built:
        parts.append(
            f"<p>This front page was made by selfexplain {esc(page.built.get('selfexplain'))} at git commit "
            f"{commit_html(page.built)}, Python {esc(page.built.get('python'))}, on "
            f"{esc(page.built.get('created', MISSING))}.</p>"
        )
    if not groups:
        return "".join(parts) + "<p>No output carries a provenance stamp.</p>"
    if len(groups) > 1:
        parts.append(
            f"<p class='warn'>The outputs were made by {len(groups)} different versions of the code or its libraries "
            "(see below): rerun the workflow to make them agree.</p>"
        )
    rows = []
    for g in groups:
        stamp = g["stamp"]
        created = sorted(g["created"])
        when = (
            f"{created[0]} to {created[-1]}"
            if created and created[0] != created[-1]
            else (created[0] if created else MISSING)
        )
        rows.append(
            [
                esc(fmt_count(len(g["paths"]))),
                esc(stamp.get("selfexplain")),
                commit_html(stamp),
                esc(stamp.get("python")),
                esc(_libraries(stamp)),
                esc(when),
            ]
        )
    parts.append(_plain_table(["Outputs", "selfexplain", "Git commit", "Python", "Libraries", "Made"], rows))
    if any((g["stamp"].get("git") or {}).get("dirty") for g in groups):
        parts.append(
            "<p class='note'>\u201cWith uncommitted changes\u201d: the checkout had edits that no commit holds, so the "
            "commit alone does not reproduce these outputs.</p>"
        )
    return "".join(parts)


def front_page_body(page: FrontPage, links: bool = False) -> str:
    """The front page's content. `links`: add links that open the report's categories (only inside the Snakemake
    report, whose app they call)."""
    names = [m["name"] for m in page.models]
    synthetic = [n for n in names if n in page.synthetic]
    parts = ["<h1>selfexplain: do language models know why they answer as they do?</h1>"]
    studies = ", ".join(STUDY_TITLES.get(s, s) for s in page.studies)
    parts.append(
        f"<p>This report holds one run of the selfexplain workflow: {esc(studies)}, on {len(names)} models.</p>"
    )
    if synthetic and len(synthetic) == len(names):
        parts.append(
            "<p class='warn'><strong>Every model in this run is synthetic</strong>: a rule-based stand-in with known "
            "behaviour that tests the pipeline, not a language model. Its numbers say nothing about language "
            "models.</p>"
        )
    elif synthetic:
        parts.append(
            f"<p class='warn'><strong>Synthetic models</strong> ({esc(', '.join(synthetic))}) are rule-based "
            "stand-ins that test the pipeline, not language models.</p>"
        )
    if links:
        studies = [REPORT_CATEGORIES[s] for s in page.studies if s in REPORT_CATEGORIES]
        categories = [OVERVIEW, *studies, *page.sections]
        anchors = " \u00b7 ".join(
            f"<a href=\"javascript:app.showCategory('{esc(c)}')\">{esc(c.split(' ', 1)[1])}</a>" for c in categories
        )
        parts.append(f"<p>Tables and figures: {anchors} (also under Results, left).</p>")
    parts.append("<h2>Headline numbers</h2>")
    for study in page.studies:
        parts.append(f"<h3>{esc(STUDY_TITLES.get(study, study))}</h3>")
        parts.append(_sce_headline_html(page) if study == "sce" else _sim_headline_html(page))
    parts.append("<h2>What was run</h2>")
    parts.append(_items((STUDY_TITLES.get(s, s), esc(STUDY_SENTENCES.get(s, ""))) for s in page.studies))
    parts.append("<h3>Models</h3>")
    parts.append(_models_html(page))
    for study in page.studies:
        parts.append(f"<h3>{esc(STUDY_TITLES.get(study, study))}</h3>")
        parts.append(_sce_run_html(page) if study == "sce" else _sim_run_html(page))
    parts.append("<h2>Versions</h2>")
    parts.append(_versions_html(page))
    return "".join(parts)


def front_page_document(page: FrontPage) -> str:
    """The front page as its own HTML page (shown in a frame of the report's Overview category)."""
    return html_document("selfexplain: front page", front_page_body(page))


def front_page_fragment(page: FrontPage) -> str:
    """The front page as an HTML fragment for the report's landing page (the workflow description includes it), in
    ASCII with character references so its encoding cannot be misread."""
    content = front_page_body(page, links=True)
    body = f'<style>{CSS}{FRAGMENT_CSS}</style><div class="se-report" id="se-front">{content}</div>\n'
    return body.encode("ascii", "xmlcharrefreplace").decode("ascii")
