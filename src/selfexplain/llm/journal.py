"""Append-only per-job journal of completions, kept outside a rule's declared outputs.

Snakemake deletes the outputs of a failed or killed job; the journal survives, and a rerun skips every request it
already holds. Each line is one JSON record, written with one system call as soon as its completion arrives, so a
kill loses at most the requests in flight. Failed requests are journaled too, for the record, but never reused: a
rerun asks again.

What a kill or a bad model can leave, and what reading does with it:

* Any text a model or a broken decoder produces (lone surrogates such as "\\ud800", NUL, U+FFFF, line and
  paragraph separators, bidi marks) is written ASCII-escaped (JSON's \\uXXXX), so every line is plain ASCII and
  reads back as the same Python string. Journals of earlier versions (raw UTF-8) read as before.
* A torn last line (the job was killed while writing it: half a record, possibly cut inside a multi-byte
  character, or the zero bytes a crash leaves) is skipped with a warning `FILE:LINE: torn last line ...` and cut
  off the file, so the next record starts on a fresh line and the warning is given once; its request is asked
  again. A complete record that only lacks its newline is kept, and the next append starts a new line.
* A damaged line elsewhere (not UTF-8, not JSON, JSON of the wrong shape, a completion lacking fields or with
  fields of the wrong type) is skipped with a warning `FILE:LINE: skipped, ...` and kept in the file; its
  request, if it held one, is asked again. It is a warning, not an error, because such a line in a file that
  holds journal records is damage to a journal (a disk fault, a crash, a torn line an earlier version left in
  place): skipping it costs at most one re-asked request per line and never reuses a wrong answer, while an error
  would block every rerun until someone hand-edits a file of hashes.
* A file in which no line is a journal record and some line is not even the remains of one (a results table,
  the synthetic call log, a JSON output passed as journal by mistake) is refused with an InputError naming it,
  before anything is written to it: appending would damage the user's file, and there is nothing in it to reuse.

Reading never decodes the file as a whole, so invalid UTF-8 anywhere cannot crash it. `append` refuses (TypeError)
a completion it could not read back (an answer without text, a field of the wrong type): that is a backend bug.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from selfexplain.errors import InputError
from selfexplain.llm.types import Completion

log = logging.getLogger(__name__)

# Every record starts so (this and earlier versions), which tells a torn record from a foreign line.
RECORD_START = b'{"key": '
# The fields every completion record has held since the first version; fields added to Completion later are
# optional on reading, so journals written before them stay valid.
COMPLETION_FIELDS: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "reasoning": (str,),
    "finish_reason": (str,),
    "prompt_tokens": (int,),
    "completion_tokens": (int,),
    "latency_s": (int, float),
    "error": (str,),
    "model": (str,),
}
# Damaged lines warned about one by one; the rest are summed up in one more warning.
MAX_LINE_WARNINGS = 10


class DamagedLine(ValueError):
    """A journal line that is not a usable record; the message says what it is instead. `fragment`: the line may
    be what is left of a record (zero bytes, or the start of one that is not even JSON)."""

    def __init__(self, problem: str, fragment: bool = False) -> None:
        super().__init__(problem)
        self.fragment = fragment


def completion_problem(data: Any) -> str | None:
    """Why a completion's dict cannot be reused as one, or None when it can."""
    if not isinstance(data, dict):
        return "a record without a 'completion' object"
    missing = [name for name in COMPLETION_FIELDS if name not in data]
    if missing:
        return "a completion lacking " + ", ".join(repr(name) for name in missing)
    for name, types in COMPLETION_FIELDS.items():
        value = data[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            expected = " or ".join(t.__name__ for t in types)
            return f"a completion whose {name!r} is a {type(value).__name__}, not {expected}"
    if data["text"] is None and data["error"] is None:
        return "an answer without text (neither 'text' nor 'error')"
    return None


def encode_record(key: str, completion: Completion, when: float | None = None) -> bytes:
    """One journal line: ASCII-only JSON ending in a newline; TypeError when it could not be read back."""
    data = completion.to_dict()
    problem = "a record without a 'key'" if not isinstance(key, str) or not key else completion_problem(data)
    if problem:
        raise TypeError(problem)
    record = {"key": key, "time": time.time() if when is None else when, "completion": data}
    return (json.dumps(record, ensure_ascii=True) + "\n").encode("ascii")


def decode_record(line: bytes) -> tuple[str, Completion]:
    """(key, completion) of one journal line; DamagedLine saying what the line is instead."""
    line = line.removesuffix(b"\n")
    body = line.rstrip(b"\r").strip(b"\x00")
    unfinished = body.startswith(RECORD_START) or RECORD_START.startswith(body)
    if not body:
        raise DamagedLine("zero bytes (left by a crash or a disk fault)", fragment=True)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})"
        raise DamagedLine(problem, fragment=unfinished) from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"not JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}"
        raise DamagedLine(problem, fragment=unfinished) from None
    if not isinstance(record, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(record), "number")
        raise DamagedLine(f"a JSON {kind}, not a journal record")
    key = record.get("key")
    if not isinstance(key, str) or not key:
        raise DamagedLine("a record without a 'key'")
    problem = completion_problem(record.get("completion"))
    if problem:
        raise DamagedLine(problem)
    return key, Completion.from_dict(record["completion"])


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Journal:
    """The journal at `path`: `key in journal`, `get(key)` for answers held, `append(key, completion)` to add one.

    After opening, `skipped` lists (line number, what it is) for every damaged line and `torn_lines` is 1 when a
    torn last line was cut off.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._done: dict[str, Completion] = {}
        self.torn_lines = 0
        self.skipped: list[tuple[int, str]] = []
        self._at_line_start = True
        if self.path.exists():
            self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def _load(self) -> None:
        records = 0
        foreign = False  # a damaged line that is not what is left of a record
        torn: tuple[int, str, int] | None = None  # line number, problem, bytes
        complete_end = 0  # bytes up to the end of the last newline-terminated line
        number = 0
        line = b""
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                terminated = line.endswith(b"\n")
                if line.strip():
                    try:
                        key, completion = decode_record(line)
                    except DamagedLine as exc:
                        if not terminated and exc.fragment:
                            torn = (number, str(exc), len(line))
                        else:
                            self.skipped.append((number, str(exc)))
                            foreign = foreign or not exc.fragment
                    else:
                        records += 1
                        if completion.ok:
                            self._done[key] = completion
                if terminated:
                    complete_end += len(line)
        if records == 0 and foreign:
            first, problem = self.skipped[0]
            raise InputError(
                f"{self.path}:{first}: not a selfexplain journal ({problem}, and no line is a journal record); "
                "pass the job's own journal, or delete it if it is one (it holds no answers)"
            )
        for number_, problem in self.skipped[:MAX_LINE_WARNINGS]:
            log.warning("%s:%d: skipped, %s; its request, if any, is asked again", self.path, number_, problem)
        if len(self.skipped) > MAX_LINE_WARNINGS:
            rest = [n for n, _ in self.skipped[MAX_LINE_WARNINGS:]]
            span = f"line {rest[0]}" if len(rest) == 1 else f"lines {rest[0]}-{rest[-1]}"
            log.warning("%s: %d more damaged lines skipped (%s)", self.path, len(rest), span)
        if torn is not None:
            self.torn_lines = 1
            os.truncate(self.path, complete_end)
            log.warning(
                "%s:%d: torn last line (%s; %d bytes left by a job stopped mid-write) removed; "
                "its request is asked again",
                self.path,
                *torn,
            )
        else:
            self._at_line_start = not line or line.endswith(b"\n")

    def __len__(self) -> int:
        return len(self._done)

    def __contains__(self, key: str) -> bool:
        return key in self._done

    def get(self, key: str) -> Completion | None:
        return self._done.get(key)

    def append(self, key: str, completion: Completion) -> None:
        """Write one record with one system call (a fresh line first if the file ends mid-line)."""
        try:
            data = encode_record(key, completion)
        except TypeError as exc:
            raise TypeError(f"journal {self.path}: cannot record {key}: {exc}") from None
        if not self._at_line_start:
            data = b"\n" + data
        self._at_line_start = False  # until the whole line is written (a full disk may stop it half-way)
        _write_all(self._fd, data)
        self._at_line_start = True
        if completion.ok:
            self._done[key] = completion

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
