"""OpenAI chat-completions backend: api.openai.com, OpenRouter, a `vllm serve` server, any OpenAI-compatible endpoint.

Parameter mapping (a setting the endpoint cannot receive fails in preflight rather than being silently dropped,
because sampling settings are part of every answer's journal identity):
* OpenAI reasoning models (model id o1/o3/o4/gpt-5..., or `reasoning_effort` set on api.openai.com):
  `max_completion_tokens` and `reasoning_effort`; no temperature, top_p or seed (they reject them).
* other models: temperature, top_p, max_tokens, seed.
* OpenRouter: `reasoning: {effort | max_tokens | enabled}` and `top_k` through extra_body.
* vLLM and other endpoints: `top_k` and `chat_template_kwargs.enable_thinking` through extra_body;
  `reasoning_effort` as is.
Reasoning text comes from `message.reasoning_content` / `message.reasoning`, else from a leading <think> block.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

import openai

from selfexplain.errors import ConfigError
from selfexplain.llm.aio import iterate_async, run_pool
from selfexplain.llm.catalog import ModelEntry
from selfexplain.llm.ratelimit import RateLimiter, estimate_tokens
from selfexplain.llm.retry import JobStats, RetryPolicy, TransientResponseError, check_reachable, error_message
from selfexplain.llm.secrets import api_key, redact
from selfexplain.llm.thinking import split_thinking
from selfexplain.llm.transport import PLACEHOLDER_KEY, aiohttp_transport
from selfexplain.llm.types import ChatRequest, Completion

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def is_official(base_url: str | None) -> bool:
    """api.openai.com itself (the default when a catalog entry names no base_url)."""
    return not base_url or (urlparse(base_url).hostname or "").lower() == "api.openai.com"


def is_openrouter(base_url: str | None) -> bool:
    return bool(base_url) and "openrouter" in (base_url or "").lower()


def is_reasoning_model(entry: ModelEntry) -> bool:
    """OpenAI reasoning models take max_completion_tokens and reasoning_effort, and refuse temperature/top_p."""
    if is_openrouter(entry.base_url):
        return False
    model = entry.model_id.lower()
    return model.startswith(REASONING_PREFIXES) or (
        is_official(entry.base_url) and entry.sampling.reasoning_effort is not None
    )


def unsupported_settings(entry: ModelEntry) -> list[str]:
    """Sampling settings the entry's endpoint would not receive; each one would silently mislabel every answer."""
    s = entry.sampling
    problems = []
    if is_official(entry.base_url):
        if s.top_k is not None:
            problems.append("sampling.top_k is not accepted by api.openai.com")
        if s.thinking is not None or s.thinking_budget is not None:
            problems.append("sampling.thinking/thinking_budget have no switch on api.openai.com; use reasoning_effort")
    if is_reasoning_model(entry) and s.top_p is not None:
        problems.append(f"sampling.top_p is not accepted by reasoning model {entry.model_id}")
    if is_openrouter(entry.base_url):
        if s.reasoning_effort is not None and s.thinking_budget is not None:
            problems.append("OpenRouter takes reasoning_effort or thinking_budget, not both")
        if s.thinking is False and (s.reasoning_effort is not None or s.thinking_budget is not None):
            problems.append("sampling.thinking is false but reasoning_effort/thinking_budget ask for thinking")
    elif not is_official(entry.base_url) and s.thinking_budget is not None:
        problems.append("sampling.thinking_budget has no portable parameter on this OpenAI-compatible endpoint")
    return problems


def build_params(entry: ModelEntry, request: ChatRequest) -> dict[str, Any]:
    """Keyword arguments of `chat.completions.create` for one request."""
    s = request.sampling
    params: dict[str, Any] = {
        "model": entry.model_id,
        "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages],
    }
    extra: dict[str, Any] = {}
    if is_reasoning_model(entry):
        params["max_completion_tokens"] = s.max_tokens
        if s.reasoning_effort is not None:
            params["reasoning_effort"] = s.reasoning_effort
    else:
        if s.temperature is not None:
            params["temperature"] = s.temperature
        if s.top_p is not None:
            params["top_p"] = s.top_p
        params["max_tokens"] = s.max_tokens
        if s.seed is not None:
            params["seed"] = s.seed
    if is_openrouter(entry.base_url):
        reasoning: dict[str, Any] = {}
        if s.thinking is False:
            reasoning["enabled"] = False
        elif s.reasoning_effort is not None:
            reasoning["effort"] = s.reasoning_effort
        elif s.thinking_budget is not None:
            reasoning["max_tokens"] = s.thinking_budget
        elif s.thinking:
            reasoning["enabled"] = True
        if reasoning:
            extra["reasoning"] = reasoning
        if s.top_k is not None:
            extra["top_k"] = s.top_k
    elif not is_official(entry.base_url):
        if s.top_k is not None:
            extra["top_k"] = s.top_k
        if s.thinking is not None:
            extra["chat_template_kwargs"] = {"enable_thinking": bool(s.thinking)}
        if s.reasoning_effort is not None and not is_reasoning_model(entry):
            params["reasoning_effort"] = s.reasoning_effort
    if extra:
        params["extra_body"] = extra
    return params


def _extra_field(obj: Any, name: str) -> Any:
    value = getattr(obj, name, None)
    if value is None:
        extra = getattr(obj, "model_extra", None) or {}
        value = extra.get(name)
    return value


