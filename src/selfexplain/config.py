"""Config and catalog validation with messages that name the key and list what is allowed.

The shared keys have one schema; each study's section has its own (`workflow/schemas/<study>.schema.yaml`) and a
module `selfexplain.<study>.config` saying which names it may use and checking its prompt templates. Names that
depend on other files (models in the catalog, built-in datasets, prompt templates on disk) are written into the
schema as enums before validating, so one JSON-schema pass reports every kind of mistake the same way. Defaults from
the schema are filled in.

Everything here runs when the workflow is parsed, so `snakemake -n` catches it before any request. Every problem is
one line naming the file or key. YAML is read strictly: a duplicate key (which YAML would silently resolve to the
last one) is an error naming file, line and key, a syntax error names file, line and column, and a number written
`1e12` (a string to PyYAML, which wants `1.0e+12`) is read as a number wherever the schema wants one. A value in a
field meant for an environment variable's name is never echoed (it may be a key). Snakemake reads the config files
itself and reports their syntax errors without a line: `python -m selfexplain.config FILE...` names it.

`preflight` runs each model's backend preflight (key set, vLLM installed, endpoint answering) for the jobs a run
is about to start; the workflow calls it when jobs start (`onstart`), so a job certain to fail is never started and
so never retried by Snakemake.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from selfexplain.errors import ConfigError, SelfExplainError
from selfexplain.llm.catalog import ModelEntry, entry_problems, parse_entry
from selfexplain.llm.secrets import looks_like_key, scrub_keys
from selfexplain.studies import STUDIES

# Scientific notation PyYAML (YAML 1.1) leaves as a string: 1e12, 2.5E-3 (it reads only 1.0e+12).
_SCIENTIFIC = re.compile(r"[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)[eE][-+]?\d+")
# Fields holding the NAME of an environment variable: their values are never echoed (one may be a pasted key).
_SECRET_NAME_FIELDS = ("api_key_env",)


# -- YAML ----------------------------------------------------------------------------------------------------------
class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (merge keys `<<` may still be overridden)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: PyYAML rejects it itself
                    continue
                if first is not None:
                    raise _DuplicateKey(
                        problem=f"duplicate key {key!r} (first at line {first.line + 1}); YAML would keep only the "
                        "last one silently: give each its own name or delete one",
                        problem_mark=key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _yaml_error(path: Path, exc: yaml.YAMLError) -> ConfigError:
    """One line: file, line and column, and what is wrong (never the offending text, which may hold a secret)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or problem is None:
        return ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})")
    where = f"{path} line {mark.line + 1}, column {mark.column + 1}"
    if isinstance(exc, _DuplicateKey):
        return ConfigError(f"{where}: {problem}")
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    detail = f" ({context} at line {context_mark.line + 1})" if context and context_mark else ""
    if "'\\t'" in problem:
        detail += "; indent with spaces, not tabs"
    elif "<block" in problem or "mapping values are not allowed" in problem:
        detail += "; check the indentation, and quote a value that holds ': '"
    return ConfigError(f"{where}: not valid YAML: {problem}{detail}")


