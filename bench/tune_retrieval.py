"""Tuning grid for hybrid retrieval, on an index `bench/retrieval.py` built (train split only).

Loads every chunk vector once and embeds every query once, then replays `rag.retrieval`'s own
fusion and re-ranking for each setting in memory: a grid point costs seconds instead of the
minutes a pass through the vector store takes. Dense candidates here are exact top-k, where
the store's HNSW is approximate; the figures to report come from `bench/retrieval.py`.

    python bench/tune_retrieval.py --data-dir /tmp/bench/scifact-full
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import bm25s
import numpy as np
from common import BENCH_DATA

from rag import evaluation
from rag.config import Settings
from rag.lexical import indexed_text, terms
from rag.pipeline import RAG
from rag.rerank import TermOverlapReranker
from rag.retrieval import _fuse
from rag.types import Chunk, Hit


def stored(rag: RAG) -> tuple[list[Chunk], np.ndarray]:
    """Every chunk of the index with its vector."""
    ids = [chunk.chunk_id for chunk in rag.store.chunks()]
    chunks, vectors = [], []
    for start in range(0, len(ids), 1000):
        for chunk, vector in rag.store.get_chunks(ids[start:start + 1000]):
            chunks.append(chunk)
            vectors.append(vector)
    return chunks, np.stack(vectors)


class Replay:
    """Chunks, their vectors and the encoded questions of one split, held in memory."""

    def __init__(self, chunks: list[Chunk], vectors: np.ndarray, benchmark: evaluation.Benchmark,
                 query_vectors: dict[str, np.ndarray]) -> None:
        self.chunks, self.vectors, self.benchmark = chunks, vectors, benchmark
        self.query_ids = list(benchmark.queries)
        self.query_vectors = np.stack([query_vectors[benchmark.queries[q]]
                                       for q in self.query_ids])
        self.lexical = self.bm25()

    def bm25(self, **params) -> list[np.ndarray]:
        """BM25 scores of every chunk for every query, with bm25s parameters (k1, b, method)."""
        model = bm25s.BM25(**params)
        model.index(terms([indexed_text(chunk) for chunk in self.chunks]), show_progress=False)
        scores = []
        for q in self.query_ids:
            known = [t for t in terms([self.benchmark.queries[q]])[0] if t in model.vocab_dict]
            scores.append(model.get_scores(known) if known else np.zeros(len(self.chunks)))
        return scores

    def rankings(self, *, depth: int = 100, dense_weight: float | None = 0.7,
                 fusion: str = "convex", rerank: float | None = None,
                 lexical: list[np.ndarray] | None = None, fuse=_fuse) -> dict[str, list[Hit]]:
        """What `rag.retrieval.rank` returns; dense_weight None means dense alone."""
        lexical = lexical or self.lexical
        reranker = TermOverlapReranker(rerank) if rerank is not None else None
        out = {}
        for i, q in enumerate(self.query_ids):
            similarities = self.vectors @ self.query_vectors[i]
            dense = np.argsort(-similarities)[:depth]
            if dense_weight is None:
                hits = [Hit(self.chunks[j], float(similarities[j])) for j in dense]
            else:
                top_lexical = np.argsort(-lexical[i])[:depth]
                top_lexical = top_lexical[lexical[i][top_lexical] > 0]
                union = list(dict.fromkeys([*dense, *top_lexical]))
                scores = {self.chunks[j].chunk_id: float(lexical[i][j]) for j in union
                          if lexical[i][j] > 0}
                hits = fuse([(self.chunks[j], float(similarities[j])) for j in union], scores,
                            dense_weight, fusion)
            if reranker is not None:
                hits = reranker.rerank(self.benchmark.queries[q], hits)
            out[q] = sorted(hits, key=lambda hit: hit.score, reverse=True)
        return out

    def score(self, **kwargs) -> dict[str, float]:
        run = evaluation.document_run(self.rankings(**kwargs))
        return evaluation.score_run(self.benchmark.qrels, run)


def z_score_fuse(candidates, lexical_scores, dense_weight, fusion) -> list[Hit]:
    """Normalisation variant: each side's scores as z-scores over the candidates."""
    return _fuse_normalised(candidates, lexical_scores, dense_weight,
                            lambda a: (a - a.mean()) / (a.std() or 1.0),
                            lambda a: (a - a.mean()) / (a.std() or 1.0))


