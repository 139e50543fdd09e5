"""Turn a user's copy of the original study's `datasets.json` into our template files.

The original stores Python `str.format` templates (`{description}`, `{complement}`, JSON braces doubled). We
write string.Template files (`${description}`, `${target}`, literal `$` doubled) so the same wording runs through
our workflow unchanged. Each entry `<dataset><suffix>` becomes two files in the output folder:
`original<suffix>.<dataset>.txt` (follow-up) and `original<suffix>_first_pass.<dataset>.txt` (first pass).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from selfexplain.errors import InputError
from selfexplain.tabular.features import builtin_dataset_names

_FIELDS = {"description": "description", "complement": "target"}


def convert_format_string(text: str, where: str) -> str:
    """Python format string -> string.Template text."""
    out = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InputError(f"{where}: not a valid format string ({exc})") from exc
    for literal, field, _spec, _conversion in parsed:
        out.append(literal.replace("$", "$$"))
        if field is None:
            continue
        if field not in _FIELDS:
            raise InputError(f"{where}: unknown placeholder {{{field}}}; expected one of {sorted(_FIELDS)}")
        out.append("${" + _FIELDS[field] + "}")
    return "".join(out)


def _dataset_of(key: str, entry: dict) -> str:
    names = sorted(builtin_dataset_names(), key=len, reverse=True)
    for name in names:
        if key.startswith(name):
            return name
    for name in names:
        if name in str(entry.get("filepath", "")):
            return name
    raise InputError(f"entry {key!r}: cannot tell which dataset it belongs to; known: {sorted(names)}")


def import_prompts(datasets_json: str | Path, out_dir: str | Path) -> list[Path]:
    path = Path(datasets_json)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an object keyed by dataset entry name")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, entry in data.items():
        for field in ("standard_prompt_template", "followup_template"):
            if field not in entry:
                raise InputError(f"{path}: entry {key!r} lacks {field!r}")
        dataset = _dataset_of(key, entry)
        suffix = key[len(dataset) :] if key.startswith(dataset) else f"_{key}"
        files = {
            out / f"original{suffix}.{dataset}.txt": entry["followup_template"],
            out / f"original{suffix}_first_pass.{dataset}.txt": entry["standard_prompt_template"],
        }
        for target, template in files.items():
            target.write_text(convert_format_string(template, f"{path}: {key}"), encoding="utf-8")
            written.append(target)
    return written