def parse_response(response: Any, latency_s: float) -> Completion:
    """A Completion from a ChatCompletion; raises TransientResponseError when it holds no answer."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        problem = _extra_field(response, "error")
        raise TransientResponseError(f"response without choices{f': {problem}' if problem else ''}")
    choice = choices[0]
    message = choice.message
    content = message.content
    reasoning = _extra_field(message, "reasoning_content") or _extra_field(message, "reasoning")
    if not isinstance(reasoning, str):
        reasoning = None
    if reasoning is None and content is not None:
        reasoning, content = split_thinking(content)
    if content is None:
        content = message.refusal or ""
    usage = getattr(response, "usage", None)
    return Completion(
        text=content,
        reasoning=reasoning or None,
        finish_reason=choice.finish_reason,
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
        latency_s=latency_s,
        model=getattr(response, "model", None),
    )


class OpenAIBackend:
    """Async OpenAI-SDK client with our own rate limits and retry policy (the SDK's retries are switched off)."""

    probe_timeout_s = 5.0
    backoff_initial_s = 1.0
    backoff_max_s = 60.0
    retry_after_cap_s = 120.0

    def __init__(self, entry: ModelEntry) -> None:
        self.entry = entry
        self.policy = RetryPolicy(
            entry.max_retries,
            (openai.APIConnectionError,),
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            retry_after_cap_s=self.retry_after_cap_s,
        )
        self.counts = JobStats()
        self.max_in_flight = 0
        self.rate_limit_wait_s = 0.0

    @property
    def base_url(self) -> str:
        # Pinned even for the default endpoint: the SDK would otherwise follow OPENAI_BASE_URL from the environment.
        return (self.entry.base_url or OPENAI_URL).rstrip("/")

    @property
    def retries(self) -> int:
        """Requests sent again after a retryable failure, over the backend's life."""
        return self.policy.retries

    def stats(self) -> dict[str, Any]:
        return {
            **self.counts.to_dict(),
            **self.policy.stats(),
            "max_in_flight": self.max_in_flight,
            "rate_limit_wait_s": round(self.rate_limit_wait_s, 3),
        }

    def _key(self) -> str:
        if self.entry.api_key_env or is_official(self.entry.base_url) or is_openrouter(self.entry.base_url):
            return api_key(self.entry) or ""
        return PLACEHOLDER_KEY  # a local server without auth; the SDK insists on some key

    def preflight(self) -> None:
        """Key present, settings sendable, endpoint answering; sends no chat request."""
        key = self._key()
        problems = unsupported_settings(self.entry)
        if problems:
            raise ConfigError(f"model {self.entry.name!r}: " + "; ".join(problems))
        if is_reasoning_model(self.entry):
            log.info("%s: reasoning model, temperature/top_p/seed are not sent", self.entry.name)
        if not is_official(self.entry.base_url):
            check_reachable(
                f"{self.base_url}/models", model=self.entry.name, timeout_s=self.probe_timeout_s, secret=key
            )

    def complete(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        """Yield (index, Completion) as answers arrive; stopping the iteration cancels the requests in flight."""
        requests = list(requests)
        if not requests:
            return
        key = self._key()
        try:
            yield from iterate_async(lambda: self._stream(requests, key), name=f"openai-{self.entry.name}")
        finally:
            log.info("%s: %s", self.entry.name, self.stats())

    async def _stream(self, requests: list[ChatRequest], key: str) -> AsyncIterator[tuple[int, Completion]]:
        client = openai.AsyncOpenAI(
            api_key=key,
            base_url=self.base_url,
            max_retries=0,
            timeout=self.entry.request_timeout_s,
            http_client=aiohttp_transport(openai),
        )
        limiter = RateLimiter.from_entry(self.entry)
        self.policy.on_rate_limit = limiter.pause
        for name in ("backoff_initial_s", "backoff_max_s", "retry_after_cap_s"):
            setattr(self.policy, name, getattr(self, name))

        async def work(index: int, request: ChatRequest, emit: Any) -> None:
            emit((index, await self._one(client, limiter, request, key)))

        try:
            async for index, completion in run_pool(requests, work, self.entry.concurrency):
                self.counts.add(completion)
                yield index, completion
        finally:
            self.max_in_flight = max(self.max_in_flight, limiter.max_in_flight)
            self.rate_limit_wait_s += limiter.waited_s
            await client.close()

    async def _one(self, client: Any, limiter: RateLimiter, request: ChatRequest, key: str) -> Completion:
        params = build_params(self.entry, request)
        tokens = estimate_tokens(request.messages, request.sampling.max_tokens)
        timeout_s = self.entry.request_timeout_s
        started = time.perf_counter()

        async def attempt() -> Completion:
            async with limiter.slot(tokens):
                t0 = time.perf_counter()
                try:
                    async with asyncio.timeout(timeout_s):
                        response = await client.chat.completions.create(**params)
                except TimeoutError:
                    raise TimeoutError(f"no complete answer within {timeout_s:g} s") from None
                return parse_response(response, time.perf_counter() - t0)

        try:
            completion, _ = await self.policy.call(attempt)
        except (openai.OpenAIError, TimeoutError, ConnectionError, TransientResponseError) as exc:
            attempts = getattr(exc, "attempts", 1)
            return Completion(
                text=None,
                error=redact(error_message(exc, attempts), key),
                latency_s=time.perf_counter() - started,
                model=self.entry.model_id,
            )
        return completion
