"""`selfexplain serve`: the synthetic models behind an OpenAI- and Anthropic-compatible HTTP API.

Why: the OpenAI and Anthropic backends are tested over real HTTP with the official SDKs, against a server whose
answers are known (the synthetic models) and whose failures can be switched on (rate limits, server errors, slow
answers, dropped connections). It is async (aiohttp) and does the ~0.1 ms synthetic answer inline, so one core
serves well over a thousand requests a second and the client, not the server, is what a load test measures.

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (OpenAI), `POST /v1/messages` (Anthropic).
Faults apply to POST requests only; each kind is drawn independently from one seeded RNG and the first that fires
wins, in the order rate limit (429), server error (500), dropped connection, slow answer, bad answer. A bad answer
is a 200 whose body is not a usable answer, as odd proxies send them (BAD_ANSWERS: a number or a list of parts
for the text, `choices: [null]`, no message, a body that is not JSON, a tool call, blocks of unknown types, no
content); `content_parts` is the one that still holds the answer (split into two text parts or blocks). A revoked
key (`revoke_key_after` N) answers 401 to every POST request after the first N.
Limits (`ServerLimits`) act like a provider's: requests and tokens per minute in token buckets holding `burst_s`
seconds' worth, tokens counted as providers do at admission (prompt characters / 4 + max_tokens); a request above
either gets a 429 with a whole-second Retry-After and costs nothing.
The request log (`request_log`) gets one JSON line per POST request, written just before the response is sent so
a client that has its answer can already read the line: time, endpoint, model, status (int or "dropped"), fault
("limit" for a 429 of the limits), request_hash. The hash covers endpoint, model, the messages as the model sees
them (system first) and the sampling fields in HASHED_FIELDS; it never includes a key.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import math
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from aiohttp import web

from selfexplain.errors import ConfigError
from selfexplain.llm.ratelimit import TokenBucket, estimate_tokens
from selfexplain.llm.synthetic import SyntheticModel
from selfexplain.sce.synthetic import BEHAVIOURS

HASHED_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "max_tokens",
    "max_completion_tokens",
    "thinking",
    "reasoning_effort",
)
THINKING_TEXT = "Synthetic thinking: weighing the record against the decision rule."
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
BAD_ANSWERS = (
    "content_number",
    "content_parts",
    "choices_null",
    "no_message",
    "not_json",
    "tool_call",
    "unknown_block",
    "empty_content",
)
NOT_JSON_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>"

_OPENAI_ERRORS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
}


@dataclass
class FaultConfig:
    """Injected failures; rates are probabilities 0..1 per POST request, drawn from a RNG seeded with `seed`.

    `bad_answers` maps kinds of BAD_ANSWERS to their rates (together at most 1). `revoke_key_after` N: every POST
    request after the first N is answered 401, as when a key is revoked mid-job (the models list still answers)."""

    rate_limit_rate: float = 0
    retry_after: float = 1
    error_rate: float = 0
    slow_rate: float = 0
    slow_seconds: float = 2
    drop_rate: float = 0
    latency: float = 0
    seed: int = 0
    bad_answers: dict[str, float] = field(default_factory=dict)
    revoke_key_after: int | None = None

    def __post_init__(self) -> None:
        for name in ("rate_limit_rate", "error_rate", "slow_rate", "drop_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        for name in ("retry_after", "slow_seconds", "latency"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        unknown = sorted(set(self.bad_answers) - set(BAD_ANSWERS))
        if unknown:
            raise ValueError(f"unknown bad answer kind(s) {unknown}; known: {list(BAD_ANSWERS)}")
        if any(not 0 <= rate <= 1 for rate in self.bad_answers.values()) or sum(self.bad_answers.values()) > 1:
            raise ValueError(f"bad answer rates must be between 0 and 1 and sum to at most 1, got {self.bad_answers}")
        if self.revoke_key_after is not None and self.revoke_key_after < 0:
            raise ValueError(f"revoke_key_after must be >= 0, got {self.revoke_key_after}")

    @property
    def any_random(self) -> bool:
        return any((self.rate_limit_rate, self.error_rate, self.slow_rate, self.drop_rate, *self.bad_answers.values()))


@dataclass
class ServerLimits:
    """A provider's rate limits: requests and tokens per minute, each a token bucket holding `burst_s` seconds'
    worth (None: no limit)."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.burst_s <= 0:
            raise ValueError(f"burst_s must be positive, got {self.burst_s}")


