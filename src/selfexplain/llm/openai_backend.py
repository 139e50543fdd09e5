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

import logging
from typing import Any
from urllib.parse import urlparse

import openai

from selfexplain.errors import ConfigError
from selfexplain.llm.api_backend import ApiBackend
from selfexplain.llm.catalog import ModelEntry
from selfexplain.llm.retry import TransientResponseError, check_reachable
from selfexplain.llm.secrets import api_key
from selfexplain.llm.transport import PLACEHOLDER_KEY, aiohttp_transport
from selfexplain.llm.types import ChatRequest, Completion
from selfexplain.parsing.thinking import split_thinking

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


class OpenAIBackend(ApiBackend):
    """Async OpenAI-SDK client with our own rate limits and retry policy (the SDK's retries are switched off)."""

    label = "openai"
    default_url = OPENAI_URL
    connection_errors = (openai.APIConnectionError,)
    sdk_errors = (openai.OpenAIError, TransientResponseError)

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

    def _client(self, key: str, timeout_s: float) -> Any:
        return openai.AsyncOpenAI(
            api_key=key,
            base_url=self.base_url,
            max_retries=0,
            timeout=timeout_s,
            http_client=aiohttp_transport(openai),
        )

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        return build_params(self.entry, request)

    async def _send(self, client: Any, body: dict[str, Any]) -> Any:
        return await client.chat.completions.create(**body)

    def _parse(self, result: Any, latency_s: float) -> Completion:
        return parse_response(result, latency_s)
