"""Several processes and sessions on one index at once, as they meet in production:
(a) two `python -m rag ingest` processes fill one Chroma server while a third process asks
    questions all along their writes: no error, no lost document, every cited chunk exists;
(b) two browser sessions of one Streamlit app ask at the same moment: each gets the answer to
    its own question, with its own document's sources.

Neither test depends on timing. In (a) each ingest reads its files from named pipes that the
test fills one at a time, so the test, not the scheduler, decides when a process may index its
next document: the asker finds the first document while both ingests still have files to
index, and the two processes' writes interleave in a fixed order. In (b) the language model's
endpoint holds the questions until both have reached it, so both answers are provably in
progress at once.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import cycle
from pathlib import Path

import pytest

from rag.config import Settings
from rag.generation import FAILURE_PREFIX
from rag.index_files import ORIGINALS
from rag.pipeline import RAG
from rag.types import Hit
from tests.chroma_fixtures import chroma_server_at
from tests.conftest import REPO
from tests.held_llm import HeldLLM
from tests.processes import (
    HeldFile,
    cli_env,
    free_port,
    log_tail,
    running_server,
    streamlit_command,
)
from tests.test_e2e_browser import CHROMIUM, CHROMIUM_ARGS, LONG_MS, _watch_text

pytestmark = pytest.mark.slow

# Two disjoint sets of real files (about 75 chunks each), one per ingest process; the first of
# each is what QUESTIONS[0] and QUESTIONS[1] ask about.
SET_A = [
    "docs/markdown/rust-book-ch16-01-threads.md",
    "pdfs/pdfjs/french_diacritics.pdf",
    "docs/markdown/rust-book-appendix-02-operators.md",
]
SET_B = [
    "docs/markdown/rust-book-ch08-02-strings.md",
    "pdfs/pdfjs/pdfjs_wikipedia.pdf",
    "pdfs/pdfjs/german-umlaut-r.pdf",
]
QUESTIONS = [
    "How do you create a new thread and wait for it to finish?",
    "How do I concatenate two strings?",
    "Which operator is used for error propagation?",
    "How do you index into a String to get a character?",
    "How do threads share data with a Mutex?",
]
# A hang guard, not a synchronisation: about 45 s on 2 idle cores, 5 min on 2 cores that four
# other test runs share.
TIMEOUT_S = 600.0


def _doc_id(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_citations_exist(rag: RAG, hits: Sequence[Hit], question: str) -> None:
    """Every hit is a chunk the store returns, of a listed document, with the same text."""
    ids = [hit.chunk.chunk_id for hit in hits]
    found = {chunk.chunk_id: chunk for chunk, _ in rag.store.get_chunks(ids)}
    assert set(ids) <= set(found), f"{question!r} cited missing chunks {set(ids) - set(found)}"
    listed = {info.doc_id for info in rag.documents()}
    for hit in hits:
        assert hit.chunk.doc_id in listed, f"{question!r} cited unlisted {hit.chunk.source}"
        assert found[hit.chunk.chunk_id].text == hit.chunk.text, hit.chunk.chunk_id


class Ingest:
    """`python -m rag ingest` over held files, its output in a log."""

    def __init__(self, files: list[HeldFile], data_dir: Path, env: dict[str, str],
                 log: Path) -> None:
        self.files, self.log = files, log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rag", "--data-dir", str(data_dir), "ingest",
                 *(str(file.path) for file in files)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def assert_waiting(self) -> None:
        """With a file still held, the ingest cannot have finished: if it ended, it failed."""
        if any(not file.released for file in self.files):
            assert self.running, (f"an ingest ended (exit {self.process.returncode}) before "
                                  f"reading all its files:\n{log_tail(self.log)}")

    def stop(self) -> None:
        if self.running:
            self.process.kill()
            self.process.wait()
        for file in self.files:
            file.close()


class Asker:
    """This test's process asking questions on the shared index, one after another, and
    recording each one: (seconds, documents listed, hits, ingests running)."""

    def __init__(self, rag: RAG, ingests: list[Ingest]) -> None:
        self.rag, self.ingests = rag, ingests
        self.questions = cycle(QUESTIONS)
        self.started = time.monotonic()
        self.deadline = self.started + TIMEOUT_S
        self.trace: list[tuple[float, int, int, int]] = []
        self.answered = 0

    def listed(self) -> set[str]:
        return {info.doc_id for info in self.rag.documents()}

    def ask(self, question: str | None = None, *, answer: bool = False) -> list[Hit]:
        """A retrieval, or with `answer` a whole answer from the LLM; its citations must exist."""
        question = question or next(self.questions)
        listed = len(self.rag.documents())
        try:
            if answer:
                reply = self.rag.ask(question)
                text = "".join(reply.deltas)
                assert FAILURE_PREFIX not in text, text
                hits = reply.hits
                self.answered += 1
            else:
                hits = self.rag.retrieve(question).hits
            _assert_citations_exist(self.rag, hits, question)
        except Exception as error:
            raise AssertionError(
                f"the asker failed on {question!r} after {len(self.trace)} questions, with "
                f"{listed} documents listed: {type(error).__name__}: {error}") from error
        running = sum(ingest.running for ingest in self.ingests)
        self.trace.append((round(time.monotonic() - self.started, 1), listed, len(hits), running))
        return hits

    def quiet_until(self, ready: Callable[[], bool], waiting_for: str) -> None:
        """Without asking, until `ready()`: questions during the ingests' start-up (imports,
        loading the embedder) test nothing and slow it down on 2 cores."""
        while not ready():
            for ingest in self.ingests:
                ingest.assert_waiting()
            assert time.monotonic() < self.deadline, f"{waiting_for}: not within {TIMEOUT_S:g} s"
            time.sleep(0.1)  # how often to look, not how long anything takes
        self.started = time.monotonic()

    def until(self, done: Callable[[], bool], waiting_for: str) -> None:
        """Questions one after another (at least one) until `done()`. Not a timing bet: every
        awaited event follows from files the test released, and an ingest that dies instead
        fails the test at once."""
        while True:
            self.ask()
            if done():
                return
            for ingest in self.ingests:
                ingest.assert_waiting()
            assert time.monotonic() < self.deadline, (
                f"{waiting_for}: not within {TIMEOUT_S:g} s; trace {self.trace}")


# "separate" (one data_dir per process, only the server shared) passed too, but doubles the
# runtime; "shared" shares the most: the manifest, the kept originals and the BM25 folder too.
@pytest.mark.parametrize("data_dirs", ["shared"])
def test_two_ingests_and_an_asker_on_one_chroma_server(
    data_dirs: str, bench_data: Path, embedder, llm_server: str, tmp_path: Path
) -> None:
    """`shared`: several app instances on one machine (one data_dir: manifest, originals and
    BM25 files shared too); `separate`: instances on different machines, only the server shared.
    The asker is this test's process; with separate data_dirs it has one of its own.

    Each process gets its files one at a time, each step released by the event before it:
    1. Both first documents. From the first write on (an original kept), questions one after
       another; once the asker lists one of them, both ingests are still in progress (each has
       a held file left), so the questions asked then run while both are: one must find it.
    2. Both second documents, while the asker answers a question with the LLM and retrieves
       until it lists both first documents.
    3. Both last documents; the asker retrieves until both ingests have ended.
    So A's writes begin before B's end and B's begin before A's end, on any machine."""
    held = [[HeldFile(bench_data / name, tmp_path / f"files-{label}") for name in names]
            for label, names in (("a", SET_A), ("b", SET_B))]
    (a1, a2, a3), (b1, b2, b3) = held
    doc_id = {file: _doc_id(file.original) for files in held for file in files}
    expected = set(doc_id.values())
    if data_dirs == "shared":
        dirs = [tmp_path / "data"] * 3
    else:
        dirs = [tmp_path / "data-a", tmp_path / "data-b", tmp_path / "data-asker"]

    with chroma_server_at(tmp_path / "chroma-server") as server:
        where = {"chroma_host": server.host, "chroma_port": server.port}
        env = cli_env({"RAG_CHROMA_HOST": server.host, "RAG_CHROMA_PORT": str(server.port)})
        ingests = [Ingest(files, data_dir, env, tmp_path / f"ingest-{label}.log")
                   for files, data_dir, label in zip(held, dirs, "ab", strict=False)]
        try:
            rag = RAG(Settings(data_dir=dirs[2], llm_base_url=llm_server, llm_model="smollm2",
                               llm_max_tokens=16, **where), embedder=embedder)
            asker = Asker(rag, ingests)

            a1.release()
            b1.release()
            originals = {data_dir / ORIGINALS for data_dir in dirs[:2]}  # kept before a write
            asker.quiet_until(lambda: any(any(folder.glob("*")) for folder in originals),
                              "a first write")
            asker.until(lambda: bool({doc_id[a1], doc_id[b1]} & asker.listed()),
                        "a first document listed")
            for ingest in ingests:  # each has a held file left: both are still in progress
                ingest.assert_waiting()
            found = [question for question in QUESTIONS if asker.ask(question)]
            assert found, (f"with a first document listed no question found anything while "
                           f"both ingests ran: {asker.trace}")

            a2.release()
            b2.release()
            asker.ask(QUESTIONS[0], answer=True)  # each has its last file held: both still run
            asker.until(lambda: {doc_id[a1], doc_id[b1]} <= asker.listed(),
                        "both first documents listed")

            a3.release()
            b3.release()
            asker.until(lambda: not any(ingest.running for ingest in ingests),
                        "both ingests ended")
        finally:
            for ingest in ingests:
                ingest.stop()

        print(f"{len(asker.trace)} questions ({asker.answered} answered) during the ingests, "
              f"{len(found)} with hits while both waited: {asker.trace}")
        for ingest in ingests:
            output = ingest.log.read_text()
            assert ingest.process.returncode == 0, output
            for file in ingest.files:
                assert f"{file.path}: indexed (" in output, output

        rag = RAG(Settings(data_dir=dirs[2], **where), embedder=embedder)
        listed = {info.doc_id: info for info in rag.documents()}
        assert set(listed) == expected, "a document was lost or one appeared from nowhere"
        added = [sorted(listed[doc_id[file]].added_at for file in files) for files in held]
        assert added[0][0] <= added[1][-1] and added[1][0] <= added[0][-1], (
            f"the two ingests did not write at the same time: {added}")
        assert rag.store.count() == sum(info.chunks for info in listed.values())
        rag.sync_lexical()
        assert rag.lexical.doc_ids == expected
        for question in QUESTIONS:
            hits = rag.retrieve(question).hits
            assert hits, question
            _assert_citations_exist(rag, hits, question)


# --- (b) two browser sessions of one app ------------------------------------------------------

SESSIONS = [  # (document, question, a word its passages contain): two unrelated topics
    ("docs/markdown/rust-book-ch16-01-threads.md",
     "How do you spawn a new thread and wait for it with join?", "thread"),
    ("docs/markdown/rust-book-ch08-02-strings.md",
     "How do you concatenate two String values with the + operator?", "string"),
]


@pytest.fixture
def two_documents(bench_data: Path, tmp_path: Path) -> Iterator[list[Path]]:
    """Indexed through the CLI into the data dir the app gets, before the app opens it (the
    app opens its index on the first page load)."""
    files = [bench_data / document for document, _, _ in SESSIONS]
    result = subprocess.run(
        [sys.executable, "-m", "rag", "--data-dir", str(tmp_path / "data"), "ingest",
         *map(str, files)],
        cwd=REPO, env=cli_env({}), capture_output=True, text=True, timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    yield files


@pytest.fixture
def held_llm(llm_server: str) -> Iterator[HeldLLM]:
    with HeldLLM(llm_server) as gate:
        yield gate


@pytest.fixture
def app_behind_held_llm(two_documents: list[Path], held_llm: HeldLLM,
                        tmp_path: Path) -> Iterator[str]:
    """`streamlit run` as tests/test_e2e_browser.py's `app_url` starts it, on the documents
    indexed above, answering through the held LLM."""
    port = free_port()
    env = cli_env({"RAG_DATA_DIR": str(tmp_path / "data"), "RAG_LLM_BASE_URL": held_llm.url,
                   "RAG_LLM_MODEL": "smollm2", "RAG_LLM_MAX_TOKENS": "40"})
    command = streamlit_command(port)
    url = f"http://127.0.0.1:{port}"
    with running_server(command, ready_url=f"{url}/_stcore/health", log=tmp_path / "streamlit.log",
                        cwd=REPO, env=env):
        yield url


def test_two_browser_sessions_asking_at_once_get_their_own_answers(
    two_documents: list[Path], held_llm: HeldLLM, app_behind_held_llm: str
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    expect = sync_api.expect
    names = [path.name for path in two_documents]

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # separate contexts: two users, two Streamlit sessions, one server and one engine
            pages = [browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                     for _ in SESSIONS]
            for page in pages:
                page.goto(app_behind_held_llm)
            for page in pages:
                expect(page.get_by_role("heading", name="Chat with your documents")
                       ).to_be_visible(timeout=LONG_MS)
                expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
                       ).to_have_count(1, timeout=LONG_MS)
            inputs = [page.locator('[data-testid="stChatInput"] textarea') for page in pages]
            for field, (_, question, _) in zip(inputs, SESSIONS, strict=True):
                field.fill(question)
            for field in inputs:
                field.press("Enter")

            # Both questions reach the model while neither answer can finish: both are being
            # answered at the same moment, and both pages' script runs are still running.
            questions = [question for _, question, _ in SESSIONS]
            assert held_llm.wait_for(questions, timeout_s=LONG_MS / 1000), (
                f"not both questions reached the language model; held: {held_llm.held()}")
            for page in pages:
                expect(page.locator('[data-testid="stApp"]')).to_have_attribute(
                    "data-test-script-state", "running", timeout=10_000)
            held_llm.open()

            for page, name, other, (_, question, word) in zip(
                pages, names, reversed(names), SESSIONS, strict=True
            ):
                assistant = page.locator('[data-testid="stChatMessage"]').filter(
                    has=page.locator('[data-testid="stChatMessageAvatarAssistant"]'))
                expect(assistant).to_have_count(1, timeout=LONG_MS)
                answer = assistant.locator(
                    '[data-testid="stMarkdown"]:not(:has([data-testid="stCaptionContainer"]))')
                text = _watch_text(page, answer)[-1]
                assert "The language model failed" not in text, text
                user = page.locator('[data-testid="stChatMessage"]').filter(
                    has=page.locator('[data-testid="stChatMessageAvatarUser"]'))
                expect(user).to_have_count(1)
                expect(user).to_contain_text(question)
                sources = assistant.locator('[data-testid="stExpander"] summary')
                summaries = sources.all_inner_texts()
                assert summaries, f"no sources for {question!r}"
                assert all(name in summary for summary in summaries), (question, summaries)
                assert other not in assistant.inner_text(), (question, assistant.inner_text())
                sources.first.click()  # the passage itself belongs to this question's document
                expect(assistant.locator('[data-testid="stExpanderDetails"]').first
                       ).to_contain_text(word, ignore_case=True, timeout=10_000)
        finally:
            browser.close()
