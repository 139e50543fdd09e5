"""What the OpenAI-compatible and Anthropic backends share: one policy for limits, retries and failures.

A job's requests run on a private event loop with at most `concurrency` sent or answered but not yet journaled (so
a kill costs no more than that), each through the token bucket
and the retry policy (the SDKs' own retries are off), and come back to the caller's thread as they finish. A
request that fails for good becomes a Completion with a redacted error. Subclasses supply only what differs: the
key rules, the client, the request body, the SDK call and the parsing of its answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from selfexplain.llm.aio import iterate_async, run_pool
from selfexplain.llm.catalog import ModelEntry
from selfexplain.llm.ratelimit import RateLimiter, estimate_tokens
from selfexplain.llm.retry import JobStats, RetryPolicy, error_message
from selfexplain.llm.secrets import redact
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
        try:
            yield from iterate_async(
                lambda: stream(requests, key), name=f"{self.label}-{self.entry.name}", on_consumed=self._journaled
            )
        finally:
            log.info("%s: %s", self.entry.name, self.stats())

    def _journaled(self) -> None:
        """The caller has journaled one more answer: its slot in the window may take a new request."""
        if self._window is not None:
            self._window.release()

    def _configure_policy(self, limiter: RateLimiter | None) -> None:
        self.policy.on_rate_limit = limiter.pause if limiter is not None else None
        for name in ("backoff_initial_s", "backoff_max_s", "retry_after_cap_s"):
            setattr(self.policy, name, getattr(self, name))

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
        body = self._body(request)
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
                return self._parse(result, time.perf_counter() - t0)

        try:
            completion, _ = await self.policy.call(attempt)
        except (*self.sdk_errors, TimeoutError, ConnectionError) as exc:
            return self._failed(exc, key, started)
        return completion
