"""The facade the UI and the CLI share: ingest files, list and delete documents, ask questions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from rag.chunking import chunk_document
from rag.config import Settings
from rag.embeddings import Embedder
from rag.generation import LLM, REFUSAL, build_messages, create_llm, failure_message
from rag.index_files import (
    INDEX_FIELDS,
    keep_original,
    manifest_differences,
    read_manifest,
    read_original,
    remove_original,
    write_manifest,
)
from rag.lexical import LexicalIndex, indexed_text
from rag.loaders import LoaderError, load
from rag.rerank import Reranker, create_reranker
from rag.retrieval import Retrieval, rank, retrieve
from rag.stores import VectorStore, open_store
from rag.types import DocumentInfo, Hit

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


@dataclass
class Answer:
    """Hits are known before the first token, so a UI can show the sources while text streams."""

    hits: list[Hit]
    deltas: Iterator[str]
    refused: bool
    best_similarity: float | None
    threshold: float


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RAG:
    """One index and the models that serve it. Models load on first use, so listing or deleting
    documents (CLI `list`, the UI's sidebar) never waits for them."""

    def __init__(
        self, settings: Settings | None = None, *, embedder: Embedder | None = None,
        llm: LLM | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.store: VectorStore = open_store(self.settings)
        self.lexical = LexicalIndex(self.settings.data_dir / "bm25")
        self._lexical_stale = True  # checked against the store before the next search
        self.llm = llm
        self._embedder = embedder
        self._reranker: Reranker | None = create_reranker(self.settings)
        self._ingest_lock = threading.Lock()
        self._model_lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        with self._model_lock:
            if self._embedder is None:
                self._embedder = Embedder(self.settings.embedding_model,
                                          self.settings.embedding_batch_size)
            return self._embedder

    @property
    def chunk_size(self) -> int:
        """The configured size, cut to what the embedder reads: text past it would be dropped."""
        return min(self.settings.chunk_size, self.embedder.max_tokens)

    @property
    def warnings(self) -> list[str]:
        if self.settings.chunk_size <= self.embedder.max_tokens:
            return []
        return [f"chunk_size {self.settings.chunk_size} is above the {self.embedder.max_tokens}-token "
                f"input limit of {self.embedder.name}; chunks are cut at {self.embedder.max_tokens}"]

    def update_settings(self, settings: Settings) -> None:
        """Retrieval and generation settings apply to the next question; chunking ones to the
        next ingest. A new embedding model or store needs a new RAG."""
        if (settings.embedding_model, settings.data_dir, settings.vector_store_type) != (
            self.settings.embedding_model, self.settings.data_dir, self.settings.vector_store_type
        ):
            raise ValueError("embedding model, data_dir and store type need a new RAG instance")
        llm_fields = ("llm_base_url", "llm_model", "llm_api_key", "llm_gguf", "llm_threads",
                      "llm_context_window", "llm_max_tokens", "llm_temperature", "llm_timeout_s")
        if any(getattr(settings, f) != getattr(self.settings, f) for f in llm_fields):
            self.llm = None
        self._reranker = create_reranker(settings)
        self.settings = settings

    # --- documents ---------------------------------------------------------------------------

    def ingest(self, files: Iterable[tuple[str, bytes]]) -> list[IngestResult]:
        """One result per (file name, bytes); the UI calls ingest_one per file for its progress."""
        results = [self._index_locked(source, data) for source, data in files]
        self.sync_lexical()
        return results

    def ingest_one(self, source: str, data: bytes) -> IngestResult:
        """Never raises for a bad file: the error names the file and the cause instead. The BM25
        side catches up before the next search, or at once with `sync_lexical`."""
        return self._index_locked(source, data)

    def _index_locked(self, source: str, data: bytes) -> IngestResult:
        with self._ingest_lock:
            result = self._index(source, data)
            self._lexical_stale = self._lexical_stale or result.status == "indexed"
            return result

    def sync_lexical(self) -> None:
        """Rebuild BM25 from the store's chunks when its documents differ: once per batch of
        changes, never per question. Also repairs it after a crash between the two writes."""
        if not self._lexical_stale:  # the common case: a question never waits for an ingest
            return
        with self._ingest_lock:
            if not self._lexical_stale:
                return
            listed = frozenset(info.doc_id for info in self.store.documents())
            if listed != self.lexical.doc_ids:
                self.lexical.rebuild(self.store.chunks())
            self._lexical_stale = False

    def _index(self, source: str, data: bytes, replace: DocumentInfo | None = None) -> IngestResult:
        """Load, chunk and embed before touching the store, so a failure leaves the index as it
        was. `replace` is the indexed document a re-index rebuilds (same bytes, same id)."""
        try:
            document = load(data, source)
        except LoaderError as error:
            return IngestResult(source, "failed", error=str(error))
        if replace is None and self.store.get_document(document.doc_id) is not None:
            return IngestResult(source, "already indexed", doc_id=document.doc_id)
        kept = False
        try:
            chunks = chunk_document(
                document,
                self.embedder,
                size=self.chunk_size,
                overlap=self.settings.chunk_overlap,
                strategy=self.settings.chunk_strategy,
            )
            if not chunks:
                return IngestResult(source, "failed", error=f"{source}: no text to index")
            vectors = self.embedder.embed([indexed_text(chunk) for chunk in chunks])
            info = DocumentInfo(
                doc_id=document.doc_id,
                source=source,
                pages=len(document.pages),
                chunks=len(chunks),
                size_bytes=document.size_bytes,
                added_at=replace.added_at if replace else _now(),
                warnings=document.warnings,
            )
            starts_index = self.store.count() == 0
            kept = keep_original(self.settings.data_dir, document.doc_id, data)
            if replace is not None:
                self.store.delete(replace.doc_id)
            self.store.add(info, chunks, vectors)
            if starts_index:
                write_manifest(self.settings.data_dir, self.index_manifest())
        except Exception as error:  # the store rolled back; the next file goes on
            log.exception("indexing %s failed", source)
            if kept:
                remove_original(self.settings.data_dir, document.doc_id)
            return IngestResult(source, "failed", doc_id=document.doc_id,
                                error=f"{source}: indexing failed: {error}")
        return IngestResult(source, "indexed", doc_id=document.doc_id, chunks=len(chunks),
                            warnings=document.warnings)

    def delete(self, doc_id: str) -> bool:
        with self._ingest_lock:
            if self.store.get_document(doc_id) is None:
                return False
            self.store.delete(doc_id)
            remove_original(self.settings.data_dir, doc_id)
            self._lexical_stale = True
        self.sync_lexical()
        return True

    def documents(self) -> list[DocumentInfo]:
        return self.store.documents()

    def index_manifest(self) -> dict:
        """The live settings that shape chunks and vectors, as the index would record them."""
        manifest = {field: getattr(self.settings, field) for field in INDEX_FIELDS}
        manifest["chunk_size"] = self.chunk_size
        return manifest

    def index_mismatch(self) -> list[str]:
        """How the index differs from the live chunking settings; empty when a re-index would
        change nothing."""
        if self.store.count() == 0:
            return []
        return manifest_differences(read_manifest(self.settings.data_dir), self.index_manifest())

    def reindex_iter(self) -> Iterator[IngestResult]:
        """Chunk and embed every document again from its kept original with the live settings,
        one result per document for a progress bar."""
        complete = True
        for info in self.documents():
            data = read_original(self.settings.data_dir, info.doc_id)
            if data is None:
                result = IngestResult(info.source, "failed", doc_id=info.doc_id,
                                      error=f"{info.source}: original file not kept; upload it again")
            else:
                with self._ingest_lock:
                    result = self._index(info.source, data, replace=info)
                    self._lexical_stale = True
            complete = complete and result.status == "indexed"
            yield result
        self.sync_lexical()
        if complete:  # otherwise the index still holds chunks made with the old settings
            write_manifest(self.settings.data_dir, self.index_manifest())

    # --- questions ---------------------------------------------------------------------------

    def retrieve(self, question: str) -> Retrieval:
        return retrieve(question, top_k=self.settings.top_k,
                        fetch_multiplier=self.settings.fetch_multiplier,
                        threshold=self.settings.similarity_threshold, **self._search_parts())

    def rank(self, question: str, depth: int) -> list[Hit]:
        """The full ranking to `depth`, without the threshold's gate: what evaluation scores."""
        return rank(question, depth=depth, **self._search_parts())

    def _search_parts(self) -> dict:
        self.sync_lexical()
        return {
            "embedder": self.embedder,
            "store": self.store,
            "lexical": self.lexical if self.settings.hybrid else None,
            "reranker": self._reranker,
            "dense_weight": self.settings.dense_weight,
            "fusion": self.settings.fusion,
        }

    def ask(self, question: str, history: Sequence[dict] = ()) -> Answer:
        """With no hit above the threshold the answer is the refusal, and no LLM is called."""
        retrieval = self.retrieve(question)
        hits = self._fit_context(retrieval.hits)
        if not hits:
            return Answer([], iter([REFUSAL]), True, retrieval.best_similarity, retrieval.threshold)
        messages = build_messages(question, hits, history)
        return Answer(hits, self._stream(messages), False, retrieval.best_similarity,
                      retrieval.threshold)

    def get_llm(self) -> LLM:
        with self._model_lock:
            if self.llm is None:
                self.llm = create_llm(self.settings)
            return self.llm

    @property
    def llm_ready(self) -> bool:
        """False until the embedded model is in memory, so the UI can say it is loading."""
        if self.settings.uses_remote_llm:
            return True
        return self.llm is not None and getattr(self.llm, "loaded", True)

    def prepare_llm(self) -> None:
        """Join and load the embedded model before streaming. A failure is only logged here:
        the answer's stream reports it where the user looks."""
        try:
            llm = self.get_llm()
            if hasattr(llm, "load"):
                llm.load()
        except Exception:
            log.exception("preparing the language model failed")

    def _stream(self, messages: list[dict]) -> Iterator[str]:
        try:
            llm = self.get_llm()
        except Exception as error:  # e.g. a model package missing: say so where the answer goes
            log.exception("no language model")
            yield failure_message(str(error))
            return
        yield from llm.stream(messages)

    def _fit_context(self, hits: list[Hit]) -> list[Hit]:
        """Keep the best hits within the context budget: on a CPU, prompt reading dominates the
        time to the first token. The best hit is always kept."""
        kept, used = [], 0
        for hit in hits:
            tokens = self.embedder.count_tokens(hit.chunk.text)
            if kept and used + tokens > self.settings.context_tokens:
                break
            kept.append(hit)
            used += tokens
        return kept
