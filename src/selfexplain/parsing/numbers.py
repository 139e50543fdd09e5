"""Numbers written by models: digits, English words ("forty-five"), ordinals, currency and grouping.

Which filler words may stand around a number ("45 years old", "2,500 sq ft") depends on the data set, so callers
pass them in; nothing here knows a data set.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from selfexplain.parsing.jsontext import plain

_SMALL = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven")
_SMALL += ("twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_UNITS = {w: i for i, w in enumerate(_SMALL[:10])}
_TEENS = {w: i + 10 for i, w in enumerate(_SMALL[10:])}
_TENS = {w: 10 * i for i, w in enumerate(("twenty", "thirty", "forty", "fifty", "sixty"), start=2)}
_TENS |= {w: 10 * i for i, w in enumerate(("seventy", "eighty", "ninety"), start=7)}
_TENS["fourty"] = 40
_SCALES = {"thousand": 1_000, "million": 1_000_000}
_NUMBER_WORDS = frozenset({*_UNITS, *_TEENS, *_TENS, "hundred", *_SCALES})
_ORDINALS = {
    **{w + "th": w for w in (*_UNITS, *_TEENS, "hundred", *_SCALES)},
    **{w[:-1] + "ieth": w for w in _TENS},
    **{"first": "one", "second": "two", "third": "three", "fifth": "five", "eighth": "eight"},
    **{"ninth": "nine", "twelfth": "twelve"},
}
Number = tuple[float, tuple[str, ...]]  # a value and the filler words written around it
ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})
_IGNORED_SYMBOLS = frozenset(".,/():;'\"*`")
_NUMBER_TOKEN = re.compile(r"\d*\.\d+|\d+|[a-z]+|\S", re.ASCII)


def words_to_number(words: Sequence[str]) -> int | None:
    """Value of an English cardinal ("forty five", "two thousand five hundred"), None if malformed."""
    total = group = 0
    last = ""
    largest_scale = 0
    for w in words:
        if w == "and":
            if last not in ("hundred", "scale"):
                return None
            last = "and"
        elif w in _UNITS:
            if last not in ("", "tens", "hundred", "scale", "and") or (w == "zero" and last):
                return None
            group, last = group + _UNITS[w], "unit"
        elif w in _TEENS or w in _TENS:
            if last not in ("", "hundred", "scale", "and"):
                return None
            group, last = group + _TEENS.get(w, _TENS.get(w, 0)), "tens" if w in _TENS else "teen"
        elif w == "hundred":
            if last not in ("unit", "teen") or not 0 < group < 100:
                return None
            group, last = group * 100, "hundred"
        elif w in _SCALES:
            scale = _SCALES[w]
            if last in ("", "and", "scale") or group == 0 or (largest_scale and scale >= largest_scale):
                return None
            total, group, last, largest_scale = total + group * scale, 0, "scale", scale
        else:
            return None
    return None if last in ("", "and") else total + group


def extract_number(text: str, fillers: frozenset[str], ordinals: bool = False) -> Number | None:
    """The single number in text, written in digits or words, and the filler words around it.

    Anything else (a second different number, a range or minus sign, hedges such as "about") gives None.
    """
    s = plain(text.lower())
    s = re.sub(r"[$€£¥]", " ", s)
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)
    s = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", s)
    tokens = _NUMBER_TOKEN.findall(s)
    numbers: list[float] = []
    words: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if "0" <= t[0] <= "9" or (t[0] == "." and len(t) > 1):
            numbers.append(float(t))
            i += 1
            if ordinals and i < len(tokens) and tokens[i] in ORDINAL_SUFFIXES:
                i += 1
        elif t in _NUMBER_WORDS or (ordinals and t in _ORDINALS):
            run: list[str] = []
            while i < len(tokens):
                w = tokens[i]
                if ordinals and w in _ORDINALS:
                    run.append(_ORDINALS[w])
                    i += 1
                    break
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                if w in _NUMBER_WORDS or (w == "and" and (nxt in _NUMBER_WORDS or nxt in _ORDINALS)):
                    run.append(w)
                    i += 1
                else:
                    break
            value = words_to_number(run)
            if value is None:
                return None
            numbers.append(float(value))
        elif t in fillers:
            words.append(t)
            i += 1
        elif t in _IGNORED_SYMBOLS:
            i += 1
        else:
            return None
    if len(set(numbers)) != 1 or not math.isfinite(numbers[0]):
        return None
    return numbers[0], tuple(words)


_WORD_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1,000,000 (the inverse of `words_to_number`, used to make synthetic replies
    harder to read)."""
    if n < 20:
        return _SMALL[n]
    if n < 100:
        tens, rest = divmod(n, 10)
        return _WORD_TENS[tens - 2] + (f"-{_SMALL[rest]}" if rest else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_SMALL[hundreds]} hundred" + (f" {number_to_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{number_to_words(thousands)} thousand" + (f" {number_to_words(rest)}" if rest else "")
