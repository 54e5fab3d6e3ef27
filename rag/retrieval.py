"""Question -> hits: over-fetch by dense similarity, apply the threshold, re-rank, cut to top_k."""

from __future__ import annotations

from dataclasses import dataclass

from rag.embeddings import Embedder
from rag.rerank import Reranker
from rag.stores.base import VectorStore
from rag.types import Hit


@dataclass(frozen=True)
class Retrieval:
    hits: list[Hit]  # passed the threshold, best first, at most top_k
    best_similarity: float | None  # of all candidates, so a refusal can say how close it came
    threshold: float


def retrieve(
    question: str,
    *,
    embedder: Embedder,
    store: VectorStore,
    reranker: Reranker | None,
    top_k: int,
    fetch_multiplier: int,
    threshold: float,
) -> Retrieval:
    """Over-fetching gives the re-ranker candidates to promote; the threshold runs first so a
    re-ranker can never rescue a chunk that is not about the question at all."""
    candidates = store.query(embedder.embed_query(question), top_k * fetch_multiplier)
    best = max((similarity for _, similarity in candidates), default=None)
    hits = [Hit(chunk, similarity) for chunk, similarity in candidates if similarity >= threshold]
    if reranker is not None:
        hits = reranker.rerank(question, hits)
    return Retrieval(hits=hits[:top_k], best_similarity=best, threshold=threshold)
