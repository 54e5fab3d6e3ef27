"""Several processes and sessions on one index at once, as they meet in production:
(a) two `python -m rag ingest` processes fill one Chroma server while a third process asks
    questions all along: no error, no lost document, every cited chunk exists;
(b) two browser sessions of one Streamlit app ask at the same moment: each gets the answer to
    its own question, with its own document's sources.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import cycle
from pathlib import Path

import pytest

from rag.config import Settings
from rag.generation import FAILURE_PREFIX
from rag.pipeline import RAG
from tests.conftest import REPO
from tests.chroma_fixtures import chroma_server_at
from tests.processes import cli_env
from tests.test_e2e_browser import (  # noqa: F401  (app_url is a fixture)
    CHROMIUM,
    CHROMIUM_ARGS,
    LONG_MS,
    _watch_text,
    app_url,
)

pytestmark = pytest.mark.slow

# Two disjoint sets of real files (about 75 chunks each), one per ingest process.
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
ASKS = 1  # answers with the real LLM during the ingests (seconds each); retrievals in between
TIMEOUT_S = 300.0


def _doc_id(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_citations_exist(rag: RAG, hits, question: str) -> None:
    """Every hit is a chunk the store returns, of a listed document, with the same text."""
    ids = [hit.chunk.chunk_id for hit in hits]
    found = {chunk.chunk_id: chunk for chunk, _ in rag.store.get_chunks(ids)}
    assert set(ids) <= set(found), f"{question!r} cited missing chunks {set(ids) - set(found)}"
    listed = {info.doc_id for info in rag.documents()}
    for hit in hits:
        assert hit.chunk.doc_id in listed, f"{question!r} cited unlisted {hit.chunk.source}"
        assert found[hit.chunk.chunk_id].text == hit.chunk.text, hit.chunk.chunk_id


# "separate" (one data_dir per process, only the server shared) passed too, but doubles the
# runtime; "shared" shares the most: the manifest, the kept originals and the BM25 folder too.
@pytest.mark.parametrize("data_dirs", ["shared"])
def test_two_ingests_and_an_asker_on_one_chroma_server(
    data_dirs: str, bench_data: Path, embedder, llm_server: str, tmp_path: Path
) -> None:
    """`shared`: several app instances on one machine (one data_dir: manifest, originals and
    BM25 files shared too); `separate`: instances on different machines, only the server shared.
    The asker is this test's process; with separate data_dirs it has one of its own."""
    sets = [[bench_data / name for name in SET_A], [bench_data / name for name in SET_B]]
    expected = {_doc_id(path) for files in sets for path in files}
    if data_dirs == "shared":
        dirs = [tmp_path / "data"] * 3
    else:
        dirs = [tmp_path / "data-a", tmp_path / "data-b", tmp_path / "data-asker"]

    with chroma_server_at(tmp_path / "chroma-server") as server:
        where = {"chroma_host": server.host, "chroma_port": server.port}
        env = cli_env({"RAG_CHROMA_HOST": server.host, "RAG_CHROMA_PORT": str(server.port)})
        logs = [tmp_path / "ingest-a.log", tmp_path / "ingest-b.log"]
        processes = []
        for files, data_dir, log in zip(sets, dirs, logs, strict=False):
            with log.open("wb") as out:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "rag", "--data-dir", str(data_dir), "ingest",
                     *map(str, files)],
                    cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                ))
        try:
            rag = RAG(Settings(data_dir=dirs[2], llm_base_url=llm_server, llm_model="smollm2",
                               llm_max_tokens=16, **where), embedder=embedder)
            asked = retrieved = with_hits_while_ingesting = 0
            started = time.monotonic()
            deadline = started + TIMEOUT_S
            trace = []  # (s, documents listed, hits, ingests running) per question, if it fails
            questions = cycle(QUESTIONS)
            while any(process.poll() is None for process in processes):
                assert time.monotonic() < deadline, "the ingests did not finish in time"
                question = next(questions)
                listed_before = len(rag.documents())
                try:
                    if listed_before and asked < ASKS and retrieved % 4 == 3:
                        answer = rag.ask(question)
                        text = "".join(answer.deltas)
                        hits = answer.hits
                        asked += 1
                        assert FAILURE_PREFIX not in text, text
                    else:
                        hits = rag.retrieve(question).hits
                    _assert_citations_exist(rag, hits, question)
                except Exception as error:
                    raise AssertionError(
                        f"the asker failed on {question!r} after {retrieved} retrievals, "
                        f"with {listed_before} documents listed: {type(error).__name__}: "
                        f"{error}") from error
                retrieved += 1
                running = sum(process.poll() is None for process in processes)
                trace.append((round(time.monotonic() - started, 1), listed_before, len(hits),
                              running))
                if hits and running:
                    with_hits_while_ingesting += 1
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()

        print(f"{retrieved} retrievals and {asked} answers during the ingests, "
              f"{with_hits_while_ingesting} with hits while an ingest ran: {trace}")
        outputs = [log.read_text() for log in logs]
        for process, output in zip(processes, outputs, strict=True):
            assert process.returncode == 0, output
        for files, output in zip(sets, outputs, strict=True):
            for path in files:
                assert f"{path}: indexed (" in output, output
        assert with_hits_while_ingesting >= 1, (
            f"no question found anything while the ingests ran ({retrieved} retrievals): "
            "the test did not exercise reads during writes")

        rag = RAG(Settings(data_dir=dirs[2], **where), embedder=embedder)
        listed = {info.doc_id: info for info in rag.documents()}
        assert set(listed) == expected, "a document was lost or one appeared from nowhere"
        added = [sorted(listed[_doc_id(path)].added_at for path in files) for files in sets]
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
    """Indexed through the CLI into the data dir `app_url` gives the app, before the app opens
    it (the app opens its index on the first page load)."""
    files = [bench_data / document for document, _, _ in SESSIONS]
    result = subprocess.run(
        [sys.executable, "-m", "rag", "--data-dir", str(tmp_path / "data"), "ingest",
         *map(str, files)],
        cwd=REPO, env=cli_env({}), capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    yield files


def test_two_browser_sessions_asking_at_once_get_their_own_answers(
    two_documents: list[Path], app_url: str  # noqa: F811  (the fixture imported above)
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
                page.goto(app_url)
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

            # Both script runs must be answering at the same moment, or nothing ran at once.
            states = [page.locator('[data-testid="stApp"]') for page in pages]
            overlapped = False
            deadline = time.monotonic() + 60
            while not overlapped and time.monotonic() < deadline:
                overlapped = all(state.get_attribute("data-test-script-state") == "running"
                                 for state in states)
                time.sleep(0.05)
            assert overlapped, "the two questions were never answered at the same time"

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
