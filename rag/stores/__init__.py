"""Vector stores behind one protocol, chosen by `Settings.vector_store_type`."""

from __future__ import annotations

from rag.config import Settings
from rag.stores.base import VectorStore


def open_store(settings: Settings) -> VectorStore:
    if settings.vector_store_type == "chroma":
        from rag.stores.chroma import ChromaStore

        return ChromaStore(settings.data_dir / "chroma")
    raise NotImplementedError(
        f"vector_store_type '{settings.vector_store_type}' is not available yet; use 'chroma'"
    )


__all__ = ["VectorStore", "open_store"]
