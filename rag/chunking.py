"""Split pages into chunks that fit the embedding model, measured in the model's own tokens."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from itertools import accumulate, pairwise
from typing import Literal, Protocol, runtime_checkable

from rag.types import Chunk, Document, Page

Strategy = Literal["recursive", "semantic", "fixed"]

# The recursive splitter's separators, coarsest first (LangChain's RecursiveCharacterTextSplitter
# order). ". " stands for any sentence end (also "?", "!", CJK full stops). Whitespace
# separators also match runs holding spaces, tabs, \r or form feeds, so
# "\r\n\r\n" and the "\n\f\n" page breaks of RFCs count as blank lines.
SEPARATORS: tuple[str, ...] = ("\n\n\n", "\n\n", "\n", ". ", " ")

# Kinds of cut point, best first. When a chunk has to end before the page does, it ends at the
# best kind of cut that still fills it at least half: a paragraph end beats a sentence end beats
# a line end beats a space beats a cut between tokens.
_PARA, _SENT, _LINE, _WORD, _TOKEN_WORD, _TOKEN = range(6)

_BLANK3 = re.compile(r"\n(?:[ \t\r\f\v]*\n){2}")
_BLANK2 = re.compile(r"\n[ \t\r\f\v]*\n")
_NEWLINE = re.compile(r"\n")
_SPACE = re.compile(r" +")
# A sentence ends after . ! ? (and closing quotes/brackets) followed by whitespace, or after a
# CJK full stop, which needs no space. "e.g. " counts too, as it does for LangChain's ". ".
_CLOSERS = "\"'\u201d\u2019)]\u300d\u300f\uff09"
_SENTENCE_END = re.compile(
    rf"[.!?]+[{re.escape(_CLOSERS)}]*(?=\s)|[\u3002\uff01\uff1f]+[{re.escape(_CLOSERS)}]*"
)


@runtime_checkable
class Tokenizer(Protocol):
    """Anything that can say where its tokens sit in a text; the Embedder is one."""

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...


def chunk_document(
    document: Document,
    tokenizer: Tokenizer,
    *,
    size: int,
    overlap: int,
    strategy: Strategy = "recursive",
) -> list[Chunk]:
    """Chunk every page on its own, so a citation always points at one PDF page or section.

    Every chunk re-tokenizes to at most `size` tokens, because text past the model's input
    limit would silently not be embedded. Overlap, counted in the page's tokens: "fixed" repeats
    exactly `overlap` tokens (fewer only where a window had to shrink to fit once re-tokenized,
    or to keep one character's tokens together); "recursive" and "semantic" repeat at most
    `overlap`, from a sentence or word start, and none only when the previous chunk is one token
    or not even its last word or token fits beside the next piece. "semantic" never ends a chunk inside a
    paragraph when a paragraph end fits; "recursive" prefers the coarsest separator that keeps
    the chunk at least half full.
    """
    if size < 1:
        raise ValueError(f"chunk size must be at least 1 token, got {size}")
    if overlap < 0 or overlap >= size:
        raise ValueError(
            f"chunk overlap ({overlap}) must be in [0, size) with size {size}, "
            "or every chunk would repeat the previous one"
        )
    if strategy not in ("recursive", "semantic", "fixed"):
        raise ValueError(f"unknown chunking strategy {strategy!r}")
    chunks: list[Chunk] = []
    for page in document.pages:
        spans = chunk_spans(page.text, tokenizer, size=size, overlap=overlap, strategy=strategy)
        for start, end in spans:
            chunks.append(_make_chunk(document, page, len(chunks), start, end))
    return chunks


def chunk_spans(
    text: str, tokenizer: Tokenizer, *, size: int, overlap: int, strategy: Strategy = "recursive"
) -> list[tuple[int, int]]:
    """(start, end) of each chunk of one page's text, for callers that need no Chunk objects."""
    if size < 1 or overlap < 0 or overlap >= size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, got {size} and {overlap}")
    page = _TokenizedText(text, tokenizer, size)
    if not page.starts:  # nothing the model can read (empty, whitespace, control characters)
        return []
    if strategy == "fixed":
        return page.fixed_windows(overlap)
    if strategy == "recursive":
        cuts = page.recursive_cuts(0, len(text), 0)
        return page.merge(cuts, overlap, paragraphs_first=False)
    if strategy == "semantic":
        cuts = page.paragraph_cuts()
        return page.merge(cuts, overlap, paragraphs_first=True)
    raise ValueError(f"unknown chunking strategy {strategy!r}")


def _make_chunk(document: Document, page: Page, ordinal: int, start: int, end: int) -> Chunk:
    return Chunk(
        doc_id=document.doc_id,
        source=document.source,
        ordinal=ordinal,
        text=page.text[start:end],
        start=start,
        end=end,
        page=page.page,
        heading=page.heading,
        ocr=page.ocr,
    )


def _is_punctuation(char: str) -> bool:
    """BERT's notion, where its pre-tokenizer splits words; other symbols stay inside words."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
    """CJK ideographs are one token each, so any place between two of them is a clean cut."""
    cp = ord(char)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class _TokenizedText:
    """One page, tokenized once; lengths of any slice come from bisecting the token offsets."""

    def __init__(self, text: str, tokenizer: Tokenizer, size: int) -> None:
        self.text = text
        self.tokenizer = tokenizer
        self.size = size
        spans = tokenizer.token_spans(text) if text.strip() else []
        # Running maxima keep both lists sorted even for tokenizers with odd offsets.
        self.starts: list[int] = list(accumulate((s for s, _ in spans), max))
        self.ends: list[int] = list(accumulate((e for _, e in spans), max))

    # --- measuring -------------------------------------------------------------------------

    def count(self, a: int, b: int) -> int:
        """Tokens of the page overlapping [a, b): exact at word cuts, an upper bound elsewhere."""
        return max(0, bisect_left(self.starts, b) - bisect_right(self.ends, a))

    def strip(self, a: int, b: int) -> tuple[int, int]:
        text = self.text
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        return a, b

    def retokenized(self, a: int, b: int) -> int:
        """What the model will really see: a cut inside a word can re-tokenize differently."""
        a, b = self.strip(a, b)
        return len(self.tokenizer.token_spans(self.text[a:b])) if a < b else 0

    def skip_space(self, pos: int) -> int:
        text, n = self.text, len(self.text)
        while pos < n and text[pos].isspace():
            pos += 1
        return pos

    def cuttable(self, t: int) -> bool:
        """Token t starts after the previous one ends (a Hangul syllable is three tokens)."""
        return t <= 0 or t >= len(self.starts) or self.starts[t] >= self.ends[t - 1]

    def is_spaced_start(self, pos: int) -> bool:
        """A word start a reader would pick: after whitespace (or a CJK ideograph)."""
        if pos <= 0 or pos >= len(self.text):
            return True
        return self.text[pos - 1].isspace() or _is_cjk(self.text[pos])

    def is_word_start(self, pos: int) -> bool:
        """A cut here leaves whole words (as BERT's pre-tokenizer sees them) on both sides."""
        if pos <= 0 or pos >= len(self.text):
            return True
        before, after = self.text[pos - 1], self.text[pos]
        return (
            before.isspace()
            or after.isspace()
            or _is_punctuation(before)
            or _is_punctuation(after)
            or _is_cjk(before)
            or _is_cjk(after)
        )

    def is_sentence_start(self, pos: int) -> bool:
        text = self.text
        i = pos - 1
        newlines = 0
        while i >= 0 and text[i].isspace():
            newlines += text[i] == "\n"
            i -= 1
        if i < 0 or newlines >= 2:
            return True
        spaced = i < pos - 1
        while i > 0 and text[i] in _CLOSERS:
            i -= 1
        return (spaced and text[i] in ".!?") or text[i] in "\u3002\uff01\uff1f"

    # --- cut points ------------------------------------------------------------------------

    def _level_cuts(self, level: int, a: int, b: int) -> list[tuple[int, int]]:
        """Cut points strictly inside (a, b); whitespace goes to the right-hand piece."""
        text = self.text
        if level == 0:
            found = [(m.start(), _PARA) for m in _BLANK3.finditer(text, a, b)]
        elif level == 1:
            found = [(m.start(), _PARA) for m in _BLANK2.finditer(text, a, b)]
        elif level == 2:
            # Hard-wrapped text (RFCs, most Markdown) puts newlines mid-sentence: keep the
            # sentence ends of those lines too, so chunks can prefer them over line ends.
            found = [(m.start(), _LINE) for m in _NEWLINE.finditer(text, a, b)]
            if found:
                found += [(m.end(), _SENT) for m in _SENTENCE_END.finditer(text, a, b)]
        elif level == 3:
            found = [(m.end(), _SENT) for m in _SENTENCE_END.finditer(text, a, b)]
        else:
            found = [(m.start(), _WORD) for m in _SPACE.finditer(text, a, b)]
        return [(pos, kind) for pos, kind in found if a < pos < b]

    def _token_cuts(self, a: int, b: int) -> list[tuple[int, int]]:
        """Last resort for runs without separators (a long URL, CJK): between any two tokens."""
        cuts = []
        for t in range(bisect_right(self.starts, a), bisect_left(self.starts, b)):
            pos = self.starts[t]
            cuts.append((pos, _TOKEN_WORD if self.is_word_start(pos) else _TOKEN))
        return cuts

    def recursive_cuts(self, a: int, b: int, first_level: int) -> list[tuple[int, int]]:
        """LangChain's recursion: cut at the coarsest separator present; recurse if too long."""
        cuts: list[tuple[int, int]] = []
        stack = [(a, b, first_level)] if self.count(a, b) > self.size else []
        while stack:
            lo, hi, level = stack.pop()
            found: list[tuple[int, int]] = []
            while level < len(SEPARATORS) and not found:
                found = self._level_cuts(level, lo, hi)
                level += 1
            if not found:
                cuts += self._token_cuts(lo, hi)
                continue
            cuts += found
            points = sorted({lo, hi, *(pos for pos, _ in found)})
            stack += [(x, y, level) for x, y in pairwise(points) if self.count(x, y) > self.size]
        return cuts

    def paragraph_cuts(self) -> list[tuple[int, int]]:
        """Blank lines first; only paragraphs over the size get the recursive splitter."""
        n = len(self.text)
        cuts = [(m.start(), _PARA) for m in _BLANK2.finditer(self.text) if 0 < m.start() < n]
        for x, y in pairwise([0, *(pos for pos, _ in cuts), n]):
            cuts += self.recursive_cuts(x, y, 2)
        return cuts

    # --- merging cut pieces into chunks --------------------------------------------------------

    def merge(
        self, cuts: list[tuple[int, int]], overlap: int, *, paragraphs_first: bool
    ) -> list[tuple[int, int]]:
        """Greedily take the longest run of pieces that fits, after the previous chunk's tail."""
        best_kind: dict[int, int] = {}
        for pos, kind in cuts:
            if kind < best_kind.get(pos, _TOKEN + 1):
                best_kind[pos] = kind
        best_kind[len(self.text)] = _PARA
        bounds = sorted(best_kind)
        kinds = [best_kind[pos] for pos in bounds]

        spans: list[tuple[int, int]] = []
        pos = 0
        while True:
            p = self.skip_space(pos)
            if p >= len(self.text):
                return spans
            lo = bisect_right(bounds, p)  # first cut after p; the page end is always one
            start = p
            j = -1
            if spans and overlap:
                start = self._overlap_start(*spans[-1], overlap)
                if start < p:
                    j = self._fit(start, bounds, lo)
                    if j < 0:  # the tail and the next piece do not fit together: shorten the tail
                        # B020 on purpose: the loop leaves `start` at the first tail that fits
                        for start in self._shorter_overlaps(start, p, bounds[lo]):  # noqa: B020
                            if (j := self._fit(start, bounds, lo)) >= 0:
                                break
                if j < 0:
                    start = p
            if j < 0:
                j = self._fit(start, bounds, lo)
            if j >= 0:
                j = self._prefer(start, bounds, kinds, lo, j, paragraphs_first)
                end = bounds[j]
            else:  # a piece that only fits on paper: re-tokenized it is longer than the size
                end = self._cut_inside(p, bounds[lo])
            a, b = self.strip(start, end)
            spans.append((a, b))
            pos = b

    def _fit(self, start: int, cands: list[int], lo: int) -> int:
        """Index of the furthest end (from lo on) whose slice re-tokenizes within size, or -1."""
        budget = self.size
        while True:
            left, right = lo, len(cands)
            while left < right:
                mid = (left + right) // 2
                if self.count(start, cands[mid]) <= budget:
                    left = mid + 1
                else:
                    right = mid
            j = left - 1
            if j < lo:
                return -1
            real = self.retokenized(start, cands[j])
            if real <= self.size:
                return j
            budget = min(budget, self.count(start, cands[j])) - (real - self.size)

    def _prefer(
        self,
        start: int,
        bounds: list[int],
        kinds: list[int],
        lo: int,
        j: int,
        paragraphs_first: bool,
    ) -> int:
        """Back off to a better kind of cut, if one keeps the chunk at least half full."""
        best = j
        if paragraphs_first:  # semantic: whole paragraphs whenever one fits
            for i in range(j, lo - 1, -1):
                if kinds[i] == _PARA:
                    best = i
                    break
        if kinds[best] != _PARA:
            i = best - 1
            while i >= lo and 2 * self.count(start, bounds[i]) >= self.size:
                if kinds[i] < kinds[best]:
                    best = i
                i -= 1
        if best != j and self.retokenized(start, bounds[best]) > self.size:
            return j
        return best

    def _overlap_start(self, prev_start: int, prev_end: int, overlap: int) -> int:
        """At most `overlap` tokens back: a sentence start if it keeps half, else a word start."""
        t_end = bisect_right(self.ends, prev_end)
        first = max(t_end - overlap, bisect_left(self.starts, prev_start) + 1)
        if first >= t_end:
            return prev_end
        keep_for_sentence = max(1, (overlap + 1) // 2)
        spaced = word = token = None
        for t in range(first, t_end):
            if not self.cuttable(t):
                continue
            pos = self.starts[t]
            if t_end - t >= keep_for_sentence and self.is_sentence_start(pos):
                return pos
            if spaced is None and self.is_spaced_start(pos):
                spaced = pos
            if word is None and self.is_word_start(pos):
                word = pos
            if token is None:
                token = pos
        for pos in (spaced, word, token):
            if pos is not None:
                return pos
        return prev_end

    def _shorter_overlaps(self, start: int, p: int, piece_end: int) -> Iterator[int]:
        """Later starts for the next chunk, best first: the longest tail that fits beside the next
        piece (at a word start if there is one), then every later token start."""
        t = max(
            bisect_left(self.starts, piece_end) - self.size, bisect_left(self.starts, start) + 1
        )
        t_p = bisect_left(self.starts, p)
        cuts = [self.starts[u] for u in range(t, t_p) if self.cuttable(u)]
        best = next(
            (pos for pos in cuts if self.is_spaced_start(pos)),
            next((pos for pos in cuts if self.is_word_start(pos)), None),
        )
        if best is not None:
            yield best
        yield from (pos for pos in cuts if best is None or pos > best)

    def _cut_inside(self, p: int, limit: int) -> int:
        """End of a chunk from p when even the next piece is too long: a token end, else a char."""
        t0 = bisect_right(self.ends, p)
        ends = [e for e in self.ends[t0 : t0 + self.size] if e > p]
        j = self._fit(p, ends, 0) if ends else -1
        if j >= 0:
            return ends[j]
        hi = ends[0] if ends else max(limit, p + 1)
        return self._char_cut(p, hi)

    def _char_cut(self, a: int, hi: int) -> int:
        """Tiny sizes only: a word fragment can re-tokenize to more tokens than the word had."""
        end = a + 1
        if self.retokenized(a, end) > self.size:
            raise ValueError(
                f"chunk size {self.size} is smaller than the tokens of the single character "
                f"{self.text[a]!r}"
            )
        while end < hi and self.retokenized(a, end + 1) <= self.size:
            end += 1
        return end

    # --- fixed windows ---------------------------------------------------------------------------

    def fixed_windows(self, overlap: int) -> list[tuple[int, int]]:
        """Windows of `size` page tokens, `size - overlap` apart, cut at token starts so that
        nothing between two tokens (spaces, control characters) falls out."""
        starts, n, length = self.starts, len(self.starts), len(self.text)
        spans: list[tuple[int, int]] = []
        t = done = 0  # window start; page tokens before `done` are in a chunk already
        while done < n:
            a = 0 if t == 0 else starts[t]
            j = self._fixed_end(a, t, done)
            if j < 0 and t < done:  # the overlap leaves no room for a new token: shorten it
                t = min(self._next_cut(t), done)
                continue
            if j < 0:  # one character re-tokenizes (or is) longer than the size: cut characters
                j = self._next_cut(t)
                b = length if j == n else starts[j]
                while a < b:
                    cut = self._char_cut(a, b)
                    spans.append(self.strip(a, cut))
                    a = self.skip_space(cut)
            else:
                spans.append(self.strip(a, length if j == n else starts[j]))
            done = j
            t = self._next_cut(max(j - overlap, t + 1) - 1)
        return [(a, b) for a, b in spans if a < b]

    def _next_cut(self, t: int) -> int:
        """First token after t that a cut can start at."""
        t += 1
        while not self.cuttable(t):
            t += 1
        return t

    def _fixed_end(self, a: int, t: int, done: int) -> int:
        """Furthest j in (max(t, done), t + size] whose window [a, j) re-tokenizes within size."""
        floor, n = max(t, done), len(self.starts)
        j = min(t + self.size, n)
        while j > floor:
            if not self.cuttable(j):
                j -= 1
                continue
            real = self.retokenized(a, len(self.text) if j == n else self.starts[j])
            if real <= self.size:
                return j
            j = min(j - 1, j - (real - self.size))
        return -1
