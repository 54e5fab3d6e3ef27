"""One contract for every vector store, run on real backends: embedded Chroma, a Chroma server
and FAISS, each opened through `open_store` as the app opens it. Tests that only make sense
for one backend follow the contract."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from rag.config import Settings
from rag.generation import REFUSAL
from rag.pipeline import RAG
from rag.stores import VectorStore, open_store
from rag.stores.faiss import SNAPSHOT, FaissStore
from rag.types import Chunk, DocumentInfo, doc_id_of

DIM = 8
BACKENDS = ["chroma", "chroma-server", "faiss"]
GENERATIONS = itertools.count(1)  # tests on the shared server keep apart by generation


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def document(doc_id: str, n: int, page_of=lambda i: i + 1) -> tuple[DocumentInfo, list[Chunk]]:
    chunks = [Chunk(doc_id, f"{doc_id}.pdf", i, f"text {doc_id} {i}", 0, 10, page=page_of(i))
              for i in range(n)]
    return DocumentInfo(doc_id, f"{doc_id}.pdf", n, n, 1000, f"2026-01-0{n}T00:00:00+00:00"), chunks


def backend_settings(request: pytest.FixtureRequest, backend: str, tmp_path) -> Settings:
    if backend == "chroma-server":
        server = request.getfixturevalue("chroma_server")  # started only when a test needs it
        return Settings(data_dir=tmp_path, chroma_host=server.host, chroma_port=server.port)
    store_type = "faiss" if backend == "faiss" else "chroma"
    return Settings(data_dir=tmp_path, vector_store_type=store_type)


@pytest.fixture(params=BACKENDS)
def reopen(request, tmp_path) -> Iterator[Callable[[], VectorStore]]:
    """Each call opens a new store object on the same index, as a restarted app would."""
    settings = backend_settings(request, request.param, tmp_path)
    generation = next(GENERATIONS)
    yield lambda: open_store(settings, generation=generation)
    open_store(settings, generation=generation).drop()  # the server outlives the test


@pytest.fixture
def store(reopen) -> VectorStore:
    return reopen()


def test_nearest_returns_cosine_similarity_best_first(store):
    info, chunks = document("a", 3)
    store.add(info, chunks, np.stack([unit(1, 0), unit(1, 1), unit(0, 1)]))
    results = store.nearest(unit(1, 0), k=10)  # more than the store holds
    assert [chunk_id for chunk_id, _ in results] == ["a:0", "a:1", "a:2"]
    assert [round(score, 4) for _, score in results] == [1.0, round(1 / np.sqrt(2), 4), 0.0]


def test_nearest_adds_the_chunks_it_is_asked_to_include_after_its_own(store):
    """BM25's candidates get their dense similarity in the same call, which reads the listing
    once; unknown ids and ones already found are left out."""
    info, chunks = document("a", 3)
    store.add(info, chunks, np.stack([unit(1, 0), unit(1, 1), unit(0, 1)]))
    found = store.nearest(unit(1, 0), k=1, include=["a:2", "missing:0", "a:0", "a:9", "a", "a:1"])
    assert [chunk_id for chunk_id, _ in found] == ["a:0", "a:2", "a:1"]
    assert [round(similarity, 4) for _, similarity in found] == [1.0, 0.0,
                                                                 round(1 / np.sqrt(2), 4)]
    assert store.nearest(unit(1, 0), k=0, include=[]) == []
    assert store.nearest(unit(1, 0), k=0, include=["missing:0", "b:1"]) == []


def test_metadata_round_trips(store):
    info, _ = document("a", 2)
    chunks = [Chunk("a", "a.md", 0, "alpha", 3, 8, heading="Intro > Why"),
              Chunk("a", "a.md", 1, "beta", 9, 13, page=4)]
    store.add(info, chunks, np.stack([unit(1), unit(0, 1)]))
    found = {chunk.ordinal: chunk for chunk, _ in store.get_chunks(["a:1", "a:0"])}
    assert found == {0: chunks[0], 1: chunks[1]}
    assert [chunk_id for chunk_id, _ in store.nearest(unit(1), k=2)] == ["a:0", "a:1"]
    assert store.get_document("a") == info
    assert store.get_document("missing") is None


def test_delete_removes_document_and_chunks(store):
    for doc_id in ("a", "b"):
        info, chunks = document(doc_id, 2)
        store.add(info, chunks, np.stack([unit(1), unit(1, 1)]))
    store.delete("a")
    assert [info.doc_id for info in store.documents()] == ["b"]
    assert store.count() == 2
    assert [chunk_id for chunk_id, _ in store.nearest(unit(1), k=10)] == ["b:0", "b:1"]
    assert store.get_chunks(["a:0", "a:1"]) == []
    assert store.nearest(unit(1), k=0, include=["a:0", "a:1", "b:1"]) == [("b:1", pytest.approx(
        1 / np.sqrt(2)))]
    assert {chunk.doc_id for chunk in store.chunks()} == {"b"}
    store.delete("missing")  # no error
    assert store.count() == 2 and store.document_count() == 1


def test_the_same_document_added_twice_is_stored_once(store):
    info, chunks = document("a", 3)
    vectors = np.stack([unit(1), unit(1, 1), unit(0, 1)])
    store.add(info, chunks, vectors)
    store.add(info, chunks, vectors)
    assert store.count() == 3 and store.documents() == [info] and store.document_count() == 1
    shorter, chunks = document("a", 2)  # the same id again, now two chunks: a replacement
    store.add(shorter, chunks, vectors[:2])
    assert store.count() == 2 and store.documents() == [shorter]
    assert [chunk_id for chunk_id, _ in store.nearest(unit(1), k=10)] == ["a:0", "a:1"]


def test_reopen_finds_the_same_results(reopen):
    first = reopen()
    info, chunks = document("a", 3)
    first.add(info, chunks, np.stack([unit(1), unit(1, 1), unit(0, 1)]))
    before = first.nearest(unit(1, 0.2), k=3)
    first.flush()
    reopened = reopen()
    assert reopened.nearest(unit(1, 0.2), k=3) == before
    assert reopened.documents() == [info]
    assert reopened.count() == 3


def fail_at_the_last_step(store: VectorStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail writing the record that lists the document: its last step, every chunk in by then."""
    if isinstance(store, FaissStore):
        store._db.execute("CREATE TEMP TRIGGER fail BEFORE INSERT ON documents "
                          "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        return

    def fail(**_):
        raise OSError("disk full")

    monkeypatch.setattr(store._documents, "upsert", fail)


def test_a_failed_add_leaves_nothing_behind(store, monkeypatch):
    info, chunks = document("a", 3)
    with pytest.raises(ValueError):
        store.add(info, chunks, np.stack([unit(1), unit(1, 1)]))  # one vector short
    vectors = np.stack([unit(1), unit(1, 1), unit(0, 1)])
    fail_at_the_last_step(store, monkeypatch)
    with pytest.raises(Exception, match="disk full"):
        store.add(info, chunks, vectors)
    assert store.count() == 0 and store.documents() == []
    assert store.nearest(unit(1), k=5) == [] and list(store.chunks()) == []


def test_get_chunks_leaves_out_unknown_ids(store):
    info, chunks = document("a", 3)
    vectors = np.stack([unit(1), unit(1, 1), unit(0, 1)])
    store.add(info, chunks, vectors)
    found = {chunk.chunk_id: (chunk, vector)
             for chunk, vector in store.get_chunks(["a:2", "missing:0", "a:0", "a:9", "a"])}
    assert set(found) == {"a:0", "a:2"}
    for ordinal in (0, 2):
        chunk, vector = found[f"a:{ordinal}"]
        assert chunk == chunks[ordinal]
        np.testing.assert_allclose(vector, vectors[ordinal], atol=1e-6)
    assert store.get_chunks([]) == []


def test_chunks_lists_every_chunk(store):
    expected = []
    for doc_id, n in (("a", 2), ("b", 3)):
        info, chunks = document(doc_id, n)
        store.add(info, chunks, np.stack([unit(1, i) for i in range(n)]))
        expected += chunks
    assert sorted(store.chunks(), key=lambda c: c.chunk_id) == expected


def test_drop_empties_the_index(reopen):
    store = reopen()
    info, chunks = document("a", 2)
    store.add(info, chunks, np.stack([unit(1), unit(0, 1)]))
    store.flush()
    store.drop()
    fresh = reopen()
    assert fresh.count() == 0 and fresh.documents() == []
    assert fresh.nearest(unit(1), k=5) == []


def test_empty_store_answers_with_nothing(store):
    assert store.nearest(unit(1), k=5) == []
    assert store.documents() == [] and store.count() == 0 and store.document_count() == 0
    assert store.get_chunks(["a:0"]) == [] and list(store.chunks()) == []
    store.flush()  # nothing to write: no error


@pytest.mark.parametrize("reopen", ["chroma", "chroma-server"], indirect=True)
def test_chroma_never_returns_chunks_of_an_unlisted_document(store):
    """A crash between the chunks and the document record must not surface half a document."""
    info, chunks = document("a", 2)
    store._chunks.add(ids=[c.chunk_id for c in chunks], embeddings=np.stack([unit(1), unit(1)]),
                      documents=[c.text for c in chunks],
                      metadatas=[{"doc_id": "a", "source": "a.pdf", "ordinal": c.ordinal,
                                  "start": 0, "end": 1} for c in chunks])
    assert store.nearest(unit(1), k=5) == []
    assert store.get_chunks(["a:0"]) == [] and list(store.chunks()) == []
    store.add(info, chunks, np.stack([unit(1), unit(0, 1)]))  # a re-ingest replaces the strays
    assert store.count() == 2
    assert len(store.nearest(unit(1), k=5)) == 2


def faiss_folder(tmp_path) -> tuple[Settings, Callable[[], VectorStore]]:
    settings = Settings(data_dir=tmp_path, vector_store_type="faiss")
    return settings, lambda: open_store(settings)


def test_faiss_reopens_with_every_commit_after_a_crash_before_flush(tmp_path):
    """SQLite commits each document; the snapshot lags until flush, and opening catches up."""
    settings, reopen = faiss_folder(tmp_path)
    store = reopen()
    for doc_id, n in (("a", 2), ("b", 3)):
        info, chunks = document(doc_id, n)
        store.add(info, chunks, np.stack([unit(1, i) for i in range(n)]))
    store.flush()
    info_c, chunks = document("c", 1)
    store.add(info_c, chunks, unit(1, 0.5)[None, :])  # missing from the snapshot
    store.delete("a")  # still in the snapshot
    expected = store.nearest(unit(1, 0.3), k=10)
    assert {doc_id_of(chunk_id) for chunk_id, _ in expected} == {"b", "c"}
    # No flush: the "crashed" store's snapshot holds a and b.
    snapshot = settings.data_dir / "faiss" / SNAPSHOT
    for damage in ("none", "truncated", "deleted"):
        if damage == "truncated":
            snapshot.write_bytes(snapshot.read_bytes()[:100])
        elif damage == "deleted":
            snapshot.unlink()
        reopened = reopen()
        assert reopened.nearest(unit(1, 0.3), k=10) == expected, damage
        assert {info.doc_id for info in reopened.documents()} == {"b", "c"}
        assert reopened.count() == 4
    reopened.flush()
    assert snapshot.exists()
    assert reopen().nearest(unit(1, 0.3), k=10) == expected


def test_faiss_sees_a_write_of_another_process_on_its_next_query(tmp_path):
    _, reopen = faiss_folder(tmp_path)
    app, cli = reopen(), reopen()  # two connections, as two processes have
    info, chunks = document("a", 2)
    app.add(info, chunks, np.stack([unit(1), unit(0, 1)]))
    assert app.nearest(unit(1), k=10)  # the app's index is loaded before the CLI writes
    info_b, chunks = document("b", 1)
    cli.add(info_b, chunks, unit(1, 0.1)[None, :])
    cli.delete("a")
    assert [chunk_id for chunk_id, _ in app.nearest(unit(1), k=10)] == ["b:0"]
    assert app.count() == 1 and app.documents() == [info_b]


def test_faiss_serves_queries_from_threads_while_it_ingests(tmp_path):
    """A Streamlit server shares one store across sessions, each on a thread of its own."""
    _, reopen = faiss_folder(tmp_path)
    store = reopen()
    info, chunks = document("a", 1)
    store.add(info, chunks, unit(1)[None, :])
    errors, done = [], threading.Event()

    def ask() -> None:
        try:
            while not done.is_set():
                assert store.nearest(unit(1), k=3)
        except Exception as error:  # noqa: BLE001  (reported below, on the test's thread)
            errors.append(error)

    askers = [threading.Thread(target=ask) for _ in range(3)]
    for thread in askers:
        thread.start()
    try:
        for i in range(20):
            info, chunks = document(f"d{i}", 3)
            store.add(info, chunks, np.stack([unit(1, i, 1), unit(i, 1), unit(0, 1, i)]))
            store.delete(f"d{i - 1}")
    finally:
        done.set()
        for thread in askers:
            thread.join()
    assert errors == []
    assert store.count() == 4 and {info.doc_id for info in store.documents()} == {"a", "d19"}


def test_faiss_refuses_vectors_of_another_dimension(tmp_path):
    _, reopen = faiss_folder(tmp_path)
    store = reopen()
    info, chunks = document("a", 1)
    store.add(info, chunks, unit(1)[None, :])
    info_b, chunks = document("b", 1)
    with pytest.raises(ValueError, match="dimensions"):
        store.add(info_b, chunks, np.ones((1, DIM + 1), dtype=np.float32))
    assert [info.doc_id for info in reopen().documents()] == ["a"]


@pytest.fixture(params=BACKENDS)
def app(request, tmp_path, embedder) -> Iterator[RAG]:
    """The app on a fresh index of each backend. The LLM is never called: these tests stop at
    retrieval or at a refusal."""
    rag = RAG(backend_settings(request, request.param, tmp_path), embedder=embedder,
              llm=object())
    yield rag
    rag.store.drop()  # on the server, the index the app opens is shared by the whole run


def test_an_empty_index_refuses(app):
    answer = app.ask("What is the capital of France?")
    assert answer.refused is True
    assert "".join(answer.deltas) == REFUSAL


def test_an_ingested_markdown_file_is_retrieved(app, bench_data, embedder):
    path = bench_data / "docs" / "markdown" / "rust-book-ch16-01-threads.md"
    [result] = app.ingest([(path.name, path.read_bytes())])
    assert result.status == "indexed" and result.chunks > 1
    hits = app.retrieve("How do I create a new thread in Rust?").hits
    assert hits and all(hit.chunk.source == path.name for hit in hits)
    assert any("thread::spawn" in hit.chunk.text for hit in hits[:3])
    restarted = RAG(app.settings, embedder=embedder, llm=object())
    assert restarted.retrieve("How do I create a new thread in Rust?").hits[0] == hits[0]
