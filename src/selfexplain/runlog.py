"""Logging for rule scripts and the CLI: one format, stderr redirected into the rule's log file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def to_log_file(path: str | Path) -> None:
    """Send stderr (tracebacks, progress bars, warnings) and logging to the Snakemake log file of a job."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr = open(path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the job
    configure(sys.stderr)


def configure(stream: object = None) -> None:
    logging.basicConfig(
        stream=stream or sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