def load_yaml(path: str | Path) -> Any:
    """A YAML file read strictly (see the module docstring); every failure is a one-line ConfigError."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None


# -- schema validation ---------------------------------------------------------------------------------------------
def _types(schema: Any) -> set[str]:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return {kind} if isinstance(kind, str) else set(kind or ())


def _as_number(value: Any, schema: Any) -> Any:
    """`value` as the number the schema wants, when it is one written another way: '1e12' (PyYAML leaves it a
    string), or a whole float such as 1.0e+4 where an integer is wanted (a float would reach the API as 10000.0)."""
    types = _types(schema)
    if not types & {"number", "integer"} or "string" in types:
        return value
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        value = float(value.strip().replace("_", ""))
    if isinstance(value, float) and "integer" in types and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def _extended(validator_class: type) -> type:
    """The validator, also filling defaults and reading numbers written in another form (see `_as_number`)."""
    base = validator_class.VALIDATORS

    def properties(validator: Any, props: dict, instance: Any, schema: dict) -> Any:
        if isinstance(instance, dict):
            for prop, subschema in props.items():
                if prop in instance:
                    instance[prop] = _as_number(instance[prop], subschema)
                elif "default" in subschema:
                    instance[prop] = copy.deepcopy(subschema["default"])
        yield from base["properties"](validator, props, instance, schema)

    def additional_properties(validator: Any, extra: Any, instance: Any, schema: dict) -> Any:
        if isinstance(instance, dict) and isinstance(extra, dict):
            named = schema.get("properties", {})
            patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
            for key in instance:
                if key not in named and not any(p.search(key) for p in patterns):
                    instance[key] = _as_number(instance[key], extra)
        yield from base["additionalProperties"](validator, extra, instance, schema)

    def items(validator: Any, item_schema: Any, instance: Any, schema: dict) -> Any:
        if isinstance(instance, list) and isinstance(item_schema, dict):
            instance[:] = [_as_number(v, item_schema) for v in instance]
        yield from base["items"](validator, item_schema, instance, schema)

    return validators.extend(
        validator_class, {"properties": properties, "additionalProperties": additional_properties, "items": items}
    )


_Validator = _extended(Draft202012Validator)


def _location(error: Any, root: str) -> str:
    """`config.sce.models[1]`, or for a file root (ending in ': ') `config/models.yaml: models.x.backend`."""
    parts = [root]
    for part in error.absolute_path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(part if parts[-1].endswith(": ") else f".{part}")
    return "".join(parts).removesuffix(": ")


def _message(error: Any) -> str:
    path = list(error.absolute_path)
    field = next((p for p in reversed(path) if isinstance(p, str)), None)
    if field in _SECRET_NAME_FIELDS:
        message = (
            "must be the NAME of an environment variable (capitals, digits and underscores, e.g. OPENAI_API_KEY); "
            "the value is not shown"
        )
        if looks_like_key(error.instance):
            message += ": it looks like a key itself, so delete it from the file (and revoke it if the file was shared)"
        return message
    message = error.message
    if error.validator == "additionalProperties":
        message += f"; allowed keys: {sorted(error.schema.get('properties', {}))}"
    return scrub_keys(" ".join(message.split()))


def validate(instance: Any, schema: dict[str, Any], root: str) -> Any:
    """Validate (filling defaults, reading `1e12` as a number) and raise one ConfigError with one line per problem,
    each naming its key path below `root`."""
    errors = sorted(_Validator(schema).iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("\n".join(f"{_location(e, root)}: {_message(e)}" for e in errors))
    return instance


def load_catalog(path: str | Path, schema_path: str | Path) -> dict[str, ModelEntry]:
    data = load_yaml(path)
    validate(data, load_yaml(schema_path), root=f"{path}: ")
    problems = [
        f"{path}: models.{name}.{key}: {message}"
        for name, entry in data["models"].items()
        for key, message in entry_problems(entry)
    ]
    if problems:
        raise ConfigError("\n".join(problems))
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
    """The study's config module: `name_enums(section, catalog, base)`, `check_section(section)` and
    `check_templates(section, base)`."""
    return importlib.import_module(f"selfexplain.{study}.config")


def check_config_files(paths: Iterable[str | Path]) -> None:
    """Read the config files Snakemake merged with the strict loader: Snakemake's own keeps the last of two equal
    keys silently. (A file templated with yte is left to Snakemake.)"""
    for path in paths:
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml", ".json") and "__use_yte__" not in path.read_text("utf-8"):
            load_yaml(path)


def validate_config(
    config: dict[str, Any],
    schema_path: str | Path,
    catalog_schema_path: str | Path,
    base_dir: str | Path = ".",
    config_files: Sequence[str | Path] = (),
) -> tuple[dict[str, Any], dict[str, ModelEntry]]:
    """Check the config files for duplicate keys, the shared keys against `schema_path`, the catalog, then each
    study's section against `<study>.schema.yaml` beside it, with the names it may use (catalog models, built-in
    datasets, templates on disk) written in as enums, and the templates it will fill."""
    base = Path(base_dir)
    schema_path = Path(schema_path)
    check_config_files(config_files)
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
            rules.check_templates(section, base)
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


# -- before jobs start ---------------------------------------------------------------------------------------------
def models_of_jobs(jobs: Iterable[Any], catalog: dict[str, ModelEntry]) -> list[str]:
    """Catalog names of the models that `jobs` (Snakemake jobs) send requests to: an inference job carries its
    model's catalog entry as the `model` param, and names the model in one of its wildcards."""
    entries = {name: json.dumps(entry.raw, sort_keys=True) for name, entry in catalog.items()}
    names = set()
    for job in jobs:
        entry_json = job.params.get("model")
        if not isinstance(entry_json, str):
            continue
        for value in job.wildcards:  # a Snakemake Namedlist: iterating gives the values
            if entries.get(value) == entry_json:
                names.add(value)
    return [name for name in catalog if name in names]  # catalog order, whatever order the jobs came in


def preflight(entries: Iterable[ModelEntry]) -> None:
    """Each model's backend preflight (key variable set, vLLM installed, settings sendable, endpoint answering and
    accepting the key), without sending a chat request. Raises one ConfigError with a line per model that cannot
    run; anything shaped like a key is scrubbed from the lines."""
    from selfexplain.llm.backends import make_backend

    problems = []
    for entry in entries:
        if entry.backend == "synthetic":
            continue
        try:
            make_backend(entry).preflight()
        except SelfExplainError as exc:  # KeyRejected, endpoint unreachable, ... all say what to fix
            problems.append(scrub_keys(" ".join(str(exc).split())))
    if problems:
        raise ConfigError("\n".join(problems))


def exit_message(exc: ConfigError) -> str:
    """What the workflow prints for a ConfigError instead of a traceback: each line prefixed with its kind."""
    return "\n".join(f"ConfigError: {line}" for line in str(exc).splitlines())


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m selfexplain.config FILE...`: read each YAML file strictly and print one line per problem (file,
    line and column of a syntax error or a duplicate key). Snakemake reads config files itself and reports their
    syntax errors without a line number; this names it."""
    paths = list(sys.argv[1:] if argv is None else argv)
    if not paths:
        print("usage: python -m selfexplain.config FILE...", file=sys.stderr)
        return 2
    failed = 0
    for path in paths:
        try:
            load_yaml(path)
        except ConfigError as exc:
            print(exit_message(exc), file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
