"""Prompt fields of the sce study: what its templates' placeholders are filled with.

Templates themselves (files, dataset overrides, `$placeholders`) are `selfexplain.prompts`. Placeholders:

  first pass:  intro, record, description, question, choices
  follow-up:   record, target, feature_options, json_skeleton, ranges, mad_values, std_values, feature_keys
"""

from __future__ import annotations

import json

import numpy as np

from selfexplain.tabular.features import DatasetSpec, Feature


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _feature_option_line(f: Feature) -> str:
    if f.kind == "categorical":
        return f"- {f.key}: one of {', '.join(json.dumps(lab) for lab in f.labels)} (categories, no order)"
    if f.has_text_labels:
        return f"- {f.key}: one of the following, from lowest to highest: {'; '.join(f.labels)}"
    levels = sorted(f.levels)
    steps = np.diff(levels)
    unit = f" ({f.unit})" if f.unit else ""
    if f.kind == "integer" and len(levels) > 1 and np.all(steps == 1):
        return f"- {f.key}{unit}: a whole number from {_number(levels[0])} to {_number(levels[-1])}"
    return f"- {f.key}{unit}: one of {', '.join(_number(v) for v in levels)} (ordered)"


def _stat_line(spec: DatasetSpec, stat: str) -> str:
    parts = []
    for f in spec.features:
        if f.is_categorical:
            parts.append(f"{f.key}: counts 0 if unchanged and 1 if changed")
            continue
        levels = np.asarray(f.levels, dtype=np.float64)
        if stat == "range":
            parts.append(f"{f.key}: {_number(levels.max() - levels.min())}")
        elif stat == "mad":
            parts.append(f"{f.key}: {_number(float(np.median(np.abs(levels - np.median(levels)))))}")
        else:
            parts.append(f"{f.key}: {float(levels.std()):.4g}")
    return "; ".join(parts)


def first_pass_fields(spec: DatasetSpec, description: str) -> dict[str, str]:
    return {
        "intro": spec.prompt.get("intro", ""),
        "record": spec.prompt.get("record", "record"),
        "description": description,
        "question": spec.prompt.get("question", ""),
        "choices": json.dumps(list(spec.options), ensure_ascii=False),
    }


def followup_fields(spec: DatasetSpec, target: str) -> dict[str, str]:
    """Fields for the follow-up. MADs and stds are over the full grid, which for a Cartesian product equal
    those of each feature's levels."""
    return {
        "record": spec.prompt.get("record", "record"),
        "target": target,
        "feature_options": "\n".join(_feature_option_line(f) for f in spec.features),
        "json_skeleton": json.dumps({f.key: "" for f in spec.features}),
        "feature_keys": ", ".join(spec.keys),
        "ranges": _stat_line(spec, "range"),
        "mad_values": _stat_line(spec, "mad"),
        "std_values": _stat_line(spec, "std"),
    }
