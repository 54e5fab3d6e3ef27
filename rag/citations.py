"""Citations a user can check: normalise the markers small models write, link them, and match
answers to sources by similarity when the model cites nothing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rag.generation import FAILURE_PREFIX, REFUSAL
from rag.sentences import split_sentences

# Measured with MiniLM on tests/data/model_outputs.json (20 answers of Qwen2.5-Coder-1.5B and
# SmolLM2 to the app's prompt, 3 passages each): the passage an answer drew from scored
# 0.72-1.00 (its best sentence against the closest answer sentence), a passage from another
# document 0.08-0.44; 0.6 sits in that gap. Same-topic passages the answer did not use score
# 0.30-0.85: no threshold tells them apart, so they may be attributed too.
MIN_SIMILARITY = 0.6

# Answer sentences shorter than this ("Yes.", "See below:") match every passage a little.
MIN_CLAIM_WORDS = 4
# Below this a sentence is not marked: unrelated passages scored at most 0.44 against the
# recorded answers, the sentences answers came from 0.72 and above (tests/data).
HIGHLIGHT_MIN_SIMILARITY = 0.5

# Fenced blocks (closed or cut off by the token limit) and inline code spans: Rust answers
# hold `v[1]`, which is indexing, not a citation.
_CODE = re.compile(
    r"^[ \t]*(`{3,}|~{3,})[^\n]*(?:\n[\s\S]*?(?:\n[ \t]*\1[ \t]*(?=\n|\Z)|\Z)|\Z)"
    r"|(`+)(?!`).*?(?<!`)\2(?!`)",
    re.MULTILINE,
)

_NUM = r"[0-9]{1,3}"
_ITEM = rf"{_NUM}(?:\s*[-–—]\s*{_NUM})?"  # a number or a range "1-3"
_LIST = rf"{_ITEM}(?:\s*(?:,|;|&|\band\b)\s*{_ITEM})*"
_CONTENT = rf"(?:{_LIST}|[nNxX])"  # [n], [N], [x]: templates copied from the prompt
_SOURCE = r"(?:[Ss]ources?|SOURCES?)"
_SOURCE_NAMED = r"(?:Sources?|SOURCES?)"  # capitalised: "open source [2]" keeps its word
# One marker. A bracket right after a word character is indexing ("v[1]") or a link label,
# never taken for a citation. Bare "(1)" is left alone: it is usually a list item.
_MARKER = (
    rf"(?<!\w)\[\s*(?:{_SOURCE}\s*:?\s*)?{_CONTENT}\s*\]"  # [1] [1, 2] [1-3] [Source 1] [n]
    rf"|【\s*(?:{_SOURCE}\s*)?{_CONTENT}(?:†[^】]*)?\s*】"  # 【1】 【1†source】
    rf"|\b{_SOURCE_NAMED}\s*\[\s*{_CONTENT}\s*\]"  # Source [2]
    rf"|\(\s*(?:see\s+)?{_SOURCE}\s*:?\s*\[?\s*{_CONTENT}\s*\]?\s*\)"  # (Source 2) (source [2])
)
_RUN = rf"(?:{_MARKER})(?:[ \t]*[,;]?[ \t]*(?:{_MARKER}))*"  # [1][3], [1], [2]
# A run, or a run inside parentheses "([1], [2])", with the blanks around it.
_GROUP = re.compile(rf"(?<![ \t])(?P<lead>[ \t]*)(?:\(\s*{_RUN}\s*\)|{_RUN})(?P<trail>[ \t]*)")
_NUMBER = re.compile(rf"({_NUM})(?:\s*[-–—]\s*({_NUM}))?")
_SOURCE_WORD = re.compile(_SOURCE)
# A marker that is the object of a preposition ("According to [n], ...") becomes "the
# sources" when removed; anywhere else it is dropped with its blank.
_PREPOSITION = re.compile(r"\b(?:to|in|from|by|see|per|on|of)\s*$", re.IGNORECASE)
_CLOSING = ".,;:!?)]}\n"

_CANONICAL = re.compile(r"(?<![\w\[])\[([0-9]+)\](?!\()")


@dataclass(frozen=True)
class Citations:
    """An answer as it is shown and stored, and the sources it points at."""

    text: str  # markers normalised to "[n]", one per number; dangling ones removed
    cited: tuple[int, ...]  # 1-based source numbers, in order of first appearance


def _segments(text: str) -> Iterator[tuple[str, bool]]:
    """The text cut into (part, is_code), so prose edits never reach code."""
    pos = 0
    for match in _CODE.finditer(text):
        if match.start() > pos:
            yield text[pos : match.start()], False
        yield match.group(), True
        pos = match.end()
    if pos < len(text):
        yield text[pos:], False


def _numbers(group: str) -> list[int]:
    """Numbers of a marker group in order of appearance, ranges expanded, repeats dropped."""
    numbers: list[int] = []
    for match in re.finditer(_MARKER, group):
        content = _SOURCE_WORD.sub("", match.group().split("†")[0])
        for first, last in _NUMBER.findall(content):
            low, high = sorted((int(first), int(last or first)))
            numbers.extend(n for n in range(low, high + 1) if n not in numbers)
    return numbers


def normalise(text: str, n_sources: int) -> Citations:
    """Every way a model points at a source becomes "[n]"; a marker pointing at no source (or
    the literal "[n]" of the prompt) is removed, and "According to [n], X" reads "According
    to the sources, X"."""
    cited: list[int] = []

    def replace(match: re.Match[str]) -> str:
        lead, trail = match.group("lead"), match.group("trail")
        valid = [n for n in _numbers(match.group()) if 1 <= n <= n_sources]
        if valid:
            cited.extend(n for n in valid if n not in cited)
            return lead + "".join(f"[{n}]" for n in valid) + trail
        before, after = match.string[: match.start()], match.string[match.end() :]
        if _PREPOSITION.search(before):
            return lead + "the sources" + trail
        if not after or after[0] in _CLOSING:
            return ""
        if not before or before.endswith("\n"):
            return ""
        return " " if lead or trail else ""

    body, prefix, failure = text.partition(FAILURE_PREFIX)  # the app's line, not the model's
    parts = [part if code else _GROUP.sub(replace, part) for part, code in _segments(body)]
    return Citations("".join(parts) + prefix + failure, tuple(cited))


