"""Questions about a whole document ("summarise tracemonkey.pdf", "what is this about?").

Top-k search answers them from one fragment and the similarity gate often refuses them, since
"summarise" resembles no passage. They are answered from a spread of the document instead: its
opening, then one passage from each stretch of it, picked by maximal marginal relevance over its
chunk vectors, so they are typical of the document and unlike each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import PurePath

import numpy as np

from rag.types import Chunk, DocumentInfo, Hit

_WHOLE = re.compile(
    r"\b(summari[sz]e|summary|overview|outline|gist|tl;?dr|table of contents"
    r"|main (points|ideas|topics|findings|contributions)|key (points|ideas|takeaways)"
    r"|(list|name|what are) (its|the|all) (sections|chapters|parts|headings)"
    r"|what (is|'s) (this|the|it) (document|file|paper|article|chapter|text|book|rfc)?\s*about"
    r"|what does (this|the|it) (document|file|paper|article|chapter|text|rfc)\s*(cover|say|describe)"
    r"|what (is|'s) \S+\.\w{2,4} about|what (topics|subjects) does \S+ cover)\b",
    re.IGNORECASE,
)
_DIVERSITY = 0.5  # MMR's lambda: half typical of the document, half unlike what is chosen
_SAMPLE = 8  # chunks whose length sets how many passages fit the budget


def is_whole_document_question(question: str) -> bool:
    return _WHOLE.search(question) is not None


def target_document(question: str, documents: Sequence[DocumentInfo],
                    scope: Sequence[str] = ()) -> DocumentInfo | None:
    """The document a whole-document question is about: the one it names, else the only one
    the conversation is scoped to; None for any other question."""
    if not is_whole_document_question(question):
        return None
    lowered = question.lower()
    named = [info for info in documents
             if info.source.lower() in lowered or _stem(info.source) in lowered]
    if len(named) == 1:
        return named[0]
    scoped = [info for info in documents if info.doc_id in scope]
    return scoped[0] if len(scoped) == 1 and not named else None


def _stem(source: str) -> str:
    stem = PurePath(source).stem.lower()
    return stem if len(stem) >= 4 else source.lower()  # "a.md" must not match every "a"


def spread(
    chunks: Sequence[tuple[Chunk, np.ndarray]],
    query: np.ndarray,
    budget_tokens: int,
    count_tokens: Callable[[str], int],
) -> list[Hit]:
    """Passages that stand for the whole document within the context budget, in document
    order: the opening, then one passage from each stretch of the document, picked by maximal
    marginal relevance. Each hit's similarity is to the question, as for any other source."""
    if not chunks:
        return []
    ordered = sorted(chunks, key=lambda pair: pair[0].ordinal)
    vectors = np.stack([vector for _, vector in ordered])
    centroid = vectors.mean(axis=0)
    typical = vectors @ (centroid / (np.linalg.norm(centroid) or 1.0))
    sample = ordered[:: max(1, len(ordered) // _SAMPLE)]
    size = int(np.median([count_tokens(chunk.text) for chunk, _ in sample])) or 1
    stretches = np.array_split(np.arange(len(ordered)), max(1, budget_tokens // size))
    chosen, used = [0], count_tokens(ordered[0][0].text)  # the opening stands for the first
    for stretch in stretches[1:]:
        closest = np.max(vectors[stretch] @ vectors[chosen].T, axis=1)
        off_centre = np.abs(stretch - stretch.mean()) / len(stretch)  # so stretches stay apart
        scores = _DIVERSITY * (typical[stretch] - closest) - off_centre
        best = int(stretch[np.argmax(scores)])
        tokens = count_tokens(ordered[best][0].text)
        if used + tokens <= budget_tokens:
            chosen.append(best)
            used += tokens
    return [Hit(ordered[i][0], float(ordered[i][1] @ query)) for i in sorted(chosen)]
