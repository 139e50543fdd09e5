"""Tagged sections of a model reply (`[ANSWER] ... [CONFIDENCE] ...`), read the way models really write them.

Prompts ask for sections under bracketed tags, and models mostly comply, but not exactly: bold or spaced tags
(`**[ANSWER]**`, `[ ANSWER ]`), a colon form (`**Answer:** YES`, `CONFIDENCE: HIGH`), markdown headings
(`## Answer`), lower or mixed case, spaces for underscores, a lost bracket (`[ANSWER`, `ANSWER]`), the value on the
tag's own line, code fences, sections in another order, prose after the last section, and the whole template echoed
before the real reply. This module only finds the sections; what they mean is the caller's business.

Rules:
* Thinking blocks and code-fence markers are removed first (`jsontext.clean_reply`).
* A tag is *strong* when it has a bracket (`[ANSWER]`, `[ANSWER`, `ANSWER]`, anywhere on a line when both brackets
  are there) or is a markdown heading (`## Answer`); it is *weak* when it stands at the start of a line followed by a
  colon (`Answer: YES`, `**Answer:**`), is bold (`**Answer**`) or is alone on its line. A weak tag is dropped when a
  strong tag of the same name comes after it, so "Confidence: I am fairly sure" inside an explanation does not cut
  it when a `[CONFIDENCE]` tag follows, while "Answer: NO" after an echoed bracketed template still counts.
* A section runs from its tag to the next recognised tag (of any name) or the end of the text.
* A repeated tag: the LAST occurrence with a non-empty body wins. Models that echo the template first
  ("[ANSWER] YES or NO ...") write their real sections after it, and a reply cut off right after a tag leaves an
  empty last section, so the last complete one is the model's final word. `extract_all_sections` gives every
  occurrence for callers that need a different choice.
* Nothing here raises on any input; a non-string gives no sections.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from functools import lru_cache

from selfexplain.parsing.jsontext import clean_reply
from selfexplain.parsing.labels import normalise_label

Names = Iterable[str] | Mapping[str, Iterable[str]]

_DECO = r"(?:[*_]{1,3}[ \t]*)?"  # markdown emphasis around or inside a tag
_GAP = r"[ \t_\-]*"  # between the words of a tag name: spaces, underscores, hyphens or nothing


@lru_cache(maxsize=4096)
def _key(name: str) -> str:
    """Tag names compare without case, spaces, underscores or hyphens."""
    return re.sub(r"[\s_\-]+", "", name).upper()


def _alias_pattern(alias: str) -> str:
    words = [w for w in re.split(r"[\s_\-]+", alias.strip()) if w]
    return _GAP.join(re.escape(w) for w in words)


@lru_cache(maxsize=64)
def _compiled(aliases: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[re.Pattern[str], re.Pattern[str], dict]:
    """(line-start tag pattern, bracketed-tag pattern, alias key -> name) for a set of names and aliases."""
    lookup: dict[str, str] = {}
    for name, names in aliases:
        for alias in (name, *names):
            if _key(alias):
                lookup.setdefault(_key(alias), name)
    alternatives = sorted({_alias_pattern(a) for n, al in aliases for a in (n, *al) if _key(a)}, key=len, reverse=True)
    name_group = rf"(?P<name>{'|'.join(alternatives)})(?![A-Za-z0-9])"
    line_tag = re.compile(
        r"^[ \t]*(?:>[ \t]*)*"  # indentation, block quote
        r"(?:(?:[-+*•]|\d{1,2}[.)])[ \t]+)?"  # list marker
        r"(?P<hash>\#{1,6}[ \t]*)?"
        rf"(?P<pre>[*_]{{1,3}}[ \t]*)?"
        rf"(?P<open>\[[ \t]*{_DECO})?"
        rf"{name_group}"
        rf"[ \t]*(?P<post>[*_]{{1,3}}[ \t]*)?"
        r"(?P<close>\][ \t]*)?"
        rf"{_DECO}(?P<colon>[:：][ \t]*)?{_DECO}",
        re.IGNORECASE | re.MULTILINE,
    )
    bracket_tag = re.compile(
        rf"\[[ \t]*{_DECO}{name_group}[ \t]*{_DECO}(?:\][ \t]*{_DECO}(?:[:：][ \t]*)?|[:：][ \t]*){_DECO}",
        re.IGNORECASE,
    )
    return line_tag, bracket_tag, lookup


def _normalise_names(names: Names) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if isinstance(names, str):
        names = [names]
    if isinstance(names, Mapping):
        return tuple((str(n), tuple(str(a) for a in al)) for n, al in names.items())
    return tuple((str(n), ()) for n in names)


def _tags(text: str, names: Names) -> list[tuple[int, int, str]]:
    """(start, end, name) of every recognised tag in text order; a weak tag followed by a strong one of its name
    is dropped."""
    line_tag, bracket_tag, lookup = _compiled(_normalise_names(names))
    found: dict[int, tuple[int, str, bool]] = {}  # start -> (end, name, strong)
    for m in line_tag.finditer(text):
        name = lookup.get(_key(m.group("name")))
        if name is None:
            continue
        line_end = text.find("\n", m.end())
        rest = text[m.end() : len(text) if line_end < 0 else line_end]
        ends_line = bool(m.group("colon")) or not rest.strip()
        # a heading counts only as a heading of its own ("## Answer", "## Answer: YES"), not "# Answer the question"
        strong = bool(m.group("open") or m.group("close")) or (bool(m.group("hash")) and ends_line)
        weak = ends_line or bool(m.group("pre") and m.group("post"))
        if strong or weak:
            found[m.start()] = (m.end(), name, strong)
    starts = sorted(found)
    for m in bracket_tag.finditer(text):
        name = lookup.get(_key(m.group("name")))
        i = bisect_right(starts, m.start()) - 1
        if name is None or (i >= 0 and m.start() < found[starts[i]][0]):
            continue  # already part of a tag found at a line start
        found[m.start()] = (m.end(), name, True)
    last_strong = {name: start for start, (_, name, strong) in sorted(found.items()) if strong}
    return [(s, e, n) for s, (e, n, strong) in sorted(found.items()) if strong or s > last_strong.get(n, -1)]


_RULE_LINE = re.compile(r"^[ \t]*(?:[-*_=~#`]{2,}|[*_]+)?[ \t]*$")
_LEADING_MARK = re.compile(r"^(?:[*_]{1,3}|[:：])(?=\s)")  # "** YES" left by "**[ANSWER]** YES"
_TRAILING_MARK = re.compile(r"(?<=\s)[*_#]{1,3}$")  # "... **" before a bold tag further on


def _clean_body(body: str) -> str:
    """Strip a section body, with the markdown rules and stray emphasis markers at its edges."""
    lines = body.split("\n")
    while lines and _RULE_LINE.match(lines[0]):
        lines.pop(0)
    while lines and _RULE_LINE.match(lines[-1]):
        lines.pop()
    out = "\n".join(lines).strip()
    out = _LEADING_MARK.sub("", out)
    out = _TRAILING_MARK.sub("", out)
    return out.strip()


def extract_all_sections(text: object, names: Names) -> dict[str, list[str]]:
    """Every occurrence of each named section, in text order (bodies stripped, possibly empty).

    `names` is a list of tag names, or a mapping name -> aliases (e.g. {"ANSWER": ["FINAL ANSWER"]}); the result
    is keyed by the given names and holds only names whose tag occurs.
    """
    if not isinstance(text, str) or not text:
        return {}
    cleaned = clean_reply(text)
    tags = _tags(cleaned, names)
    sections: dict[str, list[str]] = {}
    for i, (_, end, name) in enumerate(tags):
        stop = tags[i + 1][0] if i + 1 < len(tags) else len(cleaned)
        sections.setdefault(name, []).append(_clean_body(cleaned[end:stop]))
    return sections


def extract_sections(text: object, names: Names) -> dict[str, str]:
    """name -> the last non-empty body of that section ("" when every occurrence is empty); absent names omitted."""
    return {
        name: next((b for b in reversed(bodies) if b), "") for name, bodies in extract_all_sections(text, names).items()
    }


# ------------------------------------------------------------------------------------------------ lists

_MARKER = re.compile(r"^\s*(?:[-+*•·▪‣◦]|\(?\d{1,3}[.)]|\d{1,3}\s*[-:])\s+")
_NOTHING = frozenset({"none", "n a", "na", "nothing", "not applicable", "none listed", "no other factors"})


def _split_top_level(line: str, separators: str) -> list[str]:
    """Split at separator characters outside brackets, so "chest pain (typical, exertional)" stays one item."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, c in enumerate(line):
        if c in "([{":
            depth += 1
        elif c in ")]}" and depth:
            depth -= 1
        elif c in separators and not depth:
            parts.append(line[start:i])
            start = i + 1
    parts.append(line[start:])
    return parts


