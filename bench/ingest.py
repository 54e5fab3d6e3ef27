"""Ingest throughput: the whole path an upload takes (kept, queued, loaded, chunked, embedded
with progress reports, stored) beside the raw encoder alone; then the formats that took new
loaders (scans through OCR, Office and data files) and, as a plumbing figure, embedding through
an OpenAI-compatible endpoint (llama.cpp's server on this machine) beside the local encoder.

Target: the pipeline runs at >= 0.9x the chunks/s of sentence-transformers' `model.encode` on the
same texts (the chunks as embedded: with their section heading in front, `indexed_text`). Printed
beside it: this project's encoder on all chunks at once, so what loading, chunking, storing and
keeping BM25 level cost shows on its own.

    .venv/bin/python bench/ingest.py                  # the text corpus: pipeline vs encoder
    .venv/bin/python bench/ingest.py --formats        # + scans (OCR) and Office/data files
    .venv/bin/python bench/ingest.py --remote GGUF    # + a llama.cpp embedding server on GGUF
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import BENCH_DATA, REPO
from ocr import words

from rag.chunking import chunk_document
from rag.config import Settings
from rag.embeddings import Embedder, create_embedder, embedding_identity, resolve_model
from rag.ingest_jobs import Job
from rag.lexical import indexed_text
from rag.loaders import load
from rag.pipeline import RAG
from rag.sentence_encoder import _SentenceTransformersEncoder, encode
from tests.processes import cli_env, free_port, running_server

OFFICE = BENCH_DATA / "office"


def corpus() -> list[Path]:
    docs = BENCH_DATA / "docs"
    return sorted([*docs.glob("markdown/*.md"), *docs.glob("html/*.html"), *docs.glob("text/*.txt"),
                   BENCH_DATA / "pdfs/pdfjs/tracemonkey.pdf"])


def scans() -> list[Path]:
    """The benchmark PDFs without a text layer (MANIFEST category image-only) and every
    office/ocr file: what OCR reads."""
    pdfs = BENCH_DATA / "pdfs"
    manifest = json.loads((pdfs / "MANIFEST.json").read_text(encoding="utf-8"))["pdfs"]
    image_only = [pdfs / e["path"] for e in manifest if "image-only" in e["categories"]]
    return image_only + [OFFICE / e["file"] for e in _office_manifest()
                         if e["file"].startswith("ocr/")]


def office_files() -> list[Path]:
    """The indexable Office, table and EPUB files of office/MANIFEST.json."""
    return [OFFICE / e["file"] for e in _office_manifest()
            if e["expect"] == "index" and not e["file"].startswith("ocr/")]


def _office_manifest() -> list[dict]:
    return json.loads((OFFICE / "MANIFEST.json").read_text(encoding="utf-8"))["files"]


def through_queue(embedder: Embedder, files: list[tuple[str, bytes]]) -> tuple[list[Job], float]:
    """Every file submitted at once, as a drop on the Documents page, timed until all are done."""
    with tempfile.TemporaryDirectory() as data_dir:
        rag = RAG(Settings(data_dir=Path(data_dir)), embedder=embedder)
        started = time.perf_counter()
        submitted = [rag.queue.submit(name, data) for name, data in files]
        rag.queue.wait_idle()
        seconds = time.perf_counter() - started
        return [rag.queue.jobs.get(job.id) for job in submitted], seconds


def text_corpus(embedder: Embedder, files: list[Path], rounds: int) -> None:
    """The whole path beside two references on the same texts, in alternating rounds (this
    machine's speed drifts by 15% between minutes, so ratios are taken within a round): this
    encoder on all chunks at once (what the path adds besides embedding) and
    sentence-transformers' `model.encode` (the reference the target was set against)."""
    settings = Settings()
    payload = [(path.name, path.read_bytes()) for path in files]
    chunk_size = min(settings.chunk_size, embedder.max_tokens)
    started = time.perf_counter()
    texts = [indexed_text(chunk)
             for name, data in payload
             for chunk in chunk_document(load(data, name), embedder, size=chunk_size,
                                         overlap=settings.chunk_overlap,
                                         strategy=settings.chunk_strategy)]
    load_chunk_s = time.perf_counter() - started
    reference = _SentenceTransformersEncoder(resolve_model(settings.embedding_model))
    size_mb = sum(len(data) for _, data in payload) / 1e6
    print(f"files: {len(payload)} ({size_mb:.1f} MB); chunks: {len(texts)} (size {chunk_size}, "
          f"overlap {settings.chunk_overlap}, {settings.chunk_strategy}, embedded with their "
          f"heading in front); load + chunk alone: {load_chunk_s:.1f} s\n")
    print("| round | whole path s | chunks/s | this encoder, all at once s | / it | "
          "sentence-transformers encode s | / it |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for number in range(1, rounds + 1):
        jobs, whole_s = through_queue(embedder, payload)
        failed = [job.error for job in jobs if job.status != "indexed"]
        assert not failed and sum(job.chunks for job in jobs) == len(texts), failed
        started = time.perf_counter()
        embedder.embed(texts)
        ours_s = time.perf_counter() - started
        started = time.perf_counter()
        encode(reference, texts, embedder.batch_size)
        theirs_s = time.perf_counter() - started
        print(f"| {number} | {whole_s:.1f} | {len(texts) / whole_s:.1f} | {ours_s:.1f} | "
              f"{ours_s / whole_s:.2f}x | {theirs_s:.1f} | {theirs_s / whole_s:.2f}x |")
    print("(target: whole path >= 0.90x of model.encode's chunks/s)")


def formats(embedder: Embedder) -> None:
    """Scans (pages/s through OCR; word F1 against the ground truths) and Office/data files."""
    scan_files = scans()
    started = time.perf_counter()
    documents = {}
    for path in scan_files:
        try:
            documents[path] = load(path.read_bytes(), path.name, timeout_s=600)
        except Exception as error:  # noqa: BLE001  a refusal is a figure here
            print(f"  {path.name}: refused: {error}")
    load_s = time.perf_counter() - started
    pages = sum(len(doc.pages) for doc in documents.values())
    print(f"\nscans: {len(scan_files)} files, {len(documents)} loaded, {pages} pages read by "
          f"OCR in {load_s:.1f} s: {pages / load_s:.2f} pages/s (loading alone)")
    for entry in _office_manifest():
        path = OFFICE / entry["file"]
        if entry.get("ground_truth") and path in documents:
            truth = Counter(words((OFFICE / entry["ground_truth"]).read_text(encoding="utf-8")))
            read = Counter(words(" ".join(p.text for p in documents[path].pages)))
            f1 = 2 * sum((truth & read).values()) / (sum(truth.values()) + sum(read.values()))
            print(f"  {path.name}: word F1 {f1:.3f} against {entry['ground_truth']}")
    jobs, seconds = through_queue(embedder, [(p.name, p.read_bytes()) for p in scan_files])
    print(f"scans, whole path: {seconds:.1f} s, {_outcome(jobs)}")

    files = office_files()
    jobs, seconds = through_queue(embedder, [(p.name, p.read_bytes()) for p in files])
    chunks = sum(job.chunks for job in jobs)
    print(f"\noffice/data files: {len(files)} files, {_outcome(jobs)}, {chunks} chunks in "
          f"{seconds:.1f} s: {len(files) / seconds:.2f} files/s, {chunks / seconds:.1f} chunks/s")
    by_format = Counter()
    for path, job in zip(files, jobs, strict=True):
        by_format[path.suffix] += job.chunks
    print("  chunks by format: " + ", ".join(f"{k} {v}" for k, v in sorted(by_format.items())))


def _outcome(jobs: list[Job]) -> str:
    return ", ".join(f"{count} {status}" for status, count in
                     sorted(Counter(job.status for job in jobs).items()))


def remote(embedder: Embedder, gguf: Path, count: int) -> None:
    """Texts/s of a llama.cpp embedding server on this machine beside the local encoder, on the
    same chunks: a plumbing figure (the server's model is whatever GGUF is given)."""
    settings = Settings()
    chunk_size = min(settings.chunk_size, embedder.max_tokens)
    texts = [chunk.text for path in corpus()[:3]
             for chunk in chunk_document(load(path.read_bytes(), path.name), embedder,
                                         size=chunk_size, overlap=settings.chunk_overlap)]
    texts = texts[:count]
    started = time.perf_counter()
    embedder.embed(texts)
    local_s = time.perf_counter() - started
    port = free_port()
    command = [sys.executable, "-m", "tests.llama_server", "--model", str(gguf), "--host",
               "127.0.0.1", "--port", str(port), "--embedding", "true", "--verbose", "False",
               "--kv_overrides", "llama.pooling_type=int:1", "--n_ctx", "2048"]
    with tempfile.TemporaryDirectory() as logs, running_server(
        command, ready_url=f"http://127.0.0.1:{port}/v1/models", log=Path(logs) / "server.log",
        cwd=REPO, env=cli_env(),
    ):
        endpoint = settings.model_copy(update={
            "embedding_base_url": f"http://127.0.0.1:{port}/v1", "embedding_model": gguf.stem})
        far = create_embedder(endpoint, embedding_identity(endpoint))
        far.embed(texts[:1])  # warm-up, and the dimension
        started = time.perf_counter()
        far.embed(texts)
        remote_s = time.perf_counter() - started
    print(f"\nembedding {len(texts)} chunks: local {embedder.name} {len(texts) / local_s:.1f}/s; "
          f"llama.cpp server ({gguf.name}, mean pooling) {len(texts) / remote_s:.2f}/s "
          f"({(len(texts) / remote_s) / (len(texts) / local_s):.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=0, help="use only the first N files")
    parser.add_argument("--formats", action="store_true", help="also scans and Office files")
    parser.add_argument("--remote", type=Path, help="also a llama.cpp embedding server on GGUF")
    parser.add_argument("--remote-chunks", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    settings = Settings()
    embedder = Embedder(settings.embedding_model, settings.embedding_batch_size)
    embedder.embed(["warm up the model"] * 8)
    text_corpus(embedder, corpus()[: args.files or None], args.rounds)
    if args.formats:
        formats(embedder)
    if args.remote:
        remote(embedder, args.remote, args.remote_chunks)


if __name__ == "__main__":
    main()
