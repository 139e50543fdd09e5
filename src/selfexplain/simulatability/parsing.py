"""What the simulatability study's tagged replies mean: the chosen option, the explanation, factors, confidence.

Finding the sections is `selfexplain.parsing.tags`; this module reads them against a dataset's two options
(("NO", "YES"), ("NO RECURRENCE", "RECURRENCE"), ("NO SUBSCRIPTION", "SUBSCRIBED"), ("CASE 1", "CASE 2")).

It fixes the original's quirks (its prefix rule read "NOT SURE" and "NOPE" as NO and an echoed template line as
YES; it caught hedges only through slashes) and keeps an exact re-implementation of the original's reading
(`original_parse`, `original_normalize`) so that imported runs can be taken "as the original parsed them" and a
re-parse can count where the two readings differ.

Answer statuses (`ANSWER_STATUSES`; `answer_status` of a reference, `status` of a prediction):
  ok                   one option read
  empty                no text (or nothing but complete thinking)
  incomplete_thinking  the reply ended inside a thinking block and no ANSWER section came before it
  no_sections          no recognised tag at all (an untagged reply is not read for an answer)
  no_answer            tags, but no ANSWER section or only empty ones
  hedge                both options named ("YES/NO", "YES or NO", "yes and no") or "either"/"both"
  not_an_option        the ANSWER names no option ("MEDIUM", "NOPE", "Uncertain")
  negated              a negation stands beside or instead of an option ("NOT SURE", "not YES", "Recurrence is
                       unlikely", "No, recurrence is likely")
  template_echo        the template's answer line itself ("YES or NO (you must choose only one)")
Reply statuses (`PARSE_STATUSES`, `parse_status` of a reference): ok (all five sections non-empty), empty,
incomplete_thinking, no_sections, missing_sections (tags found; some section absent or empty, see
`missing_sections`).

Answer reading, on the ANSWER section's first non-empty line (a template echo or a lead-in ending in ":" is
skipped for the next line): an option at the start of the line, followed by punctuation, the end, or prose that
does not make the option the subject of a sentence ("Yes (likely)", "**Yes.**", "yes, the patient ...", "Case 1.")
is the answer, unless another option follows it joined by "/", "or", "and", "vs" (a hedge). Otherwise the line is
read as a whole: exactly one option named and no negation word beside it ("The doctor would say YES") is the
answer. Options are found punctuation-aware and longest first, so "NO RECURRENCE" is never read as "RECURRENCE"
and "No, recurrence is likely" is not "NO RECURRENCE" (that is why `labels.pick_contained`, which drops punctuation,
is not used for answers). Confidence: LOW/MEDIUM/HIGH ("moderate" is MEDIUM), a leading level wins ("Medium -
fairly sure", "high confidence"); two levels ("low-to-medium", "medium/high"), numbers ("7/10") or nothing give
None; the raw text is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

from selfexplain.parsing.jsontext import plain
from selfexplain.parsing.labels import NEGATIONS, match_option, normalise_label
from selfexplain.parsing.tags import extract_all_sections, split_list
from selfexplain.parsing.thinking import strip_thinking

ANSWER_STATUSES = (
    "ok",
    "empty",
    "incomplete_thinking",
    "no_sections",
    "no_answer",
    "hedge",
    "not_an_option",
    "negated",
    "template_echo",
)
PARSE_STATUSES = ("ok", "empty", "incomplete_thinking", "no_sections", "missing_sections")
CONFIDENCE_LEVELS = ("LOW", "MEDIUM", "HIGH")

ANSWER, EXPLANATION, FACTORS, OTHER, CONFIDENCE = (
    "ANSWER",
    "EXPLANATION",
    "MOST_IMPORTANT_FACTORS",
    "OTHER_RELEVANT_INFO",
    "CONFIDENCE",
)
SECTIONS = (ANSWER, EXPLANATION, FACTORS, OTHER, CONFIDENCE)
# Tag names models write instead of the asked ones; every name ends the section before it.
TAG_ALIASES: dict[str, tuple[str, ...]] = {
    ANSWER: ("FINAL ANSWER", "PREDICTED ANSWER"),
    EXPLANATION: (),
    FACTORS: ("MOST IMPORTANT FACTOR", "MOST_IMPORTANT_FACTOR"),
    OTHER: ("OTHER RELEVANT INFORMATION", "OTHER RELEVANT FACTORS"),
    CONFIDENCE: ("CONFIDENCE LEVEL",),
}


@dataclass(frozen=True)
class ReferenceParse:
    """A reference reply read: the answer with its status and raw text, the explanation and lists, confidence."""

    answer: str | None
    answer_status: str
    answer_raw: str | None
    explanation: str | None
    factors: tuple[str, ...]
    other_info: tuple[str, ...]
    confidence: str | None
    confidence_raw: str | None
    parse_status: str
    missing_sections: tuple[str, ...] = ()


@dataclass(frozen=True)
class PredictionParse:
    """A predictor reply read: the predicted option (or None) with a status, the raw ANSWER text, confidence."""

    answer: str | None
    status: str
    raw: str | None
    confidence: str | None
    confidence_raw: str | None


# ------------------------------------------------------------------------------------------------ answers

_WORDS_GAP = r"[ \t_\-]*"
_CONNECTOR = re.compile(r"\s*(?:/|\\|\||&|\+|,|\bOR\b|\bAND\b|\bAND\s*/\s*OR\b|\bVS\b\.?|\bVERSUS\b)?\s*(?:THE\s+)?")
_INSTRUCTION = re.compile(r"\b(?:CHOOSE|PICK|SELECT)\b.*\bONE\b")
_HEDGE_WORDS = frozenset({"either", "both"})
# After a leading option, these words make the option the subject of a sentence ("Recurrence is unlikely"),
# so the line is read as a whole instead.
_PREDICATES = frozenset(
    {"is", "are", "was", "were", "be", "been", "seems", "appears", "would", "will", "may", "might", "could", "can"}
    | {"should", "must", "likely", "possible", "probable"}
)


def _light(text: str) -> str:
    """Upper case without markdown emphasis, underscores as spaces, whitespace collapsed; punctuation kept."""
    s = re.sub(r"[*_`~#]+", " ", plain(text)).upper()
    return " ".join(s.split())


@lru_cache(maxsize=64)
def _option_finder(options: tuple[str, ...]) -> re.Pattern[str]:
    """Occurrences of the options in light text, longest first at each position, as whole words."""
    pats = sorted(
        ((_WORDS_GAP.join(re.escape(w) for w in _light(o).split()), o) for o in options), key=lambda p: -len(p[1])
    )
    body = "|".join(f"(?P<o{options.index(o)}>{p})" for p, o in pats)
    return re.compile(rf"(?<![A-Z0-9])(?:{body})(?![A-Z0-9])")


def _occurrences(light: str, options: tuple[str, ...]) -> list[tuple[int, int, str]]:
    out = []
    for m in _option_finder(options).finditer(light):
        index = int(next(k for k, v in m.groupdict().items() if v is not None)[1:])
        out.append((m.start(), m.end(), options[index]))
    return out


def _joined_pair(light: str, occ: list[tuple[int, int, str]]) -> bool:
    """Two different options joined by a connector, the second ending the phrase: "YES/NO", "NO or YES?"."""
    for (_, end_a, a), (start_b, end_b, b) in pairwise(occ):
        if a != b and _CONNECTOR.fullmatch(light[end_a:start_b]) and not re.match(r"\s*[A-Z0-9]", light[end_b:]):
            return True
    return False


def _rest_words(light: str, occ: list[tuple[int, int, str]]) -> set[str]:
    """The words of the line outside the option occurrences."""
    pieces, pos = [], 0
    for start, end, _ in occ:
        pieces.append(light[pos:start])
        pos = end
    pieces.append(light[pos:])
    return set(normalise_label(" | ".join(pieces)).split())


def _is_template_echo(light: str, occ: list[tuple[int, int, str]]) -> bool:
    return len({o for _, _, o in occ}) >= 2 and bool(_INSTRUCTION.search(light))


def _read_line(line: str, options: tuple[str, ...]) -> tuple[str | None, str]:
    """(option, status) for one line of an ANSWER section."""
    light = _light(line)
    occ = _occurrences(light, options)
    named = {o for _, _, o in occ}
    if _is_template_echo(light, occ):
        return None, "template_echo"
    if _joined_pair(light, occ):
        return None, "hedge"
    lead = re.match(r"[\s\"'(\[{<]*", light)
    if occ and lead is not None and occ[0][0] == lead.end():
        first, end = occ[0][2], occ[0][1]
        after = light[end:]
        next_word = normalise_label(after).split()[:1]
        if not re.match(r"\s*[A-Z0-9]", after) or not (set(next_word) & (_PREDICATES | NEGATIONS)):
            return first, "ok"
    words = set(normalise_label(light).split())
    if len(named) >= 2:
        return None, "hedge"
    if not named:
        if words & _HEDGE_WORDS:
            return None, "hedge"
        return None, "negated" if words & NEGATIONS else "not_an_option"
    if _rest_words(light, occ) & NEGATIONS:
        return None, "negated"
    return next(iter(named)), "ok"


_MAX_ANSWER_LINES = 4


def read_answer(section: str | None, options: Sequence[str]) -> tuple[str | None, str]:
    """(option or None, status) for the body of an ANSWER section; see the module docstring for the rules."""
    opts = tuple(options)
    lines = [ln for ln in (section or "").split("\n") if normalise_label(ln)]
    if not lines:
        return None, "no_answer"
    echo = False
    for i, line in enumerate(lines[:_MAX_ANSWER_LINES]):
        answer, status = _read_line(line, opts)
        if status == "template_echo":
            echo = True
            continue
        if status == "not_an_option" and line.rstrip(" *_").endswith(":") and i + 1 < len(lines):
            continue  # "Final answer:" on a line of its own
        return answer, status
    return (None, "template_echo") if echo else _read_line(lines[0], opts)


def _best_answer(bodies: list[str], options: Sequence[str]) -> tuple[str | None, str, str | None]:
    """(answer, status, raw) from every ANSWER occurrence: the last one that is not empty or a template echo."""
    nonempty = [b for b in bodies if b.strip()]
    if not nonempty:
        return None, "no_answer", None
    fallback: tuple[str | None, str, str | None] | None = None
    for body in reversed(nonempty):
        answer, status = read_answer(body, options)
        if status != "template_echo":
            return answer, status, body
        fallback = fallback or (answer, status, body)
    assert fallback is not None
    return fallback


# ------------------------------------------------------------------------------------------------ confidence

_LEVEL = r"(LOW|MEDIUM|MODERATE|HIGH)"
_LEADING_LEVEL = re.compile(
    rf"^[\s\"'(\[]*(?:(?:VERY|FAIRLY|QUITE|RELATIVELY|RATHER|EXTREMELY|REASONABLY)\s+)?{_LEVEL}(?![A-Z0-9])"
)
_SECOND_LEVEL = re.compile(rf"^(?:\s*(?:[-/\\,&+]|(?:TO|OR|AND)(?![A-Z0-9])))+\s*{_LEVEL}(?![A-Z0-9])")


def read_confidence(section: str | None) -> str | None:
    """LOW, MEDIUM or HIGH from a CONFIDENCE section's first non-empty line, else None (see the module docstring)."""
    line = next((ln for ln in (section or "").split("\n") if normalise_label(ln)), "")
    light = _light(line)
    lead = _LEADING_LEVEL.match(light)
    if lead:
        if _SECOND_LEVEL.match(light[lead.end() :]):
            return None  # between two levels: not rounded either way
        return "MEDIUM" if lead.group(1) == "MODERATE" else lead.group(1)
    value, status = match_option(re.sub(r"\bMODERATE\b", "MEDIUM", light), CONFIDENCE_LEVELS)
    return value if status == "ok" else None


