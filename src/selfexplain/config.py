"""Config and catalog validation with messages that name the key and list what is allowed.

Names that depend on other files (models in the catalog, built-in datasets, prompt templates on disk) are written
into the schema as enums before validating, so one JSON-schema pass reports every kind of mistake the same way.
Defaults from the schema are filled in.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from selfexplain.errors import ConfigError
from selfexplain.llm.catalog import ModelEntry, parse_entry
from selfexplain.sce.prompts import available_prompts
from selfexplain.tabular.features import builtin_dataset_names


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


def _set_enum(schema: dict[str, Any], path: list[str], values: list[str]) -> None:
    node = schema
    for key in path:
        node = node[key]
    node["enum"] = sorted(values)


def validate_config(
    config: dict[str, Any],
    schema_path: str | Path,
    catalog_schema_path: str | Path,
    base_dir: str | Path = ".",
) -> tuple[dict[str, Any], dict[str, ModelEntry]]:
    """Check the workflow config against its schema and against the catalog, datasets and prompts it names."""
    base = Path(base_dir)
    schema = load_yaml(schema_path)
    # First pass without name enums: fills defaults and learns where the catalog and prompts live.
    validate(config, schema, root="config")
    catalog = load_catalog(base / config["catalog"], catalog_schema_path)
    strict = copy.deepcopy(schema)
    sce = strict["properties"]["sce"]["properties"]
    _set_enum(strict, ["properties", "models", "items"], list(catalog))
    _set_enum(sce, ["datasets", "items"], builtin_dataset_names())
    prompt_dir = base / config["sce"]["prompt_dir"]
    prompts = available_prompts(prompt_dir)
    if not prompts:
        raise ConfigError(f"config.sce.prompt_dir: no prompt templates (*.txt) in {prompt_dir}")
    _set_enum(sce, ["prompts", "items"], prompts)
    _set_enum(sce, ["first_pass"], prompts)
    validate(config, strict, root="config")
    return config, catalog
