"""The index remembers the settings that built it and its originals, so it can be rebuilt
beside the live one and swapped in whole."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.index_files import ORIGINALS, read_manifest, write_manifest
from rag.lexical import LEXICAL_FORMAT
from rag.pipeline import RAG

MARKDOWN = "docs/markdown/rust-book-ch08-02-strings.md"
THREADS = "docs/markdown/rust-book-ch16-01-threads.md"
QUESTION = "How do you concatenate strings with the + operator?"


@pytest.fixture
def engine(tmp_path, embedder, bench_data) -> RAG:
    rag = RAG(Settings(data_dir=tmp_path), embedder=embedder)
    [result] = rag.ingest([("strings.md", (bench_data / MARKDOWN).read_bytes())])
    assert result.status == "indexed"
    return rag


def test_first_ingest_records_the_settings_and_keeps_the_original(engine, tmp_path, bench_data):
    assert read_manifest(tmp_path) == {"embedding_model": engine.settings.embedding_model,
                                       "embedding_dimension": 384, "chunk_size": 160,
                                       "chunk_overlap": 24, "chunk_strategy": "recursive",
                                       "vector_store_type": "chroma", "lexical": LEXICAL_FORMAT,
                                       "generation": 0}
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
    assert engine.retrieve(QUESTION).hits
    assert engine.generation == read_manifest(engine.settings.data_dir)["generation"] == 1


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
    assert engine.generation == 0
    assert not (tmp_path / "bm25-g1").exists(), "the half-built generation is dropped"


def test_questions_use_the_old_index_until_the_new_one_is_complete(engine, bench_data):
    engine.ingest([("threads.md", (bench_data / THREADS).read_bytes())])
    before = {doc.doc_id: doc.chunks for doc in engine.documents()}
    chunks_before = engine.store.count()
    engine.update_settings(engine.settings.model_copy(update={"chunk_size": 64, "chunk_overlap": 8}))
    rebuilding = engine.reindex_iter()
    next(rebuilding)  # one document rebuilt beside, one to go
    assert engine.generation == 0 and engine.store.count() == chunks_before
    old_hits = engine.retrieve(QUESTION).hits
    assert old_hits and all(before[hit.chunk.doc_id] for hit in old_hits)
    assert len(list(rebuilding)) == 1
    assert engine.generation == 1
    after = {doc.doc_id: doc.chunks for doc in engine.documents()}
    assert after.keys() == before.keys() and all(after[d] > before[d] for d in before)
    assert engine.lexical.doc_ids == set(before)


def test_uploads_and_deletes_during_a_reindex_reach_the_new_index(engine, bench_data):
    [strings] = engine.documents()
    engine.update_settings(engine.settings.model_copy(update={"chunk_size": 64, "chunk_overlap": 8}))
    rebuilding = engine.reindex_iter()
    next(rebuilding)
    [added] = engine.ingest([("threads.md", (bench_data / THREADS).read_bytes())])
    assert engine.delete(strings.doc_id)
    list(rebuilding)
    assert engine.generation == 1
    assert [doc.doc_id for doc in engine.documents()] == [added.doc_id]
    assert engine.lexical.doc_ids == {added.doc_id}


def test_a_store_type_change_is_rebuilt_into_the_new_store(engine, tmp_path):
    [doc] = engine.documents()
    engine.update_settings(engine.settings.model_copy(update={"vector_store_type": "faiss"}))
    assert engine.index_mismatch() == ["vector store type: index chroma, settings faiss"]
    assert engine.retrieve(QUESTION).hits, "the Chroma index keeps answering meanwhile"
    assert [r.status for r in engine.reindex_iter()] == ["indexed"]
    assert engine.index_store_type == "faiss" and engine.index_mismatch() == []
    assert (tmp_path / "faiss-g1").is_dir()
    assert engine.documents() == [doc]
    assert engine.retrieve(QUESTION).hits
    reopened = RAG(engine.settings, embedder=engine.embedder)
    assert reopened.index_store_type == "faiss" and reopened.documents() == [doc]


def test_another_process_reindex_is_followed_on_the_next_question(engine, tmp_path):
    other = RAG(engine.settings.model_copy(update={"chunk_size": 64, "chunk_overlap": 8}),
                embedder=engine.embedder)
    assert [r.status for r in other.reindex_iter()] == ["indexed"]
    assert engine.generation == 0  # not yet looked
    hits = engine.retrieve(QUESTION).hits
    assert hits and engine.generation == 1
    assert engine.store.count() == other.store.count()


def test_an_index_from_before_generations_opens_and_upgrades(engine, tmp_path):
    [doc] = engine.documents()
    write_manifest(tmp_path, {"embedding_model": engine.settings.embedding_model,
                              "chunk_size": 160, "chunk_overlap": 24,
                              "chunk_strategy": "recursive"})
    reopened = RAG(engine.settings, embedder=engine.embedder)
    assert reopened.documents() == [doc] and reopened.index_mismatch() == []
    manifest = read_manifest(tmp_path)
    assert manifest["lexical"] == LEXICAL_FORMAT and manifest["vector_store_type"] == "chroma"
    assert reopened.lexical.doc_ids == {doc.doc_id}
