"""Sentence spans of prose and PDF text: what highlights, attribution and the prompt's sentence
selection cut passages into."""

from __future__ import annotations

import re
from itertools import pairwise

# Sentence ends: . ! ? and closing quotes or brackets, then blanks; the next sentence must
# start with a capital or a digit (checked in code). Blank lines, list items and headings
# always start a new one.
_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
_BREAK = re.compile(r"\n[ \t]*\n|\n(?=[ \t]*(?:[-*+•]|[0-9]+[.)])[ \t])|\n(?=#)")
_OPENERS = "\"'“‘([*_`"
_ABBREVIATIONS = frozenset(
    "al approx cf ch dr eq eqs fig figs inc jr ltd mr mrs ms no nos prof ref refs resp sec "
    "sr st vol vs".split()
)
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # e.g, i.e, U.S
_LAST_WORD = re.compile(r"[\w.]+$")


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    rest = text[match.end() :].lstrip().lstrip(_OPENERS)
    if not rest or not (rest[0].isupper() or rest[0].isdigit()):
        return False
    if match.group().rstrip("\"'”’)]") != ".":
        return True
    word = _LAST_WORD.search(text, 0, match.start())
    if word is None:
        return True
    token = word.group().strip(".")
    if token.lower() in _ABBREVIATIONS or _DOTTED.fullmatch(token):
        return False
    line_start = text.rfind("\n", 0, word.start()) + 1
    if token.isdigit() and not text[line_start : word.start()].strip():
        return False  # "7. Evaluation", "1. First": a section or list number
    return not (len(token) == 1 and token.isupper())  # an initial: "J. Smith"


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of English prose or PDF text, blanks trimmed.

    A regex splitter: good enough to pick the sentence to highlight, not a parser."""
    cuts = {0, len(text)}
    cuts.update(match.start() for match in _BREAK.finditer(text))
    cuts.update(match.end() for match in _END.finditer(text) if _ends_sentence(text, match))
    spans = []
    for start, end in pairwise(sorted(cuts)):
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            offset = start + len(piece) - len(piece.lstrip())
            spans.append((offset, offset + len(stripped)))
    return spans
