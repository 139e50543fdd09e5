"""One retry policy for every API backend: what to retry, how long to wait, when to give up, and how many it took.

Why our own policy (the SDKs' clients are built with `max_retries=0`): retries must be counted and reported per
job, honour the server's Retry-After, pause the whole job on rate limits, and behave the same for every provider.

Retried: HTTP 408, 409, 429 and 5xx (including Anthropic's 529 "overloaded"), timeouts, dropped or refused
connections, and 200 answers that hold no usable answer (`MalformedResponseError`: a body that is not JSON, no
choices, a number where text belongs, ...). Not retried: other 4xx (400, 401, 403, 404, 422, ...), and 429s that
mean "out of credit" (`insufficient_quota`), which no wait can fix. A server's `x-should-retry: true|false` header
overrides the status. Waits: the server's `retry-after-ms` / `Retry-After` (seconds or an HTTP date) when given,
capped; otherwise exponential backoff with jitter. Gives up after `max_retries` retries and re-raises the last error.

Two failures stop a whole job instead of becoming error rows, because every other request would fail the same way:
a rejected key (`KeyRejected`, HTTP 401/403) and an endpoint nothing answers at (`EndpointUnreachable`). Their
messages are one line naming the model and what to fix; `connection_failure` finds the real cause of a failed
connection (refused, unresolvable host, connect timeout) under the SDKs' wrappers, which may call it a timeout.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from selfexplain.errors import ConfigError, InferenceError
from selfexplain.llm.secrets import redact
from selfexplain.llm.types import Completion

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 429})
REJECTED_STATUS = frozenset({429, 503, 529})  # the server refused the request: resending cannot duplicate it
QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})
MAX_ERROR_CHARS = 1000


AUTH_STATUS = frozenset({401, 403})
# Exception types (by class name, whichever HTTP library raised them) that mean no connection was made at all.
CONNECT_ERROR_NAMES = frozenset(
    {"ClientConnectorError", "ClientConnectorDNSError", "ClientConnectorSSLError", "ConnectError", "ConnectTimeout"}
)


class TransientResponseError(Exception):
    """A 200 response without an answer (e.g. an upstream provider failed behind a router): worth another try."""


class MalformedResponseError(TransientResponseError):
    """A 200 response whose body is not a usable answer; `kind` names what was wrong (e.g. `not_json`)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class StopsJob(Exception):
    """Marker of errors that end a whole job at once: every other request would fail the same way."""


class KeyRejected(StopsJob, ConfigError):
    """The endpoint refused the API key (HTTP 401/403): nothing can succeed until the key or catalog is fixed."""


class EndpointUnreachable(StopsJob, InferenceError):
    """Too many consecutive requests could not connect at all."""


def one_line(text: str, limit: int = 300) -> str:
    """`text` on one line, at most `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def connection_failure(exc: BaseException) -> str | None:
    """The real cause when `exc` means no connection was made at all ("connection refused", "host name not
    resolved (...)", "connect timed out", ...), else None (an answer, a dropped connection, a read timeout).

    The SDKs wrap the cause: over the aiohttp transport the OpenAI SDK reports a refused connection as
    `APITimeoutError: Request timed out.`; the cause chain underneath still says what happened."""
    chain = _chain(exc)
    for item in chain:
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, socket.gaierror):
            return f"host name not resolved ({item.strerror or item})"
    if not any(type(item).__name__ in CONNECT_ERROR_NAMES for item in chain):
        return None
    root = chain[-1]
    if isinstance(root, TimeoutError) or type(root).__name__ == "ConnectTimeout":
        return "connect timed out"
    if isinstance(root, ssl.SSLError):
        return f"TLS handshake failed ({one_line(str(root), 120)})"
    if isinstance(root, OSError) and root.strerror:
        return root.strerror.lower()
    return one_line(str(root) or type(root).__name__, 120)


def status_of(exc: BaseException) -> int | None:
    """HTTP status of an SDK status error (both SDKs expose `status_code`), else None."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def headers_of(exc: BaseException) -> Mapping[str, str] | None:
    """Response headers behind an SDK status error (case-insensitive mapping), else None."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if headers is not None and hasattr(headers, "get") else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.title())
    return value


def retry_after_s(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, then `Retry-After` as seconds or an HTTP date."""
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = _header(headers, name)
        if raw is None:
            continue
        try:
            value = float(raw.strip()) / divisor
        except ValueError:
            continue
        if math.isfinite(value):
            return max(0.0, value)
    raw = _header(headers, "retry-after")
    if raw:
        try:
            stamp = email.utils.parsedate_to_datetime(raw.strip()).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return max(0.0, stamp - (time.time() if now is None else now))
    return None


def _error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    body = getattr(exc, "body", None)
    if code is None and isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            code = inner.get("code") or inner.get("type")
    return str(code) if code is not None else None


def error_message(exc: BaseException, attempts: int = 1) -> str:
    """A one-line, bounded description of a failed request (redact it before it leaves the backend)."""
    status = status_of(exc)
    cause = connection_failure(exc) if status is None else None
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if cause is not None:
        text = f"cannot connect: {cause}"
    message = f"{type(exc).__name__}" + (f" (HTTP {status})" if status is not None else "") + f": {text}"
    message = " ".join(message.split())
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 3] + "..."
    if attempts > 1:
        message += f" [gave up after {attempts} attempts]"
    return message


