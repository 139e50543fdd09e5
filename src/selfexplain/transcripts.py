"""Transcripts a researcher can read: sampled chats in full, as one table and one self-contained HTML page per run.

The metrics say how often a model fails; a transcript shows how. Each study builds its rows
(`selfexplain.sce.transcripts`, `selfexplain.simulatability.transcripts`) and declares the flags its rows can set
(`FLAGS` there: flag -> what it counts, in words); this module owns what both share: the table's schema, the seeded
choice of cases, the run's notes, and the page, whose filters are the run's flags only.

Table (one row per turn of a chat; every file of every study has the same columns and types, so
`pd.read_parquet("results/transcripts/")` reads them all):

  study, run           str    sce / simulatability; run name (sce: model__grid__prompt, simulatability: reference)
  case                 str    the unit sampled: an sce grid point (its two-turn chat), a simulatability pair (the
                              reference's two chats and every predictor chat of the pair)
  sampled_because      str    comma-separated reasons the case is shown: failure, egregious, invalid, random
  failure              bool   some turn of the case has no readable answer (parse or request failure)
  egregious            bool   simulatability: every predictor gave the same wrong answer with the explanation
                              (always false in sce)
  invalid              bool   sce: the counterfactual was scored and does not reach the target label (always false
                              in simulatability)
  chat                 str    the chat within the case
  turn                 int64  1-based position of the turn in its chat (earlier turns are earlier rows)
  stage                str    first_pass / followup (sce); reference / predictor (simulatability)
  model, dataset       str    who answered; the dataset (sce grid or simulatability dataset)
  condition            str?   simulatability predictor condition
  system               str?   system message of the chat
  prompt               str    the user message of this turn, rebuilt with the prompt functions the steps use
  prompt_verified      bool   the rebuilt chat hashes to the journal key stored with the answer (so it is exactly
                              what was sent)
  thinking, answer     str?   the reply's thinking and its text (thinking removed)
  parsed               str?   what the parser read from the reply
  parse_status         str    the parser's status ("ok" or what went wrong)
  finish_reason, error str?
  score                str?   the turn's score in words
  valid, strict_valid  float  sce follow-up: 1/0 (null when not scored)
  distance, rcf_a      float  sce follow-up: distance to the counterfactual, and RCF_A (minimality)
  correct              bool?  simulatability predictor: prediction equals the reference's counterfactual answer
  correct_with_explanation, correct_without_explanation
                       bool?  simulatability predictor: the same for that predictor and repeat under each condition
  request_key          str?   journal key of the request
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

FLAGS = ("failure", "egregious", "invalid")
FLAG_TITLES = {"failure": "failures", "egregious": "egregious cases", "invalid": "invalid counterfactuals"}

_STR, _BOOL, _FLOAT = pa.string(), pa.bool_(), pa.float64()
SCHEMA = pa.schema(
    [
        ("study", _STR),
        ("run", _STR),
        ("case", _STR),
        ("sampled_because", _STR),
        ("failure", _BOOL),
        ("egregious", _BOOL),
        ("invalid", _BOOL),
        ("chat", _STR),
        ("turn", pa.int64()),
        ("stage", _STR),
        ("model", _STR),
        ("dataset", _STR),
        ("condition", _STR),
        ("system", _STR),
        ("prompt", _STR),
        ("prompt_verified", _BOOL),
        ("thinking", _STR),
        ("answer", _STR),
        ("parsed", _STR),
        ("parse_status", _STR),
        ("finish_reason", _STR),
        ("error", _STR),
        ("score", _STR),
        ("valid", _FLOAT),
        ("strict_valid", _FLOAT),
        ("distance", _FLOAT),
        ("rcf_a", _FLOAT),
        ("correct", _BOOL),
        ("correct_with_explanation", _BOOL),
        ("correct_without_explanation", _BOOL),
        ("request_key", _STR),
    ]
)
COLUMNS = tuple(SCHEMA.names)
# pandas dtypes that write as SCHEMA's types (a column of nulls stays typed, so files of every run concatenate)
_PANDAS = {_STR: "string", _BOOL: "boolean", pa.int64(): "Int64", _FLOAT: "Float64"}
_DTYPES = {f.name: _PANDAS[f.type] for f in SCHEMA}


@dataclass(frozen=True)
class Sampling:
    """Which cases of a run are shown (config `transcripts`): every flagged case up to `max_flagged` per flag, plus
    `sample` cases drawn from all of them, seeded by `seed`."""

    sample: int = 50
    max_flagged: int = 50
    seed: int = 0

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Sampling:
        """From the config's `transcripts` block (its other keys, such as `enabled`, are not about sampling)."""
        return cls(int(settings["sample"]), int(settings["max_flagged"]), int(settings["seed"]))


