"""Question -> hits: dense and BM25 candidates, fused, re-ranked; the threshold (optionally
lowered for questions whose keywords match) decides whether the question is answered at all."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from rag.embeddings import TextEmbedder
from rag.lexical import LexicalIndex
from rag.rerank import Reranker
from rag.stores.base import VectorStore, cosines
from rag.types import Chunk, Hit

Fusion = Literal["convex", "rrf"]
RRF_K = 60  # the constant of Cormack et al. (2009)


@dataclass(frozen=True)
class Retrieval:
    hits: list[Hit]  # best first; empty when the best similarity is under the threshold
    best_similarity: float | None  # of all candidates, so a refusal can say how close it came
    threshold: float
    latest_support: float | None = None  # a follow-up's newest message alone, when it was judged
    keyword_evidence: float | None = None  # lexical_evidence, when a keyword floor was set


@dataclass(frozen=True)
class Candidate:
    """A chunk ranked before its text is read: a refused question reads no text, an answered
    one only its top_k's. Under load (bench/api.py, 16 clients) reading every candidate's text
    and metadata made Chroma's calls the largest share of the server's time after embedding."""

    chunk_id: str
    similarity: float
    lexical: float | None = None
    fused: float | None = None
    chunk: Chunk | None = None  # known already when the search was scoped to documents

    @property
    def score(self) -> float:
        return self.similarity if self.fused is None else self.fused


class Scored(Protocol):
    """What the gate reads of a ranked passage: a Hit, or a Candidate not read yet."""

    @property
    def similarity(self) -> float: ...

    @property
    def lexical(self) -> float | None: ...


def rank(
    question: str,
    *,
    embedder: TextEmbedder,
    store: VectorStore,
    lexical: LexicalIndex | None,
    reranker: Reranker | None,
    depth: int,
    dense_weight: float = 0.7,
    fusion: Fusion = "convex",
    within: Sequence[str] | None = None,
    carry: Sequence[str] = (),
) -> list[Hit]:
    """Up to `depth` candidates from each side, best first, texts read. Every hit carries its
    dense similarity, also the ones only BM25 found, so the threshold can judge any of them.

    `within` limits the search to those chunk ids (a conversation scoped to chosen documents:
    searched exactly, not filtered after the fact, so a small document is never crowded out);
    `carry` adds chunks as candidates whatever their rank (the previous answer's sources)."""
    hits = read(store, candidates(question, embedder=embedder, store=store, lexical=lexical,
                                  depth=depth, dense_weight=dense_weight, fusion=fusion,
                                  within=within, carry=carry))
    return hits if reranker is None else _reranked(question, reranker, hits)


def candidates(
    question: str,
    *,
    embedder: TextEmbedder,
    store: VectorStore,
    lexical: LexicalIndex | None,
    depth: int,
    dense_weight: float = 0.7,
    fusion: Fusion = "convex",
    within: Sequence[str] | None = None,
    carry: Sequence[str] = (),
) -> list[Candidate]:
    """rank's candidates in its order (before any re-ranker), no text read unless scoped."""
    query = embedder.embed_query(question)
    known: dict[str, Chunk] = {}  # scoped: every chunk in scope, read once and ranked here
    in_scope: dict[str, float] = {}
    if within is not None:
        scoped = store.get_chunks(within)
        known = {chunk.chunk_id: chunk for chunk, _ in scoped}
        in_scope = dict(zip((chunk.chunk_id for chunk, _ in scoped),
                            cosines(query, [vector for _, vector in scoped]), strict=True))
    lexical_scores = {}
    if lexical is not None:
        lexical_scores = {chunk_id: score for chunk_id, score in lexical.scores(question).items()
                          if within is None or chunk_id in in_scope}
    others = (*heapq.nlargest(depth, lexical_scores, key=lexical_scores.__getitem__), *carry)
    if within is None:
        dense = dict(store.nearest(query, depth, include=others))
    else:
        dense = dict(heapq.nlargest(depth, in_scope.items(), key=lambda pair: pair[1]))
        dense.update((chunk_id, in_scope[chunk_id]) for chunk_id in others
                     if chunk_id in in_scope)
    if lexical is None:
        found = [Candidate(chunk_id, similarity, chunk=known.get(chunk_id))
                 for chunk_id, similarity in dense.items()]
    else:
        found = _fuse(dense, lexical_scores, dense_weight, fusion, known)
    return sorted(found, key=lambda candidate: candidate.score, reverse=True)


def read(store: VectorStore, ranked: Sequence[Candidate]) -> list[Hit]:
    """The candidates as hits, in their order: one read for the texts not known yet. A chunk
    whose document was deleted since it was found is left out."""
    unread = [candidate.chunk_id for candidate in ranked if candidate.chunk is None]
    texts = {chunk.chunk_id: chunk for chunk, _ in store.get_chunks(unread)}
    hits = []
    for candidate in ranked:
        chunk = candidate.chunk or texts.get(candidate.chunk_id)
        if chunk is not None:
            hits.append(Hit(chunk, candidate.similarity, lexical=candidate.lexical,
                            fused=candidate.fused))
    return hits


def _reranked(question: str, reranker: Reranker, hits: list[Hit]) -> list[Hit]:
    return sorted(reranker.rerank(question, hits), key=lambda hit: hit.score, reverse=True)


def retrieve(
    question: str,
    *,
    embedder: TextEmbedder,
    store: VectorStore,
    lexical: LexicalIndex | None,
    reranker: Reranker | None,
    top_k: int,
    fetch_multiplier: int,
    threshold: float,
    dense_weight: float = 0.7,
    fusion: Fusion = "convex",
    within: Sequence[str] | None = None,
    carry: Sequence[str] = (),
    latest: str | None = None,
    latest_threshold: float = 0.0,
    keyword_floor: float | None = None,
    keyword_evidence: float = 1.0,
) -> Retrieval:
    """The threshold gates the question on its best dense similarity: BM25 can rank a passage
    but cannot make an off-topic question look answerable, so the refusal keeps its meaning.
    The gate reads no order, so it judges the candidates before any text is read or re-ranked.

    A follow-up is searched with its context (`question`), which carries the earlier topic into
    the search; so that the context cannot carry an off-topic newest message (`latest`) past the
    gate, that message alone must also reach `latest_threshold` against the passages found.

    With `keyword_floor` set and BM25 on, a best similarity between the floor and the threshold
    is enough when the question's keywords match (see threshold_gate): keywords lower the bar for
    small indexes, where real questions score lower, but never below a cosine floor."""
    ranked = candidates(question, embedder=embedder, store=store, lexical=lexical,
                        depth=top_k * fetch_multiplier, dense_weight=dense_weight, fusion=fusion,
                        within=within, carry=carry)
    best, refused, evidence = judge(question, ranked, lexical, threshold, keyword_floor,
                                    keyword_evidence)
    hits, support = [], None
    if not refused:
        hits = (read(store, ranked[:top_k]) if reranker is None
                else _reranked(question, reranker, read(store, ranked))[:top_k])
        if latest is not None and latest != question:
            support = latest_support(embedder, store, latest,
                                     [hit.chunk.chunk_id for hit in hits])
            refused = support < latest_threshold
    return Retrieval(hits=[] if refused else hits, best_similarity=best,
                     threshold=threshold, latest_support=support, keyword_evidence=evidence)


def latest_support(embedder: TextEmbedder, store: VectorStore, latest: str,
                   chunk_ids: Sequence[str]) -> float:
    """How close the newest message alone comes to the passages its contextual search found
    (their stored vectors: one query embedding, no passage embedded again)."""
    query = embedder.embed_query(latest)
    return max((similarity for _, similarity in store.nearest(query, 0, include=chunk_ids)),
               default=-1.0)


def judge(question: str, hits: Sequence[Scored], lexical: LexicalIndex | None, threshold: float,
          keyword_floor: float | None = None, keyword_evidence: float = 1.0,
          ) -> tuple[float | None, bool, float | None]:
    """threshold_gate with the keyword evidence measured when a floor asks for it: the best
    similarity, whether the question is refused, and the evidence (None when not measured)."""
    evidence = (lexical_evidence(question, hits, lexical)
                if keyword_floor is not None and lexical is not None else None)
    best, refused = threshold_gate(hits, threshold, floor=keyword_floor, evidence=evidence,
                                   min_evidence=keyword_evidence)
    return best, refused, evidence


def threshold_gate(hits: Sequence[Scored], threshold: float, *, floor: float | None = None,
                   evidence: float | None = None, min_evidence: float = 1.0,
                   ) -> tuple[float | None, bool]:
    """The best dense similarity of a ranking, and whether the question is refused: the one rule
    the chat, the evaluation and the Evaluation page all judge by. Answered when the best
    similarity reaches `threshold`, or when it reaches the lower `floor` and the keyword
    `evidence` (lexical_evidence) reaches `min_evidence`. Without a floor or evidence (hybrid
    off) the threshold alone decides."""
    best = max((hit.similarity for hit in hits), default=None)
    if best is None:
        return None, True
    rescued = (floor is not None and evidence is not None and best >= floor
               and evidence >= min_evidence)
    return best, best < threshold and not rescued


def lexical_evidence(question: str, hits: Sequence[Scored], lexical: LexicalIndex) -> float | None:
    """How much of the question the best keyword match covers: the top BM25 score among the hits
    over the most any passage could score (the sum of the question's term IDFs), in [0, 1).
    None when the question has no searchable term."""
    ceiling = sum(weight for _, weight in lexical.term_idf(question))
    if not ceiling:
        return None
    return max((hit.lexical or 0.0 for hit in hits), default=0.0) / ceiling


def _fuse(
    dense: dict[str, float],
    lexical_scores: dict[str, float],
    dense_weight: float,
    fusion: Fusion,
    known: dict[str, Chunk],
) -> list[Candidate]:
    similarities = np.array(list(dense.values()))
    lexical = np.array([lexical_scores.get(chunk_id, 0.0) for chunk_id in dense])
    if fusion == "rrf":
        fused = (dense_weight / (RRF_K + _ranks(similarities))
                 + (1 - dense_weight) / (RRF_K + _ranks(lexical)))
    else:  # convex combination of min-max normalised scores (Bruch et al. 2023)
        fused = dense_weight * _min_max(similarities) + (1 - dense_weight) * _min_max(lexical)
    return [
        Candidate(chunk_id, float(similarity), lexical=float(score), fused=float(combined),
                  chunk=known.get(chunk_id))
        for chunk_id, similarity, score, combined in zip(dense, similarities, lexical, fused,
                                                          strict=True)
    ]


def _min_max(scores: np.ndarray) -> np.ndarray:
    low, high = (scores.min(), scores.max()) if len(scores) else (0.0, 0.0)
    return (scores - low) / (high - low) if high > low else np.zeros_like(scores)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1 for the highest score."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return ranks
