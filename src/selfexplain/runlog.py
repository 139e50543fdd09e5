"""Logging for rule scripts and the CLI: one format, stderr redirected into the rule's log file.

A job that fails ends its log with one line saying why (`job failed: ConfigError: ...`), below the full traceback:
the profiles show a failed job's log on the console (`show-failed-logs`), so the cause is the last thing the user
reads, not something to dig out of `logs/`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import TracebackType

FAILED = "job failed"


def one_line_cause(exc: BaseException) -> str:
    """`job failed: <exception type>: <message on one line>`, with anything shaped like an API key removed."""
    from selfexplain.llm.secrets import scrub_keys  # only when a job fails: keeps every script's start light

    message = " ".join(str(exc).split())
    kind = type(exc).__name__
    return scrub_keys(f"{FAILED}: {kind}: {message}" if message else f"{FAILED}: {kind}")


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    sys.__excepthook__(kind, exc, tb)  # the traceback, to sys.stderr (the log file)
    try:
        sys.stderr.write(one_line_cause(exc) + "\n")
        sys.stderr.flush()
    except Exception:  # reporting must never hide the original error
        pass


def to_log_file(path: str | Path) -> None:
    """Send stderr (tracebacks, progress bars, warnings) and logging to the Snakemake log file of a job, and end
    the log of a job that fails with the one-line cause of its exception."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr = open(path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the job
    configure(sys.stderr)
    sys.excepthook = _excepthook


def configure(stream: object = None) -> None:
    logging.basicConfig(
        stream=stream or sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