# ------------------------------------------------------------------------------------------------ replies


def _answer_text(text: Any) -> tuple[str | None, bool]:
    """(reply without thinking or None when there is none, whether the reply ended inside a thinking block)."""
    if not isinstance(text, str) or not text.strip():
        return None, False
    # a sentinel after the text survives strip_thinking only if no thinking block was left open
    kept = strip_thinking(text + "\x00")
    open_block = not kept.endswith("\x00")
    kept = kept.rstrip("\x00")
    return (kept if kept.strip() else None), open_block


def _sections(text: str) -> dict[str, list[str]]:
    return extract_all_sections(text, TAG_ALIASES)


def _last(bodies: list[str] | None) -> str | None:
    return next((b for b in reversed(bodies or []) if b.strip()), None)


def _reply_failure(text: Any) -> tuple[str | None, dict[str, list[str]], str | None]:
    """(answer text, sections, failure status or None)."""
    kept, open_block = _answer_text(text)
    if kept is None:
        return None, {}, "incomplete_thinking" if open_block else "empty"
    sections = _sections(kept)
    if not sections:
        return kept, {}, "incomplete_thinking" if open_block else "no_sections"
    if open_block and not _last(sections.get(ANSWER)):
        return kept, sections, "incomplete_thinking"
    return kept, sections, None


