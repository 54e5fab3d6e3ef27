"""The engine's ingest queue with the real embedder and a real Chroma folder: uploads are kept,
indexed by the worker in order, cancelled, retried and resumed after a restart. The tests hold
the index's write lock to stop the worker at a known point instead of racing it."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.index_files import write_atomically
from rag.ingest_jobs import FILE_NAME, JobStore
from rag.ingest_queue import UPLOADS
from rag.loaders import document_id
from rag.pipeline import RAG

RUST = "docs/markdown/rust-book-ch04-01-what-is-ownership.md"
RFC = "docs/text/rfc7525.txt"
ENCRYPTED = "pdfs/pypdf-resources/encryption/r4-user-password.pdf"
WAIT_S = 300


def _engine(data_dir: Path, embedder) -> RAG:
    return RAG(Settings(data_dir=data_dir), embedder=embedder)


def _until(condition, what: str) -> None:
    """Until the worker's recorded state says so (it writes each step to the job store)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not in time: {what}")
        time.sleep(0.05)


def test_files_are_kept_queued_and_indexed_in_order(tmp_path, embedder, bench_data) -> None:
    engine = _engine(tmp_path, embedder)
    queue = engine.queue
    rust = (bench_data / RUST).read_bytes()
    jobs = [queue.submit("ownership.md", rust),
            queue.submit("broken.pdf", b"%PDF-1.7 this is not a PDF"),
            queue.submit("rfc7525.txt", (bench_data / RFC).read_bytes()),
            queue.submit("ownership again.md", rust)]  # the same bytes: the same job
    assert jobs[3].id == jobs[0].id
    assert queue.wait_idle(WAIT_S)
    by_id = {job.id: job for job in queue.jobs.jobs()}
    assert [by_id[job.id].status for job in jobs[:3]] == ["indexed", "failed", "indexed"]
    assert by_id[jobs[0].id].chunks > 5
    assert by_id[jobs[1].id].error.startswith("broken.pdf: ")
    assert sorted(info.source for info in engine.documents()) == ["ownership.md", "rfc7525.txt"]
    assert "RC4" in " ".join(hit.chunk.text for hit in engine.rank("Is RC4 allowed?", 3))
    # an indexed file's upload is gone (its original is kept by the index); a failed one stays
    # for a retry until the finished jobs are forgotten
    uploads = tmp_path / UPLOADS
    assert sorted(p.name for p in uploads.iterdir()) == [jobs[1].doc_id]
    retried = queue.retry(jobs[1].id)
    assert retried is not None and queue.wait_idle(WAIT_S)
    assert queue.jobs.get(retried.id).status == "failed"
    queue.forget_finished()
    assert queue.jobs.jobs() == [] and list(uploads.iterdir()) == []


def test_a_queued_job_and_a_running_one_are_cancelled_without_a_trace(
    tmp_path, embedder, bench_data
) -> None:
    engine = _engine(tmp_path, embedder)
    queue = engine.queue
    with engine.index.lock:  # the worker parses the first file, then waits for this lock
        first = queue.submit("ownership.md", (bench_data / RUST).read_bytes())
        second = queue.submit("rfc7525.txt", (bench_data / RFC).read_bytes())
        _until(lambda: queue.jobs.get(first.id).stage == "parsed", "the first file parsed")
        assert queue.jobs.get(second.id).status == "queued"
        assert queue.cancel(second.id).status == "cancelled"
        assert queue.cancel(first.id).cancel  # running: asked to stop
    assert queue.wait_idle(WAIT_S)
    assert [queue.jobs.get(job.id).status for job in (first, second)] == ["cancelled"] * 2
    assert engine.documents() == [] and engine.store.count() == 0
    # kept for a retry until the finished jobs are forgotten
    assert {p.name for p in (tmp_path / UPLOADS).iterdir()} == {first.doc_id, second.doc_id}
    # a cancelled job can be queued again, and then it is indexed
    assert queue.retry(first.id) is not None and queue.wait_idle(WAIT_S)
    assert [info.source for info in engine.documents()] == ["ownership.md"]


def test_a_password_is_used_for_its_job_and_never_stored(tmp_path, embedder, bench_data) -> None:
    engine = _engine(tmp_path, embedder)
    data = (bench_data / ENCRYPTED).read_bytes()
    job = engine.queue.submit("locked.pdf", data)
    assert engine.queue.wait_idle(WAIT_S)
    failed = engine.queue.jobs.get(job.id)
    assert failed.status == "failed" and "no password given" in failed.error
    retried = engine.queue.retry(job.id, password="asdfzxcv")
    assert engine.queue.wait_idle(WAIT_S)
    assert engine.queue.jobs.get(retried.id).status == "indexed"
    assert b"asdfzxcv" not in (tmp_path / FILE_NAME).read_bytes()


