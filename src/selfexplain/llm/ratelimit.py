"""Client-side rate limits for API backends: requests per minute, tokens per minute and requests in flight.

Why on the client: a provider answers an over-eager client with 429s, and each 429 costs a retry, a wait and, on
some providers, a temporary ban. Pacing requests below the account's limits is cheaper than recovering from them.

Token buckets refill continuously at `per_minute / 60` per second and hold at most `burst_s` seconds' worth, so a
job starts gently instead of firing a minute's budget at once (providers often enforce limits per second). A
request larger than the bucket may still go when the bucket is full; the bucket then runs into debt, which keeps
the long-run rate exact without deadlocking on big requests. The clock and sleep are injectable, so the pacing is
unit-testable without waiting.

Tracking a provider's limit (measured with benchmarks/bench_limits.py against `selfexplain serve` enforcing the
same limits): the buckets run at `headroom` (98 %) of the configured rates and hold half a second's worth, half of
what a provider's one-second bucket holds, so requests that reach the server closer together than they left the
client (network jitter) still fit. A 429 while limits are configured empties the buckets and slows them by 5 %
(back to full speed over the next answers, +0.1 % each): the other requests keep going at the corrected pace
instead of all waiting out the whole-second Retry-After. Without configured limits a 429 pauses every new request
for the server's Retry-After, the only pace known.

Requests in flight ramp up instead of all starting at once: the n-th request in flight may start `ramp_s` x n after
the job's first (2 ms, about what the client spends on one request), so `concurrency` requests are in flight after
`concurrency` x 2 ms. Answers then come back spread out rather than in one wave, and a wave stays a wave when
answers take equally long (the event loop processes the whole wave, one await step of each request at a time,
before any of its slots sends again). Measured against a server taking 1 s per answer: +1.5 % of the throughput at
concurrency 64-256. Fast answers are not held back: with few in flight there is nothing to wait for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


def estimate_tokens(messages: Iterable[Mapping[str, Any]], max_tokens: int) -> int:
    """Tokens a request may use, as providers count them against a tokens-per-minute limit: prompt + max output.

    The prompt is estimated at 4 characters per token (no tokenizer needed); the output at its upper bound.
    """
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return chars // 4 + int(max_tokens)


class TokenBucket:
    """A continuously refilling budget of `per_minute` units per minute; pure apart from the injected clock."""

    def __init__(self, per_minute: float, burst_s: float = 1.0, clock: Clock = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError(f"rate must be positive, got {per_minute}")
        self.rate = float(per_minute) / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.clock = clock
        self.level = self.capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_time(self, amount: float) -> float:
        """Seconds until `amount` may be taken (0 when it may be taken now). Requests above capacity need a full
        bucket, not `amount`, so they can always go eventually."""
        self._refill()
        need = min(float(amount), self.capacity)
        wait = (need - self.level) / self.rate
        # Rounding can leave a wait too small to move the clock (1e-17 s after 2 s of float arithmetic): waiting it
        # out would loop for ever, so a wait below a nanosecond is no wait.
        return wait if wait > 1e-9 else 0.0

    def take(self, amount: float) -> None:
        """Spend `amount` (the level may go negative: debt paid back by later waits)."""
        self._refill()
        self.level -= float(amount)

    def drain(self) -> None:
        """Spend whatever is left: the server says we are ahead of it."""
        self._refill()
        self.level = min(self.level, 0.0)

    def set_rate(self, per_second: float) -> None:
        """Refill at `per_second` from now on (what was refilled so far stays)."""
        self._refill()
        self.rate = per_second


class RateLimiter:
    """Bounds requests in flight (a semaphore) and paces their start by requests and tokens per minute.

    Create it inside the event loop that uses it (asyncio primitives belong to one loop). `pause(seconds)` holds
    every new request back, for example after a 429 with Retry-After, so the other workers stop hammering too.
    """

    slow_down = 0.95  # rate factor after a 429 while limits are configured
    speed_up = 0.001  # rate factor regained per answer, up to 1
    min_factor = 0.5

    def __init__(
        self,
        concurrency: int,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        burst_s: float = 0.5,
        headroom: float = 0.98,
        ramp_s: float = 0.002,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if not 0 < headroom <= 1:
            raise ValueError(f"headroom must be in (0, 1], got {headroom}")
        self.concurrency = int(concurrency)
        self.clock = clock
        self.sleep = sleep
        self.requests = TokenBucket(requests_per_minute * headroom, burst_s, clock) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute * headroom, burst_s, clock) if tokens_per_minute else None
        self._full_rates = [(b, b.rate) for b in (self.requests, self.tokens) if b is not None]
        self.factor = 1.0
        self.rate_limited_count = 0
        self._semaphore = asyncio.Semaphore(self.concurrency)
        self._lock = asyncio.Lock()
        self._resume_at = float("-inf")
        self.in_flight = 0
        self.max_in_flight = 0
        self.waited_s = 0.0
        self.ramp_s = float(ramp_s)
        self._ramp_start: float | None = None

    @classmethod
    def from_entry(cls, entry: Any, **kwargs: Any) -> RateLimiter:
        """Limits of a catalog entry (`concurrency`, `rate_limits.requests_per_minute / tokens_per_minute`)."""
        limits = entry.rate_limits or {}
        return cls(
            entry.concurrency,
            limits.get("requests_per_minute"),
            limits.get("tokens_per_minute"),
            **kwargs,
        )

    def pause(self, seconds: float) -> None:
        """Start no new request for `seconds` from now (extends, never shortens, a pause already set)."""
        self._resume_at = max(self._resume_at, self.clock() + max(0.0, float(seconds)))

    def _retune(self, factor: float) -> None:
        self.factor = factor
        for bucket, full in self._full_rates:
            bucket.set_rate(full * factor)

    def rate_limited(self, retry_after_s: float) -> None:
        """The server answered 429. With configured limits: empty the buckets and slow them down a little (the
        refused request waits out `retry_after_s` on its own); without: pause every new request that long."""
        self.rate_limited_count += 1
        if not self._full_rates:
            self.pause(retry_after_s)
            return
        for bucket, _ in self._full_rates:
            bucket.drain()
        self._retune(max(self.min_factor, self.factor * self.slow_down))

    def answered(self) -> None:
        """The server answered a request (not a 429): regain a little of the speed a 429 cost."""
        if self.factor < 1.0:
            self._retune(min(1.0, self.factor + self.speed_up))

    async def _wait_for_budget(self, tokens: float) -> None:
        # One waiter at a time reserves budget, in arrival order, so no request starves behind smaller ones.
        async with self._lock:
            while True:
                wait = self._resume_at - self.clock()
                if self.ramp_s > 0:
                    if self._ramp_start is None:
                        self._ramp_start = self.clock()
                    # while ramping up, the n-th request in flight starts n x ramp_s after the first
                    wait = max(
                        wait, self._ramp_start + min(self.in_flight, self.concurrency) * self.ramp_s - self.clock()
                    )
                if self.requests is not None:
                    wait = max(wait, self.requests.wait_time(1))
                if self.tokens is not None:
                    wait = max(wait, self.tokens.wait_time(tokens))
                if wait <= 0:
                    break
                self.waited_s += wait
                await self.sleep(wait)
            if self.requests is not None:
                self.requests.take(1)
            if self.tokens is not None:
                self.tokens.take(tokens)

    @asynccontextmanager
    async def slot(self, tokens: float = 0.0) -> AsyncIterator[None]:
        """Hold one of `concurrency` places for the duration of one HTTP attempt, started within the rate limits."""
        async with self._semaphore:
            await self._wait_for_budget(tokens)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1