def parse_reference(text: Any, options: Sequence[str]) -> ReferenceParse:
    """Read a reference reply (thinking may be included; it is removed first). Never raises."""
    _, sections, failure = _reply_failure(text)
    if failure is not None and not sections:
        return ReferenceParse(None, failure, None, None, (), (), None, None, failure)
    answer, status, raw = _best_answer(sections.get(ANSWER, []), options)
    if failure == "incomplete_thinking":
        status = failure
    confidence_raw = _last(sections.get(CONFIDENCE))
    missing = tuple(name for name in SECTIONS if not _last(sections.get(name)))
    return ReferenceParse(
        answer=answer,
        answer_status=status,
        answer_raw=raw,
        explanation=_last(sections.get(EXPLANATION)),
        factors=tuple(split_list(_last(sections.get(FACTORS)))),
        other_info=tuple(split_list(_last(sections.get(OTHER)))),
        confidence=read_confidence(confidence_raw),
        confidence_raw=confidence_raw,
        parse_status=failure or ("missing_sections" if missing else "ok"),
        missing_sections=missing,
    )


def parse_prediction(text: Any, options: Sequence[str]) -> PredictionParse:
    """Read a predictor reply ([ANSWER] and [CONFIDENCE]; thinking is removed first). Never raises."""
    _, sections, failure = _reply_failure(text)
    if failure is not None:
        return PredictionParse(None, failure, None, None, None)
    answer, status, raw = _best_answer(sections.get(ANSWER, []), options)
    confidence_raw = _last(sections.get(CONFIDENCE))
    return PredictionParse(answer, status, raw, read_confidence(confidence_raw), confidence_raw)