def test_a_restart_resumes_queued_and_interrupted_jobs(tmp_path, embedder, bench_data) -> None:
    """What a killed app leaves: an upload kept and queued, and one its dead process was
    indexing. The next engine's start indexes both."""
    jobs = JobStore(tmp_path / FILE_NAME)
    files = {"ownership.md": (bench_data / RUST).read_bytes(),
             "rfc7525.txt": (bench_data / RFC).read_bytes()}
    for name, data in files.items():
        write_atomically(tmp_path / UPLOADS / document_id(data), data)
        jobs.add(name, document_id(data))
    process = subprocess.Popen(["true"])  # a process that has ended: its pid runs nothing
    process.wait()
    interrupted = jobs.claim(process.pid)
    assert interrupted.status == "running"
    jobs.close()

    engine = _engine(tmp_path, embedder)
    engine.queue.start()
    assert engine.queue.wait_idle(WAIT_S)
    assert [job.status for job in engine.queue.jobs.jobs()] == ["indexed", "indexed"]
    assert sorted(info.source for info in engine.documents()) == sorted(files)


def test_an_engine_rebuilt_mid_job_takes_over_the_queue_without_redoing_the_job(
    tmp_path, embedder, bench_data
) -> None:
    """The Settings page replaces the engine while a file is being indexed: the old engine
    finishes that file, the new one does not take it for interrupted, and indexes the rest."""
    old = _engine(tmp_path, embedder)
    with old.index.lock:  # the old worker parses the first file, then waits for this lock
        first = old.queue.submit("ownership.md", (bench_data / RUST).read_bytes())
        second = old.queue.submit("rfc7525.txt", (bench_data / RFC).read_bytes())
        _until(lambda: old.queue.jobs.get(first.id).stage == "parsed", "the first file parsed")
        old.queue.stop()
        new = _engine(tmp_path, embedder)
        new.queue.start()
        assert new.queue.jobs.get(first.id).status == "running"  # not queued again
    assert old.queue.wait_idle(WAIT_S) and new.queue.wait_idle(WAIT_S)
    assert [new.queue.jobs.get(job.id).status for job in (first, second)] == ["indexed"] * 2
    assert sorted(info.source for info in new.documents()) == ["ownership.md", "rfc7525.txt"]


def test_embedding_with_progress_gives_each_chunk_its_own_vector(embedder) -> None:
    """The encoder takes the texts longest first in batches; the vectors come back in the
    chunks' order, with a report every REPORT_EVERY texts and one at the end."""
    from rag.ingest import REPORT_EVERY, _embed

    texts = [f"chunk {i}: " + "ownership moves the value " * (i % 7 * 9 + 1)
             for i in range(REPORT_EVERY * 2 + 5)]
    reports: list[tuple[str, int, int]] = []
    followed = _embed(embedder, texts, lambda *report: reports.append(report) or True)
    one_by_one = np.stack([embedder.embed([text])[0] for text in texts[::10]])
    assert followed.shape == (len(texts), embedder.dimension)
    assert (followed[::10] * one_by_one).sum(axis=1).min() > 0.9999  # each text its own vector
    assert [done for _, done, _ in reports] == [0, REPORT_EVERY, REPORT_EVERY * 2, len(texts)]


def test_a_question_is_embedded_between_two_batches_of_a_long_ingest(embedder) -> None:
    """The encoder is held a batch at a time: a question asked while a file embeds gets its
    vector before the file is done (it waited for the whole file before)."""
    asked: list[np.ndarray] = []

    def after_a_batch(done: int) -> None:
        if not asked:
            question = threading.Thread(target=lambda: asked.append(
                embedder.embed_query("who owns the value?")))
            question.start()
            question.join(WAIT_S)  # never finishes if the ingest still held the encoder
            assert asked, "the question waited for the whole ingest"

    texts = [f"passage {i} about ownership and borrowing" for i in range(embedder.batch_size * 3)]
    vectors = embedder.embed(texts, after_a_batch)
    assert len(asked) == 1 and asked[0].shape == (embedder.dimension,)
    assert vectors.shape == (len(texts), embedder.dimension)
