"""What of the retrieved passages goes into the prompt. On 2 CPU cores the default model reads
about 100 prompt tokens a second, so every token is waiting time: the budget is counted in the language model's
own tokens, and "sentences" mode keeps only the sentences closest to the question, with their
neighbours, instead of whole chunks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rag.sentences import split_sentences
from rag.types import Hit

ContextMode = Literal["chunks", "sentences"]
GAP = " … "  # where sentences of one passage were left out


@dataclass(frozen=True)
class Preview:
    """The top source's sentences closest to the question, shown while the model reads."""

    source: int  # 1-based number of the source, as the answer cites it
    text: str  # the source passage
    spans: tuple[tuple[int, int], ...]  # character spans of the sentences to highlight


@dataclass(frozen=True)
class Context:
    """The hits that reach the prompt and the text the prompt shows for each."""

    hits: list[Hit]
    texts: list[str]
    preview: Preview | None


def _whole_chunks(hits: Sequence[Hit], budget: int,
                  count_tokens: Callable[[str], int]) -> list[int]:
    """The best hits within the budget, the best one always."""
    kept, used = [], 0
    for index, hit in enumerate(hits):
        tokens = count_tokens(hit.chunk.text)
        if kept and used + tokens > budget:
            break
        kept.append(index)
        used += tokens
    return kept


def _sentences(scores: np.ndarray, spans: list[tuple[int, int, int]], costs: list[int],
               budget: int, neighbours: int) -> dict[int, set[int]]:
    """Best sentences first, each with its neighbours in the same passage, until the budget is
    spent; the best sentence always. `costs` are the sentences' tokens. Returns, per hit index,
    the chosen sentence positions."""
    chosen: dict[int, set[int]] = {}
    used = 0
    by_hit: dict[int, list[int]] = {}
    for position, (owner, _, _) in enumerate(spans):
        by_hit.setdefault(owner, []).append(position)
    for best in map(int, np.argsort(-scores, kind="stable")):
        owner = spans[best][0]
        taken = chosen.get(owner, set())
        siblings = by_hit[owner]
        at = siblings.index(best)
        group = [p for p in siblings[max(0, at - neighbours): at + neighbours + 1]
                 if p not in taken]
        if chosen and used + sum(costs[p] for p in group) > budget:
            # the neighbours may not fit where the sentence alone does
            group = [best] if best not in taken else []
            if not group or used + costs[best] > budget:
                continue
        chosen.setdefault(owner, set()).update(group)
        used += sum(costs[p] for p in group)
    return chosen


def _text(hits: Sequence[Hit], spans: list[tuple[int, int, int]], position: int) -> str:
    owner, start, end = spans[position]
    return hits[owner].chunk.text[start:end]


def _excerpt(text: str, spans: list[tuple[int, int]]) -> str:
    """The chosen sentences in document order; a gap where sentences were left out."""
    parts, previous_end = [], None
    for start, end in sorted(spans):
        if previous_end is not None:
            between = text[previous_end:start]
            parts.append(" " if not between.strip() else GAP)
        parts.append(text[start:end])
        previous_end = end
    return "".join(parts)


def select(
    question_vector: np.ndarray,
    hits: Sequence[Hit],
    embed: Callable[[list[str]], np.ndarray],
    count_tokens: Callable[[str], int],
    *,
    budget: int,
    mode: ContextMode,
    neighbours: int = 1,
    preview_sentences: int = 1,
) -> Context:
    """`embed` turns sentences into normalised vectors (one batch). Hits keep their rank order,
    so source [n] is the n-th hit in the prompt and on screen."""
    if not hits:
        return Context([], [], None)
    # sentences of every hit for "sentences"; of the top hit alone for the preview otherwise
    scope = hits if mode == "sentences" else hits[:1]
    spans = [(owner, start, end) for owner, hit in enumerate(scope)
             for start, end in split_sentences(hit.chunk.text)]
    if mode == "chunks" or not spans:
        kept = _whole_chunks(hits, budget, count_tokens)
        texts = [hits[i].chunk.text.strip() for i in kept]
    if not spans:
        return Context([hits[i] for i in kept], texts, None)
    sentences = [_text(hits, spans, p) for p in range(len(spans))]
    scores = embed(sentences) @ question_vector
    if mode == "sentences":
        chosen = _sentences(scores, spans, [count_tokens(s) for s in sentences], budget,
                            neighbours)
        kept = sorted(chosen)
        texts = [_excerpt(hits[i].chunk.text, [spans[p][1:] for p in chosen[i]]) for i in kept]
    return Context([hits[i] for i in kept], texts,
                   _preview(hits[kept[0]], kept[0], scores, spans, preview_sentences))


def _preview(hit: Hit, owner: int, scores: np.ndarray, spans: list[tuple[int, int, int]],
             count: int) -> Preview:
    """Source 1's best sentences: source 1 is the first hit that reached the prompt."""
    best = [p for p in np.argsort(-scores, kind="stable") if spans[p][0] == owner][:count]
    return Preview(1, hit.chunk.text, tuple(sorted(spans[p][1:] for p in best)))
