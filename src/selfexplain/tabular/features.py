"""Feature and dataset definitions, loaded from YAML data files rather than code branches.

A dataset spec fixes everything that depends on the data set: feature levels and their order, how a row is
rendered as text, the two answer options, and the words that prompt templates slot in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from selfexplain.errors import ConfigError

FEATURE_KINDS = ("integer", "ordinal", "categorical")


@dataclass(frozen=True)
class Feature:
    """One input feature: its grid levels (numeric codes) and the labels a model sees."""

    column: str
    key: str
    kind: str
    levels: tuple[float, ...]
    labels: tuple[str, ...]
    description: str
    unit: str | None = None
    number_offset: int | None = None
    # How replies may write a value: words allowed around a number ("years old") and words naming a label
    # without sharing its letters ("woman" -> "Female"). Data, from the spec's `parsing` blocks.
    number_words: tuple[str, ...] = ()
    synonyms: tuple[tuple[str, str], ...] = ()

    @property
    def is_categorical(self) -> bool:
        return self.kind == "categorical"

    @property
    def has_text_labels(self) -> bool:
        """True when labels are words (education, sex) rather than the numbers themselves."""
        return any(label != _format_number(level) for level, label in zip(self.levels, self.labels, strict=True))

    def label_of(self, value: float) -> str:
        return self.labels[self.levels.index(value)]

    def render(self, value: float) -> str:
        return self.description.format(label=self.label_of(value))


@dataclass(frozen=True)
class DatasetSpec:
    """A tabular decision task: ordered features and the two answer options (options[1] is positive)."""

    name: str
    options: tuple[str, str]
    features: tuple[Feature, ...]
    prompt: dict[str, str] = field(default_factory=dict)
    synthetic_rule: dict[str, Any] = field(default_factory=dict)
    original: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.features]

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.features]

    def feature(self, column_or_key: str) -> Feature:
        for f in self.features:
            if column_or_key in (f.column, f.key):
                return f
        raise KeyError(f"dataset {self.name!r} has no feature {column_or_key!r}; features: {self.keys}")

    def describe(self, values: dict[str, float]) -> str:
        """Render a row exactly as the original grids' `description` column."""
        return "\n".join(f.render(values[f.column]) for f in self.features)

    @property
    def n_rows(self) -> int:
        n = 1
        for f in self.features:
            n *= len(f.levels)
        return n


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _expand_levels(raw: Any, where: str) -> tuple[float, ...]:
    if isinstance(raw, dict):
        try:
            start, stop, step = raw["start"], raw["stop"], raw.get("step", 1)
        except KeyError as exc:
            raise ConfigError(f"{where}: levels needs 'start' and 'stop' (got {sorted(raw)})") from exc
        if step <= 0 or stop < start:
            raise ConfigError(f"{where}: levels need start <= stop and step > 0")
        count = round((stop - start) / step) + 1
        return tuple(float(start + i * step) for i in range(count))
    if isinstance(raw, list) and raw:
        return tuple(float(v) for v in raw)
    raise ConfigError(f"{where}: levels must be a non-empty list or a {{start, stop, step}} mapping")


def _parsing_block(raw: Any, where: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """(number_words, synonyms) of a `parsing:` block."""
    if raw is None:
        return (), {}
    if not isinstance(raw, dict) or set(raw) - {"number_words", "synonyms"}:
        raise ConfigError(f"{where}: expected a mapping with keys number_words and/or synonyms")
    words = raw.get("number_words") or []
    synonyms = raw.get("synonyms") or {}
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ConfigError(f"{where}.number_words: expected a list of words")
    if not isinstance(synonyms, dict):
        raise ConfigError(f"{where}.synonyms: expected a mapping word -> label")
    return tuple(words), {str(k): str(v) for k, v in synonyms.items()}


def parse_dataset_spec(data: dict[str, Any], source: str = "<dict>") -> DatasetSpec:
    """Build a spec from a parsed YAML mapping, with errors that name the file and key."""
    for key in ("name", "options", "features"):
        if key not in data:
            raise ConfigError(f"{source}: missing key {key!r}")
    options = tuple(data["options"])
    if len(options) != 2 or len(set(options)) != 2:
        raise ConfigError(f"{source}: 'options' must hold two distinct labels, got {list(options)}")
    features = []
    for i, raw in enumerate(data["features"]):
        where = f"{source}: features[{i}]"
        missing = [k for k in ("column", "key", "kind", "levels", "description") if k not in raw]
        if missing:
            raise ConfigError(f"{where}: missing key(s) {missing}")
        if raw["kind"] not in FEATURE_KINDS:
            raise ConfigError(f"{where}.kind: {raw['kind']!r} is not one of {list(FEATURE_KINDS)}")
        levels = _expand_levels(raw["levels"], where)
        labels = tuple(str(v) for v in raw.get("labels", [_format_number(v) for v in levels]))
        if len(labels) != len(levels):
            raise ConfigError(f"{where}: {len(labels)} labels for {len(levels)} levels")
        words, synonyms = _parsing_block(raw.get("parsing"), f"{where}.parsing")
        unknown = sorted(set(synonyms.values()) - set(labels))
        if unknown:
            raise ConfigError(f"{where}.parsing.synonyms: {unknown} are not labels of {raw['key']!r}: {list(labels)}")
        features.append(
            Feature(
                column=raw["column"],
                key=raw["key"],
                kind=raw["kind"],
                levels=levels,
                labels=labels,
                description=raw["description"],
                unit=raw.get("unit"),
                number_offset=raw.get("number_offset"),
                number_words=words,
                synonyms=tuple(sorted(synonyms.items())),
            )
        )
    return DatasetSpec(
        name=data["name"],
        options=(str(options[0]), str(options[1])),
        features=tuple(features),
        prompt=dict(data.get("prompt", {})),
        synthetic_rule=dict(data.get("synthetic_rule", {})),
        original=dict(data.get("original", {})),
        source=source,
    )


def builtin_dataset_names() -> list[str]:
    folder = resources.files("selfexplain").joinpath("data/sce_datasets")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_dataset_spec(name_or_path: str | Path) -> DatasetSpec:
    """Load a built-in dataset by name, or a user's spec from a YAML path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"dataset spec file not found: {path}")
        return parse_dataset_spec(yaml.safe_load(path.read_text()), str(path))
    names = builtin_dataset_names()
    if str(name_or_path) not in names:
        raise ConfigError(f"unknown dataset {str(name_or_path)!r}; built-in datasets: {names}")
    res = resources.files("selfexplain").joinpath(f"data/sce_datasets/{name_or_path}.yaml")
    return parse_dataset_spec(yaml.safe_load(res.read_text()), f"selfexplain/data/sce_datasets/{name_or_path}.yaml")
