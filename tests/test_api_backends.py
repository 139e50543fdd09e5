"""API backends against a scripted fake server over real HTTP on 127.0.0.1, with the real OpenAI and Anthropic SDKs.

Covers: answers aligned by index through the runner, retries (429 + Retry-After, 5xx, 529, timeouts, dropped
connections) counted and bounded, no retry on 400, preflight failures before any request, keys never leaking,
reasoning kept apart, parameter mapping per endpoint, rate limits and the concurrency bound, the async bridge's
cancellation, and Anthropic batch mode (including resuming a batch after a kill). Failing well: malformed 200s
retried then error rows (never a crash), a rejected key stopping the job after one answer (and in preflight), and
consecutive refused connections stopping it with the real cause.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pandas as pd
import pytest
from aiohttp import web

from selfexplain.errors import ConfigError, InferenceError
from selfexplain.io import write_parquet
from selfexplain.llm.aio import iterate_async, run_pool
from selfexplain.llm.backends import make_backend
from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.journal import Journal
from selfexplain.llm.ratelimit import RateLimiter, TokenBucket, estimate_tokens
from selfexplain.llm.retry import (
    EndpointUnreachable,
    KeyRejected,
    MalformedResponseError,
    RetryPolicy,
    connection_failure,
    error_message,
    retry_after_s,
)
from selfexplain.llm.runner import completion_columns, run_requests
from selfexplain.llm.secrets import REDACTED
from selfexplain.llm.transport import clean_completion, clean_json, clean_text
from selfexplain.llm.types import ChatRequest, Completion

KEY = "sk-test-SECRET123"
KEY_ENV = "SELFEXPLAIN_TEST_API_KEY"

Script = Callable[[int, dict[str, Any], web.Request], Awaitable[web.StreamResponse]]


# -- fake server -----------------------------------------------------------------------------------------------
def chat_json(body: dict[str, Any], text: str | None = None, **message: Any) -> dict[str, Any]:
    if text is None:
        text = "A:" + body["messages"][-1]["content"]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text, **message}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def message_json(body: dict[str, Any], blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if blocks is None:
        blocks = [{"type": "text", "text": "A:" + body["messages"][-1]["content"]}]
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": blocks,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 13, "output_tokens": 5},
    }


def error(status: int, message: str = "scripted failure", headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"type": "error", "message": message}}, status=status, headers=headers)


async def drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer."""
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0.05)
    return web.Response()


