"""Store scale: how each vector store copes with a big index, to say when to move off the default.

Per store (embedded Chroma, a Chroma server, FAISS), in its own process so peak RSS is its own:
build a 100k-chunk index from synthetic vectors (100 documents of 1,000 chunks, ~600 characters
of text each) and print add throughput, query latency (top-15, and top-50: what the app fetches
with top_k 5 x fetch_multiplier 10), reopen time (a new store object until its first answer),
disk size and peak RSS. Then the real embedder on a 5k-chunk SciFact sample: embedding
throughput and question-to-hits latency at that size. Also the BM25 rebuild at 100k chunks,
which each batch of changes pays today.

Target: retrieval p95 <= 50 ms at 100k chunks on the default store (embedded Chroma).
Results: bench/results/scale.md. About 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from chromadb.api.client import SharedSystemClient
from common import BENCH_DATA, REPO, write_results

from rag.config import Settings
from rag.stores import VectorStore, open_store
from rag.types import Chunk, DocumentInfo

DIM = 384  # all-MiniLM-L6-v2
PER_DOCUMENT = 1000
QUERIES = 300
STORES = ("chroma", "chroma-server", "faiss")
RESULTS = REPO / "bench" / "results" / "scale.md"


def synthetic_documents(n_chunks: int, seed: int = 0) -> Iterator[tuple[DocumentInfo, list[Chunk],
                                                                         np.ndarray]]:
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}" for i in range(20000)])
    for d in range(n_chunks // PER_DOCUMENT):
        doc_id = f"{d:064x}"
        words = rng.choice(vocabulary, size=(PER_DOCUMENT, 110))
        chunks = [Chunk(doc_id, f"doc{d}.pdf", i, " ".join(row), i * 600, i * 600 + 600,
                        page=i // 4 + 1) for i, row in enumerate(words)]
        vectors = _unit(rng.standard_normal((PER_DOCUMENT, DIM), dtype=np.float32))
        info = DocumentInfo(doc_id, f"doc{d}.pdf", PER_DOCUMENT // 4, PER_DOCUMENT, 10**6,
                            f"2026-12-01T00:{d // 60:02d}:{d % 60:02d}+00:00")
        yield info, chunks, vectors


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def latencies(store: VectorStore, queries: np.ndarray, k: int) -> list[float]:
    """The k nearest with their texts: what a search that shows all k reads."""
    times = []
    for vector in queries:
        started = time.perf_counter()
        store.get_chunks([chunk_id for chunk_id, _ in store.nearest(vector, k)])
        times.append(time.perf_counter() - started)
    return times


def ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 1)


def disk_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6, 1)


def child(store_name: str, n_chunks: int, work: Path, port: int | None) -> dict:
    """One store's figures; runs in its own process."""
    settings = _settings(store_name, work, port)
    store = open_store(settings)
    started = time.perf_counter()
    for info, chunks, vectors in synthetic_documents(n_chunks):
        store.add(info, chunks, vectors)
    store.flush()
    add_s = time.perf_counter() - started
    # questions near stored chunks, as real questions are near their answers
    rng = np.random.default_rng(1)
    near = _unit(rng.standard_normal((QUERIES, DIM), dtype=np.float32))
    latencies(store, near[:20], 15)  # warm-up: the first queries load the index
    top15 = latencies(store, near, 15)
    top50 = latencies(store, near, 50)
    del store
    SharedSystemClient.clear_system_cache()  # chromadb keeps one client per folder otherwise
    started = time.perf_counter()
    reopened = open_store(settings)
    reopened.nearest(near[0], 15)
    reopen_s = time.perf_counter() - started
    assert reopened.count() == n_chunks, (store_name, reopened.count())
    return {
        "store": store_name, "chunks": n_chunks, "add_s": round(add_s, 1),
        "add_per_s": round(n_chunks / add_s), "p50_15": ms(top15, 50), "p95_15": ms(top15, 95),
        "p50_50": ms(top50, 50), "p95_50": ms(top50, 95), "reopen_s": round(reopen_s, 2),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _settings(store_name: str, work: Path, port: int | None) -> Settings:
    if store_name == "chroma-server":
        return Settings(data_dir=work, chroma_host="127.0.0.1", chroma_port=port)
    return Settings(data_dir=work, vector_store_type=store_name)


def run_store(store_name: str, n_chunks: int, work: Path) -> dict:
    work.mkdir(parents=True)
    if store_name == "chroma-server":
        from tests.chroma_fixtures import chroma_server_at  # one way to start a server

        with chroma_server_at(work / "server") as server:
            figures = _run_child(store_name, n_chunks, work, server.port)
            figures["server_rss_mb"] = _peak_rss_mb(server.pid)
    else:
        figures = _run_child(store_name, n_chunks, work, None)
    figures["disk_mb"] = disk_mb(work)
    return figures


def _run_child(store_name: str, n_chunks: int, work: Path, port: int | None) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", store_name, "--chunks", str(n_chunks),
         "--work", str(work), *(["--port", str(port)] if port else [])],
        check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _peak_rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return 0