class RetryPolicy:
    """Tenacity-based retries with counting; `transient` names the SDK's connection/timeout exception types.

    `on_rate_limit(seconds)` is called before waiting out a 429, so the caller can pause its other requests too.
    """

    def __init__(
        self,
        max_retries: int,
        transient: tuple[type[BaseException], ...] = (),
        *,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        retry_after_cap_s: float = 120.0,
        on_rate_limit: Callable[[float], None] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.max_retries = int(max_retries)
        self.transient = (*transient, TimeoutError, ConnectionError, TransientResponseError)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_cap_s = retry_after_cap_s
        self.on_rate_limit = on_rate_limit
        self._sleep = sleep
        self.retries = 0
        self.reasons: Counter[str] = Counter()
        self.waited_s = 0.0

    def reason(self, exc: BaseException, safe_to_resend: bool = True) -> str | None:
        """Why `exc` is worth retrying ("429", "503", "timeout", "connection", ...), or None when it is not.

        With `safe_to_resend=False` (a request that must not run twice, such as creating a paid batch) only answers
        that prove the server turned the request away are retried: 429, 503, 529 or `x-should-retry: true`.
        """
        status = status_of(exc)
        if status is not None:
            headers = headers_of(exc)
            verdict = (_header(headers, "x-should-retry") or "").strip().lower() if headers else ""
            if verdict == "false":
                return None
            if status == 429 and _error_code(exc) in QUOTA_CODES:
                return None
            if verdict == "true":
                return str(status)
            if not safe_to_resend:
                return str(status) if status in REJECTED_STATUS else None
            if status in RETRYABLE_STATUS or status >= 500:
                return str(status)
            return None
        if not safe_to_resend:
            return None
        if isinstance(exc, MalformedResponseError):
            return "malformed response"
        if isinstance(exc, TransientResponseError):
            return "empty response"
        if isinstance(exc, self.transient):
            if connection_failure(exc) is not None:
                return "connection"
            timed_out = isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower()
            return "timeout" if timed_out else "connection"
        return None

    def wait_s(self, retry_state: RetryCallState) -> float:
        """The server's Retry-After when it gave one (capped), else exponential backoff with jitter."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        server = retry_after_s(headers_of(exc)) if exc is not None else None
        if server is not None:
            return min(server, self.retry_after_cap_s)
        # Exponential backoff with jitter (as tenacity's wait_exponential_jitter, whose arguments vary by version).
        exponent = min(retry_state.attempt_number - 1, 60)
        delay = self.backoff_initial_s * 2.0**exponent + random.uniform(0, self.backoff_initial_s)
        return min(delay, self.backoff_max_s)

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        delay = retry_state.upcoming_sleep
        reason = self.reason(exc) if exc is not None else None
        self.retries += 1
        self.reasons[reason or "unknown"] += 1
        self.waited_s += delay
        if reason == "429" and self.on_rate_limit is not None:
            self.on_rate_limit(delay)
        log.info(
            "retry %d/%d of a request after %s; waiting %.2f s",
            retry_state.attempt_number,
            self.max_retries,
            reason,
            delay,
        )

    async def call(self, fn: Callable[[], Awaitable[T]], *, safe_to_resend: bool = True) -> tuple[T, int]:
        """Run `fn` under the policy; returns (result, attempts). Re-raises the last error, with `.attempts` set."""
        kwargs: dict[str, Any] = {}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self.wait_s,
            retry=retry_if_exception(lambda e: self.reason(e, safe_to_resend) is not None),
            before_sleep=self._before_sleep,
            reraise=True,
            **kwargs,
        )
        attempts = 0

        async def attempt() -> T:
            nonlocal attempts
            attempts += 1
            return await fn()

        try:
            result = await retrying(attempt)
        except Exception as exc:
            exc.attempts = attempts  # type: ignore[attr-defined]
            raise
        return result, attempts

    def stats(self) -> dict[str, Any]:
        return {"retries": self.retries, "retry_reasons": dict(self.reasons), "retry_wait_s": round(self.waited_s, 3)}


@dataclass
class JobStats:
    """What a job's requests came to: answers, failures and tokens (for logs, tests and cost accounting)."""

    requests: int = 0
    completed: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, completion: Completion) -> None:
        self.requests += 1
        if completion.ok:
            self.completed += 1
        else:
            self.errors += 1
        self.prompt_tokens += completion.prompt_tokens or 0
        self.completion_tokens += completion.completion_tokens or 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def sdk_error_detail(exc: BaseException) -> str:
    """What the server said in an SDK status error: the body's `error.message` when there is one."""
    body = getattr(exc, "body", None)
    error = body.get("error", body) if isinstance(body, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return str(message) if message else str(getattr(exc, "message", None) or exc)


def _error_detail(body: bytes) -> str:
    """The `error.message` of a JSON error body, else the start of the body."""
    text = body[:2000].decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return one_line(text, 200)
    error = data.get("error", data) if isinstance(data, dict) else data
    message = error.get("message") if isinstance(error, dict) else None
    return one_line(str(message if message else error), 200)


def key_rejected_message(model: str, key_env: str | None, url: str, status: int, detail: str) -> str:
    """One line naming the model, the key's variable (or its absence) and what the endpoint said."""
    said = f"HTTP {status}" + (f": {detail}" if detail else "")
    if not key_env:
        return (
            f"model {model!r}: {url} refused the request without an API key ({said}); set api_key_env in the "
            "catalog to the name of the environment variable holding the key"
        )
    verb = "rejected" if status == 401 else "refused access for"
    return f"model {model!r}: {url} {verb} the API key in ${key_env} ({said}); fix the key or api_key_env and rerun"


def probe_endpoint(
    url: str,
    *,
    model: str,
    key_env: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
    secret: str | None = None,
) -> int:
    """One cheap GET (e.g. the models list) before any paid request; returns the HTTP status.

    Raises `KeyRejected` on 401/403 (the key, or its absence, is wrong) and a ConfigError naming `url` and the
    real cause when nothing answers there. Any other status proves a server is listening; the key is then checked
    by the first real request."""
    request = urllib.request.Request(
        url, method="GET", headers={"User-Agent": "selfexplain-preflight", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code in AUTH_STATUS:
            detail = redact(_error_detail(exc.read()), secret) or ""
            raise KeyRejected(key_rejected_message(model, key_env, url, exc.code, detail)) from None
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        cause = connection_failure(reason) if isinstance(reason, BaseException) else None
        if isinstance(reason, TimeoutError):
            cause = f"no answer within {timeout_s:g} s"
        raise ConfigError(
            f"model {model!r}: endpoint {url} unreachable ({redact(cause or one_line(str(reason), 200), secret)}); "
            "start the server or fix base_url in the catalog"
        ) from None


def check_reachable(url: str, *, model: str, timeout_s: float = 5.0, secret: str | None = None) -> None:
    """Fail fast with a ConfigError naming `url` when nothing answers there (no key is sent; any status will do)."""
    try:
        probe_endpoint(url, model=model, timeout_s=timeout_s, secret=secret)
    except KeyRejected:
        return
