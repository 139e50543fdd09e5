"""Append-only per-job journal of completions, kept outside a rule's declared outputs.

Snakemake deletes the outputs of a failed or killed job; the journal survives, and a rerun skips every request it
already holds. Each line is one JSON record, flushed as soon as its completion arrives, so a kill loses at most the
requests in flight. A torn last line (killed mid-write) is ignored on reading. Failed requests are journaled too,
for the record, but never reused: a rerun asks again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import TracebackType

from selfexplain.llm.types import Completion


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._done: dict[str, Completion] = {}
        self.torn_lines = 0
        if self.path.exists():
            self._load()
        self._handle = self.path.open("a", encoding="utf-8")

    def _load(self) -> None:
        with self.path.open("r", encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    completion = Completion.from_dict(record["completion"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.torn_lines += 1
                    continue
                if completion.ok:
                    self._done[record["key"]] = completion
        if self.torn_lines:
            # Start the next record on a fresh line so a torn tail cannot corrupt it.
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write("\n")

    def __len__(self) -> int:
        return len(self._done)

    def __contains__(self, key: str) -> bool:
        return key in self._done

    def get(self, key: str) -> Completion | None:
        return self._done.get(key)

    def append(self, key: str, completion: Completion) -> None:
        record = {"key": key, "time": time.time(), "completion": completion.to_dict()}
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        if completion.ok:
            self._done[key] = completion

    def sync(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if not self._handle.closed:
            self.sync()
            self._handle.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