class FakeAPI:
    """OpenAI /chat/completions + /models and Anthropic /v1/messages (+ batches) on a private loop and thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay_s = 0.0
        self.openai: Script = self._openai_ok
        self.anthropic: Script = self._anthropic_ok
        self.models: Script | None = None  # GET .../models (and OpenRouter's .../key); None: an empty list
        self.batches: dict[str, dict[str, Any]] = {}
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _openai_ok(self, n: int, body: dict[str, Any], request: web.Request) -> web.StreamResponse:
        return web.json_response(chat_json(body))

    async def _anthropic_ok(self, n: int, body: dict[str, Any], request: web.Request) -> web.StreamResponse:
        return web.json_response(message_json(body))

    def count(self, suffix: str) -> int:
        return sum(1 for path, _, _ in self.calls if path.endswith(suffix))

    def bodies(self, suffix: str) -> list[dict[str, Any]]:
        return [body for path, body, _ in self.calls if path.endswith(suffix)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        body = await request.json() if request.can_read_body else {}
        self.calls.append((path, body, dict(request.headers)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if path.endswith("/models") or path.endswith("/key"):
                if self.models is not None:
                    return await self.models(self.count(path), body, request)
                return web.json_response({"object": "list", "data": []})
            if path.endswith("/chat/completions"):
                return await self.openai(self.count("/chat/completions") - 1, body, request)
            if path == "/v1/messages":
                return await self.anthropic(self.count("/v1/messages") - 1, body, request)
            if path.startswith("/v1/messages/batches"):
                return self._batch(request, body)
            return error(404, f"no route {path}")
        finally:
            self.in_flight -= 1

    def _batch_json(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        ended = batch["polls"] >= 2
        now = datetime.now(UTC).isoformat()
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else len(batch["requests"]),
                "succeeded": len(batch["requests"]) if ended else 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": now,
            "expires_at": now,
            "ended_at": now if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch_id}/results" if ended else None,
        }

    def _batch(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")  # v1 messages batches [id] [results]
        if request.method == "POST" and len(parts) == 3:
            batch_id = f"msgbatch_{len(self.batches) + 1}"
            self.batches[batch_id] = {"requests": body["requests"], "polls": 0}
            return web.json_response(self._batch_json(batch_id))
        batch_id = parts[3]
        if batch_id not in self.batches:
            return error(404, "no such batch")
        if len(parts) == 4:
            self.batches[batch_id]["polls"] += 1
            return web.json_response(self._batch_json(batch_id))
        lines = []
        for item in self.batches[batch_id]["requests"]:
            params = item["params"]
            if params["messages"][-1]["content"] == "fail":
                result = {
                    "type": "errored",
                    "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}},
                }
            else:
                result = {"type": "succeeded", "message": message_json(params)}
            lines.append(json.dumps({"custom_id": item["custom_id"], "result": result}))
        return web.Response(body=("\n".join(lines) + "\n").encode(), content_type="application/binary")

    def start(self) -> FakeAPI:
        self._thread.start()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)

        async def setup() -> int:
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]

        port = asyncio.run_coroutine_threadsafe(setup(), self._loop).result(10)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:  # handlers still sleeping for an abandoned request
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def fake():
    server = FakeAPI().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def openai_entry(fake: FakeAPI, **overrides: Any):
    data = {
        "backend": "openai",
        "model_id": "gpt-test",
        "base_url": f"{fake.url}/v1",
        "api_key_env": KEY_ENV,
        "max_retries": 3,
        "request_timeout_s": 5,
        "concurrency": 4,
        **overrides,
    }
    return parse_entry("fake-openai", data)


def anthropic_entry(fake: FakeAPI, **overrides: Any):
    data = {
        "backend": "anthropic",
        "model_id": "claude-test",
        "base_url": fake.url,
        "api_key_env": KEY_ENV,
        "max_retries": 3,
        "request_timeout_s": 5,
        "concurrency": 4,
        **overrides,
    }
    return parse_entry("fake-anthropic", data)


def fast(backend):
    backend.backoff_initial_s = 0.01
    backend.backoff_max_s = 0.05
    return backend


def chats(entry, texts, system: str | None = "Be brief.") -> list[ChatRequest]:
    head = ({"role": "system", "content": system},) if system else ()
    return [
        ChatRequest(messages=(*head, {"role": "user", "content": t}), sampling=entry.sampling, identity=entry.identity)
        for t in texts
    ]


def run(backend, requests, tmp_path, name="j.jsonl"):
    return run_requests(backend, requests, tmp_path / name, progress=False, fail_on_error=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- OpenAI-compatible backend --------------------------------------------------------------------------------
def test_answers_come_back_aligned_with_usage(fake, tmp_path):
    async def shuffled(n, body, request):
        # Later requests answer sooner, so completions arrive out of order.
        await asyncio.sleep(0.01 * (20 - int(body["messages"][-1]["content"][1:])))
        return web.json_response(chat_json(body))

    fake.openai = shuffled
    entry = openai_entry(fake, concurrency=8)
    backend = make_backend(entry)
    texts = [f"q{i}" for i in range(20)]
    out = run(backend, chats(entry, texts), tmp_path)
    assert [c.text for c in out] == [f"A:{t}" for t in texts]
    assert all(c.ok and c.prompt_tokens == 11 and c.completion_tokens == 7 for c in out)
    assert all(c.latency_s is not None and c.latency_s > 0 and c.model == "gpt-test" for c in out)
    assert fake.count("/chat/completions") == 20
    assert backend.retries == 0
    stats = backend.stats()
    assert stats["completed"] == 20 and stats["prompt_tokens"] == 220 and stats["errors"] == 0
    assert len((tmp_path / "j.jsonl").read_text().splitlines()) == 20


def test_429_retry_after_is_honoured_and_counted(fake, tmp_path):
    async def limited(n, body, request):
        if n < 2:
            return error(429, "slow down", {"Retry-After": "0.3"})
        return web.json_response(chat_json(body))

    fake.openai = limited
    entry = openai_entry(fake, concurrency=1)
    backend = make_backend(entry)
    backend.backoff_initial_s = 5.0  # would make the test slow if Retry-After were ignored
    start = time.perf_counter()
    (completion,) = run(backend, chats(entry, ["q"]), tmp_path)
    elapsed = time.perf_counter() - start
    assert completion.ok and completion.text == "A:q"
    assert elapsed >= 0.6
    assert elapsed < 4.0
    assert backend.retries == 2
    assert backend.stats()["retry_reasons"] == {"429": 2}
    assert fake.count("/chat/completions") == 3


@pytest.mark.parametrize("failure", ["500", "503", "408", "slow", "drop"])
def test_transient_failures_are_retried(fake, tmp_path, failure):
    async def flaky(n, body, request):
        if n == 0:
            if failure == "slow":
                await asyncio.sleep(2.0)
            elif failure == "drop":
                return await drop(request)
            else:
                return error(int(failure))
        return web.json_response(chat_json(body))

    fake.openai = flaky
    entry = openai_entry(fake, request_timeout_s=0.4, concurrency=1)
    backend = fast(make_backend(entry))
    (completion,) = run(backend, chats(entry, ["q"]), tmp_path)
    assert completion.ok and completion.text == "A:q"
    assert backend.retries == 1
    assert fake.count("/chat/completions") == 2


def test_400_is_not_retried_and_fails_at_the_end(fake, tmp_path):
    async def bad(n, body, request):
        return error(400, "invalid model parameter")

    fake.openai = bad
    entry = openai_entry(fake)
    backend = fast(make_backend(entry))
    (completion,) = run(backend, chats(entry, ["q"]), tmp_path)
    assert not completion.ok and completion.text is None
    assert "400" in completion.error and "invalid model parameter" in completion.error
    assert fake.count("/chat/completions") == 1
    assert backend.retries == 0
    with pytest.raises(InferenceError, match="1 of 1 request"):
        run_requests(backend, chats(entry, ["q"]), tmp_path / "j2.jsonl", progress=False)


def test_quota_exhausted_429_is_not_retried(fake, tmp_path):
    async def broke(n, body, request):
        body = {"error": {"message": "You exceeded your current quota", "type": "x", "code": "insufficient_quota"}}
        return web.json_response(body, status=429)

    fake.openai = broke
    entry = openai_entry(fake)
    backend = fast(make_backend(entry))
    (completion,) = run(backend, chats(entry, ["q"]), tmp_path)
    assert not completion.ok and "quota" in completion.error
    assert fake.count("/chat/completions") == 1


def test_retries_stop_after_max_retries(fake, tmp_path):
    async def down(n, body, request):
        return error(500)

    fake.openai = down
    entry = openai_entry(fake, max_retries=2)
    backend = fast(make_backend(entry))
    (completion,) = run(backend, chats(entry, ["q"]), tmp_path)
    assert not completion.ok and "500" in completion.error and "3 attempts" in completion.error
    assert fake.count("/chat/completions") == 3
    assert backend.retries == 2


def test_missing_key_fails_before_any_request(fake, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    for entry in (openai_entry(fake), anthropic_entry(fake)):
        with pytest.raises(ConfigError, match=KEY_ENV):
            run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    assert fake.calls == []
    assert not (tmp_path / "j.jsonl").exists()


def test_unreachable_base_url_fails_preflight(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    entry = parse_entry("gone", {"backend": "openai", "model_id": "m", "base_url": url, "api_key_env": KEY_ENV})
    with pytest.raises(ConfigError, match=re.escape(url)):
        run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    entry = parse_entry("gone", {"backend": "anthropic", "model_id": "m", "base_url": url, "api_key_env": KEY_ENV})
    with pytest.raises(ConfigError, match=r"unreachable \(connection refused\)"):
        make_backend(entry).preflight()


def test_key_never_leaks_into_errors_or_journal(fake, tmp_path):
    async def echo_key(n, body, request):
        return error(400, f"invalid request, key {request.headers.get('Authorization')}")

    fake.openai = echo_key
    fake.anthropic = echo_key
    for entry in (openai_entry(fake), anthropic_entry(fake)):
        (completion,) = run(fast(make_backend(entry)), chats(entry, ["q"]), tmp_path, f"{entry.name}.jsonl")
        assert not completion.ok
        assert REDACTED in completion.error and KEY not in completion.error
        assert KEY not in (tmp_path / f"{entry.name}.jsonl").read_text()
    # The key did travel, in the header only: the redaction above was really tested.
    sent = [headers for path, _, headers in fake.calls if not path.endswith("/models")]
    assert len(sent) == 2 and all(KEY in h.get("Authorization", "") for h in sent)


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("make_entry", [openai_entry, anthropic_entry], ids=["openai", "anthropic"])
def test_rejected_key_stops_the_job_after_the_first_answer(fake, tmp_path, status, make_entry):
    """A key revoked mid-job: answers received are kept, one more request is sent, the rest are not."""

    async def revoked(n, body, request):
        if n < 3:
            return web.json_response(chat_json(body) if "chat" in request.path else message_json(body))
        return error(status, f"key {request.headers.get('Authorization') or request.headers.get('x-api-key')} revoked")

    fake.openai = fake.anthropic = revoked
    entry = make_entry(fake, concurrency=1, max_retries=5)
    backend = fast(make_backend(entry))
    with pytest.raises(KeyRejected) as info:
        run_requests(backend, chats(entry, [f"q{i}" for i in range(8)]), tmp_path / "j.jsonl", progress=False)
    message = str(info.value)
    assert "\n" not in message and KEY not in message and REDACTED in message
    assert f"model {entry.name!r}" in message and f"${KEY_ENV}" in message and f"HTTP {status}" in message
    assert "3 of 8 answers kept in" in message
    posts = fake.count("/chat/completions") + fake.count("/v1/messages")
    assert posts == 4 and backend.retries == 0  # three answers, one 401/403, nothing retried or sent after it
    assert len((tmp_path / "j.jsonl").read_text().splitlines()) == 3
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize("make_entry", [openai_entry, anthropic_entry], ids=["openai", "anthropic"])
def test_rejected_key_fails_preflight_before_any_paid_request(fake, tmp_path, make_entry):
    async def refuse(n, body, request):
        return error(401, "invalid x-api-key")

    fake.models = refuse
    entry = make_entry(fake)
    with pytest.raises(KeyRejected, match=rf"rejected the API key in \${KEY_ENV} \(HTTP 401: invalid x-api-key\)"):
        run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    assert fake.count("/chat/completions") + fake.count("/v1/messages") == 0
    (probe,) = fake.calls
    assert probe[0].endswith("/models")
    headers = {name.lower(): value for name, value in probe[2].items()}
    assert KEY in headers.get("authorization", "") + headers.get("x-api-key", "")


def test_openrouter_key_is_checked_on_its_key_endpoint(fake, tmp_path):
    async def refuse(n, body, request):
        return error(401, "No auth credentials found")

    fake.models = refuse
    entry = openai_entry(fake, base_url=f"{fake.url}/openrouter/api/v1")
    with pytest.raises(KeyRejected, match="No auth credentials found"):
        make_backend(entry).preflight()
    assert [path for path, _, _ in fake.calls] == ["/openrouter/api/v1/key"]


def test_local_server_that_wants_a_key_says_to_set_api_key_env(fake, tmp_path):
    async def refuse(n, body, request):
        return error(401, "missing bearer token")

    fake.models = refuse
    entry = openai_entry(fake, api_key_env=None)
    with pytest.raises(KeyRejected, match=r"refused the request without an API key .*set api_key_env"):
        make_backend(entry).preflight()


def test_models_list_without_auth_or_route_does_not_block(fake, tmp_path):
    async def missing(n, body, request):
        return error(404, "no models route here")

    fake.models = missing
    entry = openai_entry(fake)
    (completion,) = run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    assert completion.ok


def test_local_server_without_key_env_gets_a_placeholder(fake, tmp_path):
    entry = openai_entry(fake, api_key_env=None)
    (completion,) = run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    assert completion.ok
    assert fake.calls[-1][2]["Authorization"] == "Bearer EMPTY"


@pytest.mark.parametrize(
    ("message", "content"),
    [
        ({"reasoning_content": "Let me think."}, "the answer"),
        ({"reasoning": "Let me think."}, "the answer"),
        ({}, "<think>Let me think.</think>\n\nthe answer"),
        ({}, "Let me think.</think>the answer"),
    ],
)
def test_reasoning_is_kept_apart(fake, tmp_path, message, content):
    async def thinker(n, body, request):
        return web.json_response(chat_json(body, content, **message))

    fake.openai = thinker
    entry = openai_entry(fake)
    (completion,) = run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    assert completion.text == "the answer"
    assert completion.reasoning == "Let me think."


def test_o_series_parameter_mapping(fake, tmp_path):
    entry = openai_entry(fake, model_id="o3-mini", sampling={"reasoning_effort": "high", "max_tokens": 321})
    run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    (body,) = fake.bodies("/chat/completions")
    assert body["max_completion_tokens"] == 321 and body["reasoning_effort"] == "high"
    for absent in ("temperature", "top_p", "max_tokens", "seed"):
        assert absent not in body


def test_chat_model_and_vllm_server_mapping(fake, tmp_path):
    sampling = {"temperature": 0.7, "top_p": 0.9, "top_k": 20, "seed": 7, "thinking": False, "max_tokens": 99}
    entry = openai_entry(fake, sampling=sampling)
    run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    (body,) = fake.bodies("/chat/completions")
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9 and body["seed"] == 7 and body["max_tokens"] == 99
    assert body["top_k"] == 20 and body["chat_template_kwargs"] == {"enable_thinking": False}
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_openrouter_reasoning_mapping(fake, tmp_path):
    entry = openai_entry(fake, base_url=f"{fake.url}/openrouter/api/v1", sampling={"reasoning_effort": "low"})
    run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    (body,) = fake.bodies("/chat/completions")
    assert body["reasoning"] == {"effort": "low"} and "chat_template_kwargs" not in body


def test_settings_the_endpoint_cannot_take_fail_preflight():
    entry = parse_entry(
        "official", {"backend": "openai", "model_id": "gpt-4o", "api_key_env": KEY_ENV, "sampling": {"top_k": 5}}
    )
    with pytest.raises(ConfigError, match="top_k"):
        make_backend(entry).preflight()
    entry = parse_entry(
        "claude", {"backend": "anthropic", "model_id": "c", "api_key_env": KEY_ENV, "sampling": {"top_p": 0.5}}
    )
    with pytest.raises(ConfigError, match="top_p"):
        make_backend(entry).preflight()
    entry = parse_entry(
        "claude",
        {"backend": "anthropic", "model_id": "c", "api_key_env": KEY_ENV, "sampling": {"thinking_budget": 2000}},
    )
    with pytest.raises(ConfigError, match="must be below"):
        make_backend(entry).preflight()


def test_concurrency_bound_is_respected(fake, tmp_path):
    fake.delay_s = 0.1
    entry = openai_entry(fake, concurrency=3)
    backend = make_backend(entry)
    out = run(backend, chats(entry, [f"q{i}" for i in range(12)]), tmp_path)
    assert all(c.ok for c in out)
    assert fake.max_in_flight == 3
    assert backend.stats()["max_in_flight"] <= 3


def test_requests_per_minute_limit_paces_requests(fake, tmp_path):
    entry = openai_entry(fake, concurrency=8, rate_limits={"requests_per_minute": 120})  # 2 per s, burst of 2
    start = time.perf_counter()
    run(make_backend(entry), chats(entry, [f"q{i}" for i in range(4)]), tmp_path)
    assert time.perf_counter() - start >= 0.95


def test_stopping_early_cancels_requests_in_flight(fake, tmp_path):
    fake.delay_s = 0.3
    entry = openai_entry(fake, concurrency=2)
    backend = make_backend(entry)
    before = {t.name for t in threading.enumerate()}
    stream = backend.complete(chats(entry, [f"q{i}" for i in range(20)]))
    next(stream)
    stream.close()
    sent = fake.count("/chat/completions")
    time.sleep(0.5)
    assert fake.count("/chat/completions") == sent <= 4
    assert {t.name for t in threading.enumerate()} - before == set()


def _openai_bad(kind: str, body: dict[str, Any]) -> web.StreamResponse:
    good = chat_json(body)
    message = good["choices"][0]["message"]
    if kind == "content_number":
        message["content"] = 7
    elif kind == "content_dict":
        message["content"] = {"text": "x"}
    elif kind == "parts":
        message["content"] = [{"type": "text", "text": "A:"}, {"type": "image_url"}, {"type": "text", "text": "q"}]
    elif kind == "parts_without_text":
        message["content"] = [{"type": "image_url", "image_url": {"url": "data:,"}}]
    elif kind == "choices_null":
        good["choices"] = [None]
    elif kind == "choices_string":
        good["choices"] = "none"
    elif kind == "no_message":
        del good["choices"][0]["message"]
    elif kind == "tool_call":
        message["content"] = None
        message["tool_calls"] = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    elif kind == "no_choices":
        good = {"error": {"message": "upstream provider failed", "code": 502}}
    elif kind == "json_list":
        return web.json_response([1, 2])
    elif kind == "not_json":
        return web.Response(text="<html>bad gateway</html>", content_type="application/json")
    elif kind == "html":
        return web.Response(text="<html>bad gateway</html>", content_type="text/html")
    return web.json_response(good)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("content_number", "content_number"),
        ("content_dict", "content_not_text"),
        ("parts_without_text", "content_without_text"),
        ("choices_null", "choices_null"),
        ("choices_string", "bad_choices"),
        ("no_message", "no_message"),
        ("tool_call", "tool_call"),
        ("no_choices", "no_choices"),
        ("json_list", "no_choices"),
        ("not_json", "not_json"),
        ("html", "not_json"),
    ],
)
def test_malformed_200_is_retried_then_an_error_row_never_a_crash(fake, tmp_path, kind, expected):
    """Request "bad" always gets the malformed body, "flaky" gets it once; the job finishes with every answer."""
    flaky_seen = 0

    async def script(n, body, request):
        nonlocal flaky_seen
        text = body["messages"][-1]["content"]
        if text == "bad" or (text == "flaky" and flaky_seen == 0):
            flaky_seen += text == "flaky"
            return _openai_bad(kind, body)
        return web.json_response(chat_json(body))

    fake.openai = script
    entry = openai_entry(fake, concurrency=2, max_retries=2)
    backend = fast(make_backend(entry))
    out = run(backend, chats(entry, ["a", "bad", "flaky", "b"]), tmp_path)
    assert [c.text for c in out] == ["A:a", None, "A:flaky", "A:b"]
    assert out[1].error.startswith(f"MalformedResponseError: {expected}: ") and "3 attempts" in out[1].error
    assert backend.stats()["retry_reasons"] == {"malformed response": 3}
    journal = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert sorted(r["completion"]["text"] or "" for r in journal) == ["", "A:a", "A:b", "A:flaky"]


def test_content_parts_are_joined_into_the_answer(fake, tmp_path):
    async def parts(n, body, request):
        return _openai_bad("parts", body)

    fake.openai = parts
    entry = openai_entry(fake)
    backend = make_backend(entry)
    (completion,) = run(backend, chats(entry, ["q"]), tmp_path)
    assert completion.ok and completion.text == "A:q" and backend.retries == 0


def test_content_null_without_a_tool_call_is_an_empty_answer(fake, tmp_path):
    """A reasoning model that ran out of tokens while thinking: no content, but an answer all the same."""

    async def truncated(n, body, request):
        good = chat_json(body, reasoning_content="Thinking on and on")
        good["choices"][0]["message"]["content"] = None
        good["choices"][0]["finish_reason"] = "length"
        return web.json_response(good)

    fake.openai = truncated
    entry = openai_entry(fake)
    (completion,) = run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    assert completion.ok and completion.text == "" and completion.reasoning == "Thinking on and on"
    assert completion.finish_reason == "length"


@pytest.mark.parametrize(
    ("make_entry", "batch"),
    [(openai_entry, False), (anthropic_entry, False), (anthropic_entry, True)],
    ids=["openai", "anthropic", "anthropic-batch"],
)
def test_lone_surrogates_go_out_and_come_back_as_replacement_characters(fake, tmp_path, monkeypatch, make_entry, batch):
    """A follow-up carrying a lone surrogate (from an earlier reply) is sent with U+FFFD (httpx cannot encode the
    surrogate); a reply holding one is journaled exactly and handed on with U+FFFD, so its table can be written."""
    monkeypatch.setenv("SELFEXPLAIN_BATCH_STATE_DIR", str(tmp_path / "state"))
    reply = "reply \ud800 end \udcff"

    async def odd_openai(n, body, request):
        return web.json_response(chat_json(body, text=reply))  # JSON-escaped: the SDK decodes a lone surrogate

    async def odd_anthropic(n, body, request):
        return web.json_response(message_json(body, [{"type": "text", "text": reply}]))

    fake.openai, fake.anthropic = odd_openai, odd_anthropic
    entry = make_entry(fake, **({"batch": True} if batch else {}))
    backend = make_backend(entry)
    backend.batch_poll_initial_s = 0.02
    requests = chats(entry, ["follow-up to \udcf0\udc9f"], system="Be \ud83d brief.")
    (completion,) = run(backend, requests, tmp_path)
    if batch:  # the fake's batch answers echo the request: what came back is what was sent
        reply = "A:follow-up to \ufffd\ufffd"
    assert completion.ok and completion.text == reply.replace("\ud800", "\ufffd").replace("\udcff", "\ufffd")
    if batch:
        (created,) = [body for path, body, _ in fake.calls if path == "/v1/messages/batches"]
        (sent,) = [item["params"] for item in created["requests"]]
    else:
        (sent,) = fake.bodies("/chat/completions") + fake.bodies("/v1/messages")
    system = sent["system"] if "system" in sent else sent["messages"][0]["content"]
    assert system == "Be \ufffd brief." and sent["messages"][-1]["content"] == "follow-up to \ufffd\ufffd"
    with Journal(tmp_path / "j.jsonl") as journal:
        assert journal.get(requests[0].key).text == reply  # under the exact request's key, the exact text
    write_parquet(pd.DataFrame(completion_columns([completion], requests)), tmp_path / "t.parquet")


def test_clean_text_replaces_only_lone_surrogates():
    assert clean_text("\ud800") == "\ufffd" and clean_text("a\udfffb\ud83d") == "a\ufffdb\ufffd"
    assert clean_text("\ud83d\ude00") == "\U0001f600"  # a pair written as two code points is its character
    plain = "é, 中文, 🏳️‍🌈, \x00\uffff"
    assert clean_text(plain) is plain
    body = {"messages": [{"role": "user", "content": "x\udc80"}], "n": 1, "stop": ("\ud800",)}
    assert clean_json(body) == {"messages": [{"role": "user", "content": "x\ufffd"}], "n": 1, "stop": ("\ufffd",)}
    done = Completion(text="t\ud800", reasoning="r", error=None)
    assert clean_completion(done) == Completion(text="t\ufffd", reasoning="r") and done.text == "t\ud800"
    fine = Completion(text="ok")
    assert clean_completion(fine) is fine


# -- Anthropic backend ----------------------------------------------------------------------------------------
def test_anthropic_thinking_system_and_usage(fake, tmp_path):
    async def thinker(n, body, request):
        blocks = [
            {"type": "thinking", "thinking": "Weighing it.", "signature": "sig"},
            {"type": "text", "text": "the answer"},
        ]
        return web.json_response(message_json(body, blocks))

    fake.anthropic = thinker
    entry = anthropic_entry(fake, sampling={"thinking": True, "thinking_budget": 1024, "max_tokens": 2000})
    (completion,) = run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    assert completion.text == "the answer" and completion.reasoning == "Weighing it."
    assert completion.prompt_tokens == 13 and completion.completion_tokens == 5
    assert completion.finish_reason == "end_turn"
    (body,) = fake.bodies("/v1/messages")
    assert body["system"] == "Be brief."
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024} and body["max_tokens"] == 2000
    assert "temperature" not in body and "seed" not in body


def test_anthropic_overloaded_529_is_retried(fake, tmp_path):
    async def busy(n, body, request):
        return error(529, "overloaded", {"retry-after-ms": "50"}) if n == 0 else web.json_response(message_json(body))

    fake.anthropic = busy
    entry = anthropic_entry(fake)
    backend = make_backend(entry)
    backend.backoff_initial_s = 5.0
    start = time.perf_counter()
    out = run(backend, chats(entry, ["a", "b"]), tmp_path)
    assert [c.text for c in out] == ["A:a", "A:b"]
    assert backend.retries == 1 and time.perf_counter() - start < 3


def test_anthropic_batch_mode(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("SELFEXPLAIN_BATCH_STATE_DIR", str(tmp_path / "state"))
    entry = anthropic_entry(fake, batch=True)
    backend = make_backend(entry)
    backend.batch_poll_initial_s = 0.02
    texts = ["a", "fail", "c"]
    out = run(backend, chats(entry, texts), tmp_path)
    assert out[0].text == "A:a" and out[2].text == "A:c" and out[0].prompt_tokens == 13
    assert not out[1].ok and "invalid_request_error" in out[1].error
    assert fake.count("/v1/messages") == 0 and len(fake.batches) == 1
    (created,) = [body for path, body, _ in fake.calls if path == "/v1/messages/batches"]
    assert [r["custom_id"] for r in created["requests"]] == ["0", "1", "2"]
    assert created["requests"][0]["params"]["system"] == "Be brief."
    assert not list((tmp_path / "state").glob("*.json"))  # finished batches are forgotten
    assert backend.stats()["batches"] == ["msgbatch_1"]


def test_anthropic_batch_resumes_after_a_kill(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("SELFEXPLAIN_BATCH_STATE_DIR", str(tmp_path / "state"))
    entry = anthropic_entry(fake, batch=True)
    requests = chats(entry, ["a", "b"])
    first = make_backend(entry)
    first.batch_timeout_s = 0.0  # gives up while the batch still runs, as a killed job would
    out = run(first, requests, tmp_path)
    assert all(not c.ok and "still in_progress" in c.error for c in out)
    assert len(list((tmp_path / "state").glob("*.json"))) == 1
    second = make_backend(entry)
    second.batch_poll_initial_s = 0.02
    out = run(second, requests, tmp_path)
    assert [c.text for c in out] == ["A:a", "A:b"]
    assert len(fake.batches) == 1  # resumed, not paid for twice
    assert not list((tmp_path / "state").glob("*.json"))


def test_anthropic_batch_that_vanished_is_sent_again(fake, tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("SELFEXPLAIN_BATCH_STATE_DIR", str(state))
    entry = anthropic_entry(fake, batch=True)
    requests = chats(entry, ["a", "b"])
    backend = make_backend(entry)
    backend.batch_poll_initial_s = 0.02
    state.mkdir()
    stale = {
        "batch_id": "msgbatch_gone",
        "model": backend._identity_hash(),
        "keys": ["other", *(r.key for r in requests)],
    }
    (state / f"{entry.name}-stale.json").write_text(json.dumps(stale))
    out = run(backend, requests, tmp_path)
    assert [c.text for c in out] == ["A:a", "A:b"]
    (created,) = [body for path, body, _ in fake.calls if path == "/v1/messages/batches"]
    assert [r["custom_id"] for r in created["requests"]] == ["0", "1"]
    assert not list(state.glob("*.json"))


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        ([], "empty_content"),
        (None, "no_content"),
        ([None], "block_null"),
        ([{"type": "hologram", "data": 1}], "unknown_block"),
        ([{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "tool_call"),
        ([{"type": "text", "text": 5}], "content_number"),
        ("not json", "not_json"),
    ],
)
def test_anthropic_malformed_200_is_retried_then_an_error_row(fake, tmp_path, blocks, expected):
    async def script(n, body, request):
        if body["messages"][-1]["content"] != "bad":
            return web.json_response(message_json(body))
        if blocks == "not json":
            return web.Response(text="<html>oops</html>", content_type="application/json")
        good = message_json(body)
        if blocks is None:
            del good["content"]
        else:
            good["content"] = blocks
        return web.json_response(good)

    fake.anthropic = script
    entry = anthropic_entry(fake, max_retries=1)
    backend = fast(make_backend(entry))
    out = run(backend, chats(entry, ["a", "bad"]), tmp_path)
    assert out[0].text == "A:a"
    assert out[1].error.startswith(f"MalformedResponseError: {expected}: ") and "2 attempts" in out[1].error
    assert fake.count("/v1/messages") == 3


def test_anthropic_unknown_blocks_beside_text_are_ignored(fake, tmp_path):
    async def mixed(n, body, request):
        blocks = [{"type": "hologram"}, {"type": "text", "text": "the "}, {"type": "text", "text": "answer"}]
        return web.json_response(message_json(body, blocks))

    fake.anthropic = mixed
    entry = anthropic_entry(fake)
    (completion,) = run(make_backend(entry), chats(entry, ["q"]), tmp_path)
    assert completion.ok and completion.text == "the answer"


@pytest.mark.parametrize("make_entry", [openai_entry, anthropic_entry], ids=["openai", "anthropic"])
def test_refused_connections_stop_the_job_as_endpoint_unreachable(tmp_path, make_entry):
    """The server is gone after preflight: the job stops after max_connection_failures attempts, saying why."""
    dead = FakeAPI()
    dead.url = f"http://127.0.0.1:{free_port()}"
    entry = make_entry(dead, max_connection_failures=5, max_retries=8, concurrency=2)
    backend = fast(make_backend(entry))
    start = time.perf_counter()
    with pytest.raises(EndpointUnreachable) as info:
        list(backend.complete(chats(entry, [f"q{i}" for i in range(10)])))
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert message.startswith(f"model {entry.name!r}: endpoint unreachable: {backend.base_url} (connection refused, ")
    assert "5 consecutive connection failures" in message and "timed out" not in message and "\n" not in message
    assert backend.retries == 4 and backend.stats()["retry_reasons"] == {"connection": 4}


# -- building blocks ------------------------------------------------------------------------------------------
def _raised(*chain: BaseException) -> BaseException:
    """The first of `chain`, raised from the second, which was raised from the third, ..."""
    for outer, inner in itertools.pairwise(chain):
        outer.__cause__ = inner
    return chain[0]


class ClientConnectorError(OSError):
    """Named like aiohttp's: the connect step failed."""


