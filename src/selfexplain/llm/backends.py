"""Backend registry: the one place that turns a catalog entry into something that completes requests.

Every backend implements `preflight()` (fail before any request when a key, an install or an endpoint is
missing) and `complete(requests)`, which yields `(index, Completion)` pairs as answers arrive, in any order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from selfexplain.errors import ConfigError
from selfexplain.llm.catalog import ModelEntry
from selfexplain.llm.types import ChatRequest, Completion

CALL_LOG_ENV = "SELFEXPLAIN_SYNTHETIC_CALL_LOG"


class Backend(Protocol):
    def preflight(self) -> None: ...

    def complete(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]: ...


def make_backend(entry: ModelEntry) -> Backend:
    """Build the backend of a catalog entry. Heavy client libraries are imported only here, when needed."""
    if entry.backend == "synthetic":
        from selfexplain.llm.synthetic import SyntheticBackend

        call_log = entry.synthetic.get("call_log") or os.environ.get(CALL_LOG_ENV)
        return SyntheticBackend(entry.synthetic, call_log=call_log)
    if entry.backend == "openai":
        from selfexplain.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(entry)
    if entry.backend == "anthropic":
        from selfexplain.llm.anthropic_backend import AnthropicBackend

        return AnthropicBackend(entry)
    if entry.backend == "vllm":
        from selfexplain.llm.vllm_backend import VLLMBackend

        return VLLMBackend(entry)
    raise ConfigError(f"model {entry.name!r}: unknown backend {entry.backend!r}")


def backend_provenance(backend: object) -> dict[str, Any]:
    """What the backend reports about itself (vLLM: versions, GPU, engine arguments, structured output)."""
    report = getattr(backend, "provenance", None)
    return report() if callable(report) else {}
