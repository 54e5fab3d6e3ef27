"""Chroma store: chunks in one collection, and one record per document that commits its ingest."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import InternalError

from rag.config import Settings
from rag.stores.base import cosines
from rag.types import Chunk, DocumentInfo, doc_id_of

log = logging.getLogger(__name__)

CHUNKS = "chunks"
DOCUMENTS = "documents"
COSINE = {"hnsw": {"space": "cosine"}}


def chroma_client(settings: Settings) -> ClientAPI:
    """A Chroma server when `chroma_host` is set (every app process shares its index), else the
    embedded folder under data_dir. The rest of the code is the same either way."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_host:
        token = settings.chroma_token
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else None
        return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port,
                                   ssl=settings.chroma_ssl, headers=headers,
                                   settings=chroma_settings)
    path = settings.data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


class ChromaStore:
    """A document's chunks go in first and its record last, so a crash in between leaves no
    listed half-document; the stray chunks are hidden from queries and replaced on re-ingest.
    `suffix` names one generation of the index: its two collections are chunks<suffix> and
    documents<suffix>."""

    def __init__(self, client: ClientAPI, suffix: str = "") -> None:
        self._client = client
        # embedding_function=None: we always pass our own vectors; Chroma's default would download.
        self._chunks = client.get_or_create_collection(
            CHUNKS + suffix, configuration=COSINE, embedding_function=None
        )
        self._documents = client.get_or_create_collection(
            DOCUMENTS + suffix, configuration=COSINE, embedding_function=None
        )
        self._batch = client.get_max_batch_size()

    def add(self, info: DocumentInfo, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        self._delete_chunks(info.doc_id)  # leftovers of an interrupted earlier attempt
        try:
            for start in range(0, len(chunks), self._batch):
                batch = chunks[start : start + self._batch]
                self._chunks.upsert(
                    ids=[chunk.chunk_id for chunk in batch],
                    embeddings=vectors[start : start + self._batch],
                    documents=[chunk.text for chunk in batch],
                    metadatas=[_chunk_metadata(chunk) for chunk in batch],
                )
            centroid = vectors.mean(axis=0)
            centroid /= np.linalg.norm(centroid) or 1.0
            self._documents.upsert(  # two processes may index the same file at once
                ids=[info.doc_id], embeddings=centroid[None, :], metadatas=[_info_metadata(info)]
            )
        except BaseException:
            self._delete_chunks(info.doc_id)
            raise

    def nearest(self, vector: np.ndarray, k: int,
                include: Sequence[str] = ()) -> list[tuple[str, float]]:
        found: dict[str, float] = {}
        if k > 0:  # Chroma answers a k above its count with what it has: no count() trip
            try:
                result = self._nearest(vector, k)
            except InternalError as error:
                # seen under concurrent writes (HNSW and metadata briefly apart): one retry
                log.warning("Chroma query failed (%s); retrying once", error)
                time.sleep(0.05)
                result = self._nearest(vector, k)
            # cosine distance -> cosine similarity
            found = {each: 1.0 - distance
                     for each, distance in zip(result["ids"][0], result["distances"][0],
                                               strict=True)}
        others = [each for each in dict.fromkeys(include) if each not in found]
        if others:
            stored = self._chunks.get(ids=others, include=["embeddings"])
            similarity = dict(zip(stored["ids"], cosines(vector, stored["embeddings"]),
                                  strict=True))
            found.update((each, similarity[each]) for each in others if each in similarity)
        listed = self._listed({doc_id_of(each) for each in found})
        return [(each, similarity) for each, similarity in found.items()
                if doc_id_of(each) in listed]

    def _nearest(self, vector: np.ndarray, k: int) -> dict:
        return self._chunks.query(query_embeddings=vector[None, :], n_results=k,
                                  include=["distances"])

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[tuple[Chunk, np.ndarray]]:
        if not chunk_ids:
            return []
        found = self._chunks.get(ids=list(chunk_ids),
                                 include=["documents", "metadatas", "embeddings"])
        listed = self._listed({meta["doc_id"] for meta in found["metadatas"]})
        return [
            (_chunk_from(text, meta), np.asarray(vector, dtype=np.float32))
            for text, meta, vector in zip(found["documents"], found["metadatas"],
                                          found["embeddings"], strict=True)
            if meta["doc_id"] in listed
        ]

    def chunks(self) -> Iterator[Chunk]:
        listed = set(self._documents.get(include=[])["ids"])
        for offset in range(0, self._chunks.count(), self._batch):
            page = self._chunks.get(include=["documents", "metadatas"], limit=self._batch,
                                    offset=offset)
            for text, meta in zip(page["documents"], page["metadatas"], strict=True):
                if meta["doc_id"] in listed:
                    yield _chunk_from(text, meta)

    def delete(self, doc_id: str) -> None:
        self._documents.delete(ids=[doc_id])  # unlist first: a crash mid-delete hides the rest
        self._delete_chunks(doc_id)

    def get_document(self, doc_id: str) -> DocumentInfo | None:
        found = self._documents.get(ids=[doc_id], include=["metadatas"])
        if not found["ids"]:
            return None
        return _info_from(found["ids"][0], found["metadatas"][0])

    def documents(self) -> list[DocumentInfo]:
        found = self._documents.get(include=["metadatas"])
        infos = [_info_from(i, m) for i, m in zip(found["ids"], found["metadatas"], strict=True)]
        return sorted(infos, key=lambda info: info.added_at, reverse=True)

    def count(self) -> int:
        return self._chunks.count()

    def document_count(self) -> int:
        return self._documents.count()

    def flush(self) -> None:
        """Chroma persists each write itself."""

    def drop(self) -> None:
        for collection in (self._chunks, self._documents):
            self._client.delete_collection(collection.name)

    def _listed(self, doc_ids: set[str]) -> set[str]:
        """Which of these documents finished their ingest: chunks of others are strays."""
        if not doc_ids:
            return set()
        return set(self._documents.get(ids=list(doc_ids), include=[])["ids"])

    def _delete_chunks(self, doc_id: str) -> None:
        self._chunks.delete(where={"doc_id": doc_id})


def _chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "doc_id": chunk.doc_id,
        "source": chunk.source,
        "ordinal": chunk.ordinal,
        "start": chunk.start,
        "end": chunk.end,
    }
    if chunk.page is not None:  # Chroma metadata holds no None
        meta["page"] = chunk.page
    if chunk.heading is not None:
        meta["heading"] = chunk.heading
    if chunk.ocr:  # absent means False, as in indexes built before OCR
        meta["ocr"] = True
    return meta


def _chunk_from(text: str, meta: dict[str, Any]) -> Chunk:
    return Chunk(
        doc_id=meta["doc_id"],
        source=meta["source"],
        ordinal=meta["ordinal"],
        text=text,
        start=meta["start"],
        end=meta["end"],
        page=meta.get("page"),
        heading=meta.get("heading"),
        ocr=bool(meta.get("ocr", False)),
    )


def _info_metadata(info: DocumentInfo) -> dict[str, Any]:
    return {
        "source": info.source,
        "pages": info.pages,
        "chunks": info.chunks,
        "size_bytes": info.size_bytes,
        "added_at": info.added_at,
        "warnings": json.dumps(list(info.warnings)),
    }


def _info_from(doc_id: str, meta: dict[str, Any]) -> DocumentInfo:
    return DocumentInfo(
        doc_id=doc_id,
        source=meta["source"],
        pages=meta["pages"],
        chunks=meta["chunks"],
        size_bytes=meta["size_bytes"],
        added_at=meta["added_at"],
        warnings=tuple(json.loads(meta.get("warnings", "[]"))),
    )
