"""The index remembers the settings that built it and its originals, so it can be rebuilt."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.index_files import ORIGINALS, read_manifest
from rag.pipeline import RAG

MARKDOWN = "docs/markdown/rust-book-ch08-02-strings.md"


@pytest.fixture
def engine(tmp_path, embedder, bench_data) -> RAG:
    rag = RAG(Settings(data_dir=tmp_path), embedder=embedder)
    [result] = rag.ingest([("strings.md", (bench_data / MARKDOWN).read_bytes())])
    assert result.status == "indexed"
    return rag


def test_first_ingest_records_the_settings_and_keeps_the_original(engine, tmp_path, bench_data):
    assert read_manifest(tmp_path) == {"embedding_model": engine.settings.embedding_model,
                                       "chunk_size": 160, "chunk_overlap": 24,
                                       "chunk_strategy": "recursive"}
    [doc] = engine.documents()
    assert (tmp_path / ORIGINALS / doc.doc_id).read_bytes() == (bench_data / MARKDOWN).read_bytes()
    assert engine.index_mismatch() == []


def test_chunking_change_is_detected_and_reindex_rebuilds_with_it(engine):
    [before] = engine.documents()
    engine.update_settings(engine.settings.model_copy(update={"chunk_size": 64, "chunk_overlap": 8}))
    assert engine.index_mismatch() == ["chunk size: index 160, settings 64",
                                       "chunk overlap: index 24, settings 8"]
    results = list(engine.reindex_iter())
    assert [(r.source, r.status) for r in results] == [("strings.md", "indexed")]
    [after] = engine.documents()
    assert after.doc_id == before.doc_id and after.chunks > before.chunks * 2
    assert engine.store.count() == after.chunks
    assert engine.index_mismatch() == []
    assert engine.retrieve("How do you concatenate strings with the + operator?").hits


def test_retrieval_settings_never_ask_for_a_reindex(engine):
    engine.update_settings(engine.settings.model_copy(update={"top_k": 9,
                                                              "similarity_threshold": 0.2}))
    assert engine.index_mismatch() == []


def test_delete_drops_the_original_too(engine, tmp_path):
    [doc] = engine.documents()
    engine.delete(doc.doc_id)
    assert not (tmp_path / ORIGINALS / doc.doc_id).exists()
    assert engine.index_mismatch() == []  # an empty index matches anything


def test_a_failed_reindex_keeps_the_document_and_its_original(engine, tmp_path, monkeypatch):
    [before] = engine.documents()
    engine.update_settings(engine.settings.model_copy(update={"chunk_size": 64, "chunk_overlap": 8}))

    def fail(texts):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(engine.embedder, "embed", fail)
    [result] = engine.reindex_iter()
    assert result.status == "failed" and "out of memory" in result.error
    assert engine.documents() == [before]  # still searchable with its old chunks
    assert engine.store.count() == before.chunks
    assert (tmp_path / ORIGINALS / before.doc_id).exists()
    assert engine.index_mismatch(), "the old settings are still recorded"
