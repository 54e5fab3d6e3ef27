"""Conversations in a real browser: asking again while an answer streams, a reload, a restarted
server, and citations that link to their sources.

One `streamlit run` serves the module (restarted once on the same data dir); tracemonkey.pdf is
indexed in-process beforehand, as the upload itself is covered by test_e2e_browser.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from rag.conversations import ConversationStore, title_from
from rag.types import Chunk, Hit
from tests.conftest import REPO
from tests.held_llm import HeldLLM
from tests.processes import clear_settings_env, free_port, running_server, streamlit_command
from tests.test_e2e_browser import (
    ANSWER,
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    LONG_MS,
    NUMBERS_QUESTION,
    _screenshot,
    _settled,
    _wait_idle,
)

pytestmark = pytest.mark.slow

FOLLOW_UP = "And how are doubles represented?"
HOSTILE = '<img src="x" onerror="window.pwned = 1"><script>window.pwned = 2</script>'
UNFINISHED = ("queued", "streaming")


class App:
    """`streamlit run` on one port and data dir, which a test can stop and start again."""

    def __init__(self, data_dir: Path, llm_url: str, log_dir: Path) -> None:
        self.data_dir, self.log_dir = data_dir, log_dir
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("RAG_") and k != "OPENAI_API_KEY"}
        self.env.update(RAG_DATA_DIR=str(data_dir), RAG_LLM_BASE_URL=llm_url,
                        RAG_LLM_MODEL="smollm2", RAG_LLM_MAX_TOKENS="64")
        self.starts = 0
        self._running = ExitStack()

    def start(self) -> None:
        self.starts += 1
        command = streamlit_command(self.url.rsplit(":", 1)[1])
        self._running.enter_context(running_server(
            command, ready_url=f"{self.url}/_stcore/health", cwd=REPO, env=self.env,
            log=self.log_dir / f"streamlit-{self.starts}.log"))

    def stop(self) -> None:
        self._running.close()

    @property
    def store(self) -> ConversationStore:
        """The server's conversations, read from its SQLite file as another process would."""
        return ConversationStore(self.data_dir / "conversations.sqlite3")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, embedder, bench_data: Path) -> Path:
    """tracemonkey.pdf indexed with the settings the server will have (no RAG_* but its own)."""
    from rag.config import Settings
    from rag.pipeline import RAG

    data = tmp_path_factory.mktemp("conversations") / "data"
    with pytest.MonkeyPatch.context() as patch:
        clear_settings_env(patch)
        engine = RAG(Settings(data_dir=data), embedder=embedder)
        pdf = (bench_data / "pdfs" / "pdfjs" / "tracemonkey.pdf").read_bytes()
        assert engine.ingest_one("tracemonkey.pdf", pdf).status == "indexed"
        engine.sync_lexical()
        hits = engine.retrieve(NUMBERS_QUESTION).hits[:3]
    _seed_cited_answer(data, hits)
    return data


def _seed_cited_answer(data: Path, hits: list[Hit]) -> None:
    """A stored answer citing its second source, over real passages and a hostile one: what the
    engine stores for a model that wrote one marker (SmolLM2 rarely cites)."""
    assert len(hits) == 3 and all(hit.chunk.page for hit in hits)
    hostile = Hit(Chunk("0" * 64, "hostile.html", 0, HOSTILE, 0, len(HOSTILE)), 0.41)
    store = ConversationStore(data / "conversations.sqlite3")
    conversation = store.create("Cited answer")
    store.add_message(conversation.id, "user", NUMBERS_QUESTION)
    sentence = hits[1].chunk.text.split(". ")[0].strip()
    store.add_message(conversation.id, "assistant", f"{sentence} [2].", status="done",
                      sources=[*hits, hostile], cited=(2,), meta={"attributed": False})


@pytest.fixture(scope="module")
def held_llm(llm_server: str) -> Iterator[HeldLLM]:
    """The model's server behind a gate the first question waits at (opened by `asked_twice`)."""
    with HeldLLM(llm_server) as gate:
        yield gate


