"""What the OpenAI-compatible and Anthropic backends share: one policy for limits, retries and failures.

A job's requests run on a private event loop with at most `concurrency` sent or answered but not yet journaled (so
a kill costs no more than that), each through the token bucket
and the retry policy (the SDKs' own retries are off), and come back to the caller's thread as they finish. A
request that fails for good becomes a Completion with a redacted error. Subclasses supply only what differs: the
key rules, the client, the request body, the SDK call and the parsing of its answer.

A 200 whose body is not a usable answer (not JSON, no choices, a number for text, ...) is a failed attempt like a
500, never a crash: the parsers raise `MalformedResponseError`, and anything else a parser trips over is wrapped
into one. Two failures stop the job at once (the answers already received are journaled first, since they come
back in order): a 401/403 (`KeyRejected`, naming the model and the key's variable; the other requests are not
sent), and `max_connection_failures` consecutive attempts that could not connect at all (`EndpointUnreachable`,
naming the real cause, e.g. connection refused). Any HTTP answer resets that count.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from selfexplain.llm.aio import iterate_async, run_pool
from selfexplain.llm.catalog import ModelEntry
from selfexplain.llm.ratelimit import RateLimiter, estimate_tokens
from selfexplain.llm.retry import (
    AUTH_STATUS,
    EndpointUnreachable,
    JobStats,
    KeyRejected,
    MalformedResponseError,
    RetryPolicy,
    TransientResponseError,
    connection_failure,
    error_message,
    key_rejected_message,
    one_line,
    sdk_error_detail,
    status_of,
)
from selfexplain.llm.secrets import redact
from selfexplain.llm.transport import clean_json
from selfexplain.llm.types import ChatRequest, Completion

log = logging.getLogger(__name__)


class ApiBackend:
    label = "api"
    default_url = ""
    probe_timeout_s = 5.0
    backoff_initial_s = 1.0
    backoff_max_s = 60.0
    retry_after_cap_s = 120.0
    # Subclasses: connection errors the policy retries, and SDK errors that end a request as an error row.
    connection_errors: tuple[type[BaseException], ...] = ()
    sdk_errors: tuple[type[BaseException], ...] = ()
    # Subclasses: SDK errors that mean a 200 whose body did not fit the SDK's types.
    malformed_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, entry: ModelEntry) -> None:
        self.entry = entry
        self.policy = RetryPolicy(
            entry.max_retries,
            self.connection_errors,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            retry_after_cap_s=self.retry_after_cap_s,
        )
        self.counts = JobStats()
        self.max_in_flight = 0
        self.rate_limit_wait_s = 0.0
        self._window: asyncio.Semaphore | None = None
        self._connect_failures = 0

    # -- hooks -----------------------------------------------------------------------------------------------
    def _key(self) -> str:
        raise NotImplementedError

    def _client(self, key: str, timeout_s: float) -> Any:
        raise NotImplementedError

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    async def _send(self, client: Any, body: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _parse(self, result: Any, latency_s: float) -> Completion:
        raise NotImplementedError

    def _streamer(self) -> Callable[[list[ChatRequest], str], AsyncIterator[tuple[int, Completion]]]:
        return self._stream

    # -- shared ----------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        # Pinned even for the default endpoint: the SDKs would otherwise follow *_BASE_URL from the environment.
        return (self.entry.base_url or self.default_url).rstrip("/")

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

    def complete(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        """Yield (index, Completion) as answers arrive; stopping the iteration cancels the requests in flight."""
        requests = list(requests)
        if not requests:
            return
        key = self._key()
        stream = self._streamer()
        self._window = None
        # Objects that exist now (imported modules, the job's requests: some 250,000) are left out of the cyclic
        # garbage collector's full passes while answers stream in; each pass over them stalls every request in
        # flight for tens of ms (-4 % of the throughput at 256 in flight). Frozen objects are only skipped, never
        # freed early: unfreeze hands them back to the collector.
        gc.freeze()
        try:
            yield from iterate_async(
                lambda: stream(requests, key), name=f"{self.label}-{self.entry.name}", on_consumed=self._journaled
            )
        finally:
            gc.unfreeze()
            log.info("%s: %s", self.entry.name, self.stats())

    def _journaled(self) -> None:
        """The caller has journaled one more answer: its slot in the window may take a new request."""
        if self._window is not None:
            self._window.release()

    def _configure_policy(self, limiter: RateLimiter | None) -> None:
        self.policy.on_rate_limit = limiter.rate_limited if limiter is not None else None
        for name in ("backoff_initial_s", "backoff_max_s", "retry_after_cap_s"):
            setattr(self.policy, name, getattr(self, name))

    def _key_rejected(self, exc: BaseException, key: str) -> KeyRejected:
        """The job-stopping error of a 401/403 answer: one line naming the model and the key's variable."""
        detail = redact(one_line(sdk_error_detail(exc), 200), key) or ""
        status = status_of(exc) or 401
        return KeyRejected(key_rejected_message(self.entry.name, self.entry.api_key_env, self.base_url, status, detail))

    def _connection_failed(self, cause: str) -> None:
        """Count one attempt that could not connect; stop the job after `max_connection_failures` in a row."""
        self._connect_failures += 1
        limit = self.entry.max_connection_failures
        if self._connect_failures >= limit:
            raise EndpointUnreachable(
                f"model {self.entry.name!r}: endpoint unreachable: {self.base_url} ({cause}, "
                f"{self._connect_failures} consecutive connection failures, max_connection_failures={limit}); "
                "start the server or fix base_url, then rerun"
            )

    def _failed(self, exc: BaseException, key: str, started: float, attempts: int | None = None) -> Completion:
        attempts = attempts if attempts is not None else getattr(exc, "attempts", 1)
        return Completion(
            text=None,
            error=redact(error_message(exc, attempts), key),
            latency_s=time.perf_counter() - started,
            model=self.entry.model_id,
        )

    async def _stream(self, requests: list[ChatRequest], key: str) -> AsyncIterator[tuple[int, Completion]]:
        client = self._client(key, self.entry.request_timeout_s)
        limiter = RateLimiter.from_entry(self.entry)
        self._configure_policy(limiter)
        # At most `concurrency` requests are sent or answered but not yet journaled: a kill costs no more than that.
        self._window = asyncio.Semaphore(self.entry.concurrency)
        self._connect_failures = 0

        async def work(index: int, request: ChatRequest, emit: Callable[[Any], None]) -> None:
            await self._window.acquire()
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
        body = clean_json(self._body(request))  # httpx cannot encode a lone surrogate; the journal key keeps it
        tokens = estimate_tokens(request.messages, request.sampling.max_tokens)
        timeout_s = self.entry.request_timeout_s
        started = time.perf_counter()

        async def attempt() -> Completion:
            async with limiter.slot(tokens):
                t0 = time.perf_counter()
                try:
                    async with asyncio.timeout(timeout_s):
                        result = await self._send(client, body)
                except TimeoutError:
                    raise TimeoutError(f"no complete answer within {timeout_s:g} s") from None
                except self.malformed_errors as exc:
                    self._connect_failures = 0
                    raise MalformedResponseError("invalid_body", one_line(str(exc), 200)) from exc
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # the SDK could not decode a 200 body
                    self._connect_failures = 0
                    raise MalformedResponseError("not_json", f"body is not JSON ({one_line(str(exc), 120)})") from exc
                except Exception as exc:
                    status = status_of(exc)
                    if status in AUTH_STATUS:
                        raise self._key_rejected(exc, key) from None
                    cause = connection_failure(exc) if status is None else None
                    if cause is not None:
                        self._connection_failed(cause)
                    else:
                        self._connect_failures = 0
                    raise
                self._connect_failures = 0
                limiter.answered()
                latency = time.perf_counter() - t0
                try:
                    return self._parse(result, latency)
                except TransientResponseError:
                    raise
                except Exception as exc:  # a shape no parser rule foresaw: still a bad answer, not a crash
                    raise MalformedResponseError(
                        "unparseable", f"{type(exc).__name__}: {one_line(str(exc), 160)}"
                    ) from exc

        try:
            completion, _ = await self.policy.call(attempt)
        except (*self.sdk_errors, TransientResponseError, TimeoutError, ConnectionError) as exc:
            return self._failed(exc, key, started)
        return completion
