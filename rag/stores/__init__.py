"""Vector stores behind one protocol, chosen by `Settings.vector_store_type`.

An index has a generation: a re-index builds generation n+1 beside the live one n and swaps
when it is complete, so searches never see a half-built index."""

from __future__ import annotations

from rag.config import Settings
from rag.stores.base import VectorStore


def index_name(generation: int) -> str:
    """Generation 0 keeps the names of indexes built before re-indexing had generations."""
    return "" if generation == 0 else f"-g{generation}"


def open_store(settings: Settings, *, store_type: str | None = None,
               generation: int = 0) -> VectorStore:
    """`store_type` overrides the settings' when opening an index built with another store."""
    store_type = store_type or settings.vector_store_type
    suffix = index_name(generation)
    if store_type == "chroma":
        from rag.stores.chroma import ChromaStore, chroma_client

        return ChromaStore(chroma_client(settings), suffix=suffix)
    if store_type == "faiss":
        from rag.stores.faiss import FaissStore

        return FaissStore(settings.data_dir / f"faiss{suffix}")
    raise ValueError(f"unknown vector_store_type '{store_type}': use 'chroma' or 'faiss'")


__all__ = ["VectorStore", "index_name", "open_store"]
