"""Retrieval quality on a BEIR-format benchmark, measured through the app's own ingest and
retrieval path, so a number here is a number a user gets."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytrec_eval

from rag.ingest import IngestResult
from rag.pipeline import RAG
from rag.types import Hit

DEPTH = 100  # recall@100 needs a ranking this deep
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")

Qrels = dict[str, dict[str, int]]  # query id -> document id -> relevance grade
Run = dict[str, dict[str, float]]  # query id -> document id -> score (higher is better)


@dataclass(frozen=True)
class Benchmark:
    corpus: dict[str, tuple[str, str]]  # document id -> (title, text)
    queries: dict[str, str]
    qrels: Qrels  # of one split


def load_beir(path: Path, split: str) -> Benchmark:
    """corpus.jsonl, queries.jsonl and qrels/<split>.tsv; only judged queries are kept."""
    qrels_file = path / "qrels" / f"{split}.tsv"
    if not qrels_file.exists():
        raise FileNotFoundError(f"{qrels_file}: no qrels for split '{split}'")
    qrels: Qrels = {}
    with qrels_file.open(encoding="utf-8", newline="") as lines:
        rows = csv.reader(lines, delimiter="\t")
        next(rows)  # header
        for query_id, doc_id, grade in rows:
            if int(grade) > 0:
                qrels.setdefault(query_id, {})[doc_id] = int(grade)
    corpus = {}
    for record in _jsonl(path / "corpus.jsonl"):
        corpus[str(record["_id"])] = (record.get("title") or "", record["text"])
    queries = {str(r["_id"]): r["text"] for r in _jsonl(path / "queries.jsonl")
               if str(r["_id"]) in qrels}
    return Benchmark(corpus, queries, {q: qrels[q] for q in queries})


def subset(benchmark: Benchmark, queries: int, distractors: int) -> Benchmark:
    """The first `queries` judged queries, their relevant documents and `distractors` others:
    a small fixed sample whose ordering of configurations matches the full set's."""
    query_ids = sorted(benchmark.queries, key=_natural)[:queries]
    relevant = {doc for q in query_ids for doc in benchmark.qrels[q]}
    others = [doc for doc in benchmark.corpus if doc not in relevant][:distractors]
    keep = relevant | set(others)
    return Benchmark(
        corpus={doc: benchmark.corpus[doc] for doc in benchmark.corpus if doc in keep},
        queries={q: benchmark.queries[q] for q in query_ids},
        qrels={q: benchmark.qrels[q] for q in query_ids},
    )


def as_file(doc_id: str, title: str, text: str) -> tuple[str, bytes]:
    """Title and text as one Markdown document: the title becomes the heading every chunk of it
    carries. The file name keeps the benchmark's id so hits map back to it."""
    body = f"# {title}\n\n{text}" if title.strip() else text
    return f"{doc_id}.md", body.encode("utf-8")


def doc_id_of(hit: Hit) -> str:
    return hit.chunk.source.removesuffix(".md")


def index(rag: RAG, benchmark: Benchmark,
          progress: Callable[[int, int], None] | None = None) -> list[IngestResult]:
    """Documents already in the index are skipped, so a second run reuses the first's index."""
    results = []
    total = len(benchmark.corpus)
    for done, (doc_id, (title, text)) in enumerate(benchmark.corpus.items(), start=1):
        results.append(rag.ingest_one(*as_file(doc_id, title, text)))
        if progress is not None:
            progress(done, total)
    rag.sync_lexical()
    return results


def document_run(rankings: dict[str, Sequence[Hit]]) -> Run:
    """A document's score is its best chunk's; scores are ranks turned round, so the metric
    library sees exactly the app's order (it would break ties by id otherwise)."""
    run: Run = {}
    for query_id, hits in rankings.items():
        scores: dict[str, float] = {}
        for position, hit in enumerate(hits):
            scores.setdefault(doc_id_of(hit), float(len(hits) - position))
        run[query_id] = scores
    return run


def score_run(qrels: Qrels, run: Run) -> dict[str, float]:
    """Mean nDCG@10, recall@10/100 and MRR@10 over the judged queries, by trec_eval's code."""
    judged = {q: docs for q, docs in qrels.items() if docs}
    run = {q: run.get(q, {}) for q in judged}
    measures = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.10", "recall.100"})
    # trec_eval's recip_rank has no cut-off: MRR@10 is recip_rank over the top 10 only.
    top10 = {q: dict(sorted(docs.items(), key=lambda d: -d[1])[:10]) for q, docs in run.items()}
    reciprocal = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"})
    per_query = measures.evaluate(_nonempty(run))
    per_query_rr = reciprocal.evaluate(_nonempty(top10))
    n = len(judged)

    def mean(table: dict, key: str) -> float:
        return sum(table.get(q, {}).get(key, 0.0) for q in judged) / n if n else 0.0

    return {
        "ndcg@10": mean(per_query, "ndcg_cut_10"),
        "recall@10": mean(per_query, "recall_10"),
        "recall@100": mean(per_query, "recall_100"),
        "mrr@10": mean(per_query_rr, "recip_rank"),
    }


def evaluate(rag: RAG, benchmark: Benchmark,
             progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Rank every query with the live settings; the threshold's gate is left out because it
    decides whether to answer, not what ranks first (refusals are counted on their own)."""
    started = time.perf_counter()
    rankings = {}
    refused = 0
    total = len(benchmark.queries)
    for done, (query_id, text) in enumerate(benchmark.queries.items(), start=1):
        hits = rag.rank(text, DEPTH)
        rankings[query_id] = hits
        refused += rag.gate(text, hits)[1]
        if progress is not None:
            progress(done, total)
    elapsed = time.perf_counter() - started
    return {**score_run(benchmark.qrels, document_run(rankings)), "queries": total,
            "refused": refused, "query_s": round(elapsed, 2)}


def _nonempty(run: Run) -> Run:
    # pytrec_eval skips queries without documents; they score 0 through `mean`.
    return {q: docs for q, docs in run.items() if docs}


def _jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def _natural(query_id: str) -> tuple[int, str]:
    return (int(query_id), "") if query_id.isdigit() else (0, query_id)