# ------------------------------------------------------------------------------------------------ the original


def original_normalize_answer(answer: Any, options: Iterable[str]) -> str | None:
    """The original's answer normalisation, exactly: first line, edge punctuation and '*' stripped, upper case,
    '_' as space; None for a slash hedge of two options; then an exact option, else the longest option that is a
    PREFIX of the text ("NOT SURE" -> NO, "YES or NO (...)" -> YES), else None."""
    if not isinstance(answer, str) or not answer:
        return None
    valid = set(options)
    cleaned = answer.strip().split("\n")[0].strip()
    cleaned = cleaned.strip("*.,!?;:").strip().upper().replace("_", " ")
    if "/" in cleaned and sum(part.strip() in valid for part in cleaned.split("/")) >= 2:
        return None
    if cleaned in valid:
        return cleaned
    return next((o for o in sorted(valid, key=len, reverse=True) if cleaned.startswith(o)), None)


@lru_cache(maxsize=8)
def _original_tag(name: str) -> re.Pattern[str]:
    # the original's tag: the name in capitals inside brackets with at most three whitespace characters each side,
    # then any whitespace before the body
    return re.compile(rf"\[\s{{0,3}}{name}\s{{0,3}}\]\s*")


def _original_section(text: str, name: str) -> str | None:
    """The first tag's body: from after the tag's trailing whitespace to the next "\\n[" (or the end), stripped."""
    m = _original_tag(name).search(text)
    if m is None:
        return None
    stop = text.find("\n[", m.end())
    return text[m.end() : len(text) if stop < 0 else stop].strip()


def original_parse(text: Any, options: Iterable[str]) -> dict[str, Any] | None:
    """The original's parsed-response dict for one reply text, exactly (None for an empty reply).

    Keys as the original writes them: answer, explanation, most_important_factors, other_relevant_info,
    confidence (each only when its tag was found), or {"error": "incomplete_thinking"} or
    {"error": "invalid_format", "raw_response": ...}. Text after the FIRST "</think>" is read; an opening tag
    without a closing one is incomplete thinking. (The original's generation step had already cut its outputs at
    the LAST "</think>", so its stored raw responses contain no closing tag.)
    """
    if not isinstance(text, str) or not text:
        return None
    if "</think>" in text:
        text = text.split("</think>", 1)[1].strip()
    elif "<think>" in text:
        return {"error": "incomplete_thinking"}
    if not text:
        return None
    result: dict[str, Any] = {}
    answer = _original_section(text, "ANSWER")
    if answer is not None:
        result["answer"] = original_normalize_answer(answer, options)
    explanation = _original_section(text, "EXPLANATION")
    if explanation is not None:
        result["explanation"] = explanation
    for key, name in (("most_important_factors", FACTORS), ("other_relevant_info", OTHER)):
        body = _original_section(text, name)
        if body is not None:
            result[key] = [item.strip() for item in body.split(",") if item.strip()]
    confidence = _original_section(text, CONFIDENCE)
    if confidence is not None:
        result["confidence"] = confidence
    return result or {"error": "invalid_format", "raw_response": text}


def original_normalize(text: Any, options: Iterable[str]) -> str | None:
    """The answer the original pipeline stored for a reply text (its `parse_response` then `.get("answer")`)."""
    parsed = original_parse(text, options)
    return parsed.get("answer") if isinstance(parsed, dict) else None
