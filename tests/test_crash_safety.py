"""SIGKILL mid-ingest: a real `python -m rag ingest` over real files, killed without warning
(the OOM killer, a container stop, a power cut as far as the process can tell), must leave an
index that opens and lists only whole documents; running the same ingest again completes it.

Each test kills one ingest once, 30 ms into the store write of its third document (a kill
while a file loads or embeds touches nothing; the write is where a crash can do harm): the CLI
keeps a document's original file right before the store write (rag.index Index.add), so a new
file in data_dir/originals for a document not yet reported means its write is starting. The
killed run's last file is a named pipe the test never fills, so that run cannot end before the
kill however fast or slow the machine: the kill lands inside that write or, on a machine that
finishes it within 30 ms, right after it. It checks the index, then lets a second run over the
real files finish and checks again.
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rag.config import Settings
from rag.index_files import ORIGINALS, read_manifest, read_original
from rag.pipeline import RAG
from rag.types import doc_id_of
from tests.chroma_fixtures import chroma_server_at
from tests.conftest import REPO
from tests.processes import HeldFile, cli_env, log_tail

pytestmark = pytest.mark.slow

# Real files: two indexed before the kill (29 and 45 chunks), the one whose write is killed (52
# chunks: a Chroma upsert long enough for the kill to land inside it) and one the killed run
# never reaches (a 1-chunk PDF, parsed in the worker process the kill takes down too). More
# files only add embedding time to every run (HTML is left out: the smallest, rfc6265.html,
# alone has 149 chunks).
FILES = [
    "docs/markdown/rust-book-ch16-01-threads.md",
    "docs/markdown/rust-book-ch08-02-strings.md",
    "docs/markdown/rust-book-ch13-01-closures.md",
    "pdfs/pdfjs/french_diacritics.pdf",
]
QUESTIONS = [  # about the files above, so each check also runs on retrieved chunks
    "How do you create a new thread and wait for it to finish?",
    "How do I concatenate two strings?",
    "What is a closure that captures its environment?",
    "How do you move a value into a closure that runs on another thread?",
    "How do you iterate over the characters of a string?",
]
RUN_TIMEOUT_S = 600.0  # a hang guard: a run takes 10-20 s on 2 idle cores


@dataclass
class StoreUnderTest:
    name: str
    env: dict[str, str]  # for the CLI process
    settings: dict = field(default_factory=dict)  # for Settings() in this process


@pytest.fixture(params=["chroma", "faiss", "chroma-server"])
def store(request, tmp_path: Path) -> Iterator[StoreUnderTest]:
    if request.param == "chroma":
        yield StoreUnderTest("chroma", {})
    elif request.param == "faiss":
        yield StoreUnderTest("faiss", {"RAG_VECTOR_STORE_TYPE": "faiss"},
                             {"vector_store_type": "faiss"})
    else:
        with chroma_server_at(tmp_path / "chroma-server") as server:
            yield StoreUnderTest(
                "chroma-server",
                {"RAG_CHROMA_HOST": server.host, "RAG_CHROMA_PORT": str(server.port)},
                {"chroma_host": server.host, "chroma_port": server.port},
            )


@dataclass
class Run:
    lines: list[str]
    returncode: int | None  # None: killed by the test
    stderr: str


def _ingest(data_dir: Path, files: list[Path], env: dict[str, str], log: Path,
            kill_when: Callable[[list[str]], bool] | None = None) -> Run:
    """`python -m rag ingest`, SIGKILLed (with its parser worker: its whole process group) as
    soon as `kill_when(lines so far)` holds; polled every 2 ms."""
    _forget_chroma_clients()  # this process must not hold the folder the CLI writes
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "rag", "--data-dir", str(data_dir), "ingest",
             *map(str, files)],
            cwd=REPO, env=cli_env(env), stdout=subprocess.PIPE, stderr=err, text=True,
            start_new_session=True,
        )
    lines: list[str] = []
    received: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            received.put(line.rstrip("\n"))
        received.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while True:
            ended = False
            while True:
                try:
                    line = received.get_nowait()
                except queue.Empty:
                    break
                if line is None:
                    ended = True
                    break
                lines.append(line)
            if kill_when is not None and kill_when(lines):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
                reader.join(10)
                return Run(lines, None, log_tail(log))
            if ended:
                process.wait(30)
                return Run(lines, process.returncode, log_tail(log))
            if time.monotonic() > deadline:
                pytest.fail(f"ingest still running after {RUN_TIMEOUT_S:g} s; output: {lines}\n"
                            f"{log_tail(log)}")
            time.sleep(0.002)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _indexed(lines: list[str]) -> list[str]:
    return [line for line in lines if ": indexed (" in line]


def _forget_chroma_clients() -> None:
    """chromadb keeps one client per folder per process, open until cleared."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()


def _open(data_dir: Path, store: StoreUnderTest, embedder) -> RAG:
    """A fresh RAG as a restarted app would open it, not one on the cached client of an
    earlier check, which may still hold the folder as it was then."""
    _forget_chroma_clients()
    return RAG(Settings(data_dir=data_dir, **store.settings), embedder=embedder)


