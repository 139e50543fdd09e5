"""Token usage and cost of the answers behind each result table.

Inference tables keep the tokens of every request (columns `<prefix>prompt_tokens`, `<prefix>completion_tokens`,
`<prefix>error`); this module sums them per model and rule and prices them where the catalog gives prices. The
figures describe the answers in the results, whether they were bought in this run or reused from the journal.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from selfexplain.llm.catalog import ModelEntry

USAGE_COLUMNS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd")


def table_usage(table: pd.DataFrame, prefix: str) -> dict[str, float]:
    """Sum one inference table's usage columns (those starting with `prefix`); rows that reused one request (the
    same chat asked twice in a job is sent once) count once."""
    key = f"{prefix}request_key"
    if key in table.columns:
        table = table.drop_duplicates(key)
    tokens_in = pd.to_numeric(table.get(f"{prefix}prompt_tokens"), errors="coerce")
    tokens_out = pd.to_numeric(table.get(f"{prefix}completion_tokens"), errors="coerce")
    errors = table.get(f"{prefix}error")
    return {
        "requests": len(table),
        "errors": int(errors.notna().sum()) if errors is not None else 0,
        "prompt_tokens": int(tokens_in.fillna(0).sum()) if tokens_in is not None else 0,
        "completion_tokens": int(tokens_out.fillna(0).sum()) if tokens_out is not None else 0,
    }


def cost_usd(entry: ModelEntry, prompt_tokens: float, completion_tokens: float) -> float:
    """USD at the catalog's per-million-token prices; NaN when the catalog gives none."""
    prices = entry.prices or {}
    if "input_per_mtok" not in prices and "output_per_mtok" not in prices:
        return math.nan
    return (
        prompt_tokens * prices.get("input_per_mtok", 0.0) + completion_tokens * prices.get("output_per_mtok", 0.0)
    ) / 1e6


def summarise_usage(records: list[dict[str, Any]], catalog: dict[str, ModelEntry]) -> pd.DataFrame:
    """One row per (model, rule): requests, failed requests, tokens and cost, with a TOTAL row per model."""
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame(columns=["model", "rule", *USAGE_COLUMNS])
    grouped = frame.groupby(["model", "rule"], sort=False)[list(USAGE_COLUMNS[:4])].sum().reset_index()
    grouped["cost_usd"] = [
        cost_usd(catalog[m], p, c)
        for m, p, c in zip(grouped["model"], grouped["prompt_tokens"], grouped["completion_tokens"], strict=True)
    ]
    totals = grouped.groupby("model", sort=False)[list(USAGE_COLUMNS)].sum(min_count=1).reset_index()
    totals["rule"] = "TOTAL"
    return pd.concat([grouped, totals], ignore_index=True).sort_values(["model"], kind="stable")


def write_usage(items: list[tuple[str, str, str, str]], entries: dict[str, dict[str, Any]], out: str) -> pd.DataFrame:
    """Read each (table path, model, rule, column prefix), summarise, and write the CSV atomically."""
    from selfexplain.io import atomic_path
    from selfexplain.llm.catalog import parse_entry

    records = []
    for path, model, rule, prefix in items:
        table = pd.read_parquet(path, columns=None)
        records.append({"model": model, "rule": rule, **table_usage(table, prefix)})
    catalog = {name: parse_entry(name, raw) for name, raw in entries.items()}
    frame = summarise_usage(records, catalog)
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    return frame
