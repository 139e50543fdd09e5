"""Keep a model's thinking apart from its answer: one implementation for every backend and parser.

Reasoning models (and chat templates that open a `<think>` tag themselves) put thinking text in front of the
answer. Backends return it in `Completion.reasoning` and only the answer in `Completion.text`, so parsing sees the
answer, a follow-up's assistant turn carries the answer, and the same chat gets the same next turn whichever
backend served it. Parsers call `strip_thinking` again on imported or raw text, so JSON a model merely considered
is never taken as its answer.

Rules: `<think>`/`<thinking>` blocks (any case, spaces inside the tag) are reasoning; a closing tag without an
opening one means the template opened the block, so everything before it is reasoning; an opening tag that is
never closed means the reply ended mid-reasoning, so nothing after it is an answer.
"""

from __future__ import annotations

import re

_THINK_TAG = re.compile(r"<\s*(/?)\s*think(?:ing)?\s*>", re.IGNORECASE)


def _segments(text: str) -> tuple[list[str], list[str]]:
    """(reasoning parts, answer parts) in text order."""
    kept: list[str] = []
    reasoning: list[str] = []
    pos = 0
    open_at: int | None = None
    for tag in _THINK_TAG.finditer(text):
        closing = bool(tag.group(1))
        if open_at is None and closing:
            reasoning.extend(kept)
            reasoning.append(text[pos : tag.start()])
            kept.clear()
            pos = tag.end()
        elif open_at is None:
            kept.append(text[pos : tag.start()])
            open_at = tag.end()
        elif closing:
            reasoning.append(text[open_at : tag.start()])
            open_at = None
            pos = tag.end()
    if open_at is None:
        kept.append(text[pos:])
    else:
        reasoning.append(text[open_at:])
    return reasoning, kept


def strip_thinking(text: str) -> str:
    """The reply without its reasoning, whitespace kept as it was."""
    return "".join(_segments(text)[1])


def split_thinking(text: str) -> tuple[str | None, str]:
    """(reasoning or None when there is none, answer), both stripped."""
    if not _THINK_TAG.search(text):
        return None, text
    reasoning, kept = _segments(text)
    joined = "\n".join(part.strip() for part in reasoning if part.strip())
    return joined, "".join(kept).strip()


# One harmony message: <|channel|>NAME ...<|message|>BODY, up to the next end/return/call/start token.
_HARMONY_MESSAGE = re.compile(
    r"<\|channel\|>\s*(\w+)[^<]*<\|message\|>(.*?)(?=<\|(?:end|return|call|start)\|>|\Z)", re.DOTALL
)


def split_harmony(text: str) -> tuple[str | None, str]:
    """(reasoning, answer) of a reply in OpenAI's harmony format (gpt-oss), decoded with its special tokens kept:
    the `analysis` channel is reasoning, the last `final` channel the answer. A reply cut off before its final
    channel has no answer. Text without harmony markers is left to `split_thinking`."""
    messages = _HARMONY_MESSAGE.findall(text)
    if not messages:
        return split_thinking(text)
    reasoning = "\n".join(body.strip() for channel, body in messages if channel != "final" and body.strip())
    finals = [body for channel, body in messages if channel == "final"]
    return reasoning or None, finals[-1].strip() if finals else ""
