"""One file into the index: load, chunk and embed first, then write, so a failure leaves the
index as it was and never raises: the result names the file and the cause instead."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from rag.chunking import chunk_document
from rag.config import Settings
from rag.embeddings import TextEmbedder
from rag.index import Index
from rag.lexical import indexed_text
from rag.loaders import LoaderError, document_id, load
from rag.types import Chunk, Document, DocumentInfo

log = logging.getLogger(__name__)

IngestStatus = Literal["indexed", "already indexed", "failed"]
# Told (stage, done, total) as the work goes on; returns False to stop before anything is written.
Progress = Callable[[str, int, int], bool]
# Texts embedded between two progress reports (each is a write to the job queue, and the moment
# a cancel is seen): 64 chunks are about 2 s on 2 cores.
REPORT_EVERY = 64


class Cancelled(Exception):
    """The user stopped the job; nothing was written."""


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


def _report(progress: Progress | None, stage: str, done: int = 0, total: int = 0) -> None:
    if progress is not None and not progress(stage, done, total):
        raise Cancelled(stage)


def _embed(embedder: TextEmbedder, texts: list[str], progress: Progress | None) -> np.ndarray:
    """All at once, in the encoder's own order (longest first), with a report every
    REPORT_EVERY texts when somebody follows."""
    if progress is None:
        return embedder.embed(texts)
    reported = 0

    def embedded(done: int) -> None:
        nonlocal reported
        if done - reported >= REPORT_EVERY or done == len(texts):
            _report(progress, "embedding", done, len(texts))
            reported = done

    _report(progress, "embedding", 0, len(texts))
    return embedder.embed(texts, embedded)


def prepare(document: Document, embedder: TextEmbedder, settings: Settings, chunk_size: int,
            added_at: str | None = None, progress: Progress | None = None,
            ) -> tuple[DocumentInfo, list[Chunk], np.ndarray | None]:
    """Chunk with the live settings and embed: all the slow work, done before any write."""
    _report(progress, "chunking", 0, len(document.pages))
    chunks = chunk_document(document, embedder, size=chunk_size,
                            overlap=settings.chunk_overlap, strategy=settings.chunk_strategy)
    texts = [indexed_text(chunk) for chunk in chunks]
    vectors = _embed(embedder, texts, progress) if chunks else None
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


def ingest_file(index: Index, source: str, data: bytes, password: str | None = None,
                progress: Progress | None = None) -> IngestResult:
    """Never raises for a bad file; raises Cancelled when `progress` asked to stop, before
    anything was written. The BM25 side catches up before the next search, or at once with
    `index.sync_lexical`."""
    settings = index.settings
    doc_id = document_id(data)
    if index.store.get_document(doc_id) is not None:  # no need to parse it again
        return IngestResult(source, "already indexed", doc_id=doc_id)
    _report(progress, "parsing")
    try:
        document = load(data, source, password=password, timeout_s=settings.load_timeout_s)
    except LoaderError as error:
        return IngestResult(source, "failed", error=str(error))
    _report(progress, "parsed", len(document.pages), len(document.pages))
    index.follow_other_processes()
    with index.lock:
        return _ingest(index, document, data, progress)


def _ingest(index: Index, document: Document, data: bytes,
            progress: Progress | None) -> IngestResult:
    settings, source = index.settings, document.source
    if index.store.get_document(document.doc_id) is not None:
        return IngestResult(source, "already indexed", doc_id=document.doc_id)
    try:
        if index.store.count() == 0:
            index.adopt_live_settings()
        model = index.model
        info, chunks, vectors = prepare(document, index.embedder, settings, index.chunk_size,
                                        progress=progress)
        if not chunks:
            return IngestResult(source, "failed", error=f"{source}: no text to index")
        _report(progress, "writing", len(chunks), len(chunks))
        with index.writing():  # another process may have swapped the index meanwhile
            if index.model != model:
                info, chunks, vectors = prepare(document, index.embedder, settings,
                                                index.chunk_size)
            index.add(data, info, chunks, vectors)
    except Cancelled:
        raise
    except Exception as error:  # the store rolled back; the next file goes on
        log.exception("indexing %s failed", source)
        return IngestResult(source, "failed", doc_id=document.doc_id,
                            error=f"{source}: indexing failed: {error}")
    return IngestResult(source, "indexed", doc_id=document.doc_id, chunks=len(chunks),
                        warnings=document.warnings)