@pytest.fixture(scope="module")
def app(data_dir: Path, held_llm: HeldLLM,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    server = App(data_dir, held_llm.url, tmp_path_factory.mktemp("streamlit_logs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    yield page
    page.close()


def _expect():
    return pytest.importorskip("playwright.sync_api").expect


def _messages(page, role: str):
    avatar = "User" if role == "user" else "Assistant"
    return page.locator('[data-testid="stChatMessage"]').filter(
        has=page.locator(f'[data-testid="stChatMessageAvatar{avatar}"]'))


def _ask(page, question: str) -> None:
    chat_input = page.locator('[data-testid="stChatInput"] textarea')
    chat_input.fill(question)
    chat_input.press("Enter")


def _wait_for_answers(store: ConversationStore, conversation_id: str, count: int) -> list:
    """Until the conversation holds `count` finished answers (the engine's worker writes them)."""
    deadline = time.monotonic() + LONG_MS / 1000
    while time.monotonic() < deadline:
        answers = [m for m in store.messages(conversation_id) if m.role == "assistant"]
        if len(answers) == count and not any(m.status in UNFINISHED for m in answers):
            return answers
        time.sleep(0.2)
    pytest.fail(f"{count} answers not finished in time: {store.messages(conversation_id)}")


def _show_stored(page, answers: list) -> None:
    """Until the page shows these stored answers and its run has ended, nothing streamed or
    stale left (in this order: the page may still be idle from before its rerun)."""
    for answer in answers:
        _expect()(page.locator(f".st-key-answer-m{answer.id}")).to_be_visible(timeout=LONG_MS)
    _settled(page)


def _labels(expanders) -> list[str]:
    """Expander labels without the icon name Streamlit puts before them."""
    return [text[text.index("["):].strip()
            for text in expanders.locator("summary").all_inner_texts()]


def _conversation_id(page) -> str:
    page.wait_for_url(lambda url: "c=" in url, timeout=LONG_MS)
    return page.url.split("c=", 1)[1].split("&")[0]


def _texts(page) -> list[str]:
    return [text.strip() for text in
            page.locator('[data-testid="stChatMessage"]').all_inner_texts()]


def _expect_texts(page, texts: list[str]) -> None:
    """Until the messages read `texts`: a fenced code block in an answer is highlighted
    after the language's module loads, so a freshly loaded page fills it in a moment later."""
    _expect()(page.locator('[data-testid="stChatMessage"]')).to_have_text(
        texts, use_inner_text=True, timeout=LONG_MS)


@pytest.fixture(scope="module")
def asked_twice(app: App, held_llm: HeldLLM, browser) -> Iterator[tuple[str, list[str], object]]:
    """Ask, and ask again while the first answer is being written (its request held at the
    model's door until the second question waits on the page); both answers complete."""
    expect = _expect()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(app.url)
    expect(page.get_by_role("heading", name="Chat with your documents")).to_be_visible(
        timeout=LONG_MS)
    _wait_idle(page)
    _ask(page, NUMBERS_QUESTION)
    conversation_id = _conversation_id(page)
    assert held_llm.wait_for([NUMBERS_QUESTION], timeout_s=LONG_MS / 1000), held_llm.held()
    _ask(page, FOLLOW_UP)
    waiting = page.get_by_text("Waiting for the answer above to finish…")
    expect(waiting).to_be_visible(timeout=LONG_MS)
    _screenshot(page, "conversation-waiting.png")
    held_llm.open()
    answers = _wait_for_answers(app.store, conversation_id, 2)
    _show_stored(page, answers)
    assert not waiting.count()
    _screenshot(page, "conversation-both-answers.png")
    yield conversation_id, answers, page
    page.close()


def test_asking_again_while_an_answer_streams_completes_both(
    asked_twice: tuple[str, list, object],
) -> None:
    _, answers, page = asked_twice
    assert [m.status for m in answers] in (["done", "done"], ["done", "refused"]), answers
    assert all(m.content.strip() and "[The language model failed" not in m.content
               for m in answers), answers
    questions = _messages(page, "user").locator('[data-testid="stChatMessageContent"]')
    assert [q.strip() for q in questions.all_inner_texts()] == [NUMBERS_QUESTION, FOLLOW_UP]
    shown = [t.strip() for t in _messages(page, "assistant").locator(ANSWER).all_inner_texts()]
    assert all(shown) and shown[0][:20] == answers[0].content[:20], (shown, answers)


def test_a_reload_shows_the_same_conversation(asked_twice: tuple[str, list, object]) -> None:
    conversation_id, answers, page = asked_twice
    before = _texts(page)
    page.reload()
    _show_stored(page, answers)
    assert f"c={conversation_id}" in page.url
    _expect_texts(page, before)
    _screenshot(page, "conversation-reloaded.png")


def test_after_a_restart_the_conversation_reopens_from_the_list(
    app: App, asked_twice: tuple[str, list, object], page
) -> None:
    expect = _expect()
    conversation_id, answers, asked_page = asked_twice
    before = _texts(asked_page)
    app.stop()
    app.start()
    page.goto(app.url)
    expect(page.get_by_role("heading", name="Chat with your documents")).to_be_visible(
        timeout=LONG_MS)
    _wait_idle(page)
    assert not _texts(page)
    listed = page.locator(f'.st-key-open-{conversation_id} button')
    expect(listed).to_have_text(title_from(NUMBERS_QUESTION))
    expect(page.get_by_text("Conversations are stored with this index")).to_be_visible()
    listed.click()
    _show_stored(page, answers)
    assert f"c={conversation_id}" in page.url
    _expect_texts(page, before)

    # The menu: rename, export, delete; a delete asks first.
    page.locator('[data-testid="stPopover"] button').click()
    expect(page.get_by_role("button", name="Export as Markdown")).to_be_visible()
    # The viewport as it is: _screenshot's resizing would move the open menu off screen.
    page.screenshot(path=str(ARTIFACTS / "conversation-after-restart-menu.png"))
    # The open menu floats beside its button: a late re-layout of the page (a code block
    # highlighted) once scrolled the chat and carried the menu out of the viewport, where no
    # scrolling brings it back (CI, 2026-12-04). The click goes to the button wherever it is.
    page.get_by_role("button", name="Delete…").dispatch_event("click")
    confirm = page.get_by_text(f"Delete “{title_from(NUMBERS_QUESTION)}”?")
    expect(confirm).to_be_visible(timeout=LONG_MS)
    _screenshot(page, "conversation-delete-confirmation.png")
    page.locator(".st-key-cancel-delete-conversation button").click()
    expect(confirm).to_have_count(0, timeout=LONG_MS)
    assert app.store.get(conversation_id) is not None


def test_a_cited_marker_links_to_its_source(app: App, page) -> None:
    expect = _expect()
    store = app.store
    conversation = store.find("Cited answer")
    answer = store.messages(conversation.id)[1]
    page.goto(f"{app.url}/?c={conversation.id}")
    assistant = _messages(page, "assistant")
    link = assistant.locator(ANSWER).locator(f'a[href="#m{answer.id}-s2"]')
    expect(link).to_have_text("[2]", timeout=LONG_MS)
    _show_stored(page, [answer])
    labels = _labels(assistant.locator('[data-testid="stExpander"]'))
    assert labels[0].startswith("[2] tracemonkey.pdf") and "cited" in labels[0], labels
    assert [label[:3] for label in labels] == ["[2]", "[1]", "[3]", "[4]"], labels
    assert not any("cited" in label for label in labels[1:]), labels

    link.click()  # the cited source is open: the link scrolls to its marked passage
    target = page.locator(f'[id="m{answer.id}-s2"]')
    expect(target).to_be_in_viewport(timeout=10_000)
    expect(target.locator("mark").first).to_be_visible()
    source = assistant.locator('[data-testid="stExpander"]').filter(has=target)
    source.get_by_text(f"View page {answer.sources[1].chunk.page}").click()
    picture = source.locator('[data-testid="stImage"] img')
    expect(picture).to_be_visible(timeout=LONG_MS)
    assert picture.evaluate("img => img.naturalWidth") > 500

    # A document's markup stays text: shown literally, never run.
    assistant.locator('[data-testid="stExpander"] summary').filter(
        has_text="hostile.html").click()
    expect(assistant.get_by_text(HOSTILE, exact=True)).to_be_visible(timeout=10_000)
    assert page.evaluate("window.pwned") is None
    _screenshot(page, "conversation-citations.png")
