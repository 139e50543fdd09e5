"""Anthropic Messages backend, request by request or through the Message Batches API (`batch: true`).

Parameter mapping:
* system messages go to `system`; `max_tokens` is always sent; there is no seed.
* thinking: `sampling.thinking: false` -> `{"type": "disabled"}`; a `thinking_budget` -> `{"type": "enabled",
  "budget_tokens": N}` (1024 <= N < max_tokens); `thinking: true` without a budget -> `{"type": "adaptive"}` (newer
  models reject budgets). `reasoning_effort` -> `output_config.effort`.
* temperature / top_p / top_k: API version 2026-10-21 (sent by anthropic SDK 2.x) rejects them at any value, so
  they are sent only when the installed SDK speaks an older API version (and temperature/top_k never with
  thinking). On the new version an explicit top_p or top_k fails preflight, and the default temperature is left
  out with a warning: the answers are then sampled at the model's own default.
Thinking blocks become `Completion.reasoning`, text blocks `Completion.text`. A 200 without a usable answer
(a body that is not JSON, no content, empty content, a null block, text that is not a string, only blocks of
unknown types such as a tool call nobody asked for) raises `MalformedResponseError`: retried, then an error row
naming the kind. Unknown blocks beside text or thinking are ignored.
Preflight lists the models with the key (free) before any paid request, so a wrong key stops the job at once.

Batch mode writes each batch's id to a small state file (SELFEXPLAIN_BATCH_STATE_DIR, default
.selfexplain/anthropic_batches) before polling, so a job killed while the batch runs resumes that batch on rerun
instead of paying for a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anthropic

from selfexplain.errors import ConfigError
from selfexplain.llm.aio import run_pool
from selfexplain.llm.api_backend import ApiBackend
from selfexplain.llm.catalog import ModelEntry
from selfexplain.llm.retry import (
    AUTH_STATUS,
    MalformedResponseError,
    error_message,
    probe_endpoint,
    status_of,
)
from selfexplain.llm.secrets import api_key, redact
from selfexplain.llm.transport import PLACEHOLDER_KEY, aiohttp_transport, clean_json
from selfexplain.llm.types import ChatRequest, Completion
from selfexplain.parsing.thinking import split_thinking

log = logging.getLogger(__name__)

ANTHROPIC_URL = "https://api.anthropic.com"
MIN_THINKING_BUDGET = 1024
EFFORTS = ("low", "medium", "high")
BATCH_STATE_ENV = "SELFEXPLAIN_BATCH_STATE_DIR"
BATCH_MAX_REQUESTS = 10_000
BATCH_MAX_BYTES = 100 * 1024 * 1024

_BatchJob = tuple[str | None, Path | None, dict[str, int]]  # (batch id to resume, its state file, custom_id -> index)

try:
    from anthropic._constants import ANTHROPIC_API_VERSION as API_VERSION
except ImportError:  # pragma: no cover - SDKs before the constant existed spoke 2023-06-01
    API_VERSION = "2023-06-01"


def sampling_params_accepted(api_version: str = API_VERSION) -> bool:
    """Whether the API version the SDK sends still accepts temperature, top_p and top_k."""
    return api_version < "2026-10-21"


def thinking_config(entry: ModelEntry) -> dict[str, Any] | None:
    s = entry.sampling
    if s.thinking is False:
        return {"type": "disabled"}
    if s.thinking_budget is not None:
        return {"type": "enabled", "budget_tokens": int(s.thinking_budget)}
    if s.thinking:
        return {"type": "adaptive"}
    return None


def unsupported_settings(entry: ModelEntry, api_version: str = API_VERSION) -> list[str]:
    """Settings every request would be refused for (or silently lose); checked before any request is sent."""
    s = entry.sampling
    problems = []
    if not sampling_params_accepted(api_version):
        for name in ("top_p", "top_k"):
            if getattr(s, name) is not None:
                problems.append(f"sampling.{name} is rejected by Anthropic API version {api_version}")
    if s.reasoning_effort is not None and s.reasoning_effort not in EFFORTS:
        problems.append(f"sampling.reasoning_effort {s.reasoning_effort!r} is not one of {list(EFFORTS)} on Anthropic")
    if s.thinking_budget is not None:
        if s.thinking is False:
            problems.append("sampling.thinking is false but thinking_budget is set")
        if s.thinking_budget < MIN_THINKING_BUDGET:
            problems.append(f"sampling.thinking_budget must be at least {MIN_THINKING_BUDGET} on Anthropic")
        if s.thinking_budget >= s.max_tokens:
            problems.append("sampling.thinking_budget must be below sampling.max_tokens (which includes thinking)")
    return problems


def build_params(entry: ModelEntry, request: ChatRequest, api_version: str = API_VERSION) -> dict[str, Any]:
    """The Messages API body for one request (also the `params` of a batch entry)."""
    s = request.sampling
    system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
    body: dict[str, Any] = {
        "model": entry.model_id,
        "max_tokens": int(s.max_tokens),
        "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages if m["role"] != "system"],
    }
    if system:
        body["system"] = system
    thinking = thinking_config(entry)
    if thinking is not None:
        body["thinking"] = thinking
    thinking_on = thinking is not None and thinking["type"] != "disabled"
    if s.reasoning_effort is not None:
        body["output_config"] = {"effort": s.reasoning_effort}
    if sampling_params_accepted(api_version):
        if not thinking_on and s.temperature is not None:
            body["temperature"] = s.temperature
            if s.top_k is not None:
                body["top_k"] = s.top_k
        if s.top_p is not None:
            body["top_p"] = s.top_p
    return body


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def parse_message(message: Any, latency_s: float | None) -> Completion:
    """A Completion from a Message: text blocks -> text, thinking blocks -> reasoning, usage -> tokens.

    Raises MalformedResponseError when the message holds no answer."""
    if isinstance(message, str | bytes):
        raise MalformedResponseError("not_json", f"body is not JSON: {str(message)[:80]!r}")
    content = _field(message, "content")
    if content is None:
        raise MalformedResponseError("no_content", "message has no content")
    if not isinstance(content, list):
        raise MalformedResponseError("no_content", f"content is a {_describe(content)}, not a list of blocks")
    if not content:
        raise MalformedResponseError("empty_content", "content is an empty list")
    texts: list[str] = []
    thoughts: list[str] = []
    unknown: list[str] = []
    for block in content:
        kind = _field(block, "type")
        if block is None or not isinstance(kind, str):
            raise MalformedResponseError("block_null", f"content block is {_describe(block)}")
        if kind == "text":
            text = _field(block, "text")
            if not isinstance(text, str):
                raise MalformedResponseError(
                    "content_number", f"text block holds {text!r} of type {_describe(text)}, not text"
                )
            texts.append(text)
        elif kind == "thinking":
            thought = _field(block, "thinking")
            if isinstance(thought, str):
                thoughts.append(thought)
        elif kind == "redacted_thinking":
            thoughts.append("[redacted thinking]")
        else:
            unknown.append(kind)
    if not texts and not thoughts:
        kind = "tool_call" if "tool_use" in unknown else "unknown_block"
        raise MalformedResponseError(kind, f"no text or thinking block, only {sorted(set(unknown))}")
    if unknown:
        log.debug("ignored content blocks of types %s", sorted(set(unknown)))
    text = "".join(texts)
    if not thoughts:
        # a model (or proxy) that writes its thinking inline: keep it apart as every backend does
        inline, text = split_thinking(text)
        thoughts = [inline] if inline else []
    usage = _field(message, "usage")
    prompt_tokens = None
    if usage is not None:
        prompt_tokens = (
            _count(_field(usage, "input_tokens"))
            + _count(_field(usage, "cache_creation_input_tokens"))
            + _count(_field(usage, "cache_read_input_tokens"))
        )
    output_tokens = _field(usage, "output_tokens")
    stop = _field(message, "stop_reason")
    model = _field(message, "model")
    return Completion(
        text=text,
        reasoning="\n\n".join(t for t in thoughts if t) or None,
        finish_reason=stop if isinstance(stop, str) else None,
        prompt_tokens=prompt_tokens,
        completion_tokens=output_tokens if isinstance(output_tokens, int) else None,
        latency_s=latency_s,
        model=model if isinstance(model, str) else None,
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class AnthropicBackend(ApiBackend):
    """Async Anthropic-SDK client with our own rate limits and retry policy (the SDK's retries are switched off)."""

    label = "anthropic"
    default_url = ANTHROPIC_URL
    connection_errors = (anthropic.APIConnectionError,)
    sdk_errors = (anthropic.AnthropicError,)
    malformed_errors = (anthropic.APIResponseValidationError,)
    batch_poll_initial_s = 5.0
    batch_poll_max_s = 60.0
    batch_timeout_s = 25 * 3600.0
    batch_create_timeout_s = 600.0

    def __init__(self, entry: ModelEntry) -> None:
        super().__init__(entry)
        self.batch_ids: list[str] = []
        self._warned = False

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "batches": list(self.batch_ids)}

    def preflight(self) -> None:
        """Settings sendable, key present and accepted (one models-list request), endpoint answering; sends no
        message request."""
        problems = unsupported_settings(self.entry)
        if problems:
            raise ConfigError(f"model {self.entry.name!r}: " + "; ".join(problems))
        key = self._key()
        self._warn_unsent()
        url = f"{self.base_url}/v1/models"
        status = probe_endpoint(
            url,
            model=self.entry.name,
            key_env=self.entry.api_key_env,
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
            timeout_s=self.probe_timeout_s,
            secret=key,
        )
        if status >= 300:
            log.info("%s: %s answered HTTP %d; the key is checked by the first request", self.entry.name, url, status)

    def _warn_unsent(self) -> None:
        if self._warned or sampling_params_accepted() or self.entry.sampling.temperature is None:
            return
        self._warned = True
        log.warning(
            "%s: Anthropic API version %s rejects temperature; sampling.temperature=%s is not sent, so answers "
            "are sampled at the model's default temperature",
            self.entry.name,
            API_VERSION,
            self.entry.sampling.temperature,
        )

    def _client(self, key: str, timeout_s: float) -> Any:
        return anthropic.AsyncAnthropic(
            api_key=key,
            base_url=self.base_url,
            max_retries=0,
            timeout=timeout_s,
            http_client=aiohttp_transport(anthropic),
        )

    def _key(self) -> str:
        """The catalog's key; a placeholder only for a custom base_url that names no key variable (a local server)."""
        if self.entry.api_key_env or not self.entry.base_url or "anthropic.com" in self.entry.base_url:
            return api_key(self.entry) or ""
        return PLACEHOLDER_KEY

    def complete(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        self._warn_unsent()
        yield from super().complete(requests)

    def _streamer(self) -> Callable[[list[ChatRequest], str], AsyncIterator[tuple[int, Completion]]]:
        return self._stream_batch if self.entry.batch else self._stream

    # -- one request at a time -------------------------------------------------------------------------------
    def _body(self, request: ChatRequest) -> dict[str, Any]:
        return build_params(self.entry, request)

    async def _send(self, client: Any, body: dict[str, Any]) -> Any:
        # The SDK's documented raw call (as in the OpenAI backend): parse_message reads the JSON itself.
        return await client.post("/v1/messages", cast_to=object, body=body)

    def _parse(self, result: Any, latency_s: float) -> Completion:
        return parse_message(result, latency_s)

    # -- Message Batches -------------------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return Path(os.environ.get(BATCH_STATE_ENV) or ".selfexplain/anthropic_batches")

    def _identity_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.entry.identity, sort_keys=True).encode()).hexdigest()[:16]

    def _load_states(self) -> list[tuple[Path, dict[str, Any]]]:
        """Batches this model submitted earlier and has not finished reading (newest first)."""
        if not self.state_dir.is_dir():
            return []
        states = []
        for path in sorted(self.state_dir.glob(f"{self.entry.name}-*.json"), key=lambda p: -p.stat().st_mtime):
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if state.get("model") == self._identity_hash() and state.get("batch_id"):
                states.append((path, state))
        return states

    def _save_state(self, batch_id: str, keys: list[str]) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
        path = self.state_dir / f"{self.entry.name}-{digest}.json"
        tmp = path.with_suffix(".tmp")
        state = {"batch_id": batch_id, "model": self._identity_hash(), "created": time.time(), "keys": keys}
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, path)
        return path

    def _chunks(self, requests: list[ChatRequest], indices: list[int]) -> list[list[int]]:
        chunks: list[list[int]] = []
        current: list[int] = []
        size = 0
        for i in indices:
            n = len(json.dumps(clean_json(build_params(self.entry, requests[i])), ensure_ascii=False).encode()) + 64
            if current and (len(current) >= BATCH_MAX_REQUESTS or size + n > BATCH_MAX_BYTES):
                chunks.append(current)
                current, size = [], 0
            current.append(i)
            size += n
        if current:
            chunks.append(current)
        return chunks

    async def _stream_batch(self, requests: list[ChatRequest], key: str) -> AsyncIterator[tuple[int, Completion]]:
        client = self._client(key, self.entry.request_timeout_s)
        self._configure_policy(None)
        index_of = {}
        for i, request in enumerate(requests):
            index_of.setdefault(request.key, i)
        jobs: list[_BatchJob] = []
        unclaimed = dict(index_of)
        for path, state in self._load_states():
            mapping = {str(n): unclaimed[k] for n, k in enumerate(state["keys"]) if k in unclaimed}
            if mapping:
                for i in mapping.values():
                    unclaimed.pop(requests[i].key, None)
                jobs.append((state["batch_id"], path, mapping))
                log.info("%s: resuming batch %s for %d request(s)", self.entry.name, state["batch_id"], len(mapping))
        for chunk in self._chunks(requests, sorted(unclaimed.values())):
            jobs.append((None, None, {str(n): i for n, i in enumerate(chunk)}))

        async def work(_: int, job: _BatchJob, emit: Callable[[Any], None]) -> None:
            await self._run_batch(client, requests, key, *job, emit=emit)

        try:
            async for index, completion in run_pool(jobs, work, len(jobs)):
                self.counts.add(completion)
                yield index, completion
        finally:
            await client.close()

    async def _run_batch(
        self,
        client: Any,
        requests: list[ChatRequest],
        key: str,
        batch_id: str | None,
        state_path: Path | None,
        mapping: dict[str, int],
        *,
        emit: Callable[[Any], None],
    ) -> None:
        """Create (or resume) one batch, wait for it to end, and emit a Completion for every request it holds."""
        started = time.perf_counter()
        pending = dict(mapping)

        def fail_rest(message: str) -> None:
            for i in pending.values():
                emit((i, Completion(text=None, error=redact(message, key), model=self.entry.model_id)))
            pending.clear()

        batches = client.messages.batches
        if batch_id is not None:
            try:
                await self.policy.call(lambda: batches.retrieve(batch_id))
            except anthropic.NotFoundError:
                log.warning("%s: batch %s no longer exists; sending its requests again", self.entry.name, batch_id)
                if state_path is not None:
                    state_path.unlink(missing_ok=True)
                batch_id = None
            except anthropic.AnthropicError as exc:
                if status_of(exc) in AUTH_STATUS:
                    raise self._key_rejected(exc, key) from None
                fail_rest(f"could not look up batch {batch_id}: {error_message(exc, getattr(exc, 'attempts', 1))}")
                return
        if batch_id is None:
            mapping = {str(n): i for n, i in enumerate(sorted(mapping.values()))}  # custom_id = position in batch
            pending = dict(mapping)
            entries = [
                {"custom_id": cid, "params": clean_json(build_params(self.entry, requests[i]))}
                for cid, i in mapping.items()
            ]
            try:
                batch, _ = await self.policy.call(
                    lambda: batches.create(requests=entries, timeout=self.batch_create_timeout_s),
                    safe_to_resend=False,
                )
            except anthropic.AnthropicError as exc:
                if status_of(exc) in AUTH_STATUS:
                    raise self._key_rejected(exc, key) from None
                fail_rest(f"batch not created: {error_message(exc, getattr(exc, 'attempts', 1))}")
                return
            batch_id = batch.id
            keys = [""] * len(mapping)
            for cid, i in mapping.items():
                keys[int(cid)] = requests[i].key
            state_path = self._save_state(batch_id, keys)
            log.info("%s: created batch %s with %d request(s)", self.entry.name, batch_id, len(entries))
        self.batch_ids.append(batch_id)

        deadline = time.monotonic() + self.batch_timeout_s
        interval = self.batch_poll_initial_s
        while True:
            try:
                batch, _ = await self.policy.call(lambda: batches.retrieve(batch_id))
            except anthropic.AnthropicError as exc:
                if status_of(exc) in AUTH_STATUS:
                    raise self._key_rejected(exc, key) from None
                fail_rest(
                    f"lost track of batch {batch_id} ({error_message(exc, getattr(exc, 'attempts', 1))}); "
                    "rerun to resume it"
                )
                return
            if batch.processing_status == "ended":
                break
            if time.monotonic() > deadline:
                fail_rest(f"batch {batch_id} still {batch.processing_status} after {self.batch_timeout_s:g} s")
                return
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, self.batch_poll_max_s)

        try:
            decoder, _ = await self.policy.call(lambda: batches.results(batch_id))
            async for line in decoder:
                i = pending.pop(line.custom_id, None)
                if i is not None:
                    emit((i, self._batch_completion(line.result, key, time.perf_counter() - started)))
        except anthropic.NotFoundError as exc:
            # Results are kept for 29 days; once gone, resuming cannot help, so forget the batch.
            if state_path is not None:
                state_path.unlink(missing_ok=True)
            fail_rest(f"results of batch {batch_id} are gone ({error_message(exc)}); a rerun sends these again")
            return
        except Exception as exc:  # includes a stream torn mid-read (raised by the HTTP library, not the SDK)
            fail_rest(
                f"reading results of batch {batch_id} failed ({error_message(exc, getattr(exc, 'attempts', 1))}); "
                "rerun to resume it"
            )
            return
        fail_rest(f"batch {batch_id} returned no result for this request")
        if state_path is not None:
            state_path.unlink(missing_ok=True)

    def _batch_completion(self, result: Any, key: str, latency_s: float) -> Completion:
        kind = getattr(result, "type", None)
        if kind == "succeeded":
            try:
                return parse_message(result.message, latency_s)
            except MalformedResponseError as exc:  # a batch answer cannot be asked again within the batch
                message = error_message(exc)
                return Completion(text=None, error=redact(message, key), latency_s=latency_s, model=self.entry.model_id)
        if kind == "errored":
            error = getattr(getattr(result, "error", None), "error", None)
            detail = f"{getattr(error, 'type', 'error')}: {getattr(error, 'message', '')}" if error else "unknown error"
            message = f"batch request errored: {detail}"
        else:
            message = f"batch request {kind or 'failed'}"
        return Completion(text=None, error=redact(message, key), latency_s=latency_s, model=self.entry.model_id)
