"""The Chroma store on a real directory: cosine scores, all-or-nothing add, delete, reopen."""

from __future__ import annotations

import numpy as np
import pytest

from rag.stores.chroma import ChromaStore
from rag.types import Chunk, DocumentInfo

DIM = 8


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def document(doc_id: str, n: int, page_of=lambda i: i + 1) -> tuple[DocumentInfo, list[Chunk]]:
    chunks = [Chunk(doc_id, f"{doc_id}.pdf", i, f"text {doc_id} {i}", 0, 10, page=page_of(i))
              for i in range(n)]
    return DocumentInfo(doc_id, f"{doc_id}.pdf", n, n, 1000, f"2026-01-0{n}T00:00:00+00:00"), chunks


@pytest.fixture
def store(tmp_path):
    return ChromaStore(tmp_path / "chroma")


def test_query_returns_cosine_similarity_best_first(store):
    info, chunks = document("a", 3)
    store.add(info, chunks, np.stack([unit(1, 0), unit(1, 1), unit(0, 1)]))
    results = store.query(unit(1, 0), k=3)
    assert [chunk.ordinal for chunk, _ in results] == [0, 1, 2]
    assert [round(score, 4) for _, score in results] == [1.0, round(1 / np.sqrt(2), 4), 0.0]


def test_metadata_round_trips(store):
    info, chunks = document("a", 2, page_of=lambda i: None)
    chunks = [Chunk("a", "a.md", 0, "alpha", 3, 8, heading="Intro > Why"),
              Chunk("a", "a.md", 1, "beta", 9, 13, page=4)]
    store.add(info, chunks, np.stack([unit(1), unit(0, 1)]))
    found = {chunk.ordinal: chunk for chunk, _ in store.query(unit(1), k=2)}
    assert found == {0: chunks[0], 1: chunks[1]}
    assert store.get_document("a") == info


def test_delete_removes_document_and_chunks(store):
    for doc_id in ("a", "b"):
        info, chunks = document(doc_id, 2)
        store.add(info, chunks, np.stack([unit(1), unit(1, 1)]))
    store.delete("a")
    assert [info.doc_id for info in store.documents()] == ["b"]
    assert store.count() == 2
    assert {chunk.doc_id for chunk, _ in store.query(unit(1), k=10)} == {"b"}
    store.delete("missing")  # no error


def test_a_failed_add_leaves_nothing_behind(store, monkeypatch):
    info, chunks = document("a", 3)
    with pytest.raises(ValueError):
        store.add(info, chunks, np.stack([unit(1), unit(1, 1)]))  # one vector short

    def fail(**_):  # the last step: every chunk is stored by then
        raise OSError("disk full")

    monkeypatch.setattr(store._documents, "add", fail)
    with pytest.raises(OSError, match="disk full"):
        store.add(info, chunks, np.stack([unit(1), unit(1, 1), unit(0, 1)]))
    assert store.count() == 0 and store.documents() == []


def test_chunks_of_an_unlisted_document_are_never_returned(store):
    """A crash between the chunks and the document record must not surface half a document."""
    info, chunks = document("a", 2)
    store._chunks.add(ids=[c.chunk_id for c in chunks], embeddings=np.stack([unit(1), unit(1)]),
                      documents=[c.text for c in chunks],
                      metadatas=[{"doc_id": "a", "source": "a.pdf", "ordinal": c.ordinal,
                                  "start": 0, "end": 1} for c in chunks])
    assert store.query(unit(1), k=5) == []
    store.add(info, chunks, np.stack([unit(1), unit(0, 1)]))  # a re-ingest replaces the strays
    assert store.count() == 2
    assert len(store.query(unit(1), k=5)) == 2


def test_reopen_finds_the_same_results(tmp_path):
    first = ChromaStore(tmp_path / "chroma")
    info, chunks = document("a", 3)
    first.add(info, chunks, np.stack([unit(1), unit(1, 1), unit(0, 1)]))
    before = first.query(unit(1, 0.2), k=3)
    reopened = ChromaStore(tmp_path / "chroma")
    assert reopened.query(unit(1, 0.2), k=3) == before
    assert reopened.documents() == [info]


def test_empty_store_answers_with_nothing(store):
    assert store.query(unit(1), k=5) == []
    assert store.documents() == [] and store.count() == 0