def text(value: Any) -> str | None:
    """A table cell as text, or None when it is null."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    return str(value)


def frame_of(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A transcripts table from row dicts (missing keys are null), with the schema's columns and types."""
    frame = pd.DataFrame.from_records(list(rows), columns=list(COLUMNS))
    for column, dtype in _DTYPES.items():
        values = frame[column].astype(object).where(frame[column].notna(), None)
        frame[column] = pd.array(values.tolist(), dtype=dtype)
    return frame


def choose_cases(
    cases: pd.DataFrame, sample: int, max_flagged: int, seed: int, flags: Sequence[str] = FLAGS
) -> pd.Series:
    """Which cases to show, and why: every case with one of `flags` up to `max_flagged` per flag, plus `sample`
    cases drawn from all of them. `cases` has one row per case: `case` and the flag columns (a missing one flags
    nothing). Draws are seeded and depend only on the sorted case names, not on their order. Returns case -> reasons
    ("failure,random"), for the chosen cases only, in sorted case order."""
    names = np.array(sorted(cases["case"].astype(str)), dtype=object)
    marks = cases.set_index(cases["case"].astype(str)).reindex(names)
    rng = np.random.default_rng(seed)
    reasons: dict[str, list[str]] = {}
    for flag in flags:
        marked = names[marks[flag].fillna(False).to_numpy(dtype=bool)] if flag in marks else names[:0]
        if len(marked) > max_flagged:
            marked = marked[np.sort(rng.choice(len(marked), size=max_flagged, replace=False))]
        for name in marked:
            reasons.setdefault(name, []).append(flag)
    drawn = names[np.sort(rng.choice(len(names), size=min(sample, len(names)), replace=False))]
    for name in drawn:
        reasons.setdefault(name, []).append("random")
    return pd.Series({n: ",".join(reasons[n]) for n in names if n in reasons}, dtype="string")


def flag_counts(cases: pd.DataFrame, flags: Sequence[str] = FLAGS) -> dict[str, int]:
    """Cases of the whole run carrying each of `flags` (shown on the page beside the cases sampled)."""
    return {flag: int(cases[flag].fillna(False).astype(bool).sum()) if flag in cases else 0 for flag in flags}


def select(
    turns: pd.DataFrame, cases: pd.DataFrame, sample: int, max_flagged: int, seed: int, flags: Sequence[str] = FLAGS
) -> pd.DataFrame:
    """The turns of the chosen cases with their reasons, as a transcripts table in (case, chat, turn) order."""
    reasons = choose_cases(cases, sample, max_flagged, seed, flags)
    chosen = turns[turns["case"].astype(str).isin(set(reasons.index))].copy()
    chosen["sampled_because"] = chosen["case"].astype(str).map(reasons)
    chosen = chosen.sort_values(["case", "chat", "turn"], kind="stable").reset_index(drop=True)
    return frame_of(chosen.to_dict("records"))


