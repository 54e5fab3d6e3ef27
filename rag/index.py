"""The live index: one generation's vector store, its BM25 side and the manifest naming them.

The index is the generation the manifest names, opened with the store type and embedding model
that built it, whatever the live settings say: until a re-index swaps in a rebuilt generation,
questions keep working on the old one. Processes sharing a data_dir follow each other's swaps
through the manifest, and take turns at writing through a lock file.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.embeddings import TextEmbedder, create_embedder, embedding_identity
from rag.index_files import (
    INDEX_FIELDS,
    WRITE_LOCK,
    exclusive,
    keep_original,
    manifest_differences,
    manifest_version,
    read_manifest,
    remove_original,
    write_manifest,
)
from rag.lexical import LEXICAL_FORMAT, LexicalIndex
from rag.stores import VectorStore, index_name, open_store
from rag.types import Chunk, DocumentInfo, chunk_id

log = logging.getLogger(__name__)


class Index:
    """Models load on first use, so listing or deleting documents never waits for them."""

    def __init__(self, settings: Settings, embedder: TextEmbedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self.lock = threading.RLock()  # this process's writers, and the swap
        self.reindexing = threading.Lock()  # one re-index at a time
        self._model_lock = threading.Lock()
        self.open()

    def open(self) -> None:
        """Open the generation the manifest names (a fresh index when there is none)."""
        manifest = read_manifest(self.settings.data_dir) or {}
        self._manifest_version = manifest_version(self.settings.data_dir)
        # manifests from before FAISS existed name no store: theirs was Chroma
        store_type = "chroma" if manifest else self.settings.vector_store_type
        self._dimension = manifest.get("embedding_dimension")
        self._use(manifest.get("generation", 0),
                  manifest.get("vector_store_type", store_type),
                  manifest.get("embedding_model", embedding_identity(self.settings)))
        if manifest and manifest.get("lexical") != LEXICAL_FORMAT:  # built by an older version
            self.lexical.rebuild(self.store.chunks())
            self.write_manifest({**manifest, "generation": self.generation,
                                 "vector_store_type": self.store_type,
                                 "lexical": LEXICAL_FORMAT})

    def _use(self, generation: int, store_type: str, model: str) -> None:
        """Point at one generation, with the store type and model that built it."""
        self.generation, self.store_type, self.model = generation, store_type, model
        if self._embedder is not None and self._embedder.name != model:
            self._embedder = None
        self.store: VectorStore = open_store(self.settings, store_type=store_type,
                                             generation=generation)
        self.lexical = LexicalIndex(self.lexical_path(generation))
        self._lexical_stale = True  # checked against the store before the next search

    def lexical_path(self, generation: int) -> Path:
        return self.settings.data_dir / f"bm25{index_name(generation)}"

    def live_manifest(self, generation: int, embedder: TextEmbedder) -> dict:
        """What a generation built now with the live settings records about itself."""
        return {**self.manifest(), "embedding_model": embedder.name,
                "chunk_size": self.chunk_size_for(embedder),
                "embedding_dimension": embedder.dimension, "lexical": LEXICAL_FORMAT,
                "generation": generation}

    def write_manifest(self, manifest: dict) -> None:
        write_manifest(self.settings.data_dir, manifest)
        self._manifest_version = manifest_version(self.settings.data_dir)

    def follow_other_processes(self) -> None:
        """Another process may have swapped in a rebuilt index: one stat per question tells."""
        if manifest_version(self.settings.data_dir) == self._manifest_version:
            return
        with self.lock:
            if manifest_version(self.settings.data_dir) == self._manifest_version:
                return
            manifest = read_manifest(self.settings.data_dir) or {}
            if (manifest.get("generation", 0), manifest.get("vector_store_type")) != (
                self.generation, self.store_type
            ):
                log.info("the index was rebuilt by another process: opening generation %s",
                         manifest.get("generation", 0))
                self.open()
            else:
                self._manifest_version = manifest_version(self.settings.data_dir)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """This process's turn at writing, level with what other processes wrote before it."""
        with self.lock, exclusive(self.settings.data_dir / WRITE_LOCK):
            self.follow_other_processes()
            yield

    @property
    def embedder(self) -> TextEmbedder:
        """The model that built the open index: its questions must be embedded the same way."""
        with self._model_lock:
            if self._embedder is None:
                self._embedder = create_embedder(self.settings, self.model,
                                                 dimension=self._dimension)
            return self._embedder

    def forget_embedder(self) -> None:
        """The next use creates it again from the live settings (a new key, limit, batch)."""
        with self._model_lock:
            self._embedder = None

    def live_embedder(self) -> TextEmbedder:
        """The model the live settings name: the index's own when they agree."""
        live = embedding_identity(self.settings)
        return self.embedder if live == self.model else create_embedder(self.settings, live)

    @property
    def chunk_size(self) -> int:
        """The configured size, cut to what the embedder reads: text past it would be dropped."""
        return self.chunk_size_for(self.embedder)

    def chunk_size_for(self, embedder: TextEmbedder) -> int:
        return min(self.settings.chunk_size, embedder.max_tokens)

    @property
    def warnings(self) -> list[str]:
        if self.settings.chunk_size <= self.embedder.max_tokens:
            return []
        limit, name = self.embedder.max_tokens, self.embedder.name
        warning = (f"chunk_size {self.settings.chunk_size} is above the {limit}-token input "
                   f"limit of {name}; chunks are cut at {limit}")
        return [warning]

    # --- writes ------------------------------------------------------------------------------

    def adopt_live_settings(self) -> None:
        """An empty index has nothing to rebuild: it takes the live store type and model at once."""
        live = embedding_identity(self.settings)
        if (self.store_type, self.model) == (self.settings.vector_store_type, live):
            return
        old = self.store
        self._dimension = None
        self._use(self.generation + 1, self.settings.vector_store_type, live)
        old.drop()

    def add(self, data: bytes, info: DocumentInfo, chunks: list[Chunk],
            vectors: np.ndarray) -> None:
        """Keep the original, then write the chunks (inside `writing`); a failure removes the
        original again and the store rolls its part back."""
        starts_index = self.store.count() == 0
        kept = keep_original(self.settings.data_dir, info.doc_id, data)
        try:
            self.store.add(info, chunks, vectors)
        except BaseException:
            if kept:
                remove_original(self.settings.data_dir, info.doc_id)
            raise
        self._lexical_stale = True
        if starts_index:
            self.write_manifest(self.live_manifest(self.generation, self.embedder))

    def delete(self, doc_id: str) -> bool:
        with self.writing():
            if self.store.get_document(doc_id) is None:
                return False
            self.store.delete(doc_id)
            remove_original(self.settings.data_dir, doc_id)
            self._lexical_stale = True
        self.sync_lexical()
        return True

    def sync_lexical(self) -> None:
        """Bring BM25 level with the store's documents: once per batch of changes, never per
        question. Also repairs it after a crash between the two writes, and catches up with
        documents other processes added (a fresh copy they saved is reused, not rebuilt)."""
        if not self._lexical_stale and self.store.document_count() == len(self.lexical.doc_ids):
            return  # the common case: a question never waits for an ingest
        with self.lock:
            listed = frozenset(info.doc_id for info in self.store.documents())
            if listed != self.lexical.doc_ids:
                self.lexical.reload()
            if listed != self.lexical.doc_ids:
                self.lexical.rebuild(self.store.chunks())
            self.store.flush()
            self._lexical_stale = False

    def swap(self, fresh: VectorStore, generation: int, embedder: TextEmbedder) -> None:
        """Make a rebuilt generation the live one (inside `writing`): the manifest's atomic
        replace is the moment of the swap. The old generation is dropped by the caller once
        out of the lock; searches still holding it retry on the new one."""
        lexical = LexicalIndex(self.lexical_path(generation))
        lexical.rebuild(fresh.chunks())
        fresh.flush()
        self.store, self.lexical, self.generation = fresh, lexical, generation
        self.store_type = self.settings.vector_store_type
        self.model, self._embedder, self._dimension = embedder.name, embedder, embedder.dimension
        self._lexical_stale = False
        self.write_manifest(self.live_manifest(generation, embedder))

    def drop_generation(self, store: VectorStore, generation: int) -> None:
        store.drop()
        shutil.rmtree(self.lexical_path(generation), ignore_errors=True)

    # --- reads -------------------------------------------------------------------------------

    def documents(self) -> list[DocumentInfo]:
        self.follow_other_processes()
        return self.store.documents()

    def chunk_ids(self, documents: list[str] | tuple[str, ...]) -> list[str]:
        """Every chunk id of the listed documents among these (a deleted one has none)."""
        ids = []
        for doc_id in documents:
            info = self.store.get_document(doc_id)
            if info is not None:
                ids.extend(chunk_id(doc_id, ordinal) for ordinal in range(info.chunks))
        return ids

    def location(self) -> str:
        """Where the live index is, for people: e.g. "chroma server 10.0.0.5:8000, generation 2"."""
        if self.store_type == "chroma" and self.settings.chroma_host:
            where = f"chroma server {self.settings.chroma_host}:{self.settings.chroma_port}"
        else:
            where = f"{self.store_type} in the folder {self.settings.data_dir.name}"
        return where + (f", generation {self.generation}" if self.generation else "")

    def manifest(self) -> dict:
        """The live settings that shape chunks and vectors, as the index would record them."""
        manifest = {field: getattr(self.settings, field) for field in INDEX_FIELDS}
        manifest["embedding_model"] = embedding_identity(self.settings)
        manifest["chunk_size"] = self.chunk_size
        return manifest

    def mismatch(self) -> list[str]:
        """How the index differs from the live settings that shape it; empty when a re-index
        would change nothing."""
        if self.store.count() == 0:
            return []
        return manifest_differences(read_manifest(self.settings.data_dir), self.manifest())
