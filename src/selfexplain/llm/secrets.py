"""API keys: read only from the environment variable a catalog entry names, and kept out of every message.

A missing key fails before any request is sent and names the variable (never a value). `redact` scrubs a key
from text that may reach a log, an output table or an exception (for example an SDK error echoing a header).
"""

from __future__ import annotations

import os

from selfexplain.errors import ConfigError
from selfexplain.llm.catalog import ModelEntry

REDACTED = "[REDACTED]"


def api_key(entry: ModelEntry, required: bool = True) -> str | None:
    """The key for `entry` from the environment; None when the entry names no variable and none is required."""
    if not entry.api_key_env:
        if required:
            raise ConfigError(f"model {entry.name!r}: catalog entry names no api_key_env; add the variable's name")
        return None
    value = os.environ.get(entry.api_key_env, "")
    if not value.strip():
        raise ConfigError(
            f"model {entry.name!r}: environment variable {entry.api_key_env} is not set or empty; "
            f"export it before running (the catalog stores only the variable's name)"
        )
    return value.strip()


def redact(text: str | None, *secrets: str | None) -> str | None:
    if text is None:
        return None
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text
