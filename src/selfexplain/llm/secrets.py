"""API keys: read only from the environment variable a catalog entry names, and kept out of every message.

A missing key fails before any request is sent and names the variable (never a value). `redact` scrubs a key
from text that may reach a log, an output table or an exception (for example an SDK error echoing a header);
`scrub_keys` removes anything shaped like a provider's key from text when the key itself is unknown (a key pasted
where a variable name belongs, an exception's message).
"""

from __future__ import annotations

import os
import re

from selfexplain.errors import ConfigError
from selfexplain.llm.catalog import ModelEntry

REDACTED = "[REDACTED]"
# Prefixes of the providers' key formats (OpenAI, Anthropic, OpenRouter, Google, Hugging Face, Groq, xAI, GitHub,
# Replicate, Perplexity, NVIDIA), each followed by the key's body.
_KEY = re.compile(
    r"(?:sk-(?:proj-|ant-|or-|svcacct-)?|sk_|AIza|hf_|gsk_|xai-|ghp_|github_pat_|r8_|pplx-|nvapi-)[A-Za-z0-9_\-]{8,}"
)
# A long run of key characters mixing letters and digits: a key of a format not listed above.
_OPAQUE = re.compile(r"(?=[A-Za-z0-9_\-]*[0-9])(?=[A-Za-z0-9_\-]*[a-z])[A-Za-z0-9_\-]{24,}")


def looks_like_key(value: object) -> bool:
    """True for a string shaped like an API key (a known provider prefix, or a long opaque token)."""
    return isinstance(value, str) and bool(_KEY.search(value) or _OPAQUE.fullmatch(value.strip()))


def scrub_keys(text: str) -> str:
    """`text` with every substring in a known provider key format replaced by [REDACTED]."""
    return _KEY.sub(REDACTED, text)


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
