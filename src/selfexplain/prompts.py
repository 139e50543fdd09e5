"""Prompt templates read from text files, so users can bring their own wording; shared by both studies.

A template is `<prompt_dir>/<name>.txt`, or `<prompt_dir>/<name>.<dataset>.txt` for a dataset-specific version,
which wins. Templates use `$name` / `${name}` placeholders (string.Template), so JSON braces need no escaping;
a literal dollar sign is `$$`. Which placeholders exist is up to the study that fills them: each study checks its
templates against its own set (`Template.check`) when the workflow is parsed, so a typo fails before any request.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Iterable
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

    def placeholders(self) -> list[str]:
        """Placeholder names in order of first use (`$name` and `${name}`; `$$` is a literal dollar sign)."""
        return string.Template(self.text).get_identifiers()

    def _position(self, offset: int) -> str:
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return f"line {line}, column {column}"

    def _stray_dollar(self) -> str | None:
        """Where the first `$` that starts no placeholder is, if any."""
        for match in string.Template.pattern.finditer(self.text):
            if match.group("invalid") is not None:
                return self._position(match.start())
        return None

    def _first_use(self, name: str) -> str:
        for match in string.Template.pattern.finditer(self.text):
            if name in (match.group("named"), match.group("braced")):
                return self._position(match.start())
        return "?"

    def check(self, allowed: Iterable[str], key: str | None = None) -> None:
        """Raise a one-line ConfigError, naming `key` (the config key that chose the template) and the file, when
        the template is empty, uses a placeholder not in `allowed`, or has a `$` that starts no placeholder."""
        where = f"{key}: {self.path}" if key else str(self.path)
        if not self.text.strip():
            raise ConfigError(f"{where}: the template is empty; write the prompt text into it")
        stray = self._stray_dollar()
        if stray:
            raise ConfigError(
                f"{where} {stray}: a '$' that starts no placeholder; write $$ for a literal dollar sign, "
                "${name} for a placeholder"
            )
        allowed = set(allowed)
        for name in self.placeholders():
            if name not in allowed:
                raise ConfigError(
                    f"{where} {self._first_use(name)}: unknown placeholder ${{{name}}}; "
                    f"this template may use {', '.join('${' + a + '}' for a in sorted(allowed))}"
                )

    def render(self, fields: dict[str, str]) -> str:
        try:
            return string.Template(self.text).substitute(fields)
        except KeyError as exc:
            raise ConfigError(f"{self.path}: unknown placeholder ${exc.args[0]}; available: {sorted(fields)}") from exc
        except ValueError as exc:
            where = self._stray_dollar() or "a placeholder"
            raise ConfigError(
                f"{self.path} {where}: a '$' that starts no placeholder ({exc}); write a literal $ as $$"
            ) from exc


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