class ConnectTimeout(Exception):
    """Named like httpx's, which the aiohttp transport also uses for a refused connection."""


def test_connection_failure_finds_the_real_cause_under_the_wrappers():
    refused = _raised(TimeoutError("Request timed out."), ConnectTimeout("x"), ConnectionRefusedError(111, "refused"))
    assert connection_failure(refused) == "connection refused"
    dns = _raised(ConnectionError("Connection error."), socket.gaierror(-2, "Name or service not known"))
    assert connection_failure(dns) == "host name not resolved (Name or service not known)"
    slow_connect = _raised(Exception("Request timed out."), ClientConnectorError("connect"), TimeoutError())
    assert connection_failure(slow_connect) == "connect timed out"
    unreachable = _raised(Exception("Connection error."), ClientConnectorError(113, "No route to host"))
    assert connection_failure(unreachable) == "no route to host"
    assert connection_failure(_raised(Exception("read"), TimeoutError("read timed out"))) is None
    assert connection_failure(ConnectionResetError("dropped mid-answer")) is None
    message = error_message(refused, attempts=3)
    assert message == "TimeoutError: cannot connect: connection refused [gave up after 3 attempts]"
    assert RetryPolicy(1).reason(refused) == "connection"
    assert RetryPolicy(1).reason(MalformedResponseError("not_json", "x")) == "malformed response"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_token_bucket_with_a_fake_clock():
    clock = FakeClock()
    bucket = TokenBucket(60, burst_s=2.0, clock=clock)  # 1 per second, holds 2
    assert bucket.wait_time(1) == 0
    bucket.take(1)
    bucket.take(1)
    assert bucket.wait_time(1) == pytest.approx(1.0)
    clock.now += 0.5
    assert bucket.wait_time(1) == pytest.approx(0.5)
    bucket.take(5)  # a request larger than the bucket goes into debt ...
    assert bucket.wait_time(1) == pytest.approx(5.5)  # ... and is paid back before the next one
    clock.now += 100
    assert bucket.level <= bucket.capacity and bucket.wait_time(1) == 0


