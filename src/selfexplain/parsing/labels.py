"""Matching free text to a closed set of labels: option answers and category names.

Case, quotes, punctuation and digit grouping never decide a match; a longer label wins over one it contains
("no heart disease" over "heart disease"); a second label or a negation outside the chosen one makes the reading
ambiguous rather than a guess ("not sure if YES" is not YES).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from selfexplain.parsing.jsontext import plain

NEGATIONS = frozenset(
    {"not", "no", "non", "never", "neither", "nor", "cannot", "cant", "dont", "doesnt", "isnt", "wont"}
    | {"arent", "wasnt", "didnt", "unlikely"}
)


def normalise_label(text: str) -> str:
    """Reduce a label to lower-case words so that case, quotes and punctuation never decide a match."""
    s = re.sub(r"['`´]", "", plain(str(text)))
    if not s.isascii():
        s = "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))
    s = s.lower()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", s).split())


def answer_form(text: str) -> str:
    """normalise_label, with digit groups joined so that "$50,000" and "$50000" compare equal."""
    return re.sub(r"(?<=\d) (?=\d{3}(?!\d))", "", normalise_label(text))


def has_phrase(text: str, phrase: str) -> bool:
    """Whole-word containment; both sides are normalised (single spaces, no punctuation)."""
    return bool(phrase) and f" {phrase} " in f" {text} "


def pick_contained(text: str, candidates: Sequence[str]) -> tuple[int | None, bool]:
    """The one candidate phrase contained in text as whole words, and whether the choice was ambiguous.

    A longer candidate wins over one it contains ("no heart disease" over "heart disease") unless the
    shorter also occurs on its own; any negation word outside the chosen phrase makes the choice ambiguous.
    """
    found = [i for i, c in enumerate(candidates) if has_phrase(text, c)]
    if not found:
        return None, False
    best = max(found, key=lambda i: len(candidates[i]))
    rest = f" {text} "
    while f" {candidates[best]} " in rest:
        rest = rest.replace(f" {candidates[best]} ", " | ")
    if any(has_phrase(rest, candidates[i]) for i in found if i != best):
        return None, True
    if NEGATIONS.intersection(rest.split()):
        return None, True
    return best, False


def match_option(value: str, options: Sequence[str]) -> tuple[str | None, str]:
    """(option, "ok"), or (None, "ambiguous" | "not_an_option")."""
    stripped = value.strip()
    if stripped in options:
        return stripped, "ok"
    forms = [answer_form(o) for o in options]
    wanted = answer_form(stripped)
    equal = [o for o, f in zip(options, forms, strict=True) if f == wanted]
    if equal:
        return (equal[0], "ok") if len(equal) == 1 else (None, "ambiguous")
    index, ambiguous = pick_contained(wanted, forms)
    if index is not None:
        return options[index], "ok"
    return None, "ambiguous" if ambiguous else "not_an_option"
