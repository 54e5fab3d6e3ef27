"""The facade the UI and the CLI share: ingest files, list and delete documents, ask questions."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from rag.chat_service import ChatService
from rag.chunking import chunk_document
from rag.config import Settings
from rag.context import Context, Preview, select
from rag.conversations import ConversationStore
from rag.embeddings import Embedder
from rag.followups import SearchPlan, Turn, plan_search
from rag.generation import (
    FAILURE_PREFIX,
    LLM,
    REFUSAL,
    FirstToken,
    build_messages,
    create_llm,
    failure_message,
)
from rag.index_files import (
    INDEX_FIELDS,
    WRITE_LOCK,
    exclusive,
    keep_original,
    manifest_differences,
    manifest_version,
    read_manifest,
    read_original,
    remove_original,
    write_manifest,
)
from rag.lexical import LEXICAL_FORMAT, LexicalIndex, indexed_text
from rag.loaders import LoaderError, load
from rag.overview import is_whole_document_question, spread, target_document
from rag.rerank import Reranker, create_reranker
from rag.retrieval import Retrieval, judge, rank, retrieve
from rag.stores import VectorStore, index_name, open_store
from rag.types import Chunk, Document, DocumentInfo, Hit, chunk_id

log = logging.getLogger(__name__)

CONVERSATIONS_FILE = "conversations.sqlite3"
# A whole-document question gets the budget that held 5-6 spread passages (bench/followups.py):
# a summary is worth a longer wait than a fact.
OVERVIEW_TOKENS = 800
IngestStatus = Literal["indexed", "already indexed", "failed"]
T = TypeVar("T")


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
    searched: str = ""  # what was searched: the question with its conversation's context
    overview: int = 0  # passages spread over the document, for a whole-document question
    latest_support: float | None = None  # the newest message alone vs the passages found
    keyword_floor: float | None = None  # the lower similarity that matching keywords allow
    keyword_evidence: float | None = None  # share of the question's keywords the best match has
    preview: Preview | None = None  # the top source's best sentences, shown while the model reads
    # set while the answer streams: the prompt's size, and the model's probability of starting
    # the refusal sentence; `declined` says why, when that probability declined the answer
    prompt_tokens: int | None = None
    refusal_probability: float | None = None
    declined: str | None = None

    @property
    def withheld(self) -> bool:
        """Refused before any model ran, or declined by the model at its first token."""
        return self.refused or self.declined is not None

    @property
    def refusal_note(self) -> str | None:
        """Why the answer was declined, in numbers: before any model was asked, or by it."""
        if self.declined:
            return self.declined
        if not self.refused or self.best_similarity is None:
            return None
        if self.latest_support is not None:
            return (f"Searched with the conversation, passages matched (best "
                    f"{self.best_similarity:.2f}), but the question alone matched none of them "
                    f"(best {self.latest_support:.2f}): it seems to be about something else.")
        note = (f"No passage reached the similarity threshold {self.threshold:.2f} "
                f"(best match {self.best_similarity:.2f}).")
        if self.keyword_floor is None or self.keyword_evidence is None:
            return note
        return note + (f" From {self.keyword_floor:.2f} a passage also counts when it holds the "
                       f"question's keywords; the best held {self.keyword_evidence:.0%} of them.")


def _history(earlier: Sequence[Turn]) -> list[dict]:
    """The conversation as chat messages for the prompt (build_messages keeps the last few)."""
    messages = []
    for turn in earlier:
        messages.append({"role": "user", "content": turn.question})
        if turn.answer:
            messages.append({"role": "assistant", "content": turn.answer})
    return messages


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RAG:
    """One index and the models that serve it. Models load on first use, so listing or deleting
    documents (CLI `list`, the UI's sidebar) never waits for them.

    The index is the generation the manifest names, opened with the store type and embedding
    model that built it, whatever the live settings say: until a re-index swaps in a rebuilt
    generation, questions keep working on the old one."""

    def __init__(
        self, settings: Settings | None = None, *, embedder: Embedder | None = None,
        llm: LLM | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.llm = llm
        self._embedder = embedder
        self._reranker: Reranker | None = create_reranker(self.settings)
        self._ingest_lock = threading.RLock()
        self._model_lock = threading.Lock()
        self._reindex_lock = threading.Lock()
        self._conversations: ConversationStore | None = None
        self._chat: ChatService | None = None
        self._open_index()

    def _open_index(self) -> None:
        manifest = read_manifest(self.settings.data_dir) or {}
        self._manifest_version = manifest_version(self.settings.data_dir)
        # manifests from before FAISS existed name no store: theirs was Chroma
        store_type = "chroma" if manifest else self.settings.vector_store_type
        self._use_index(manifest.get("generation", 0),
                        manifest.get("vector_store_type", store_type),
                        manifest.get("embedding_model", self.settings.embedding_model))
        if manifest and manifest.get("lexical") != LEXICAL_FORMAT:  # built by an older version
            self.lexical.rebuild(self.store.chunks())
            self._write_manifest({**manifest, "generation": self.generation,
                                  "vector_store_type": self.index_store_type,
                                  "lexical": LEXICAL_FORMAT})

    def _use_index(self, generation: int, store_type: str, model: str) -> None:
        """Point the engine at one generation, with the store type and model that built it."""
        self.generation, self.index_store_type, self.index_model = generation, store_type, model
        if self._embedder is not None and self._embedder.name != model:
            self._embedder = None
        self.store: VectorStore = open_store(self.settings, store_type=store_type,
                                             generation=generation)
        self.lexical = LexicalIndex(self._lexical_path(generation))
        self._lexical_stale = True  # checked against the store before the next search

    def _lexical_path(self, generation: int) -> Path:
        return self.settings.data_dir / f"bm25{index_name(generation)}"

    def _live_manifest(self, generation: int, embedder: Embedder) -> dict:
        """What a generation built now with the live settings records about itself."""
        return {**self.index_manifest(), "embedding_model": embedder.name,
                "chunk_size": self._chunk_size_for(embedder),
                "embedding_dimension": embedder.dimension, "lexical": LEXICAL_FORMAT,
                "generation": generation}

    def _write_manifest(self, manifest: dict) -> None:
        write_manifest(self.settings.data_dir, manifest)
        self._manifest_version = manifest_version(self.settings.data_dir)

    def _follow_other_processes(self) -> None:
        """Another process may have swapped in a rebuilt index: one stat per question tells."""
        if manifest_version(self.settings.data_dir) == self._manifest_version:
            return
        with self._ingest_lock:
            if manifest_version(self.settings.data_dir) == self._manifest_version:
                return
            manifest = read_manifest(self.settings.data_dir) or {}
            if (manifest.get("generation", 0), manifest.get("vector_store_type")) != (
                self.generation, self.index_store_type
            ):
                log.info("the index was rebuilt by another process: opening generation %s",
                         manifest.get("generation", 0))
                self._open_index()
            else:
                self._manifest_version = manifest_version(self.settings.data_dir)

    @property
    def embedder(self) -> Embedder:
        """The model that built the open index: its questions must be embedded the same way."""
        with self._model_lock:
            if self._embedder is None:
                self._embedder = Embedder(self.index_model, self.settings.embedding_batch_size)
            return self._embedder

    @property
    def chunk_size(self) -> int:
        """The configured size, cut to what the embedder reads: text past it would be dropped."""
        return self._chunk_size_for(self.embedder)

    def _chunk_size_for(self, embedder: Embedder) -> int:
        return min(self.settings.chunk_size, embedder.max_tokens)

    @property
    def warnings(self) -> list[str]:
        if self.settings.chunk_size <= self.embedder.max_tokens:
            return []
        return [f"chunk_size {self.settings.chunk_size} is above the {self.embedder.max_tokens}-token "
                f"input limit of {self.embedder.name}; chunks are cut at {self.embedder.max_tokens}"]

    def update_settings(self, settings: Settings) -> None:
        """Retrieval and generation settings apply to the next question; chunking, embedding
        model and store type to the next ingest or re-index. Another index location needs a
        new RAG."""
        location = ("data_dir", "chroma_host", "chroma_port", "chroma_ssl")
        if any(getattr(settings, f) != getattr(self.settings, f) for f in location):
            raise ValueError("data_dir and the Chroma server need a new RAG instance")
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
        self._follow_other_processes()
        with self._ingest_lock:
            result = self._index(source, data)
            self._lexical_stale = self._lexical_stale or result.status == "indexed"
            return result

    def sync_lexical(self) -> None:
        """Bring BM25 level with the store's documents: once per batch of changes, never per
        question. Also repairs it after a crash between the two writes, and catches up with
        documents other processes added (a fresh copy they saved is reused, not rebuilt)."""
        if not self._lexical_stale and self.store.document_count() == len(self.lexical.doc_ids):
            return  # the common case: a question never waits for an ingest
        with self._ingest_lock:
            listed = frozenset(info.doc_id for info in self.store.documents())
            if listed != self.lexical.doc_ids:
                self.lexical.reload()
            if listed != self.lexical.doc_ids:
                self.lexical.rebuild(self.store.chunks())
            self.store.flush()
            self._lexical_stale = False

    def _prepare(self, document: Document, embedder: Embedder,
                 added_at: str | None = None) -> tuple[DocumentInfo, list[Chunk], np.ndarray]:
        """Chunk with the live settings and embed: all the slow work, done before any write."""
        chunks = chunk_document(
            document,
            embedder,
            size=self._chunk_size_for(embedder),
            overlap=self.settings.chunk_overlap,
            strategy=self.settings.chunk_strategy,
        )
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

    def _index(self, source: str, data: bytes) -> IngestResult:
        """Load, chunk and embed before touching the store, so a failure leaves the index as it
        was."""
        try:
            document = load(data, source, timeout_s=self.settings.load_timeout_s)
        except LoaderError as error:
            return IngestResult(source, "failed", error=str(error))
        if self.store.get_document(document.doc_id) is not None:
            return IngestResult(source, "already indexed", doc_id=document.doc_id)
        kept = False
        try:
            if self.store.count() == 0:
                self._adopt_live_settings()
            info, chunks, vectors = self._prepare(document, self.embedder)
            if not chunks:
                return IngestResult(source, "failed", error=f"{source}: no text to index")
            with exclusive(self.settings.data_dir / WRITE_LOCK):
                model = self.index_model
                self._follow_other_processes()  # another process may have swapped the index
                if self.index_model != model:
                    info, chunks, vectors = self._prepare(document, self.embedder)
                starts_index = self.store.count() == 0
                kept = keep_original(self.settings.data_dir, document.doc_id, data)
                self.store.add(info, chunks, vectors)
                if starts_index:
                    self._write_manifest(self._live_manifest(self.generation, self.embedder))
        except Exception as error:  # the store rolled back; the next file goes on
            log.exception("indexing %s failed", source)
            if kept:
                remove_original(self.settings.data_dir, document.doc_id)
            return IngestResult(source, "failed", doc_id=document.doc_id,
                                error=f"{source}: indexing failed: {error}")
        return IngestResult(source, "indexed", doc_id=document.doc_id, chunks=len(chunks),
                            warnings=document.warnings)

    def _adopt_live_settings(self) -> None:
        """An empty index has nothing to rebuild: it takes the live store type and model at once."""
        if (self.index_store_type, self.index_model) == (
            self.settings.vector_store_type, self.settings.embedding_model
        ):
            return
        old = self.store
        self._use_index(self.generation + 1, self.settings.vector_store_type,
                        self.settings.embedding_model)
        old.drop()

    def delete(self, doc_id: str) -> bool:
        self._follow_other_processes()
        with self._ingest_lock, exclusive(self.settings.data_dir / WRITE_LOCK):
            if self.store.get_document(doc_id) is None:
                return False
            self.store.delete(doc_id)
            remove_original(self.settings.data_dir, doc_id)
            self._lexical_stale = True
        self.sync_lexical()
        return True

    def documents(self) -> list[DocumentInfo]:
        self._follow_other_processes()
        return self.store.documents()

    def index_location(self) -> str:
        """Where the live index is, for people: e.g. "chroma server 10.0.0.5:8000, generation 2"."""
        if self.index_store_type == "chroma" and self.settings.chroma_host:
            where = f"chroma server {self.settings.chroma_host}:{self.settings.chroma_port}"
        else:
            where = f"{self.index_store_type} in the folder {self.settings.data_dir.name}"
        return where + (f", generation {self.generation}" if self.generation else "")

    def index_manifest(self) -> dict:
        """The live settings that shape chunks and vectors, as the index would record them."""
        manifest = {field: getattr(self.settings, field) for field in INDEX_FIELDS}
        manifest["chunk_size"] = self.chunk_size
        return manifest

    def index_mismatch(self) -> list[str]:
        """How the index differs from the live settings that shape it; empty when a re-index
        would change nothing."""
        if self.store.count() == 0:
            return []
        return manifest_differences(read_manifest(self.settings.data_dir), self.index_manifest())

    def reindex_iter(self) -> Iterator[IngestResult]:
        """Chunk and embed every document again from its kept original with the live settings,
        into a new generation beside the live one, one result per document for a progress bar.
        Questions and uploads go on against the live index meanwhile; the new one replaces it
        only once every document is in it, otherwise it is dropped and nothing changed."""
        with self._reindex_lock:
            self._follow_other_processes()
            generation = self.generation + 1
            fresh = open_store(self.settings, generation=generation)
            fresh.drop()  # leftovers of an interrupted re-index
            fresh = open_store(self.settings, generation=generation)
            embedder = self._live_embedder()
            complete = True
            for info in self.store.documents():
                result = self._rebuild_into(fresh, embedder, info)
                complete = complete and result is not None and result.status == "indexed"
                if result is not None:
                    yield result
            if complete:
                complete = self._swap_in(fresh, generation, embedder)
            if not complete:
                fresh.drop()
                shutil.rmtree(self._lexical_path(generation), ignore_errors=True)

    def _live_embedder(self) -> Embedder:
        if self.settings.embedding_model == self.index_model:
            return self.embedder
        return Embedder(self.settings.embedding_model, self.settings.embedding_batch_size)

    def _rebuild_into(self, store: VectorStore, embedder: Embedder,
                      info: DocumentInfo) -> IngestResult | None:
        """None for a document deleted while the re-index ran: nothing to rebuild."""
        data = read_original(self.settings.data_dir, info.doc_id)
        if data is None:
            if self.store.get_document(info.doc_id) is None:
                return None
            return IngestResult(info.source, "failed", doc_id=info.doc_id,
                                error=f"{info.source}: original file not kept; upload it again")
        try:
            document = load(data, info.source, timeout_s=self.settings.load_timeout_s)
            info, chunks, vectors = self._prepare(document, embedder, info.added_at)
            if not chunks:
                raise ValueError("no text to index")
            store.add(info, chunks, vectors)
        except Exception as error:  # the live index is untouched; the others go on
            log.exception("re-indexing %s failed", info.source)
            return IngestResult(info.source, "failed", doc_id=info.doc_id,
                                error=f"{info.source}: re-indexing failed: {error}")
        return IngestResult(info.source, "indexed", doc_id=info.doc_id, chunks=len(chunks),
                            warnings=document.warnings)

    def _swap_in(self, fresh: VectorStore, generation: int, embedder: Embedder) -> bool:
        """Catch up with uploads and deletes made during the rebuild, then make the new
        generation the live one: the manifest's atomic replace is the moment of the swap. The
        write lock keeps other processes' uploads out until then; they follow the swap."""
        with self._ingest_lock, exclusive(self.settings.data_dir / WRITE_LOCK):
            live = {info.doc_id: info for info in self.store.documents()}
            for doc_id in {info.doc_id for info in fresh.documents()} - live.keys():
                fresh.delete(doc_id)
            for doc_id in live.keys() - {info.doc_id for info in fresh.documents()}:
                result = self._rebuild_into(fresh, embedder, live[doc_id])
                if result is not None and result.status != "indexed":
                    return False
            lexical = LexicalIndex(self._lexical_path(generation))
            lexical.rebuild(fresh.chunks())
            fresh.flush()
            old_store, old_generation = self.store, self.generation
            self.store, self.lexical, self.generation = fresh, lexical, generation
            self.index_store_type = self.settings.vector_store_type
            self.index_model, self._embedder = embedder.name, embedder
            self._lexical_stale = False
            self._write_manifest(self._live_manifest(generation, embedder))
        # searches that still hold the old store retry on the new one (see _search)
        old_store.drop()
        shutil.rmtree(self._lexical_path(old_generation), ignore_errors=True)
        return True

    # --- questions ---------------------------------------------------------------------------

    def retrieve(self, question: str, *, latest: str | None = None, carry: Sequence[str] = (),
                 documents: Sequence[str] = ()) -> Retrieval:
        """`documents` scopes the search to those ids; `latest` is the newest message of a
        follow-up searched as `question` (see retrieval.retrieve)."""
        within = self._chunk_ids(documents) if documents else None
        return self._search(lambda parts: retrieve(
            question, top_k=self.settings.top_k, fetch_multiplier=self.settings.fetch_multiplier,
            threshold=self.settings.similarity_threshold, within=within, carry=carry,
            latest=latest, latest_threshold=self.settings.followup_threshold,
            keyword_floor=self.settings.keyword_floor,
            keyword_evidence=self.settings.keyword_evidence, **parts))

    def gate(self, question: str, hits: Sequence[Hit]) -> tuple[float | None, bool]:
        """The best similarity of a ranking and whether the chat would refuse the question for
        it, by the configured rule: what the evaluation and the Evaluation page judge by."""
        lexical = self.lexical if self.settings.hybrid else None
        best, refused, _ = judge(question, hits, lexical, self.settings.similarity_threshold,
                                 self.settings.keyword_floor, self.settings.keyword_evidence)
        return best, refused

    def _chunk_ids(self, documents: Sequence[str]) -> list[str]:
        """Every chunk id of the listed documents among these (a deleted one has none)."""
        ids = []
        for doc_id in documents:
            info = self.store.get_document(doc_id)
            if info is not None:
                ids.extend(chunk_id(doc_id, ordinal) for ordinal in range(info.chunks))
        return ids

    def rank(self, question: str, depth: int) -> list[Hit]:
        """The full ranking to `depth`, without the threshold's gate: what evaluation scores."""
        return self._search(lambda parts: rank(question, depth=depth, **parts))

    def _search(self, search: Callable[[dict], T]) -> T:
        """A re-index drops the old generation as soon as the new one is live; a search caught
        on the old one runs again on the new one."""
        self._follow_other_processes()
        parts = self._search_parts()
        try:
            return search(parts)
        except Exception:
            self._follow_other_processes()
            if parts["store"] is self.store:
                raise
            log.info("the index was swapped during a search; searching the new one")
            return search(self._search_parts())

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

    def ask(self, question: str, earlier: Sequence[Turn] = (),
            documents: Sequence[str] = ()) -> Answer:
        """With no hit above the threshold the answer is the refusal, and no LLM is called.
        `earlier` is the conversation so far; `documents` limits the search to those ids."""
        history = _history(earlier)
        # listing the documents costs a store read: only for questions that may need it
        target = (target_document(question, self.documents(), documents)
                  if is_whole_document_question(question) else None)
        if target is not None:
            hits = self._overview(target, question)
            whole = Context(hits, [hit.chunk.text for hit in hits], None)
            return self._answer(question, history, whole, max(hit.similarity for hit in hits),
                                self.settings.similarity_threshold, searched=question,
                                overview=len(hits))
        search = self.plan_search(question, earlier)
        retrieval = self.retrieve(search.text, latest=search.latest, carry=search.carry,
                                  documents=documents)
        if not retrieval.hits:
            return Answer([], iter([REFUSAL]), True, retrieval.best_similarity,
                          retrieval.threshold, searched=search.text,
                          latest_support=retrieval.latest_support,
                          keyword_floor=self.settings.keyword_floor,
                          keyword_evidence=retrieval.keyword_evidence)
        return self._answer(question, history, self.context(question, retrieval.hits),
                            retrieval.best_similarity, retrieval.threshold, searched=search.text)

    def _answer(self, question: str, history: list[dict], context: Context,
                best: float | None, threshold: float, **details) -> Answer:
        answer = Answer(context.hits, iter(()), False, best, threshold, preview=context.preview,
                        **details)
        messages = build_messages(question, context.hits, history, context.texts)
        answer.deltas = self._declining_stream(answer, messages)
        return answer

    def _declining_stream(self, answer: Answer, messages: list[dict]) -> Iterator[str]:
        """The answer, or the refusal sentence when the model's first token makes declining
        likelier than the calibrated cut-off."""
        cutoff = self.settings.decline_cutoff

        def first_token(first: FirstToken) -> bool:
            answer.prompt_tokens = first.prompt_tokens
            answer.refusal_probability = p = first.refusal_probability
            if p is None or p < cutoff:
                return False
            answer.declined = (f"The passages found do not state this: the model was "
                               f"{p:.0%} likely to decline (cut-off {cutoff:.0%}).")
            return True

        yield from self._stream(messages, on_first_token=first_token)
        if answer.declined:
            yield REFUSAL

    def plan_search(self, question: str, earlier: Sequence[Turn]) -> SearchPlan:
        return plan_search(question, earlier, self.settings.followup_method, self.complete)

    def complete(self, messages: list[dict], max_tokens: int = 64) -> str:
        """A short whole reply (a rewritten question); empty when the model failed."""
        text = "".join(self._stream(messages, max_tokens))
        return "" if FAILURE_PREFIX in text else text

    def _overview(self, target: DocumentInfo, question: str) -> list[Hit]:
        """A spread of the whole document: at least OVERVIEW_TOKENS, as one passage or two
        cannot stand for a document."""
        chunks = self.store.get_chunks(self._chunk_ids([target.doc_id]))
        query = self.embedder.embed_query(question)
        budget = max(self.settings.context_tokens, OVERVIEW_TOKENS)
        return spread(chunks, query, budget, self.count_llm_tokens)

    @property
    def conversations(self) -> ConversationStore:
        """Conversations live beside the index they were asked of."""
        with self._model_lock:
            if self._conversations is None:
                self._conversations = ConversationStore(
                    self.settings.data_dir / CONVERSATIONS_FILE)
            return self._conversations

    @property
    def chat(self) -> ChatService:
        """The worker that answers stored conversations' questions outside any page."""
        store = self.conversations
        with self._model_lock:
            if self._chat is None:
                self._chat = ChatService(self, store)
            return self._chat

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

    def _stream(self, messages: list[dict], max_tokens: int | None = None,
                on_first_token: Callable[[FirstToken], bool] | None = None) -> Iterator[str]:
        try:
            llm = self.get_llm()
        except Exception as error:  # e.g. a model package missing: say so where the answer goes
            log.exception("no language model")
            yield failure_message(str(error))
            return
        yield from llm.stream(messages, max_tokens, on_first_token)

    def count_llm_tokens(self, text: str) -> int:
        """The language model's tokens where it can count them (the embedded model); the
        embedder's otherwise, an estimate for a remote model's unknown tokenizer."""
        try:
            counter = getattr(self.get_llm(), "count_tokens", None)
        except Exception:  # no model: the answer reports that; the budget needs some count
            counter = None
        return (counter or self.embedder.count_tokens)(text)

    def context(self, question: str, hits: list[Hit]) -> Context:
        """What the prompt shows of the hits, within the context budget in the model's tokens:
        on a CPU, prompt reading is nearly all of the wait for the first word."""
        return select(self.embedder.embed_query(question), hits, self.embedder.embed,
                      self.count_llm_tokens, budget=self.settings.context_tokens,
                      mode=self.settings.context_mode)