def test_rate_limiter_paces_requests_and_tokens_with_a_fake_clock():
    clock = FakeClock()

    async def go():
        limiter = RateLimiter(
            4, requests_per_minute=60, tokens_per_minute=600, headroom=1.0, clock=clock, sleep=clock.sleep
        )
        starts = []
        for _ in range(5):
            async with limiter.slot(tokens=20):  # 20 tokens at 10/s: one every 2 s (tokens bind, not requests)
                starts.append(clock.now)
        limiter.pause(30)
        async with limiter.slot(tokens=1):
            starts.append(clock.now)
        return starts

    starts = asyncio.run(go())
    assert starts[:5] == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0])
    assert starts[5] >= 8.0 + 30
    assert estimate_tokens([{"role": "user", "content": "x" * 400}], 50) == 150


def test_rate_limiter_keeps_below_the_limit_and_slows_down_after_a_429():
    """Default pacing is 98 % of the configured rate with half a second's burst; a 429 empties the bucket and
    slows it by 5 % (at most to half), regained at 0.1 % per answer; without limits a 429 pauses every request."""
    clock = FakeClock()

    async def go():
        limiter = RateLimiter(4, requests_per_minute=600, clock=clock, sleep=clock.sleep)
        assert limiter.requests.rate == pytest.approx(9.8) and limiter.requests.capacity == pytest.approx(4.9)
        limiter.rate_limited(1.0)
        assert limiter.factor == pytest.approx(0.95) and limiter.requests.rate == pytest.approx(9.8 * 0.95)
        async with limiter.slot():  # the bucket was emptied: one request's worth at the slower rate
            assert clock.now == pytest.approx(1 / (9.8 * 0.95))
        for _ in range(10):
            limiter.answered()
        assert limiter.factor == pytest.approx(0.96)
        for _ in range(100):
            limiter.rate_limited(1.0)
        assert limiter.factor == pytest.approx(0.5) and limiter.rate_limited_count == 101
        for _ in range(600):
            limiter.answered()
        assert limiter.factor == 1.0 and limiter.requests.rate == pytest.approx(9.8)

        unlimited = RateLimiter(4, clock=clock, sleep=clock.sleep)
        start = clock.now
        unlimited.rate_limited(3.0)
        async with unlimited.slot():
            assert clock.now == pytest.approx(start + 3.0)

    asyncio.run(go())
    with pytest.raises(ValueError, match="headroom"):
        RateLimiter(1, 60, headroom=1.5)


