"""Model catalog: each model is named once, with everything needed to call it and to tell it apart.

The catalog holds the *name* of the environment variable with an API key, never the key itself. Limits the schema
cannot express (they depend on the backend) are checked by `entry_problems` when the catalog is loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from selfexplain.llm.types import ChatRequest, Message, Sampling

API_BACKENDS = ("openai", "anthropic")
# Highest sampling temperature each backend's API accepts (OpenAI 0-2, Anthropic 0-1). vLLM itself has no upper
# limit, but a model often moves between the vllm backend and an OpenAI-compatible `vllm serve` endpoint (backend
# openai), so it gets the OpenAI range: an entry valid for one stays valid for the other.
MAX_TEMPERATURE = {"openai": 2.0, "anthropic": 1.0, "vllm": 2.0}
# Requests in flight per job. Each holds a connection (an open file): 1024 is a common per-process open-file limit,
# and at a few seconds per answer it is already over 10,000 requests per minute, beyond most accounts' rate limits.
MAX_CONCURRENCY = 1024


@dataclass(frozen=True)
class ModelEntry:
    name: str
    backend: str
    model_id: str
    sampling: Sampling
    revision: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    system_prompt: str | None = None
    family: str | None = None
    gpus: int = 0
    vllm: dict[str, Any] = field(default_factory=dict)
    provider: str | None = None
    request_timeout_s: float = 120.0
    max_retries: int = 8
    max_connection_failures: int = 20
    batch: bool = False
    structured_output: bool = False
    concurrency: int = 8
    rate_limits: dict[str, Any] = field(default_factory=dict)
    prices: dict[str, Any] = field(default_factory=dict)
    synthetic: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def identity(self) -> dict[str, Any]:
        """What makes two models different for the journal; a synthetic model's behaviour is its revision."""
        identity: dict[str, Any] = {
            "backend": self.backend,
            "model_id": self.model_id,
            "revision": self.revision,
        }
        if self.backend == "synthetic":
            blob = json.dumps(self.synthetic, sort_keys=True)
            identity["behaviour"] = hashlib.sha256(blob.encode()).hexdigest()[:16]
        if self.base_url:
            identity["base_url"] = self.base_url
        return identity

    def system_messages(self) -> list[Message]:
        """The system message the entry asks for, if any, to start every chat with."""
        return [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []

    def request(self, messages: list[Message] | tuple[Message, ...], repeat: int = 0) -> ChatRequest:
        """A chat for this model. Repeat r > 0 of the same chat is another request (its own journal key, and the
        sampling seed shifted by r), so repeated sampling never reuses the first answer."""
        if repeat == 0:
            return ChatRequest(messages=tuple(messages), sampling=self.sampling, identity=self.identity)
        seed = None if self.sampling.seed is None else self.sampling.seed + repeat
        return ChatRequest(
            messages=tuple(messages),
            sampling=dataclasses.replace(self.sampling, seed=seed),
            identity={**self.identity, "repeat": repeat},
        )

    def provenance(self) -> dict[str, Any]:
        """What an output records about the model that made it."""
        return {"model": self.name, "catalog_entry": self.raw, "sampling": self.sampling.to_dict()}

    @property
    def is_synthetic(self) -> bool:
        return self.backend == "synthetic"

    @property
    def api_provider(self) -> str | None:
        """Provider whose global Snakemake resource (api_<provider>) caps concurrent jobs; None off the network."""
        if self.backend in ("synthetic", "vllm"):
            return None
        if self.provider:
            return self.provider
        if self.base_url and "openrouter" in self.base_url:
            return "openrouter"
        if self.base_url and self.backend == "openai":
            return "local"
        return self.backend


def entry_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for each setting of a schema-valid catalog entry that its backend cannot take."""
    backend = data["backend"]
    problems = []
    temperature = (data.get("sampling") or {}).get("temperature")
    limit = MAX_TEMPERATURE.get(backend)
    if limit is not None and temperature is not None and temperature > limit:
        problems.append(
            ("sampling.temperature", f"{temperature:g} is above the {backend} backend's maximum of {limit:g}")
        )
    if backend in API_BACKENDS and data.get("gpus", 0) > 0:
        problems.append(
            (
                "gpus",
                f"{data['gpus']} for an {backend} (API) model, which runs on the provider's machines; "
                "remove gpus (only the vllm backend uses GPUs)",
            )
        )
    concurrency = data.get("concurrency", 1)
    if concurrency > MAX_CONCURRENCY:
        problems.append(
            (
                "concurrency",
                f"{concurrency} requests in flight per job is more than the {MAX_CONCURRENCY} allowed "
                "(each holds an open connection; 1024 already exceed most accounts' rate limits)",
            )
        )
    return problems


def parse_entry(name: str, data: dict[str, Any]) -> ModelEntry:
    """Build an entry from a catalog mapping that already passed the catalog schema."""
    known = set(ModelEntry.__dataclass_fields__) - {"name", "raw", "sampling"}
    kwargs = {k: v for k, v in data.items() if k in known}
    return ModelEntry(name=name, sampling=Sampling.from_dict(data.get("sampling")), raw=dict(data), **kwargs)


def entry_from_json(name: str, entry_json: str) -> ModelEntry:
    """The entry a rule received as a JSON parameter (a params value, so editing it reruns the rule's jobs)."""
    return parse_entry(name, json.loads(entry_json))
