"""Prompt templates read from text files, so users can bring their own wording; shared by both studies.

A template is `<prompt_dir>/<name>.txt`, or `<prompt_dir>/<name>.<dataset>.txt` for a dataset-specific version,
which wins. Templates use `$name` / `${name}` placeholders (string.Template), so JSON braces need no escaping;
a literal dollar sign is `$$`. Which placeholders exist is up to the study that fills them.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path

from selfexplain.errors import ConfigError


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


def template_from_path(path: str | Path) -> Template:
    """A template file a rule received as input (its name is the file stem up to the first dot)."""
    path = Path(path)
    return Template(name=path.name.split(".", 1)[0], path=path, text=path.read_text(encoding="utf-8"))