def fixed_bounds_fuse(candidates, lexical_scores, dense_weight, fusion) -> list[Hit]:
    """Normalisation variant: the cosine as it is (fixed bounds), BM25 over its best score."""
    return _fuse_normalised(candidates, lexical_scores, dense_weight,
                            lambda a: a, lambda a: a / (a.max() or 1.0))


def _fuse_normalised(candidates, lexical_scores, dense_weight, dense_norm, lexical_norm):
    similarities = np.array([similarity for _, similarity in candidates])
    lexical = np.array([lexical_scores.get(chunk.chunk_id, 0.0) for chunk, _ in candidates])
    fused = dense_weight * dense_norm(similarities) + (1 - dense_weight) * lexical_norm(lexical)
    return [Hit(chunk, float(similarity), lexical=float(score), fused=float(combined))
            for (chunk, similarity), score, combined in zip(candidates, lexical, fused, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", type=Path, default=BENCH_DATA / "scifact")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/bench/scifact-full"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--dense-weight", type=float, default=0.7,
                        help="convex weight the depth, re-rank and BM25 grids are run at")
    args = parser.parse_args()
    rag = RAG(Settings(_env_file=None, data_dir=args.data_dir))
    benchmark = evaluation.load_beir(args.beir, args.split)
    questions = list(benchmark.queries.values())
    query_vectors = dict(zip(questions, rag.embedder.embed(questions), strict=True))
    replay = Replay(*stored(rag), benchmark, query_vectors)

    def show(label: str, **kwargs) -> None:
        started = time.perf_counter()
        s = replay.score(**kwargs)
        print(f"{label:<44} nDCG@10 {s['ndcg@10']:.4f}  R@100 {s['recall@100']:.4f}  "
              f"MRR@10 {s['mrr@10']:.4f}  ({time.perf_counter() - started:.0f} s)", flush=True)

    print(f"{args.split}: {len(replay.query_ids)} queries, {len(replay.chunks)} chunks")
    show("dense alone", dense_weight=None)
    show("BM25 alone", dense_weight=0.0)
    weights = [0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9]
    for weight in weights:
        show(f"convex min-max dense_weight={weight}", dense_weight=weight)
    for weight in (0.5, 0.6, 0.7):
        show(f"rrf dense_weight={weight}", fusion="rrf", dense_weight=weight)
    for name, fuse in (("z-score", z_score_fuse), ("fixed bounds", fixed_bounds_fuse)):
        for weight in (0.5, 0.6, 0.7, 0.75, 0.8, 0.9):
            show(f"convex {name} dense_weight={weight}", dense_weight=weight, fuse=fuse)
    best = args.dense_weight
    for depth in (15, 20, 30, 50, 100):
        show(f"convex {best} depth={depth}", dense_weight=best, depth=depth)
    for similarity_weight in (0.5, 0.7, 0.85):
        show(f"convex {best} + term-overlap {similarity_weight}", dense_weight=best,
             rerank=similarity_weight)
    show("dense + term-overlap 0.7 (seed)", dense_weight=None, rerank=0.7)
    for k1, b in itertools.product((0.9, 1.2, 1.5, 2.0), (0.5, 0.75, 0.9)):
        lexical = replay.bm25(k1=k1, b=b)
        show(f"BM25 alone k1={k1} b={b}", dense_weight=0.0, lexical=lexical)
        show(f"convex {best} k1={k1} b={b}", dense_weight=best, lexical=lexical)


if __name__ == "__main__":
    sys.exit(main())
