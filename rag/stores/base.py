"""The contract every vector store keeps, so callers never depend on one backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from rag.types import Chunk, DocumentInfo


class VectorStore(Protocol):
    def add(self, info: DocumentInfo, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Index one document. All-or-nothing: it is listed only once every chunk is stored."""

    def nearest(self, vector: np.ndarray, k: int,
                include: Sequence[str] = ()) -> list[tuple[str, float]]:
        """The k nearest chunks of listed documents, as (chunk id, cosine similarity), best
        first; then each chunk of `include` not among them (candidates found another way), in
        that order, unknown ids left out. Ids only: a search reads the text of the passages it
        shows, no others; and one call, so the listing is read once per search."""

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[tuple[Chunk, np.ndarray]]:
        """Chunks of listed documents by id, with their vectors; unknown ids are left out."""

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk of every listed document, for indexes derived from the store."""

    def delete(self, doc_id: str) -> None:
        """Remove a document and every chunk of it; a no-op for an unknown id."""

    def get_document(self, doc_id: str) -> DocumentInfo | None: ...

    def documents(self) -> list[DocumentInfo]: ...

    def count(self) -> int:
        """Chunks stored."""

    def document_count(self) -> int:
        """Documents listed: cheap, so a process can tell per question whether another one
        changed the index."""

    def flush(self) -> None:
        """Make every change so far survive a restart cheaply (stores whose files lag write them)."""

    def drop(self) -> None:
        """Delete this index entirely: the old generation after a re-index swapped in the new."""


def cosines(vector: np.ndarray, vectors: Sequence[np.ndarray] | np.ndarray) -> list[float]:
    """The cosine similarity of `vector` to each of `vectors` (a zero vector: 0)."""
    matrix = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), len(vector))
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector)
    return (matrix @ vector / np.where(norms > 0, norms, 1.0)).tolist()
