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

Answers are read defensively, because OpenAI-compatible proxies send odd 200s: `content` as a list of parts is
joined (its text parts are the answer); a body that is not JSON, no choices, `choices: [null]`, a choice without
`message`, a number where the text belongs or `content: null` with a tool call raise `MalformedResponseError`
(retried, then an error row naming the kind). `content: null` with nothing else (a model that ran out of tokens
while thinking) is an empty answer.
Preflight sends one free request with the key before any paid one (the models list; OpenRouter's key endpoint,
since its models list needs no key), so a wrong key stops the job at once. A custom `base_url` without
`api_key_env` gets a placeholder key; if that endpoint refuses it, preflight says to set `api_key_env`.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

import openai

from selfexplain.errors import ConfigError
from selfexplain.llm.api_backend import ApiBackend
from selfexplain.llm.catalog import ModelEntry
from selfexplain.llm.retry import MalformedResponseError, probe_endpoint
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


def _field(obj: Any, name: str) -> Any:
    """`obj.name` of an SDK object, `obj[name]` of a dict, else None (never raises)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _extra_field(obj: Any, name: str) -> Any:
    value = _field(obj, name)
    if value is None and not isinstance(obj, dict):
        extra = getattr(obj, "model_extra", None) or {}
        value = extra.get(name)
    return value


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def message_text(content: Any) -> str | None:
    """The answer text of `message.content`: a string as is, a list of parts as its text parts joined; None when
    there is no content. Raises MalformedResponseError for anything else."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            text = _field(part, "text")
            kind = _field(part, "type")
            if kind in (None, "text", "output_text") and isinstance(text, str):
                texts.append(text)
        if texts:
            return "".join(texts)
        kinds = sorted({str(_field(part, "type") or _describe(part)) for part in content})
        raise MalformedResponseError("content_without_text", f"content is a list of parts without text ({kinds})")
    if isinstance(content, int | float):
        raise MalformedResponseError("content_number", f"content is a number ({content!r}), not text")
    raise MalformedResponseError("content_not_text", f"content is of type {_describe(content)}, not text")


def parse_response(response: Any, latency_s: float) -> Completion:
    """A Completion from a ChatCompletion; raises MalformedResponseError when the response holds no answer."""
    if isinstance(response, str | bytes):
        raise MalformedResponseError("not_json", f"body is not JSON: {str(response)[:80]!r}")
    choices = _field(response, "choices")
    if not choices:
        # e.g. OpenRouter when the upstream provider failed: an `error` field instead of choices
        problem = _extra_field(response, "error")
        raise MalformedResponseError("no_choices", f"response without choices{f': {problem}' if problem else ''}")
    if not isinstance(choices, list):
        raise MalformedResponseError("bad_choices", f"choices is a {_describe(choices)}, not a list")
    choice = choices[0]
    if choice is None or isinstance(choice, str | int | float | bool | list):
        raise MalformedResponseError("choices_null", f"first choice is {_describe(choice)}")
    message = _field(choice, "message")
    if message is None or isinstance(message, str | int | float | bool | list):
        raise MalformedResponseError("no_message", f"first choice has no message ({_describe(message)})")
    content = message_text(_field(message, "content"))
    tool_calls = _field(message, "tool_calls")
    if content is None and tool_calls:
        raise MalformedResponseError("tool_call", "content is null and the message holds a tool call (none was asked)")
    reasoning = _extra_field(message, "reasoning_content") or _extra_field(message, "reasoning")
    if not isinstance(reasoning, str):
        reasoning = None
    if reasoning is None and content is not None:
        reasoning, content = split_thinking(content)
    if content is None:
        refusal = _field(message, "refusal")
        content = refusal if isinstance(refusal, str) else ""
    usage = _field(response, "usage")
    finish = _field(choice, "finish_reason")
    model = _field(response, "model")
    return Completion(
        text=content,
        reasoning=reasoning or None,
        finish_reason=finish if isinstance(finish, str) else None,
        prompt_tokens=_count(_field(usage, "prompt_tokens")),
        completion_tokens=_count(_field(usage, "completion_tokens")),
        latency_s=latency_s,
        model=model if isinstance(model, str) else None,
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class OpenAIBackend(ApiBackend):
    """Async OpenAI-SDK client with our own rate limits and retry policy (the SDK's retries are switched off)."""

    label = "openai"
    default_url = OPENAI_URL
    connection_errors = (openai.APIConnectionError,)
    sdk_errors = (openai.OpenAIError,)
    malformed_errors = (openai.APIResponseValidationError,)

    def _key(self) -> str:
        if self.entry.api_key_env or is_official(self.entry.base_url) or is_openrouter(self.entry.base_url):
            return api_key(self.entry) or ""
        return PLACEHOLDER_KEY  # a local server without auth; the SDK insists on some key

    def preflight(self) -> None:
        """Settings sendable, key present and accepted, endpoint answering; sends no chat request."""
        problems = unsupported_settings(self.entry)
        if problems:
            raise ConfigError(f"model {self.entry.name!r}: " + "; ".join(problems))
        key = self._key()
        if is_reasoning_model(self.entry):
            log.info("%s: reasoning model, temperature/top_p/seed are not sent", self.entry.name)
        # OpenRouter lists models without a key; its key endpoint needs one.
        path = "/key" if is_openrouter(self.entry.base_url) else "/models"
        status = probe_endpoint(
            f"{self.base_url}{path}",
            model=self.entry.name,
            key_env=self.entry.api_key_env,
            headers={"Authorization": f"Bearer {key}"},
            timeout_s=self.probe_timeout_s,
            secret=key,
        )
        if status >= 300:
            log.info(
                "%s: %s%s answered HTTP %d; the key is checked by the first request",
                self.entry.name,
                self.base_url,
                path,
                status,
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
        params = build_params(self.entry, request)
        return {**params, **params.pop("extra_body", {})}  # the JSON body as sent: extra_body merged in

    async def _send(self, client: Any, body: dict[str, Any]) -> Any:
        # The SDK's documented raw call: the body as built, the answer as parsed JSON (or text when it is not JSON).
        # `chat.completions.create` would walk the body through its type hints and build pydantic models of the
        # answer, a third of the client's CPU per request; parse_response reads the JSON itself.
        return await client.post("/chat/completions", cast_to=object, body=body)

    def _parse(self, result: Any, latency_s: float) -> Completion:
        return parse_response(result, latency_s)
