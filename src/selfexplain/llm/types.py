"""Request and completion types shared by every backend."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

Message = dict[str, str]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; part of every request's identity, so changing one never reuses an old answer."""

    temperature: float | None = 0.0
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int = 1000
    seed: int | None = 42
    thinking: bool | None = None
    reasoning_effort: str | None = None
    thinking_budget: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Sampling:
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown sampling setting(s) {unknown}; allowed: {sorted(cls.__dataclass_fields__)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChatRequest:
    """One chat to complete. `identity` names the model (backend, model id, revision); `meta` is not hashed."""

    messages: tuple[Message, ...]
    sampling: Sampling
    identity: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @cached_property
    def key(self) -> str:
        """Journal key: a hash of model identity, full messages and sampling."""
        payload = json.dumps(
            {"model": self.identity, "messages": list(self.messages), "sampling": self.sampling.to_dict()},
            sort_keys=True,
            ensure_ascii=False,
        )
        # surrogatepass: a lone surrogate a model sent back (e.g. in a follow-up's assistant turn) hashes like any text;
        # every other string gives the same bytes as plain utf-8, so no existing key changes
        return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Completion:
    """A model's reply. `reasoning` holds thinking text kept apart from the answer in `text`."""

    text: str | None
    reasoning: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})