def request_tokens(messages: Sequence[Mapping[str, str]], body: Mapping[str, Any]) -> int:
    """Tokens a request counts against a tokens-per-minute limit at admission: prompt characters / 4 + max_tokens."""
    limit = body.get("max_tokens") or body.get("max_completion_tokens") or 0
    return estimate_tokens(messages, int(limit) if isinstance(limit, int | float) else 0)


def bad_answer(kind: str, endpoint: str, good: dict[str, Any]) -> web.Response:
    """A 200 of `kind` built from the good answer `good` (changed in place)."""
    if kind == "not_json":
        return web.Response(body=NOT_JSON_BODY, status=200, content_type="application/json")
    if endpoint == MESSAGES:
        blocks = good["content"]
        text = next(b["text"] for b in blocks if b["type"] == "text")
        if kind == "content_number":
            good["content"] = [{"type": "text", "text": 42}]
        elif kind == "content_parts":
            half = len(text) // 2
            good["content"] = [b for b in blocks if b["type"] != "text"]
            good["content"] += [{"type": "text", "text": text[:half]}, {"type": "text", "text": text[half:]}]
        elif kind == "choices_null":
            good["content"] = [None]
        elif kind == "no_message":
            del good["content"]
        elif kind == "tool_call":
            good["content"] = [{"type": "tool_use", "id": "toolu_synthetic", "name": "lookup", "input": {}}]
            good["stop_reason"] = "tool_use"
        elif kind == "unknown_block":
            good["content"] = [{"type": "hologram", "data": "not a known block"}]
        elif kind == "empty_content":
            good["content"] = []
        return _json(good)
    choice = good["choices"][0]
    message = choice["message"]
    if kind == "content_number":
        message["content"] = 42
    elif kind == "content_parts":
        text = message["content"]
        half = len(text) // 2
        message["content"] = [{"type": "text", "text": text[:half]}, {"type": "text", "text": text[half:]}]
    elif kind == "choices_null":
        good["choices"] = [None]
    elif kind == "no_message":
        del choice["message"]
    elif kind == "tool_call":
        message["content"] = None
        message["tool_calls"] = [
            {"id": "call_synthetic", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ]
        choice["finish_reason"] = "tool_calls"
    elif kind == "unknown_block":
        message["content"] = [{"type": "hologram", "data": "not a known part"}]
    elif kind == "empty_content":
        good["choices"] = []
    return _json(good)


class ApiError(Exception):
    """A request the server refuses; rendered in the caller's API style."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _text(content: Any) -> str:
    """Message content as plain text: a string, or the text blocks/parts of a list joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(block.get("text", "")) for block in content if isinstance(block, dict) and block.get("type") == "text"
        )
    raise ApiError(400, "message content must be a string or a list of content blocks")


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        raise ApiError(400, "`messages` must be a list")
    out = []
    for m in raw:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(400, "each message needs a `role`")
        out.append({"role": m["role"], "content": _text(m.get("content"))})
    return out