def write_sample(
    turns: pd.DataFrame,
    cases: pd.DataFrame,
    flags: Mapping[str, str],
    title: str,
    header: str,
    provenance: dict[str, Any],
    table_out: str | Path,
    page_out: str | Path,
    sampling: Sampling,
) -> pd.DataFrame:
    """A study's run, from all its turns and cases: choose the cases (`select`), then write the table and the page
    with the notes every run gets (`header`, the flags of the whole run in the study's words, whether the rebuilt
    prompts are what was sent), and the sampling added to the study's `provenance`. `flags`: the flags the study's
    rows can set -> what each counts, in words."""
    sample, max_flagged, seed = sampling.sample, sampling.max_flagged, sampling.seed
    table = select(turns, cases, sample, max_flagged, seed, list(flags))
    counts = flag_counts(cases, list(flags))
    flagged = ", ".join(f"{counts[flag]} {words}" for flag, words in flags.items())
    unverified = int((~table["prompt_verified"].fillna(False)).sum())
    notes = [
        header,
        f"Flags in the whole run: {flagged}; cap {max_flagged} shown per flag; sample {sample}, seed {seed}.",
        "Prompts are rebuilt with the prompt functions of the inference steps; "
        + (
            "every shown chat hashes to its stored journal key."
            if unverified == 0
            else f"{unverified} shown turns do not hash to their stored journal key (templates or catalog edited?)."
        ),
    ]
    settings = {"seeds": {"sample": seed}, "sample": sample, "max_flagged": max_flagged}
    write_run(table, table_out, page_out, title, counts, len(cases), {**provenance, **settings}, notes)
    return table


