"""Ingest throughput: the whole path (load, chunk, embed, store) beside the raw encoder alone.

Target: the pipeline runs at >= 0.9x the chunks/s of `model.encode` on the same chunks, i.e.
loading, chunking and storing cost at most a tenth of the time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import BENCH_DATA

from rag.chunking import chunk_document
from rag.config import Settings
from rag.embeddings import Embedder
from rag.loaders import load
from rag.pipeline import RAG


def corpus() -> list[Path]:
    docs = BENCH_DATA / "docs"
    return sorted([*docs.glob("markdown/*.md"), *docs.glob("html/*.html"), *docs.glob("text/*.txt"),
                   BENCH_DATA / "pdfs/pdfjs/tracemonkey.pdf"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=0, help="use only the first N files")
    args = parser.parse_args()
    files = corpus()[: args.files or None]
    payload = [(path.name, path.read_bytes()) for path in files]
    settings = Settings()
    embedder = Embedder(settings.embedding_model, settings.embedding_batch_size)
    embedder.embed(["warm up the model"] * 8)

    with tempfile.TemporaryDirectory() as data_dir:
        rag = RAG(settings.model_copy(update={"data_dir": Path(data_dir)}), embedder=embedder)
        started = time.perf_counter()
        results = rag.ingest(payload)
        pipeline_s = time.perf_counter() - started
    chunks = sum(result.chunks for result in results)
    failed = [result.error for result in results if result.status == "failed"]

    started = time.perf_counter()
    texts = [chunk.text
             for name, data in payload
             for chunk in chunk_document(load(data, name), embedder, size=rag.chunk_size,
                                         overlap=settings.chunk_overlap,
                                         strategy=settings.chunk_strategy)]
    load_chunk_s = time.perf_counter() - started
    started = time.perf_counter()
    embedder.embed(texts)
    encode_s = time.perf_counter() - started

    size_mb = sum(len(data) for _, data in payload) / 1e6
    print(f"files: {len(payload)} ({size_mb:.1f} MB), failed: {len(failed)} {failed}")
    print(f"chunks: {chunks} (size {rag.chunk_size}, overlap {settings.chunk_overlap}, "
          f"{settings.chunk_strategy})")
    print(f"load + chunk alone:       {load_chunk_s:7.1f} s")
    print(f"raw model.encode:         {encode_s:7.1f} s  {len(texts) / encode_s:7.1f} chunks/s")
    print(f"whole ingest path:        {pipeline_s:7.1f} s  {chunks / pipeline_s:7.1f} chunks/s")
    print(f"pipeline / raw encoder:   {(chunks / pipeline_s) / (len(texts) / encode_s):.2f}x "
          "(target >= 0.90x)")


if __name__ == "__main__":
    main()