def _assert_only_whole_documents(rag: RAG, data_dir: Path, store: StoreUnderTest,
                                 doc_ids: set[str]) -> dict[str, int]:
    """The restart invariants; returns {listed doc_id: chunks}."""
    assert rag.index_store_type == store.name.removesuffix("-server")
    assert (read_manifest(data_dir) or {}).get("vector_store_type") == rag.index_store_type
    listed = {info.doc_id: info for info in rag.documents()}
    assert set(listed) <= doc_ids, "a document that was never ingested is listed"

    chunks = list(rag.store.chunks())
    per_document = Counter(chunk.doc_id for chunk in chunks)
    assert set(per_document) <= set(listed), (
        f"store.chunks() returns chunks of unlisted documents: {set(per_document) - set(listed)}")
    for doc_id, info in listed.items():
        ordinals = sorted(chunk.ordinal for chunk in chunks if chunk.doc_id == doc_id)
        assert ordinals == list(range(info.chunks)), (
            f"{info.source} is listed with {info.chunks} chunks; the store holds ordinals "
            f"{ordinals[:5]}... ({len(ordinals)})")
        ids = [f"{doc_id}:{ordinal}" for ordinal in ordinals]
        found = rag.store.get_chunks(ids)
        assert sorted(chunk.chunk_id for chunk, _ in found) == sorted(ids), info.source
        assert read_original(data_dir, doc_id) is not None, (
            f"{info.source} is listed but its original is not kept: it could never be re-indexed")

    # Every chunk the dense index can return, strays included: k = everything stored.
    everything = max(rag.store.count(), 1)
    for question in QUESTIONS[:2]:
        vector = rag.embedder.embed_query(question)
        seen = {doc_id_of(chunk_id) for chunk_id, _ in rag.store.nearest(vector, everything)}
        assert seen <= set(listed), f"a query returned chunks of unlisted {seen - set(listed)}"
    rag.sync_lexical()
    assert rag.lexical.doc_ids == set(listed), (
        f"BM25 after sync_lexical holds {len(rag.lexical.doc_ids)} documents, "
        f"the store lists {len(listed)}")
    for question in QUESTIONS:
        lexical = {chunk_id.rsplit(":", 1)[0] for chunk_id in rag.lexical.scores(question)}
        assert lexical <= set(listed), question
        for hit in rag.retrieve(question).hits:
            assert hit.chunk.doc_id in listed, (question, hit.chunk.source)
    return {doc_id: info.chunks for doc_id, info in listed.items()}


def test_sigkill_mid_ingest_leaves_whole_documents_and_a_rerun_completes(
    store: StoreUnderTest, bench_data: Path, embedder, tmp_path: Path
) -> None:
    files = [bench_data / name for name in FILES]
    doc_ids = {hashlib.sha256(path.read_bytes()).hexdigest(): path for path in files}
    data_dir = tmp_path / "data"
    originals = data_dir / ORIGINALS

    def writing_a_new_document(after: int, delay_s: float) -> Callable[[list[str]], bool]:
        """Once `after` documents were reported indexed in this run, `delay_s` after the original
        of one more document appears than were kept before the run and reported: its store
        write starts right then."""
        before = set(os.listdir(originals)) if originals.is_dir() else set()
        seen_at: list[float] = []

        def check(lines: list[str]) -> bool:
            if not seen_at:
                if len(_indexed(lines)) < after or not originals.is_dir():
                    return False
                # doc ids only: a kill as the original's temporary file is written lands before
                # the store write (and leaves that temporary file behind for good). Counted,
                # not matched against the reports: a write done before this poll saw its
                # original (FAISS writes in a few ms) is reported already, and the run, waiting
                # on the held file, is killed right after it instead of never.
                if len(set(os.listdir(originals)) & set(doc_ids) - before) <= after:
                    return False
                seen_at.append(time.monotonic())
            return time.monotonic() - seen_at[0] >= delay_s
        return check

    def check_after_kill(run: Run, label: str) -> dict[str, int]:
        assert run.returncode is None, (
            f"the ingest ended (exit {run.returncode}) before the kill: {run.lines}\n"
            f"{run.stderr}")
        rag = _open(data_dir, store, embedder)
        listed = _assert_only_whole_documents(rag, data_dir, store, set(doc_ids))
        kept = set(os.listdir(originals)) & set(doc_ids)
        cut = {doc_ids[d].name for d in kept} - {doc_ids[d].name for d in listed}
        # shown on failure, and with -s: where the kill landed
        print(f"{label}: killed after {len(_indexed(run.lines))} new reports; {len(listed)} "
              f"listed; kept originals of unlisted documents: {sorted(cut)}; "
              f"{rag.store.count() - sum(listed.values())} chunks of unlisted documents stored")
        return listed

    # 1. Killed 30 ms into the write of the third document (its original was just kept):
    # mid-write for a Chroma upsert of 52 chunks. The last file is held back: the run waits for
    # it, so it is still running whenever the kill comes.
    held = HeldFile(files[-1], tmp_path / "held")
    first = _ingest(data_dir, [*files[:-1], held.path], store.env, tmp_path / "run1.log",
                    kill_when=writing_a_new_document(after=2, delay_s=0.03))
    listed = check_after_kill(first, "run 1")
    assert len(listed) >= 2

    # 2. The same ingest again finishes the job: nothing lost, nothing left over.
    second = _ingest(data_dir, files, store.env, tmp_path / "run2.log")
    assert second.returncode == 0, f"{second.lines}\n{second.stderr}"
    reports = {line.rsplit(": ", 1)[0] if line.endswith(": already indexed")
               else line.split(": indexed (")[0]: line for line in second.lines
               if line.endswith(": already indexed") or ": indexed (" in line}
    assert set(reports) == {str(path) for path in files}, second.lines
    rag = _open(data_dir, store, embedder)
    listed = _assert_only_whole_documents(rag, data_dir, store, set(doc_ids))
    assert set(listed) == set(doc_ids), [doc_ids[d].name for d in set(doc_ids) - set(listed)]
    assert rag.store.count() == sum(listed.values()), (
        f"{rag.store.count()} chunks stored, the documents list {sum(listed.values())}: "
        "chunks of an interrupted write were left behind")
    assert rag.store.document_count() == len(files)
