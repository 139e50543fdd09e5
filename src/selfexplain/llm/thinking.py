"""Keep a model's thinking apart from its answer, the same way for every backend.

Reasoning models (and chat templates that open a `<think>` tag themselves) put thinking text in front of the answer.
Every backend returns it in `Completion.reasoning` and only the answer in `Completion.text`, so parsing sees the
answer, the follow-up's assistant turn carries the answer, and the same chat gets the same next turn whichever
backend served it.
"""

from __future__ import annotations

import re

_OPEN = re.compile(r"^\s*<think>", re.IGNORECASE)
_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_ANY_OPEN = re.compile(r"<think>", re.IGNORECASE)


def split_thinking(text: str) -> tuple[str | None, str]:
    """(reasoning, answer): a leading `<think>...</think>` block, or everything up to a lone `</think>` when the
    template opened the tag. An unclosed leading `<think>` means generation stopped mid-reasoning: no answer."""
    opened = _OPEN.match(text)
    closes = list(_CLOSE.finditer(text))
    if opened:
        if not closes:
            return text[opened.end() :].strip(), ""
        first = closes[0]
        return text[opened.end() : first.start()].strip(), text[first.end() :].strip()
    if closes and not _ANY_OPEN.search(text):
        last = closes[-1]
        return text[: last.start()].strip(), text[last.end() :].strip()
    return None, text
