"""One file into the index: load, chunk and embed first, then write, so a failure leaves the
index as it was and never raises: the result names the file and the cause instead."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from rag.chunking import chunk_document
from rag.config import Settings
from rag.embeddings import Embedder
from rag.index import Index
from rag.lexical import indexed_text
from rag.loaders import LoaderError, load
from rag.types import Chunk, Document, DocumentInfo

log = logging.getLogger(__name__)

IngestStatus = Literal["indexed", "already indexed", "failed"]


@dataclass(frozen=True)
class IngestResult:
    source: str
    status: IngestStatus
    doc_id: str | None = None
    chunks: int = 0
    error: str | None = None  # names the file and the cause
    warnings: tuple[str, ...] = ()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def prepare(document: Document, embedder: Embedder, settings: Settings, chunk_size: int,
            added_at: str | None = None) -> tuple[DocumentInfo, list[Chunk], np.ndarray | None]:
    """Chunk with the live settings and embed: all the slow work, done before any write."""
    chunks = chunk_document(document, embedder, size=chunk_size,
                            overlap=settings.chunk_overlap, strategy=settings.chunk_strategy)
    vectors = embedder.embed([indexed_text(chunk) for chunk in chunks]) if chunks else None
    info = DocumentInfo(
        doc_id=document.doc_id,
        source=document.source,
        pages=len(document.pages),
        chunks=len(chunks),
        size_bytes=document.size_bytes,
        added_at=added_at or _now(),
        warnings=document.warnings,
    )
    return info, chunks, vectors


def ingest_file(index: Index, source: str, data: bytes,
                password: str | None = None) -> IngestResult:
    """Never raises for a bad file. The BM25 side catches up before the next search, or at once
    with `index.sync_lexical`."""
    index.follow_other_processes()
    with index.lock:
        return _ingest(index, source, data, password)


def _ingest(index: Index, source: str, data: bytes, password: str | None) -> IngestResult:
    settings = index.settings
    try:
        document = load(data, source, password=password, timeout_s=settings.load_timeout_s)
    except LoaderError as error:
        return IngestResult(source, "failed", error=str(error))
    if index.store.get_document(document.doc_id) is not None:
        return IngestResult(source, "already indexed", doc_id=document.doc_id)
    try:
        if index.store.count() == 0:
            index.adopt_live_settings()
        model = index.model
        info, chunks, vectors = prepare(document, index.embedder, settings, index.chunk_size)
        if not chunks:
            return IngestResult(source, "failed", error=f"{source}: no text to index")
        with index.writing():  # another process may have swapped the index meanwhile
            if index.model != model:
                info, chunks, vectors = prepare(document, index.embedder, settings,
                                                index.chunk_size)
            index.add(data, info, chunks, vectors)
    except Exception as error:  # the store rolled back; the next file goes on
        log.exception("indexing %s failed", source)
        return IngestResult(source, "failed", doc_id=document.doc_id,
                            error=f"{source}: indexing failed: {error}")
    return IngestResult(source, "indexed", doc_id=document.doc_id, chunks=len(chunks),
                        warnings=document.warnings)