def real_sample(n_chunks: int, work: Path) -> dict:
    """The real embedder on SciFact abstracts: what embedding costs next to the store."""
    from rag.chunking import chunk_document
    from rag.embeddings import Embedder
    from rag.evaluation import as_file, load_beir
    from rag.lexical import indexed_text
    from rag.loaders import load

    beir = load_beir(BENCH_DATA / "scifact", "test")
    settings = Settings(data_dir=work)
    embedder = Embedder(settings.embedding_model, settings.embedding_batch_size)
    store = open_store(settings)
    embedded, embed_s, store_s = 0, 0.0, 0.0
    for doc_id, (title, text) in beir.corpus.items():
        if embedded >= n_chunks:
            break
        name, data = as_file(doc_id, title, text)
        loaded = load(data, name)
        chunks = chunk_document(loaded, embedder, size=settings.chunk_size,
                                overlap=settings.chunk_overlap, strategy=settings.chunk_strategy)
        started = time.perf_counter()
        vectors = embedder.embed([indexed_text(chunk) for chunk in chunks])
        embed_s += time.perf_counter() - started
        started = time.perf_counter()
        store.add(DocumentInfo(loaded.doc_id, name, 1, len(chunks), len(data),
                               "2026-12-01T00:00:00+00:00"), chunks, vectors)
        store_s += time.perf_counter() - started
        embedded += len(chunks)
    questions = list(beir.queries.values())[:100]
    times = []
    for question in questions:
        started = time.perf_counter()
        store.get_chunks([chunk_id for chunk_id, _ in
                          store.nearest(embedder.embed_query(question), 50)])
        times.append(time.perf_counter() - started)
    return {"chunks": embedded, "embed_per_s": round(embedded / embed_s, 1),
            "store_per_s": round(embedded / store_s), "p50": ms(times, 50), "p95": ms(times, 95)}


def bm25_rebuild_s(n_chunks: int, work: Path) -> float:
    from rag.lexical import LexicalIndex

    chunks = [chunk for _, document_chunks, _ in synthetic_documents(n_chunks)
              for chunk in document_chunks]
    started = time.perf_counter()
    LexicalIndex(work / "bm25").rebuild(chunks)
    return round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=5_000, help="real embedded chunks")
    parser.add_argument("--stores", nargs="+", default=list(STORES), choices=STORES)
    parser.add_argument("--child", choices=STORES, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.chunks, args.work, args.port)))
        return

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="rag-scale-"))
    try:
        rows = []
        for name in args.stores:
            rows.append(run_store(name, args.chunks, work / name))
            print(json.dumps(rows[-1]), flush=True)
        sample = real_sample(args.sample, work / "sample")
        print(json.dumps(sample), flush=True)
        bm25_s = bm25_rebuild_s(args.chunks, work)
        print(f"BM25 rebuild at {args.chunks} chunks: {bm25_s} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(RESULTS, report(rows, sample, bm25_s, time.perf_counter() - started),
                  "## Reading")


def report(rows: list[dict], sample: dict, bm25_s: float, total_s: float) -> str:
    lines = [
        "# Store scale",
        "",
        f"`nice -n 5 .venv/bin/python bench/scale.py` ({total_s:.0f} s wall on 2 shared cores). "
        f"Synthetic: {rows[0]['chunks']:,} chunks of 384-d random unit vectors, "
        f"{PER_DOCUMENT:,} per document, ~600 characters of text each; {QUERIES} queries.",
        "",
        "| store | add chunks/s | top-15 p50 ms | top-15 p95 ms | top-50 p50 ms | top-50 p95 ms "
        "| reopen s | disk MB | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        rss = f"{row['rss_mb']}"
        if "server_rss_mb" in row:
            rss += f" (+ server {row['server_rss_mb']})"
        lines.append(f"| {row['store']} | {row['add_per_s']:,} | {row['p50_15']} | {row['p95_15']} "
                     f"| {row['p50_50']} | {row['p95_50']} | {row['reopen_s']} | "
                     f"{row['disk_mb']:,} | {rss} |")
    lines += [
        "",
        f"Real embedder, embedded Chroma, {sample['chunks']:,} SciFact chunks: embedding "
        f"{sample['embed_per_s']} chunks/s, store add {sample['store_per_s']:,} chunks/s, "
        f"question to top-50 (embed + query) p50 {sample['p50']} ms, p95 {sample['p95']} ms.",
        "",
        f"BM25 rebuild over {rows[0]['chunks']:,} chunks: {bm25_s} s (paid once per batch of "
        "changes today).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