# -- page ----------------------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px;color:#222}
h1{font-size:1.4em}.meta{color:#555;font-size:.9em}
.filters button{margin:0 .4em .4em 0;padding:.35em .8em;border:1px solid #888;border-radius:4px;background:#f4f4f4;
cursor:pointer}.filters button.on{background:#2a5db0;color:#fff;border-color:#2a5db0}
.case{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.6em .9em}
.case h2{font-size:1.05em;margin:.2em 0}.chat{border-left:3px solid #ddd;margin:.6em 0;padding-left:.7em}
.chat h3{font-size:.95em;margin:.3em 0;color:#333}
.badge{display:inline-block;font-size:.75em;padding:.1em .5em;border-radius:3px;margin-right:.3em;color:#fff}
.b-failure{background:#b03030}.b-egregious{background:#8a3ab0}.b-invalid{background:#c07000}.b-random{background:#777}
pre{white-space:pre-wrap;word-wrap:break-word;background:#f7f7f7;padding:.5em;margin:.3em 0;border-radius:4px;
font-size:.85em;max-height:30em;overflow:auto}
.role{font-weight:600;font-size:.85em;margin-top:.4em}.thinking pre{background:#f3f0fa}.answer pre{background:#eef6ee}
.status{font-size:.85em}.bad{color:#b03030;font-weight:600}.ok{color:#2a7a2a}
summary{cursor:pointer;font-size:.85em;color:#2a5db0}
"""

_JS = """
function show(flag){
  var n=0;
  document.querySelectorAll('.case').forEach(function(c){
    var on = flag==='all' || c.getAttribute('data-'+flag)==='1';
    c.style.display = on ? '' : 'none'; if(on){n++;}
  });
  document.querySelectorAll('.filters button').forEach(function(b){
    b.classList.toggle('on', b.getAttribute('data-filter')===flag);
  });
  document.getElementById('shown').textContent = n;
}
function expand(open){document.querySelectorAll('details').forEach(function(d){d.open=open;});}
"""


def _e(value: Any) -> str:
    """Escaped text of a cell ('' for null): every piece of model or data text goes through here."""
    value = text(value)
    return "" if value is None else html.escape(value, quote=True)


def _flag(value: Any) -> bool:
    return bool(value) if value is not None and value is not pd.NA else False


def _block(css: str, label: str, value: Any, folded: bool = False) -> str:
    content = text(value)
    if content is None:
        return ""
    body = f"<pre>{_e(content)}</pre>"
    if folded:
        return f'<details class="{css}"><summary>{_e(label)} ({len(content):,} characters)</summary>{body}</details>'
    return f'<div class="{css}"><div class="role">{_e(label)}</div>{body}</div>'


def _turn_html(row: Mapping[str, Any]) -> str:
    status = text(row["parse_status"]) or "?"
    css = "ok" if status == "ok" else "bad"
    verified = "" if _flag(row["prompt_verified"]) else " (rebuilt; not verified against the journal key)"
    parts = [
        _block("system", "system", row["system"], folded=True),
        _block("prompt", f"user, turn {row['turn']}{verified}", row["prompt"], folded=True),
        _block("thinking", "thinking", row["thinking"], folded=True),
        _block(
            "answer", f"{row['model']} answered", row["answer"] if (text(row["answer"]) or "").strip() else "(no text)"
        ),
    ]
    line = [f'parse status <span class="{css}">{_e(status)}</span>']
    if text(row["parsed"]) is not None:
        line.append(f"read: <code>{_e(row['parsed'])}</code>")
    for key in ("finish_reason", "error"):
        if text(row[key]) is not None:
            line.append(f"{key.replace('_', ' ')}: {_e(row[key])}")
    if text(row["score"]) is not None:
        line.append(f"<b>{_e(row['score'])}</b>")
    parts.append(f'<div class="status">{" · ".join(line)}</div>')
    return "".join(parts)


def _case_html(case: str, turns: pd.DataFrame, flags: Sequence[str]) -> str:
    first = turns.iloc[0]
    attrs = " ".join(f'data-{flag}="{int(_flag(first[flag]))}"' for flag in flags)
    badges = "".join(
        f'<span class="badge b-{_e(reason)}">{_e(reason)}</span>'
        for reason in (text(first["sampled_because"]) or "").split(",")
        if reason
    )
    chats = []
    for chat, chat_turns in turns.groupby("chat", sort=False):
        head = chat_turns.iloc[0]
        title = f"{_e(chat)} · {_e(head['stage'])} · {_e(head['model'])}"
        if text(head["condition"]) is not None:
            title += f" · {_e(head['condition'])}"
        body = "".join(_turn_html(r) for r in chat_turns.to_dict("records"))
        chats.append(f'<div class="chat"><h3>{title}</h3>{body}</div>')
    return f'<section class="case" {attrs}><h2>{badges}{_e(case)}</h2>{"".join(chats)}</section>'


def render_page(
    table: pd.DataFrame, title: str, counts: Mapping[str, int], n_cases: int, notes: Sequence[str] = ()
) -> str:
    """A self-contained HTML page (no external scripts or styles) of a transcripts table: one section per case, a
    filter button for all and one for each flag in `counts` (cases of the whole run per flag: only the flags the
    study's rows can set, as one no row can carry would always show 0 of 0). Every piece of text from the table is
    escaped, so a model that writes `<script>` shows it as text."""
    flags = list(counts)
    cases = list(dict.fromkeys(table["case"].astype(str)))
    shown = {flag: int(table.drop_duplicates("case")[flag].fillna(False).astype(bool).sum()) for flag in flags}
    buttons = [f'<button data-filter="all" class="on" onclick="show(\'all\')">all ({len(cases)})</button>']
    for flag in flags:
        buttons.append(
            f'<button data-filter="{flag}" onclick="show(\'{flag}\')">{FLAG_TITLES[flag]} '
            f"({shown[flag]} of {counts[flag]})</button>"
        )
    meta = [
        f"{len(cases)} of {n_cases} cases shown: every case with a flag (up to the cap) and a seeded sample.",
        *notes,
    ]
    sections = [_case_html(case, turns, flags) for case, turns in table.groupby("case", sort=False)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style><script>{_JS}</script></head><body>"
        f"<h1>{_e(title)}</h1>"
        + "".join(f'<p class="meta">{_e(m)}</p>' for m in meta)
        + f'<div class="filters">{"".join(buttons)} <button onclick="expand(true)">expand all</button>'
        f'<button onclick="expand(false)">fold all</button></div>'
        f'<p class="meta">showing <span id="shown">{len(cases)}</span> cases</p>'
        + "".join(sections)
        + "</body></html>\n"
    )


def write_run(
    table: pd.DataFrame,
    table_out: str | Path,
    page_out: str | Path,
    title: str,
    counts: Mapping[str, int],
    n_cases: int,
    provenance: dict[str, Any],
    notes: Sequence[str] = (),
) -> None:
    """Write a run's transcripts table (Parquet, with SCHEMA) and its page (filters: the flags in `counts`), both
    atomically."""
    from selfexplain.io import atomic_path, write_parquet

    write_parquet(
        frame_of(table.to_dict("records")),
        table_out,
        {**provenance, "cases": n_cases, "flagged": dict(counts)},
        schema=SCHEMA,
    )
    with atomic_path(page_out) as tmp:
        tmp.write_text(render_page(table, title, counts, n_cases, notes), encoding="utf-8")
