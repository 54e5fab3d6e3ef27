"""Re-rankers reorder the retrieved hits; they never add or drop one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from rag.config import Settings
from rag.types import Hit

_WORD = re.compile(r"\w+", re.UNICODE)
# Words that match everywhere and so say nothing about relevance.
_STOPWORDS = frozenset(
    "a an and are as at be by can did do does for from had has have how i if in is it its of on "
    "or that the their there these this to was were what when where which who why will with "
    "you your".split()
)


class Reranker(Protocol):
    name: str

    def rerank(self, question: str, hits: Sequence[Hit]) -> list[Hit]:
        """The same hits with `rerank_score` set, best first."""


def query_terms(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS}


class TermOverlapReranker:
    """Mixes the retrieval score (dense, or fused when hybrid) with the share of question terms
    the chunk contains: cheap, needs no model, and rescues chunks that name the exact term a
    question asks about."""

    name = "term-overlap"

    def __init__(self, similarity_weight: float = 0.7) -> None:
        self.similarity_weight = similarity_weight

    def rerank(self, question: str, hits: Sequence[Hit]) -> list[Hit]:
        terms = query_terms(question)
        scored = []
        for hit in hits:
            coverage = len(terms & query_terms(hit.chunk.text)) / len(terms) if terms else 0.0
            score = self.similarity_weight * hit.score + (1 - self.similarity_weight) * coverage
            scored.append(replace(hit, rerank_score=score))
        return sorted(scored, key=lambda hit: hit.rerank_score, reverse=True)


class CrossEncoderReranker:
    """Reads question and chunk together: the strongest re-ranker, when a local model exists."""

    def __init__(self, model_path: str) -> None:
        from sentence_transformers import CrossEncoder

        self.name = f"cross-encoder ({model_path})"
        self._model = CrossEncoder(model_path, device="cpu")

    def rerank(self, question: str, hits: Sequence[Hit]) -> list[Hit]:
        if not hits:
            return []
        scores = self._model.predict(
            [(question, hit.chunk.text) for hit in hits], show_progress_bar=False
        )
        scored = [replace(hit, rerank_score=float(s)) for hit, s in zip(hits, scores, strict=True)]
        return sorted(scored, key=lambda hit: hit.rerank_score, reverse=True)


def create_reranker(settings: Settings) -> Reranker | None:
    if not settings.rerank:
        return None
    if settings.reranker == "cross-encoder":
        return CrossEncoderReranker(settings.reranker_model)
    return TermOverlapReranker()
