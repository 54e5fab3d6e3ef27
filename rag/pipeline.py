"""The facade the UI, the CLI (and an API) share: one data_dir's index, its ingest, search,
answers and conversations. Each job lives in its own service; this only wires them together."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence

from rag.answering import Answer, Answering
from rag.chat_service import ChatService
from rag.config import Settings
from rag.context import Context
from rag.conversations import ConversationStore
from rag.embeddings import TextEmbedder
from rag.followups import SearchPlan, Turn
from rag.generation import LLM
from rag.index import Index
from rag.ingest import IngestResult, ingest_file
from rag.ingest_queue import IngestQueue
from rag.lexical import LexicalIndex
from rag.reindex import reindex_iter
from rag.retrieval import Retrieval
from rag.search import Search
from rag.stores import VectorStore
from rag.types import DocumentInfo, Hit

CONVERSATIONS_FILE = "conversations.sqlite3"


class RAG:
    """One index and the models that serve it. Models load on first use, so listing or deleting
    documents (CLI `list`, the UI's sidebar) never waits for them."""

    def __init__(
        self, settings: Settings | None = None, *, embedder: TextEmbedder | None = None,
        llm: LLM | None = None,
    ) -> None:
        self.index = Index(settings or Settings(), embedder)
        self.search = Search(self.index)
        self.answering = Answering(self.index, self.search, llm)
        self._lock = threading.Lock()
        self._conversations: ConversationStore | None = None
        self._chat: ChatService | None = None
        self._queue: IngestQueue | None = None

    @property
    def settings(self) -> Settings:
        return self.index.settings

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
            self.answering.llm = None
        embedding_fields = ("embedding_base_url", "embedding_api_key", "embedding_max_tokens",
                            "embedding_batch_size")  # the identity holds neither key nor limits
        if any(getattr(settings, f) != getattr(self.settings, f) for f in embedding_fields):
            self.index.forget_embedder()
        self.index.settings = settings
        self.search.settings_changed()

    # --- the index ---------------------------------------------------------------------------

    @property
    def store(self) -> VectorStore:
        return self.index.store

    @property
    def lexical(self) -> LexicalIndex:
        return self.index.lexical

    @property
    def generation(self) -> int:
        return self.index.generation

    @property
    def index_store_type(self) -> str:
        return self.index.store_type

    @property
    def index_model(self) -> str:
        return self.index.model

    @property
    def embedder(self) -> TextEmbedder:
        return self.index.embedder

    @property
    def chunk_size(self) -> int:
        return self.index.chunk_size

    @property
    def warnings(self) -> list[str]:
        return self.index.warnings

    def documents(self) -> list[DocumentInfo]:
        return self.index.documents()

    def delete(self, doc_id: str) -> bool:
        return self.index.delete(doc_id)

    def sync_lexical(self) -> None:
        self.index.sync_lexical()

    def index_location(self) -> str:
        return self.index.location()

    def index_manifest(self) -> dict:
        return self.index.manifest()

    def index_mismatch(self) -> list[str]:
        return self.index.mismatch()

    def reindex_iter(self) -> Iterator[IngestResult]:
        return reindex_iter(self.index)

    # --- ingest ------------------------------------------------------------------------------

    def ingest(self, files: Iterable[tuple[str, bytes]]) -> list[IngestResult]:
        """One result per (file name, bytes); BM25 is brought level once, after the batch."""
        results = [ingest_file(self.index, source, data) for source, data in files]
        self.index.sync_lexical()
        return results

    def ingest_one(self, source: str, data: bytes, password: str | None = None) -> IngestResult:
        """Never raises for a bad file: the error names the file and the cause instead."""
        return ingest_file(self.index, source, data, password)

    @property
    def queue(self) -> IngestQueue:
        """Uploads indexed by a worker of the engine, whatever the page does (`queue.start()`
        resumes what a restart interrupted)."""
        with self._lock:
            if self._queue is None:
                self._queue = IngestQueue(self.index)
            return self._queue

    # --- questions ---------------------------------------------------------------------------

    def retrieve(self, question: str, *, latest: str | None = None, carry: Sequence[str] = (),
                 documents: Sequence[str] = ()) -> Retrieval:
        return self.search.retrieve(question, latest=latest, carry=carry, documents=documents)

    def gate(self, question: str, hits: Sequence[Hit]) -> tuple[float | None, bool]:
        return self.search.gate(question, hits)

    def rank(self, question: str, depth: int) -> list[Hit]:
        return self.search.rank(question, depth)

    def ask(self, question: str, earlier: Sequence[Turn] = (),
            documents: Sequence[str] = ()) -> Answer:
        return self.answering.ask(question, earlier, documents)

    def plan_search(self, question: str, earlier: Sequence[Turn]) -> SearchPlan:
        return self.answering.plan_search(question, earlier)

    def complete(self, messages: list[dict], max_tokens: int = 64) -> str:
        return self.answering.complete(messages, max_tokens)

    def context(self, question: str, hits: list[Hit]) -> Context:
        return self.answering.context(question, hits)

    def count_llm_tokens(self, text: str) -> int:
        return self.answering.count_llm_tokens(text)

    @property
    def llm(self) -> LLM | None:
        return self.answering.llm

    @llm.setter
    def llm(self, llm: LLM | None) -> None:
        self.answering.llm = llm

    def get_llm(self) -> LLM:
        return self.answering.get_llm()

    @property
    def llm_ready(self) -> bool:
        return self.answering.llm_ready

    def prepare_llm(self) -> None:
        self.answering.prepare_llm()

    # --- conversations -----------------------------------------------------------------------

    @property
    def conversations(self) -> ConversationStore:
        """Conversations live beside the index they were asked of."""
        with self._lock:
            if self._conversations is None:
                self._conversations = ConversationStore(
                    self.settings.data_dir / CONVERSATIONS_FILE)
            return self._conversations

    @property
    def chat(self) -> ChatService:
        """The worker that answers stored conversations' questions outside any page."""
        store = self.conversations
        with self._lock:
            if self._chat is None:
                self._chat = ChatService(self, store)
            return self._chat