def test_requests_in_flight_ramp_up_two_ms_apart():
    """Without limits the n-th request in flight starts 2 ms x n after the first (no wave of answers); requests
    that finish quickly are not held back."""
    clock = FakeClock()

    async def sleep(seconds):
        clock.now += seconds
        await asyncio.sleep(0)

    async def go():
        limiter = RateLimiter(3, clock=clock, sleep=sleep)
        quick = []
        for _ in range(4):  # one at a time: nothing in flight, nothing to wait for
            async with limiter.slot():
                quick.append(clock.now)
        release = asyncio.Event()
        held = []

        async def hold():
            async with limiter.slot():
                held.append(clock.now)
                await release.wait()

        tasks = [asyncio.create_task(hold()) for _ in range(3)]
        while len(held) < 3:
            await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*tasks)
        return quick, held

    quick, held = asyncio.run(go())
    assert quick == [0.0] * 4 and held == pytest.approx([0.0, 0.002, 0.004])


def test_retry_after_parsing():
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    future = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= retry_after_s({"retry-after": format_datetime(future, usegmt=True)}) <= 31
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s(None) is None


def test_retry_policy_classification():
    class StatusError(Exception):
        def __init__(self, status, headers=None, code=None):
            self.status_code = status
            self.code = code
            self.response = type("R", (), {"headers": headers or {}, "status_code": status})()

    policy = RetryPolicy(3)
    assert [policy.reason(StatusError(s)) for s in (408, 409, 429, 500, 529)] == ["408", "409", "429", "500", "529"]
    assert [policy.reason(StatusError(s)) for s in (400, 401, 403, 404, 422)] == [None] * 5
    assert policy.reason(StatusError(429, code="insufficient_quota")) is None
    assert policy.reason(StatusError(500, {"x-should-retry": "false"})) is None
    assert policy.reason(TimeoutError()) == "timeout"
    assert policy.reason(ValueError()) is None
    assert policy.reason(StatusError(500), safe_to_resend=False) is None
    assert policy.reason(StatusError(529), safe_to_resend=False) == "529"
    assert policy.reason(TimeoutError(), safe_to_resend=False) is None


def test_iterate_async_propagates_errors_and_cleans_up():
    cancelled = threading.Event()

    async def producer():
        try:
            for i in range(1000):
                yield i
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    before = threading.active_count()
    for item in iterate_async(producer):
        if item == 3:
            break
    assert cancelled.wait(2) and threading.active_count() == before

    async def broken():
        yield 1
        raise RuntimeError("boom in the loop")

    with pytest.raises(RuntimeError, match="boom in the loop"):
        list(iterate_async(broken))

    with pytest.raises(KeyboardInterrupt):
        for _ in iterate_async(producer):
            raise KeyboardInterrupt
    assert threading.active_count() == before


def test_run_pool_yields_in_completion_order_and_bounds_workers():
    running = 0
    peak = 0

    async def work(i, delay, emit):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(delay)
        running -= 1
        emit(i)

    async def go():
        return [i async for i in run_pool([0.05, 0.01, 0.03, 0.0], work, 2)]

    assert asyncio.run(go()) == [1, 2, 3, 0]
    assert peak == 2
