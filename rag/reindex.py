"""Re-index: every document chunked and embedded again from its kept original with the live
settings, into a new generation beside the live one, which it replaces only once complete."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from rag.embeddings import TextEmbedder
from rag.index import Index
from rag.index_files import read_original
from rag.ingest import IngestResult, prepare
from rag.loaders import load
from rag.stores import VectorStore, open_store
from rag.types import DocumentInfo

log = logging.getLogger(__name__)


def reindex_iter(index: Index) -> Iterator[IngestResult]:
    """One result per document, for a progress bar. Questions and uploads go on against the live
    index meanwhile; if any document fails, the new generation is dropped and nothing changed."""
    with index.reindexing:
        index.follow_other_processes()
        generation = index.generation + 1
        fresh = open_store(index.settings, generation=generation)
        fresh.drop()  # leftovers of an interrupted re-index
        fresh = open_store(index.settings, generation=generation)
        embedder = index.live_embedder()
        complete = True
        for info in index.store.documents():
            result = _rebuild_into(index, fresh, embedder, info)
            complete = complete and result is not None and result.status == "indexed"
            if result is not None:
                yield result
        if complete:
            complete = _swap_in(index, fresh, generation, embedder)
        if not complete:
            index.drop_generation(fresh, generation)


def _rebuild_into(index: Index, store: VectorStore, embedder: TextEmbedder,
                  info: DocumentInfo) -> IngestResult | None:
    """None for a document deleted while the re-index ran: nothing to rebuild."""
    settings = index.settings
    data = read_original(settings.data_dir, info.doc_id)
    if data is None:
        if index.store.get_document(info.doc_id) is None:
            return None
        return IngestResult(info.source, "failed", doc_id=info.doc_id,
                            error=f"{info.source}: original file not kept; upload it again")
    try:
        document = load(data, info.source, timeout_s=settings.load_timeout_s)
        info, chunks, vectors = prepare(document, embedder, settings,
                                        index.chunk_size_for(embedder), info.added_at)
        if not chunks:
            raise ValueError("no text to index")
        store.add(info, chunks, vectors)
    except Exception as error:  # the live index is untouched; the others go on
        log.exception("re-indexing %s failed", info.source)
        return IngestResult(info.source, "failed", doc_id=info.doc_id,
                            error=f"{info.source}: re-indexing failed: {error}")
    return IngestResult(info.source, "indexed", doc_id=info.doc_id, chunks=len(chunks),
                        warnings=document.warnings)


def _swap_in(index: Index, fresh: VectorStore, generation: int, embedder: TextEmbedder) -> bool:
    """Catch up with uploads and deletes made during the rebuild, then swap. The write lock keeps
    other processes' uploads out until then; they follow the swap."""
    with index.writing():
        live = {info.doc_id: info for info in index.store.documents()}
        for doc_id in {info.doc_id for info in fresh.documents()} - live.keys():
            fresh.delete(doc_id)
        for doc_id in live.keys() - {info.doc_id for info in fresh.documents()}:
            result = _rebuild_into(index, fresh, embedder, live[doc_id])
            if result is not None and result.status != "indexed":
                return False
        old_store, old_generation = index.store, index.generation
        index.swap(fresh, generation, embedder)
    index.drop_generation(old_store, old_generation)
    return True