def link_markers(text: str, href: Callable[[int], str]) -> str:
    """Turn each "[n]" of prose into a Markdown link; code and existing links stay as they are."""
    return "".join(
        part if code else _CANONICAL.sub(lambda m: f"[[{m[1]}]]({href(int(m[1]))})", part)
        for part, code in _segments(text)
    )


def _claims(answer: str) -> list[str]:
    """The answer's sentences worth matching: no failure line, no refusal, no markers, no
    sentences too short to mean anything."""
    answer = normalise(answer.partition(FAILURE_PREFIX)[0], 0).text
    refusal = REFUSAL.rstrip(".")
    claims = []
    for start, end in split_sentences(answer):
        sentence = answer[start:end]
        if refusal not in sentence and len(sentence.split()) >= MIN_CLAIM_WORDS:
            claims.append(sentence)
    return claims


def _closeness(sentences: list[str], claims: list[str], embedder) -> np.ndarray:
    """For each sentence, its cosine to the closest claim (one embedding batch)."""
    vectors = embedder.embed(claims + sentences)
    return (vectors[len(claims) :] @ vectors[: len(claims)].T).max(axis=1)


def attribute(
    answer: str, passages: Sequence[str], embedder, min_similarity: float
) -> tuple[int, ...]:
    """1-based numbers of the passages some answer sentence matches, best match first: the
    sources an answer used when its model cited none.

    A passage scores by its best sentence, not as a whole: on the recorded answers this put
    a passage the answer drew from first for 12 answers of 12 (whole passages: 10), as a
    whole 160-token passage dilutes the one sentence that was used."""
    claims = _claims(answer)
    sentences, owners = [], []
    for number, passage in enumerate(passages):
        for start, end in split_sentences(passage):
            sentences.append(passage[start:end])
            owners.append(number)
    if not claims or not sentences:
        return ()
    best = np.full(len(passages), -1.0)
    np.maximum.at(best, owners, _closeness(sentences, claims, embedder))
    order = np.argsort(-best, kind="stable")
    return tuple(int(i) + 1 for i in order if best[i] >= min_similarity)


def highlight(passage: str, answer: str, embedder, top: int = 2,
              min_similarity: float = HIGHLIGHT_MIN_SIMILARITY) -> list[tuple[int, int]]:
    """Spans of the passage's sentences closest to some answer sentence, in document order,
    so the user sees where in the source the answer came from; none that the answer is not
    close to (a passage it did not use stays unmarked)."""
    spans = split_sentences(passage)
    claims = _claims(answer)
    if not spans or not claims or top < 1:
        return []
    closeness = _closeness([passage[start:end] for start, end in spans], claims, embedder)
    chosen = np.argsort(-closeness, kind="stable")[:top]
    return sorted(spans[i] for i in chosen if closeness[i] >= min_similarity)