def request_hash(endpoint: str, model: Any, messages: Sequence[Mapping[str, str]], body: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of what decides an answer, so tests can count distinct requests."""
    payload = {
        "endpoint": endpoint,
        "model": model,
        "messages": list(messages),
        "sampling": {k: body.get(k) for k in HASHED_FIELDS},
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, ensure_ascii=False).encode("utf-8"),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _words(text: str) -> int:
    return len(text.split())


class _Server:
    """Per-app state: models, fault RNG, request log. Handlers run on one event loop thread, so no locks."""

    def __init__(
        self,
        models: Mapping[str, SyntheticModel],
        faults: FaultConfig,
        request_log: Path | None,
        api_key: str | None,
        limits: ServerLimits | None = None,
    ) -> None:
        self.models = dict(models)
        self.faults = faults
        self.rng = random.Random(faults.seed)
        limits = limits or ServerLimits()
        self.requests = TokenBucket(limits.requests_per_minute, limits.burst_s) if limits.requests_per_minute else None
        self.tokens = TokenBucket(limits.tokens_per_minute, limits.burst_s) if limits.tokens_per_minute else None
        self.request_log = request_log
        self.log: IO[str] | None = None
        self.api_key = api_key.encode("utf-8") if api_key else None
        self.ids = itertools.count(1)
        self.posts = 0

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def open_log(self, app: web.Application) -> None:
        if self.request_log is not None:
            self.request_log.parent.mkdir(parents=True, exist_ok=True)
            self.log = self.request_log.open("a", encoding="utf-8")

    async def close_log(self, app: web.Application) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    # -- helpers -------------------------------------------------------------------------------------------
    def authorized(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        given = request.headers.get("x-api-key")
        if given is None:
            auth = request.headers.get("Authorization", "")
            given = auth[7:] if auth[:7].lower() == "bearer " else None
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self.api_key)

    def roll(self) -> str | None:
        """Which fault hits this request; always the same number of draws (four, five with bad answers), so the
        sequence depends only on the request count."""
        f = self.faults
        if not f.any_random:
            return None
        u = [self.rng.random() for _ in range(5 if f.bad_answers else 4)]
        if u[0] < f.rate_limit_rate:
            return "rate_limit"
        if u[1] < f.error_rate:
            return "error"
        if u[2] < f.drop_rate:
            return "drop"
        if u[3] < f.slow_rate:
            return "slow"
        if f.bad_answers:
            edge = 0.0
            for kind, rate in f.bad_answers.items():
                edge += rate
                if u[4] < edge:
                    return kind
        return None

    def over_limit(self, tokens: int) -> float | None:
        """Seconds until the limits admit a request of `tokens`, or None after admitting (and charging) it now."""
        wait = 0.0
        if self.requests is not None:
            wait = max(wait, self.requests.wait_time(1))
        if self.tokens is not None:
            wait = max(wait, self.tokens.wait_time(tokens))
        if wait > 0:
            return wait
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(tokens)
        return None

    def write_log(self, endpoint: str, model: Any, status: int | str, fault: str | None, digest: str | None) -> None:
        if self.log is None:
            return
        record = {
            "time": time.time(),
            "endpoint": endpoint,
            "model": model,
            "status": status,
            "fault": fault,
            "request_hash": digest,
        }
        self.log.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.log.flush()

    @staticmethod
    def error(endpoint: str, status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
        if endpoint == MESSAGES:
            body: dict[str, Any] = {"type": "error", "error": {"type": _ANTHROPIC_ERRORS[status], "message": message}}
        else:
            kind, code = _OPENAI_ERRORS[status]
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return _json(body, status=status, headers=headers)

    # -- handlers ------------------------------------------------------------------------------------------
    async def list_models(self, request: web.Request) -> web.Response:
        anthropic = "anthropic-version" in request.headers
        if not self.authorized(request):
            return self.error(MESSAGES if anthropic else CHAT, 401, "invalid or missing API key")
        names = sorted(self.models)
        if anthropic:
            data = [{"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"} for n in names]
            first, last = (names[0], names[-1]) if names else (None, None)
            return _json({"data": data, "has_more": False, "first_id": first, "last_id": last})
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "selfexplain-synthetic"} for n in names]
        return _json({"object": "list", "data": data})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self.answer(request, CHAT)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        return await self.answer(request, MESSAGES)

    async def answer(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        """Shared POST path: parse, authorize, pick the model, inject faults, answer, log."""
        model_name: Any = None
        digest: str | None = None
        try:
            try:
                body = json.loads(await request.read())
            except ValueError as exc:
                raise ApiError(400, "request body is not valid JSON") from exc
            if not isinstance(body, dict):
                raise ApiError(400, "request body must be a JSON object")
            model_name = body.get("model")
            if body.get("stream"):
                raise ApiError(400, "streaming is not supported by selfexplain serve; send stream=false")
            messages = _messages(body.get("messages"))
            if endpoint == MESSAGES and body.get("system") is not None:
                messages.insert(0, {"role": "system", "content": _text(body["system"])})
            if self.log is not None:
                digest = request_hash(endpoint, model_name, messages, body)
            if not self.authorized(request):
                raise ApiError(401, "invalid or missing API key")
            model = self.models.get(model_name) if isinstance(model_name, str) else None
            if model is None:
                raise ApiError(404, f"model {model_name!r} not found; served: {sorted(self.models)}")
            self.posts += 1
            revoke = self.faults.revoke_key_after
            if revoke is not None and self.posts > revoke:
                raise ApiError(401, "API key revoked (injected)")
        except ApiError as exc:
            self.write_log(endpoint, model_name, exc.status, None, digest)
            return self.error(endpoint, exc.status, exc.message)

        if self.requests is not None or self.tokens is not None:
            wait = self.over_limit(request_tokens(messages, body))
            if wait is not None:
                self.write_log(endpoint, model_name, 429, "limit", digest)
                retry = {"Retry-After": str(max(1, math.ceil(wait)))}
                return self.error(endpoint, 429, "rate limit reached: requests or tokens per minute", retry)

        f = self.faults
        fault = self.roll()
        if f.latency:
            await asyncio.sleep(f.latency)
        if fault == "drop":
            self.write_log(endpoint, model_name, "dropped", fault, digest)
            if request.transport is not None:
                request.transport.close()
            # Writing to the closed transport fails quietly inside aiohttp; the client sees a disconnect.
            return web.Response(status=500)
        if fault == "rate_limit":
            self.write_log(endpoint, model_name, 429, fault, digest)
            return self.error(endpoint, 429, "rate limit reached (injected)", {"Retry-After": f"{f.retry_after:g}"})
        if fault == "error":
            self.write_log(endpoint, model_name, 500, fault, digest)
            return self.error(endpoint, 500, "internal server error (injected)")
        if fault == "slow":
            await asyncio.sleep(f.slow_seconds)

        text = model.respond(messages)
        prompt_tokens = sum(_words(m["content"]) for m in messages)
        completion_tokens = _words(text)
        n = next(self.ids)
        if endpoint == MESSAGES:
            content: list[dict[str, Any]] = []
            thinking = body.get("thinking")
            if isinstance(thinking, dict) and thinking.get("type") == "enabled":
                content.append({"type": "thinking", "thinking": THINKING_TEXT, "signature": "x"})
                completion_tokens += _words(THINKING_TEXT)
            content.append({"type": "text", "text": text})
            out: dict[str, Any] = {
                "id": f"msg_synthetic_{n}",
                "type": "message",
                "role": "assistant",
                "model": model_name,
                "content": content,
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
            }
        else:
            out = {
                "id": f"chatcmpl-synthetic-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                "system_fingerprint": None,
            }
        self.write_log(endpoint, model_name, 200, fault, digest)
        if fault in BAD_ANSWERS:
            return bad_answer(fault, endpoint, out)
        return _json(out)


def make_app(
    models: Mapping[str, SyntheticModel],
    faults: FaultConfig | None = None,
    request_log: str | Path | None = None,
    api_key: str | None = None,
    limits: ServerLimits | None = None,
) -> web.Application:
    """The aiohttp application serving `models` by name; `api_key` None means no auth."""
    server = _Server(models, faults or FaultConfig(), Path(request_log) if request_log else None, api_key, limits)
    app = web.Application(client_max_size=16 * 1024**2)
    app.on_startup.append(server.open_log)
    app.on_cleanup.append(server.close_log)
    app.router.add_get("/v1/models", server.list_models)
    app.router.add_post(CHAT, server.chat_completions)
    app.router.add_post(MESSAGES, server.messages)
    return app


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket we own, so the real port is known even for port 0."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ServerThread:
    """Run an app on 127.0.0.1 (free port) in a background thread with its own event loop, for tests.

    Pass an Application, or models plus make_app's keyword arguments.
    """

    def __init__(
        self,
        app: web.Application | Mapping[str, SyntheticModel],
        *,
        faults: FaultConfig | None = None,
        request_log: str | Path | None = None,
        api_key: str | None = None,
        limits: ServerLimits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.app = app if isinstance(app, web.Application) else make_app(app, faults, request_log, api_key, limits)
        self.host = host
        self.port = port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        """Base for the Anthropic client (it appends /v1/messages)."""
        return _url(self.host, self.port)

    @property
    def base_url(self) -> str:
        """Base for OpenAI clients (they append /chat/completions)."""
        return self.root_url + "/v1"

    def __enter__(self) -> ServerThread:
        self._thread = threading.Thread(target=self._run, name="selfexplain-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("selfexplain serve thread did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"selfexplain serve thread failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(runner.setup())
            sock = _bind(self.host, self.port)
            self.port = sock.getsockname()[1]
            loop.run_until_complete(web.SockSite(runner, sock).start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


# -- building the model table ---------------------------------------------------------------------------------


def models_from_catalog(path: str | Path, schema_path: str | Path) -> dict[str, SyntheticModel]:
    """Every `backend: synthetic` catalog entry, under its model_id and its catalog name (one instance each)."""
    from selfexplain.config import load_catalog

    models: dict[str, SyntheticModel] = {}
    for name, entry in load_catalog(path, schema_path).items():
        if entry.is_synthetic:
            model = SyntheticModel(entry.synthetic)
            models[entry.model_id] = model
            models[name] = model
    if not models:
        raise ConfigError(f"{path}: no `backend: synthetic` models to serve")
    return models


def models_from_specs(specs: Sequence[str]) -> dict[str, SyntheticModel]:
    """`NAME=BEHAVIOUR` pairs (behaviour exact, overshoot or timid; no noise), one SyntheticModel each."""
    models: dict[str, SyntheticModel] = {}
    for spec in specs:
        name, sep, behaviour = spec.partition("=")
        if not sep or not name or behaviour not in BEHAVIOURS:
            raise ConfigError(f"--model {spec!r}: expected NAME=BEHAVIOUR with BEHAVIOUR one of {list(BEHAVIOURS)}")
        models[name] = SyntheticModel({"sce": {"counterfactual": behaviour}})
    return models


def _default_schema(catalog: Path) -> Path:
    """workflow/schemas/catalog.schema.yaml in the working directory, else in the catalog's repository."""
    relative = Path("workflow/schemas/catalog.schema.yaml")
    for candidate in (relative, catalog.resolve().parent.parent / relative):
        if candidate.exists():
            return candidate
    raise ConfigError(f"catalog schema not found (looked for {relative}); pass --catalog-schema")


# -- command line ---------------------------------------------------------------------------------------------


async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
) -> None:
    """Serve until SIGTERM or SIGINT; prints one 'listening on URL' line first (tests read the port from it)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    try:
        sock = _bind(host, port)
        await web.SockSite(runner, sock).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"selfexplain serve: listening on {_url(host, sock.getsockname()[1])}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _bad_answer(text: str) -> tuple[str, float]:
    kind, sep, rate = text.partition("=")
    if not sep or kind not in BAD_ANSWERS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KIND=RATE with KIND one of {', '.join(BAD_ANSWERS)}")
    return kind, _rate(rate)


def _run(args: argparse.Namespace) -> None:
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env {args.api_key_env}: that environment variable is not set or empty")
    models: dict[str, SyntheticModel] = {}
    if args.catalog:
        catalog = Path(args.catalog)
        schema = Path(args.catalog_schema) if args.catalog_schema else _default_schema(catalog)
        models.update(models_from_catalog(catalog, schema))
    models.update(models_from_specs(args.model or []))
    if not models:
        raise ConfigError("nothing to serve: give --catalog FILE and/or --model NAME=BEHAVIOUR")
    faults = FaultConfig(
        rate_limit_rate=args.rate_limit_rate,
        retry_after=args.retry_after,
        error_rate=args.error_rate,
        slow_rate=args.slow_rate,
        slow_seconds=args.slow_seconds,
        drop_rate=args.drop_rate,
        latency=args.latency,
        seed=args.seed,
        bad_answers=dict(args.bad_answer or []),
        revoke_key_after=args.revoke_key_after,
    )
    limits = ServerLimits(args.requests_per_minute, args.tokens_per_minute, args.limit_burst_s)
    app = make_app(models, faults, args.request_log, api_key, limits)
    print(f"selfexplain serve: models {', '.join(sorted(models))}", file=sys.stderr, flush=True)
    asyncio.run(serve(app, args.host, args.port))


def register(subparsers: Any) -> None:
    """Add `serve` to an argparse subparsers object (from `parser.add_subparsers()`)."""
    p = subparsers.add_parser(
        "serve",
        help="OpenAI/Anthropic-compatible HTTP server in front of the synthetic models (for integration tests)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--catalog", help="model catalog; serves every backend: synthetic entry by model_id and name")
    p.add_argument("--catalog-schema", help="catalog schema (default workflow/schemas/catalog.schema.yaml)")
    p.add_argument(
        "--model",
        action="append",
        metavar="NAME=BEHAVIOUR",
        help=f"serve a noise-free synthetic model; BEHAVIOUR one of {', '.join(BEHAVIOURS)} (repeatable)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--api-key-env", metavar="NAME", help="require the key held in this environment variable")
    p.add_argument("--request-log", metavar="FILE", help="append one JSON line per POST request")
    faults = p.add_argument_group("fault injection (POST requests only)")
    faults.add_argument("--rate-limit-rate", type=_rate, default=0.0, help="share answered 429 with Retry-After")
    faults.add_argument("--retry-after", type=_seconds, default=1.0, help="Retry-After seconds (default 1)")
    faults.add_argument("--error-rate", type=_rate, default=0.0, help="share answered 500")
    faults.add_argument("--slow-rate", type=_rate, default=0.0, help="share answered after --slow-seconds")
    faults.add_argument("--slow-seconds", type=_seconds, default=2.0, help="delay of a slow answer (default 2)")
    faults.add_argument("--drop-rate", type=_rate, default=0.0, help="share whose connection is closed unanswered")
    faults.add_argument("--latency", type=_seconds, default=0.0, help="seconds added to every POST response")
    faults.add_argument(
        "--bad-answer",
        action="append",
        type=_bad_answer,
        metavar="KIND=RATE",
        help=f"share answered 200 with a malformed body of KIND, one of {', '.join(BAD_ANSWERS)} (repeatable)",
    )
    faults.add_argument(
        "--revoke-key-after", type=_count, metavar="N", help="answer every POST request after the first N with 401"
    )
    faults.add_argument("--seed", type=int, default=0, help="seed of the fault RNG (default 0)")
    limits = p.add_argument_group("rate limits (429 with Retry-After above them, like a provider)")
    limits.add_argument("--requests-per-minute", type=_positive, help="requests admitted per minute")
    limits.add_argument(
        "--tokens-per-minute", type=_positive, help="tokens admitted per minute (prompt characters / 4 + max_tokens)"
    )
    limits.add_argument(
        "--limit-burst-s", type=_positive, default=1.0, help="seconds' worth of each limit a burst may use (default 1)"
    )
    p.set_defaults(func=_run)