def _tidy_item(item: str) -> str:
    item = _MARKER.sub("", item).strip()
    item = re.sub(r"^(?:[*_]{1,3}|[\"'`])(.*?)(?:[*_]{1,3}|[\"'`])$", r"\1", item).strip()
    return item.rstrip(".;").strip()


def split_list(section: object) -> list[str]:
    """Items of a list section: bullet or numbered lines (one item each), else comma/semicolon-separated items.

    Commas inside brackets do not split. "and" splits only after a comma ("a, b, and c" gives three items): a bare
    "and" is often part of one factor ("aged between 30 and 40", "chest pain and breathlessness"), so "a, b and c"
    gives "a", "b and c". Prose after a blank line is not part of the list (a reply's closing words land in its
    last section): a plain list is its first paragraph, a bulleted list the paragraphs that hold bullets. A list
    that only says "None" or "N/A" is empty.
    """
    if not isinstance(section, str):
        return []
    paragraphs: list[list[str]] = [[]]
    for line in section.split("\n"):
        if line.strip() and not _RULE_LINE.match(line):
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    paragraphs = [para for para in paragraphs if para]
    if not paragraphs:
        return []
    raw: list[str] = []
    if sum(bool(_MARKER.match(ln)) for para in paragraphs for ln in para) >= 2:
        # a bulleted or numbered list: one item per line; an unmarked lead-in ("Factors:") is not an item
        for para in paragraphs:
            if any(_MARKER.match(ln) for ln in para):
                raw.extend(ln for ln in para if _MARKER.match(ln) or not ln.rstrip().endswith(":"))
    else:
        for line in paragraphs[0]:
            parts = [p for p in _split_top_level(_MARKER.sub("", line), ",;") if p.strip()]
            if len(parts) > 1:
                parts = [re.sub(r"(?i)^\s*and\s+", "", p) for p in parts]  # "a, b, and c"
            raw.extend(parts)
    items = [t for t in (_tidy_item(p) for p in raw) if t]
    if len(items) == 1 and normalise_label(items[0]) in _NOTHING:
        return []
    return items
