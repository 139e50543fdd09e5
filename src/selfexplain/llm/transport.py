"""HTTP plumbing shared by the API backends, and the text clean-up for what leaves the inference layer.

Lone surrogates (U+D800-U+DFFF without their partner, as a broken decoder or a model's byte-level output hands
them over) are valid in a Python str but not in UTF-8: httpx cannot encode a request body holding one, and pyarrow
cannot write a table holding one. The journal keeps them exactly (it escapes them); `clean_text` replaces each with
U+FFFD (a proper pair becomes its character) wherever text leaves for the network or for a table.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from selfexplain.llm.types import Completion

# Sent to local OpenAI/Anthropic-compatible servers that need no key (the SDKs insist on one).
PLACEHOLDER_KEY = "EMPTY"

T = TypeVar("T")


def aiohttp_transport(sdk: Any) -> Any:
    """The SDK's aiohttp transport when `httpx-aiohttp` is installed: about twice the requests per second of the
    default httpx pool at high concurrency (measured against `selfexplain serve`); None keeps the SDK default."""
    try:
        import httpx_aiohttp  # noqa: F401
    except ImportError:
        return None
    return sdk.DefaultAioHttpClient()


def clean_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (a high-low pair becomes the character it encodes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def clean_json(value: T) -> T:
    """A JSON-like value (dicts, lists, strings) with `clean_text` applied to every string, keys included; the
    value itself when it holds no lone surrogate."""
    if isinstance(value, str):
        return clean_text(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {clean_json(k): clean_json(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list | tuple):
        return type(value)(clean_json(v) for v in value)  # type: ignore[return-value]
    return value


def clean_completion(completion: Completion) -> Completion:
    """`completion` with `clean_text` applied to its text fields (the same object when none holds a surrogate)."""
    changes = {
        name: clean_text(value)
        for name in ("text", "reasoning", "finish_reason", "error", "model")
        if isinstance(value := getattr(completion, name), str) and clean_text(value) is not value
    }
    return dataclasses.replace(completion, **changes) if changes else completion
