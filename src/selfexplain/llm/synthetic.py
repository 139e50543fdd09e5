"""The synthetic backend: deterministic stand-ins for an LLM, labelled synthetic everywhere they appear.

No model weights can be downloaded on a fresh machine, so the default workflow runs on respondents whose true
behaviour is known; their text answers go through the same journaling, parsing and scoring as a real model's.
This module knows no study: each study registers a respondent (`register_respondent`) that recognises its own
chats, and a synthetic model asks them in turn. A catalog entry's `synthetic` block holds the common settings
(`seed`, `latency_s`, `call_log`) and one block per study, handed to that study's respondent.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from selfexplain.llm.types import ChatRequest, Completion, Message
from selfexplain.parsing.thinking import split_thinking

UNKNOWN_CHAT = "I can only answer questions about the records I was built for."
# The one module that lists the package's studies; its load_respondents() imports the modules that register.
STUDIES_MODULE = "selfexplain.studies"


class Respondent(Protocol):
    def respond(self, messages: Sequence[Message]) -> str | None:
        """The reply text, or None when the chat is not one this respondent knows."""


RespondentFactory = Callable[[dict[str, Any], int], Respondent]
_FACTORIES: dict[str, RespondentFactory] = {}


def register_respondent(study: str, factory: RespondentFactory) -> None:
    """Make `factory(settings[study], seed)` part of every synthetic model built from now on."""
    _FACTORIES[study] = factory


def registered_studies() -> list[str]:
    importlib.import_module(STUDIES_MODULE).load_respondents()
    return sorted(_FACTORIES)


class SyntheticModel:
    """One synthetic model: the registered respondents, asked in study order; `respond(messages)` gives the text."""

    def __init__(self, settings: dict[str, Any] | None = None, respondents: Sequence[Respondent] | None = None):
        self.settings = dict(settings or {})
        seed = int(self.settings.get("seed", 0))
        if respondents is None:
            respondents = [_FACTORIES[s](dict(self.settings.get(s) or {}), seed) for s in registered_studies()]
        self.respondents = list(respondents)

    def respond(self, messages: Sequence[Message]) -> str:
        for respondent in self.respondents:
            reply = respondent.respond(messages)
            if reply is not None:
                return reply
        return UNKNOWN_CHAT


class SyntheticBackend:
    """Backend adapter: answers requests in order, optionally slowly, and logs every answer it gives."""

    def __init__(self, settings: dict[str, Any] | None = None, call_log: str | Path | None = None) -> None:
        self.settings = dict(settings or {})
        self.model = SyntheticModel(self.settings)
        self.latency_s = float(self.settings.get("latency_s", 0.0))
        self.call_log = Path(call_log) if call_log else None

    def preflight(self) -> None:
        """Nothing to check: no key, no install, no network."""

    def complete(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        log = self.call_log.open("a", encoding="utf-8") if self.call_log else None
        try:
            for i, request in enumerate(requests):
                start = time.perf_counter()
                if self.latency_s:
                    time.sleep(self.latency_s)
                raw = self.model.respond(request.messages)
                reasoning, text = split_thinking(raw)
                if log:
                    log.write(json.dumps({"key": request.key, "time": time.time()}) + "\n")
                    log.flush()
                prompt_words = sum(len(m["content"].split()) for m in request.messages)
                yield (
                    i,
                    Completion(
                        text=text,
                        reasoning=reasoning,
                        finish_reason="stop",
                        prompt_tokens=prompt_words,
                        completion_tokens=len(raw.split()),
                        latency_s=time.perf_counter() - start,
                        model="synthetic",
                    ),
                )
        finally:
            if log:
                log.close()
