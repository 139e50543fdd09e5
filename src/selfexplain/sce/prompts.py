"""Prompt templates for the sce study, read from text files so users can bring their own wording.

A template is `<prompt_dir>/<name>.txt`, or `<prompt_dir>/<name>.<dataset>.txt` for a dataset-specific version,
which wins. Templates use `$name` / `${name}` placeholders (string.Template), so JSON braces need no escaping;
a literal dollar sign is `$$`. Placeholders:

  first pass:  intro, record, description, question, choices
  follow-up:   record, target, feature_options, json_skeleton, ranges, mad_values, std_values, feature_keys
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfexplain.errors import ConfigError
from selfexplain.tabular.features import DatasetSpec, Feature


@dataclass(frozen=True)
class Template:
    name: str
    path: Path
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def render(self, fields: dict[str, str]) -> str:
        try:
            return string.Template(self.text).substitute(fields)
        except KeyError as exc:
            raise ConfigError(f"{self.path}: unknown placeholder ${exc.args[0]}; available: {sorted(fields)}") from exc
        except ValueError as exc:
            raise ConfigError(f"{self.path}: bad placeholder syntax ({exc}); write a literal $ as $$") from exc


def available_prompts(prompt_dir: str | Path) -> list[str]:
    """Template names in a folder: file stems up to the first dot."""
    folder = Path(prompt_dir)
    if not folder.is_dir():
        return []
    return sorted({p.name.split(".", 1)[0] for p in folder.glob("*.txt")})


def load_template(prompt_dir: str | Path, name: str, dataset: str) -> Template:
    folder = Path(prompt_dir)
    for candidate in (folder / f"{name}.{dataset}.txt", folder / f"{name}.txt"):
        if candidate.exists():
            return Template(name=name, path=candidate, text=candidate.read_text(encoding="utf-8"))
    raise ConfigError(
        f"no template {name!r} for dataset {dataset!r} in {folder} (looked for {name}.{dataset}.txt and "
        f"{name}.txt); available: {available_prompts(folder)}"
    )


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
