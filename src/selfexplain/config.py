"""Config and catalog validation with messages that name the key and list what is allowed.

The shared keys have one schema; each study's section has its own (`workflow/schemas/<study>.schema.yaml`) and a
module `selfexplain.<study>.config` saying which names it may use. Names that depend on other files (models in the
catalog, built-in datasets, prompt templates on disk) are written into the schema as enums before validating, so
one JSON-schema pass reports every kind of mistake the same way. Defaults from the schema are filled in.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from selfexplain.errors import ConfigError
from selfexplain.llm.catalog import ModelEntry, parse_entry
from selfexplain.studies import STUDIES


def _with_defaults(validator_class: type) -> type:
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: dict, instance: Any, schema: dict) -> Any:
        if isinstance(instance, dict):
            for prop, subschema in properties.items():
                if "default" in subschema and prop not in instance:
                    instance[prop] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_DefaultingValidator = _with_defaults(Draft202012Validator)


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc


def _location(error: Any, root: str) -> str:
    parts = [root]
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts)


def validate(instance: Any, schema: dict[str, Any], root: str) -> Any:
    """Validate (filling defaults) and raise one ConfigError listing every problem with its key path."""
    validator = _DefaultingValidator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for error in errors:
            message = error.message
            if error.validator == "additionalProperties":
                allowed = sorted(error.schema.get("properties", {}))
                message += f"; allowed keys: {allowed}"
            lines.append(f"  {_location(error, root)}: {message}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    return instance


def load_catalog(path: str | Path, schema_path: str | Path) -> dict[str, ModelEntry]:
    data = load_yaml(path)
    validate(data, load_yaml(schema_path), root=str(path))
    return {name: parse_entry(name, entry) for name, entry in data["models"].items()}


def _set_enum(schema: dict[str, Any], path: tuple[str, ...], values: list[str]) -> None:
    """Write allowed names into a schema: `enum` at `path`, or `propertyNames` when the path ends with it."""
    node = schema
    for key in path[:-1]:
        node = node[key]
    if path[-1] == "propertyNames":
        node["propertyNames"] = {"enum": sorted(values)}
    else:
        node[path[-1]]["enum"] = sorted(values)


def _study_rules(study: str) -> Any:
    """The study's config module: `name_enums(section, catalog, base)` and `check_section(section)`."""
    return importlib.import_module(f"selfexplain.{study}.config")


def validate_config(
    config: dict[str, Any],
    schema_path: str | Path,
    catalog_schema_path: str | Path,
    base_dir: str | Path = ".",
) -> tuple[dict[str, Any], dict[str, ModelEntry]]:
    """Check the shared keys against `schema_path`, then each study's section against `<study>.schema.yaml` beside
    it, with the names it may use (catalog models, built-in datasets, templates on disk) written in as enums."""
    base = Path(base_dir)
    schema_path = Path(schema_path)
    validate(config, load_yaml(schema_path), root="config")
    catalog = load_catalog(base / config["catalog"], catalog_schema_path)
    for study in STUDIES:
        section = config[study]
        root = f"config.{study}"
        schema = load_yaml(schema_path.parent / f"{study}.schema.yaml")
        # First pass without name enums: fills defaults, which the names may depend on (e.g. the prompt folder).
        validate(section, schema, root=root)
        # The names a section uses (models, datasets, templates) are checked only when its study runs: a config
        # that runs one study with its own catalog must not fail on the other study's default model names.
        if study in config["studies"]:
            rules = _study_rules(study)
            strict = copy.deepcopy(schema)
            for path, values in rules.name_enums(section, catalog, base).items():
                _set_enum(strict, ("properties", *path), values)
            validate(section, strict, root=root)
            rules.check_section(section)
        # Keys in a fixed order: Snakemake compares params by their text, so a section read from a YAML file and
        # the same section from --config or JSON must not look changed.
        config[study] = _sorted_keys(section)
    return config, catalog


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value
