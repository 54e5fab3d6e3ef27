"""Chunk size, overlap and strategy chosen by numbers, on two sets, through the app's own path.

(a) SciFact TRAIN subset (first 100 judged queries, their relevant abstracts + 500 distractors):
    nDCG@10 and recall@10 of documents (a document scores as its best chunk).
(b) Long documents from SQuAD 2.0 dev: each article's paragraphs joined by blank lines into one
    Markdown document (Normans, Rhine); its answerable questions (386). A question is found at k
    when one of the top k chunks contains one of its answer spans (case-insensitive). found@ctx:
    among the top_k (5) chunks that fit the prompt's context budget (context_tokens, 800), as
    `RAG.ask` would pass them to the model.
Hits are ranked as the app ranks them: depth top_k * fetch_multiplier, hybrid fusion, re-ranker.
"+-" is the standard error of the paired per-query difference to the baseline row (160/24
recursive); a configuration replaces the default only when it beats the baseline by more than
two of them on one set and is not worse by more than two on the other.

Not the full grid: stage 1 sweeps sizes with the recursive splitter at ~15% overlap; stage 2
tries overlap 0 and the other strategies at the best size of stage 1 (or sizes given with
--stage2-sizes). Indexes are kept under --work so a rerun only re-ranks.

    nice -n 5 .venv/bin/python bench/chunking.py            # writes bench/results/chunking.md
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pytrec_eval
import torch
from common import BENCH_DATA, REPO, write_results

from rag.config import Settings
from rag.embeddings import Embedder
from rag.evaluation import as_file, document_run, index, load_beir, score_run, subset
from rag.pipeline import RAG

BASELINE = (160, 24, "recursive")
SIZES = (64, 128, 160, 192, 254)
SQUAD_FILE = BENCH_DATA / "squad" / "squad2-dev-normans-rhine.json"


@dataclass
class Row:
    size: int
    overlap: int
    strategy: str
    scifact_chunks: int
    index_s: float
    ndcg: float
    recall: float
    ndcg_per_query: dict[str, float]
    squad_chunks: int
    mean_tokens: float
    found1: float
    found5: float
    found_ctx: float
    passages_in_ctx: float
    found_per_question: dict[str, tuple[bool, bool, bool]]

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.size, self.overlap, self.strategy)


def squad_articles() -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    """article title -> joined text; answerable question id -> answer spans; id -> question."""
    data = json.loads(SQUAD_FILE.read_text(encoding="utf-8"))["data"]
    articles, answers, questions = {}, {}, {}
    for article in data:
        articles[article["title"]] = "\n\n".join(p["context"] for p in article["paragraphs"])
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if not qa["is_impossible"]:
                    answers[qa["id"]] = sorted({a["text"] for a in qa["answers"]})
                    questions[qa["id"]] = qa["question"]
    return articles, answers, questions


def overlap_for(size: int) -> int:
    return round(size * 0.15)


def run_config(size: int, overlap: int, strategy: str, embedder: Embedder, work: Path,
               scifact, articles, answers, questions) -> Row:
    tag = f"{size}-{overlap}-{strategy}"
    base = Settings(chunk_size=size, chunk_overlap=overlap, chunk_strategy=strategy)

    rag = RAG(base.model_copy(update={"data_dir": work / f"scifact-{tag}"}), embedder=embedder)
    started = time.perf_counter()
    index(rag, scifact)
    index_s = time.perf_counter() - started
    depth = rag.settings.top_k * rag.settings.fetch_multiplier
    rankings = {q: rag.rank(text, 100) for q, text in scifact.queries.items()}
    run = document_run(rankings)
    means = score_run(scifact.qrels, run)
    evaluator = pytrec_eval.RelevanceEvaluator(scifact.qrels, {"ndcg_cut.10"})
    scored = evaluator.evaluate({q: d for q, d in run.items() if d})
    per_query = {q: scored.get(q, {}).get("ndcg_cut_10", 0.0) for q in scifact.qrels}
    scifact_chunks = rag.store.count()

    rag = RAG(base.model_copy(update={"data_dir": work / f"squad-{tag}"}), embedder=embedder)
    for title, text in articles.items():
        rag.ingest_one(*as_file(title.lower(), title, text))
    rag.sync_lexical()
    squad_chunks = rag.store.count()
    found: dict[str, tuple[bool, bool, bool]] = {}
    tokens, in_ctx = [], []
    for qid, question in questions.items():
        hits = rag.rank(question, depth)[: rag.settings.top_k]
        spans = [a.lower() for a in answers[qid]]
        has = [any(s in hit.chunk.text.lower() for s in spans) for hit in hits]
        fitted = rag.context(question, hits).hits  # exactly what ask() hands to the model
        found[qid] = (any(has[:1]), any(has[:5]), any(has[: len(fitted)]))
        tokens.extend(embedder.count_tokens(hit.chunk.text) for hit in hits[:1])
        in_ctx.append(len(fitted))
    n = len(found)
    return Row(size, overlap, strategy, scifact_chunks, index_s, means["ndcg@10"],
               means["recall@10"], per_query, squad_chunks, sum(tokens) / len(tokens),
               sum(f[0] for f in found.values()) / n, sum(f[1] for f in found.values()) / n,
               sum(f[2] for f in found.values()) / n, sum(in_ctx) / n, found)


def paired_se(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean and standard error of the per-item difference a - b."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / max(len(diffs) - 1, 1)
    return mean, math.sqrt(var / len(diffs))


def compare(row: Row, base: Row) -> dict[str, tuple[float, float]]:
    qs = sorted(base.ndcg_per_query)
    ids = sorted(base.found_per_question)
    return {
        "ndcg": paired_se([row.ndcg_per_query[q] for q in qs], [base.ndcg_per_query[q] for q in qs]),
        "found5": paired_se([float(row.found_per_question[i][1]) for i in ids],
                            [float(base.found_per_question[i][1]) for i in ids]),
        "found_ctx": paired_se([float(row.found_per_question[i][2]) for i in ids],
                               [float(base.found_per_question[i][2]) for i in ids]),
    }


def table(rows: list[Row]) -> str:
    base = next(r for r in rows if r.key == BASELINE)
    lines = [
        "| size | overlap | strategy | SciFact chunks | index s | nDCG@10 | d nDCG vs 160/24 | "
        "recall@10 | SQuAD chunks | top-1 tokens | found@1 | found@5 | d found@5 | found@ctx | "
        "d found@ctx | passages in 800 tok |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        d = compare(r, base)

        def fmt(pair: tuple[float, float]) -> str:
            return f"{pair[0]:+.3f} +- {pair[1]:.3f}"

        lines.append(
            f"| {r.size} | {r.overlap} | {r.strategy} | {r.scifact_chunks} | {r.index_s:.0f} | "
            f"{r.ndcg:.3f} | {fmt(d['ndcg'])} | {r.recall:.3f} | {r.squad_chunks} | "
            f"{r.mean_tokens:.0f} | {r.found1:.3f} | {r.found5:.3f} | {fmt(d['found5'])} | "
            f"{r.found_ctx:.3f} | {fmt(d['found_ctx'])} | {r.passages_in_ctx:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--distractors", type=int, default=500)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--stage2-sizes", type=int, nargs="*", default=None,
                        help="sizes for the overlap/strategy stage (default: best of stage 1)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench/chunking"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "chunking.md")
    parser.add_argument("--threads", type=int, default=1, help=(
        "torch threads; on 2 cores shared with other jobs 1 thread encoded a query in 47 ms, "
        "2 threads in 463 ms"))
    args = parser.parse_args()
    started = time.perf_counter()

    scifact = subset(load_beir(BENCH_DATA / "scifact", "train"), args.queries, args.distractors)
    articles, answers, questions = squad_articles()
    settings = Settings()
    embedder = Embedder(settings.embedding_model, settings.embedding_batch_size)
    torch.set_num_threads(args.threads)  # after the Embedder, which sets it to the core count
    print(f"SciFact train subset: {len(scifact.queries)} queries, {len(scifact.corpus)} docs; "
          f"SQuAD long docs: {len(articles)} articles, {len(questions)} answerable questions",
          flush=True)

    rows: dict[tuple[int, int, str], Row] = {}

    def run(size: int, overlap: int, strategy: str) -> Row:
        if (size, overlap, strategy) not in rows:
            t = time.perf_counter()
            row = run_config(size, overlap, strategy, embedder, args.work, scifact, articles,
                             answers, questions)
            rows[row.key] = row
            print(f"{size}/{overlap}/{strategy}: nDCG@10 {row.ndcg:.3f} recall@10 {row.recall:.3f}"
                  f" found@1 {row.found1:.3f} found@5 {row.found5:.3f} found@ctx "
                  f"{row.found_ctx:.3f} ({time.perf_counter() - t:.0f} s)", flush=True)
        return rows[(size, overlap, strategy)]

    run(*BASELINE)
    stage1 = [run(size, BASELINE[1] if size == BASELINE[0] else overlap_for(size), "recursive")
              for size in args.sizes]
    # Rank sizes by the sum of both sets' main figures (nDCG@10 + found@ctx).
    best = sorted(stage1, key=lambda r: r.ndcg + r.found_ctx, reverse=True)
    stage2_sizes = args.stage2_sizes if args.stage2_sizes is not None else [best[0].size]
    for size in stage2_sizes:
        overlap = BASELINE[1] if size == BASELINE[0] else overlap_for(size)
        run(size, 0, "recursive")
        run(size, overlap, "semantic")
        run(size, overlap, "fixed")

    ordered = sorted(rows.values(), key=lambda r: (r.size, r.strategy != "recursive", r.strategy,
                                                   r.overlap))
    text = table(ordered)
    wall = time.perf_counter() - started
    print(text)
    print(f"wall time {wall:.0f} s")
    write_results(
        args.out,
        "# Chunking sweep\n\n"
        f"`nice -n 5 .venv/bin/python bench/chunking.py` ({wall:.0f} s wall on 2 shared cores).\n"
        f"SciFact train subset: {len(scifact.queries)} queries, {len(scifact.corpus)} abstracts. "
        f"SQuAD 2.0 dev Normans + Rhine as {len(articles)} long documents, "
        f"{len(questions)} answerable questions.\n"
        f"Default retrieval settings otherwise (hybrid {settings.hybrid}, dense_weight "
        f"{settings.dense_weight}, re-rank {settings.rerank}, top_k {settings.top_k}, depth "
        f"{settings.top_k * settings.fetch_multiplier}).\n"
        "`+-` is the standard error of the paired per-query difference to 160/24 recursive.\n\n"
        + text + "\n", "## Decision")


if __name__ == "__main__":
    main()
