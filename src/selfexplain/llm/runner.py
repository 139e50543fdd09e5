"""Run a job's requests through a backend, journaling each completion as it arrives.

Requests already in the journal are not sent again; identical requests within a job are sent once. The result
list is aligned with the input list by position. Every error raised here is one line (the last line of a job's
log): requests that failed for good (InferenceError at the end), or a failure that stopped the job at once
(a rejected key, an unreachable endpoint), which also says how many answers the journal kept.

The journal keeps each answer exactly; the completions returned have lone surrogates replaced by U+FFFD
(`transport.clean_completion`), so the tables written from them (pyarrow) and follow-up requests built from them
(httpx) can encode them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from selfexplain.errors import InferenceError
from selfexplain.llm.backends import Backend
from selfexplain.llm.journal import Journal
from selfexplain.llm.retry import StopsJob
from selfexplain.llm.transport import clean_completion
from selfexplain.llm.types import ChatRequest, Completion

log = logging.getLogger(__name__)


def run_requests(
    backend: Backend,
    requests: Sequence[ChatRequest],
    journal_path: str | Path,
    description: str = "requests",
    progress: bool = True,
    fail_on_error: bool = True,
) -> list[Completion]:
    """Complete `requests` in order. Raises InferenceError at the end if any request failed for good."""
    backend.preflight()
    results: list[Completion | None] = [None] * len(requests)
    with Journal(journal_path) as journal:
        todo: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            cached = journal.get(request.key)
            if cached is not None:
                results[i] = clean_completion(cached)
            else:
                todo.setdefault(request.key, []).append(i)
        reused = len(requests) - sum(len(v) for v in todo.values())
        log.info(
            "%s: %d requests, %d from the journal %s, %d to send",
            description,
            len(requests),
            reused,
            journal_path,
            len(todo),
        )
        unique = [requests[positions[0]] for positions in todo.values()]
        answered = 0
        with tqdm(total=len(unique), desc=description, disable=not progress, mininterval=1.0) as bar:
            try:
                for j, completion in backend.complete(unique):
                    key = unique[j].key
                    journal.append(key, completion)
                    answered += completion.ok
                    cleaned = clean_completion(completion)
                    for i in todo[key]:
                        results[i] = cleaned
                    bar.update(1)
            except StopsJob as exc:
                kept = reused + answered
                raise type(exc)(
                    f"{description}: {exc} ({kept} of {len(requests)} answers kept in {journal_path}; "
                    "a rerun sends only the rest)"
                ) from None
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        raise InferenceError(f"{description}: backend returned no completion for {len(missing)} request(s)")
    done = [r for r in results if r is not None]
    failed = [c for c in done if not c.ok]
    if failed and fail_on_error:
        examples = "; ".join(sorted({c.error or "" for c in failed})[:3])
        raise InferenceError(
            f"{description}: {len(failed)} of {len(done)} request(s) failed for good (e.g. {examples}); "
            f"the {len(done) - len(failed)} answers received are kept in {journal_path}, so a rerun sends only "
            "the failed ones"
        )
    return done


def usage_totals(completions: Sequence[Completion]) -> dict[str, int]:
    return {
        "requests": len(completions),
        "errors": sum(1 for c in completions if not c.ok),
        "prompt_tokens": sum(c.prompt_tokens or 0 for c in completions),
        "completion_tokens": sum(c.completion_tokens or 0 for c in completions),
    }


def completion_columns(
    completions: Sequence[Completion], requests: Sequence[ChatRequest], prefix: str = ""
) -> dict[str, list]:
    """Table columns of a job's replies (text, thinking, usage, errors, journal keys), aligned with `requests`."""
    return {
        f"{prefix}response": [c.text for c in completions],
        f"{prefix}reasoning": [c.reasoning for c in completions],
        f"{prefix}finish_reason": [c.finish_reason for c in completions],
        f"{prefix}prompt_tokens": [c.prompt_tokens for c in completions],
        f"{prefix}completion_tokens": [c.completion_tokens for c in completions],
        f"{prefix}latency_s": [c.latency_s for c in completions],
        f"{prefix}error": [c.error for c in completions],
        f"{prefix}request_key": [r.key for r in requests],
    }
